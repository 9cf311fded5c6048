//! What both commands share on their command lines: defaults taken from the
//! environment variables the services read, argument checks that name the bad
//! value, and the exit codes.

/// Exit code: done, nothing wrong.
pub const EXIT_OK: i32 = 0;
/// Exit code: the command ran and found something wrong (violations, a
/// dead letter that could not be redriven, the brokers not answering).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad arguments; nothing was changed.
pub const EXIT_USAGE: i32 = 2;
/// Exit code (`glasshouse-audit`): a database or broker could not be read, so
/// nothing can be said about the invariants.
pub const EXIT_UNAVAILABLE: i32 = 3;

/// The services' Kafka bootstrap servers setting (`kafka.brokers`).
pub const ENV_BROKERS: &str = "APP_KAFKA__BROKERS";
/// The services' topic prefix setting (`kafka.topic_prefix`).
pub const ENV_TOPIC_PREFIX: &str = "APP_KAFKA__TOPIC_PREFIX";
/// The local stack's broker, as in every service's `config/base.yaml`.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// Parses the command line `args` (program name first), or prints clap's
/// message and gives the exit code: [`EXIT_OK`] for `--help`/`--version`,
/// [`EXIT_USAGE`] for bad arguments.
pub fn parse_or_exit<T: clap::Parser>(args: Vec<std::ffi::OsString>) -> Result<T, i32> {
    T::try_parse_from(args).map_err(|e| {
        let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        let _ = e.print();
        code
    })
}

/// `flag` if given, else the environment variable `var` if set and not
/// empty, else `default`.
pub fn flag_env_or(flag: Option<String>, var: &str, default: &str) -> String {
    flag.or_else(|| std::env::var(var).ok().filter(|v| !v.trim().is_empty())).unwrap_or_else(|| default.to_owned())
}

/// Checks a `host:port[,host:port...]` list; the error names the bad entry.
pub fn validate_brokers(list: &str) -> Result<(), String> {
    if list.trim().is_empty() {
        return Err("--brokers is empty (expected host:port[,host:port...])".to_owned());
    }
    for entry in list.split(',') {
        let entry = entry.trim();
        let ok = entry.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!("--brokers: `{entry}` is not host:port (in `{list}`)"));
        }
    }
    Ok(())
}

/// Checks a topic prefix: the characters Kafka allows in topic names.
pub fn validate_topic_prefix(prefix: &str) -> Result<(), String> {
    if prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        Ok(())
    } else {
        Err(format!("--topic-prefix `{prefix}` has characters a Kafka topic name cannot have (letters, digits, '.', '_', '-')"))
    }
}

/// `url` with the password of its user info replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user.to_owned(), |(name, _)| format!("{name}:***"));
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_are_host_port_lists() {
        assert!(validate_brokers("127.0.0.1:9092").is_ok());
        assert!(validate_brokers("a:1, b:2").is_ok());
        for (bad, named) in [("", "empty"), ("localhost", "`localhost`"), ("a:1,b", "`b`"), ("a:99999", "`a:99999`"), (":9092", "`:9092`")]
        {
            let e = validate_brokers(bad).unwrap_err();
            assert!(e.contains(named), "{bad}: {e}");
        }
    }

    #[test]
    fn prefixes_use_topic_characters() {
        assert!(validate_topic_prefix("").is_ok());
        assert!(validate_topic_prefix("e2e_1.x-").is_ok());
        assert!(validate_topic_prefix("a b").unwrap_err().contains("`a b`"));
    }

    #[test]
    fn passwords_never_print() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(redact_url("mongodb://h:27017/"), "mongodb://h:27017/");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("postgres://u:p@ss@h/db?x=@"), "postgres://u:***@h/db?x=@");
    }
}
