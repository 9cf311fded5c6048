//! `glasshouse-dlq list|show|redrive`: the dead-letter command line.
//!
//! Exit codes (also in docs/operations.md):
//! - 0: done (`redrive`: every selected dead letter is redriven, now or before);
//! - 1: the brokers could not be reached, or a dead letter could not be redriven;
//! - 2: bad arguments (the message names the bad value); nothing was read or sent.

use std::ffi::OsString;
use std::io::Write;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};

use super::kafka::{Broker, TopicState};
use super::redrive::{self, RedriveError, Selection};
use super::{DeadLetter, DlqTopic, HEADER_ERROR, Position, dead_letter_topics};
use crate::args::{
    DEFAULT_BROKERS, ENV_BROKERS, ENV_TOPIC_PREFIX, EXIT_FAILED, EXIT_OK, EXIT_USAGE, flag_env_or, validate_brokers, validate_topic_prefix,
};

#[derive(Debug, Parser)]
#[command(
    name = "glasshouse-dlq",
    version,
    about = "Inspect and redrive dead letters (<topic>.dlq)",
    after_help = "Exit codes: 0 done, 1 brokers unreachable or a dead letter not redriven, 2 bad arguments."
)]
struct Cli {
    /// Kafka bootstrap servers, host:port[,host:port...]
    /// [default: $APP_KAFKA__BROKERS, else 127.0.0.1:9092]
    #[arg(long, global = true, value_name = "LIST")]
    brokers: Option<String>,
    /// Prefix of every topic name, as the services' kafka.topic_prefix
    /// [default: $APP_KAFKA__TOPIC_PREFIX, else none]
    #[arg(long, global = true, value_name = "PREFIX")]
    topic_prefix: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Per dead-letter topic: how many are kept and not yet redriven, and each
    /// message (position, state, age, key, event type and id, error).
    List {
        /// Dead-letter topics to list [default: <prefix>orders.v1.dlq and <prefix>inventory.v1.dlq]
        topics: Vec<String>,
    },
    /// One dead letter: its headers and its payload (JSON pretty-printed).
    Show {
        /// The dead-letter topic, e.g. orders.v1.dlq (the prefix is added when missing).
        topic: String,
        /// Where the message is, as `list` prints it.
        #[arg(value_name = "PARTITION:OFFSET")]
        position: Position,
    },
    /// Republish dead letters to their original topic (key and headers kept,
    /// dlq.* headers dropped, dlq.redriven_from added), each at most once.
    Redrive(RedriveArgs),
}

#[derive(Debug, Args)]
struct RedriveArgs {
    /// The dead-letter topic, e.g. orders.v1.dlq (the prefix is added when missing).
    topic: String,
    /// The dead letters to redrive (repeatable, or several after one flag).
    #[arg(long = "offset", value_name = "PARTITION:OFFSET", num_args = 1.., required_unless_present = "all", conflicts_with = "all")]
    offsets: Vec<Position>,
    /// Every dead letter of the topic not redriven yet, in order per partition.
    #[arg(long)]
    all: bool,
    /// Print what would be sent; send and record nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs the command line `args` (program name first), printing to stdout and
/// stderr; returns the exit code.
pub fn main_with(args: Vec<OsString>) -> i32 {
    let cli: Cli = match crate::args::parse_or_exit(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let brokers = flag_env_or(cli.brokers, ENV_BROKERS, DEFAULT_BROKERS);
    let prefix = flag_env_or(cli.topic_prefix, ENV_TOPIC_PREFIX, "");
    if let Err(e) = validate_brokers(&brokers).and_then(|()| validate_topic_prefix(&prefix)) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match cli.command {
        Command::List { topics } => {
            let named = !topics.is_empty();
            resolve_all(&topics, &prefix).and_then(|t| connect(&brokers).map(|b| (b, t))).and_then(|(b, topics)| {
                if named {
                    // A topic the operator named must exist: a typo is not "nothing dead-lettered".
                    for t in &topics {
                        state_of(&b, t)?;
                    }
                }
                list(&b, &topics, &mut out).map_err(fail)?;
                Ok(EXIT_OK)
            })
        }
        Command::Show { topic, position } => resolve(&topic, &prefix).and_then(|t| {
            let b = connect(&brokers)?;
            show(&b, &t, position, &mut out)?;
            Ok(EXIT_OK)
        }),
        Command::Redrive(args) => resolve(&args.topic, &prefix).and_then(|t| {
            let mut b = connect(&brokers)?;
            let selection = if args.all { Selection::All } else { Selection::Offsets(args.offsets) };
            let outcome = redrive::redrive(&mut b, &t, &selection, args.dry_run, &mut out).map_err(|e| match e {
                RedriveError::BadInput(m) => Exit::Usage(m),
                RedriveError::Failed(e) => fail(e),
            })?;
            let verb = if args.dry_run { "would redrive" } else { "redriven" };
            let _ = writeln!(
                out,
                "{t}: {verb} {}, already redriven {}, failed {}",
                outcome.redriven.len(),
                outcome.already,
                outcome.failed.len()
            );
            Ok(if outcome.failed.is_empty() { EXIT_OK } else { EXIT_FAILED })
        }),
    };
    let _ = out.flush();
    match result {
        Ok(code) => code,
        Err(Exit::Usage(m)) => {
            eprintln!("error: {m}");
            EXIT_USAGE
        }
        Err(Exit::Failed(m)) => {
            eprintln!("error: {m}");
            EXIT_FAILED
        }
    }
}

/// Why a command stopped.
enum Exit {
    Usage(String),
    Failed(String),
}

fn fail(e: anyhow::Error) -> Exit {
    Exit::Failed(format!("{e:#}"))
}

fn connect(brokers: &str) -> Result<Broker, Exit> {
    Broker::connect(brokers).map_err(fail)
}

fn resolve(topic: &str, prefix: &str) -> Result<DlqTopic, Exit> {
    DlqTopic::resolve(topic, prefix).map_err(Exit::Usage)
}

fn resolve_all(topics: &[String], prefix: &str) -> Result<Vec<DlqTopic>, Exit> {
    if topics.is_empty() {
        return dead_letter_topics(prefix).iter().map(|t| resolve(t, prefix)).collect();
    }
    topics.iter().map(|t| resolve(t, prefix)).collect()
}

/// Reads a topic's state, turning "no such topic" into a usage error when
/// the operator named it, and into `None` otherwise.
fn state_of(broker: &Broker, topic: &DlqTopic) -> Result<TopicState, Exit> {
    match broker.state(topic.as_str()).map_err(fail)? {
        Some(s) => Ok(s),
        None => Err(Exit::Usage(format!("topic {topic} does not exist on {}", broker.brokers()))),
    }
}

fn list(broker: &Broker, topics: &[DlqTopic], out: &mut dyn Write) -> anyhow::Result<()> {
    let now = Utc::now();
    for topic in topics {
        let Some(state) = broker.state(topic.as_str())? else {
            writeln!(out, "{topic}: no such topic (nothing was ever dead-lettered here)")?;
            continue;
        };
        writeln!(out, "{topic}: {} kept, {} not redriven", state.kept(), state.pending())?;
        let ranges: Vec<(i32, i64, i64)> = state.partitions.iter().map(|p| (p.partition, p.low, p.high)).collect();
        let letters = broker.read(topic.as_str(), &ranges)?;
        if letters.is_empty() {
            continue;
        }
        writeln!(out, "  {:<8} {:<9} {:>5}  {:<36}  {:<18}  {:<36}  ERROR", "POSITION", "STATE", "AGE", "KEY", "EVENT_TYPE", "EVENT_ID")?;
        for l in &letters {
            let done = state.partition(l.partition).is_some_and(|p| p.progress.is_done(l.offset));
            writeln!(
                out,
                "  {:<8} {:<9} {:>5}  {:<36}  {:<18}  {:<36}  {}",
                l.position().to_string(),
                if done { "redriven" } else { "pending" },
                l.age_seconds(now).map_or_else(|| "-".to_owned(), human_age),
                l.key_text().unwrap_or_else(|| "-".to_owned()),
                l.header("event_type").unwrap_or_else(|| "-".to_owned()),
                l.header("event_id").unwrap_or_else(|| "-".to_owned()),
                one_line(&l.header(HEADER_ERROR).unwrap_or_else(|| "-".to_owned()), 160),
            )?;
        }
    }
    Ok(())
}

fn show(broker: &Broker, topic: &DlqTopic, pos: Position, out: &mut dyn Write) -> Result<(), Exit> {
    let state = state_of(broker, topic)?;
    redrive::validate(&state, &[pos]).map_err(|m| Exit::Usage(m.replacen("--offset ", "", 1)))?;
    let letters = broker.read(topic.as_str(), &[(pos.partition, pos.offset, pos.offset + 1)]).map_err(fail)?;
    let Some(letter) = letters.iter().find(|l| l.position() == pos) else {
        return Err(Exit::Failed(format!("{topic} {pos}: the message is gone (deleted by retention)")));
    };
    let done = state.partition(pos.partition).is_some_and(|p| p.progress.is_done(pos.offset));
    render(letter, done, out).map_err(fail)
}

fn render(l: &DeadLetter, redriven: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "topic:     {}", l.topic)?;
    writeln!(out, "position:  {}", l.position())?;
    writeln!(out, "state:     {}", if redriven { "redriven" } else { "pending (not redriven)" })?;
    match l.timestamp {
        Some(t) => writeln!(out, "time:      {} ({} ago)", t.to_rfc3339(), human_age(l.age_seconds(Utc::now()).unwrap_or(0)))?,
        None => writeln!(out, "time:      -")?,
    }
    writeln!(out, "key:       {}", l.key_text().unwrap_or_else(|| "-".to_owned()))?;
    writeln!(out, "headers:")?;
    for h in &l.headers {
        let v = h.value.as_deref().map_or_else(|| "(no value)".to_owned(), |v| String::from_utf8_lossy(v).into_owned());
        writeln!(out, "  {}: {v}", h.key)?;
    }
    writeln!(out, "payload:")?;
    match l.payload.as_deref() {
        None => writeln!(out, "(none)")?,
        Some(bytes) => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(v) => writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?,
            Err(e) => writeln!(out, "{}\n(not JSON: {e})", String::from_utf8_lossy(bytes))?,
        },
    }
    Ok(())
}

/// `42s`, `5m`, `3h`, `2d`.
fn human_age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `s` on one line, cut to `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max { flat } else { format!("{}…", flat.chars().take(max).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(600), "10m");
        assert_eq!(human_age(3 * 3600), "3h");
        assert_eq!(human_age(5 * 86_400), "5d");
    }

    #[test]
    fn errors_fit_one_line() {
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
