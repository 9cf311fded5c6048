//! Local JWT keys and tokens for the Glasshouse stack.
//!
//! ```text
//! glasshouse-dev-token init --dir DIR
//!     Creates DIR/jwt-private.pem (ES256, mode 0600) and DIR/jwks.json if
//!     missing; idempotent. The services read DIR/jwks.json.
//! glasshouse-dev-token mint --dir DIR --sub CUSTOMER --role customer|admin [--role ...] [--ttl SECONDS]
//!     Prints a token signed with DIR/jwt-private.pem (issuer glasshouse-local,
//!     audience glasshouse, default TTL 3600 s) on stdout, nothing else.
//! ```
//!
//! Exit codes: 0 done, 64 bad usage (the message names the bad argument),
//! 1 anything else (missing key directory, I/O).
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use glasshouse_platform::auth::Role;
use glasshouse_platform::auth::dev::{self, InitOutcome, JWKS_FILE, PRIVATE_KEY_FILE};

const USAGE: &str = "usage:
  glasshouse-dev-token init --dir DIR
  glasshouse-dev-token mint --dir DIR --sub CUSTOMER --role customer|admin [--role ...] [--ttl SECONDS]";

/// Longest accepted `--ttl`: a year is plenty for a local token.
const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

enum Command {
    Init { dir: PathBuf },
    Mint { dir: PathBuf, sub: String, roles: Vec<Role>, ttl: Duration },
}

fn parse(args: Vec<OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let sub = args.next().ok_or("missing subcommand (init or mint)")?;
    let sub = sub.to_str().ok_or("the subcommand is not UTF-8")?.to_owned();
    let (mut dir, mut subject, mut roles, mut ttl) = (None, None, Vec::new(), None);
    while let Some(flag) = args.next() {
        let flag = flag.to_str().map(str::to_owned).ok_or("an argument is not UTF-8")?;
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .and_then(|v| v.into_string().map_err(|_| format!("the value of {flag} is not UTF-8")))
        };
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--sub" if sub == "mint" => subject = Some(value()?),
            "--role" if sub == "mint" => {
                let v = value()?;
                roles.push(Role::parse(&v).ok_or_else(|| format!("--role {v:?}: expected customer or admin"))?);
            }
            "--ttl" if sub == "mint" => {
                let v = value()?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_TTL_SECS).contains(s))
                    .ok_or_else(|| format!("--ttl {v:?}: expected whole seconds from 1 to {MAX_TTL_SECS}"))?;
                ttl = Some(Duration::from_secs(secs));
            }
            other => return Err(format!("unexpected argument {other:?} for {sub}")),
        }
    }
    let dir = dir.ok_or("--dir DIR is required")?;
    match sub.as_str() {
        "init" => Ok(Command::Init { dir }),
        "mint" => {
            let sub = subject.ok_or("--sub CUSTOMER is required")?;
            glasshouse_contracts::CustomerId::parse(&sub).map_err(|e| format!("--sub: {e}"))?;
            if roles.is_empty() {
                return Err("--role customer|admin is required (repeat it for several roles)".into());
            }
            roles.sort();
            roles.dedup();
            Ok(Command::Mint { dir, sub, roles, ttl: ttl.unwrap_or(Duration::from_secs(3600)) })
        }
        other => Err(format!("unknown subcommand {other:?} (expected init or mint)")),
    }
}

fn main() -> ExitCode {
    let command = match parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("glasshouse-dev-token: {msg}\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let result = match command {
        Command::Init { dir } => dev::init_dir(&dir).map(|outcome| {
            let (what, kid) = match outcome {
                InitOutcome::Created { kid } => ("created", kid),
                InitOutcome::Unchanged { kid } => ("unchanged", kid),
                InitOutcome::JwksRewritten { kid } => ("jwks rewritten", kid),
            };
            println!("{what}: {} and {} (kid {kid})", dir.join(PRIVATE_KEY_FILE).display(), dir.join(JWKS_FILE).display());
        }),
        Command::Mint { dir, sub, roles, ttl } => dev::mint_from_dir(&dir, &sub, roles, ttl).map(|token| println!("{token}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("glasshouse-dev-token: {e:#}");
            ExitCode::FAILURE
        }
    }
}
