//! Which database failures are worth another attempt: the one place where
//! Glasshouse decides "transient" (retry the same work later, it may succeed)
//! versus "permanent" (the same work fails again, whatever the wait).
//!
//! The consumer loop ([`crate::consumer`]) retries a transient failure for as
//! long as it lasts and dead-letters only permanent ones, so a wrong answer
//! here costs either a poison message retried forever (visible: the
//! `ConsumerStuck` alert) or, worse, a good message dead-lettered during an
//! outage. When in doubt about an outage-shaped error, call it transient.
//!
//! Decisions are by the server's own codes, never by parsing prose, except
//! for FerretDB, which passes its backend's failures on as a generic internal
//! error (code 1) with the backend's text: SQLite's "database is locked",
//! PostgreSQL's connection failures and SQLSTATE (see [`is_transient_mongo`]).
//!
//! Sources for the codes:
//! - PostgreSQL: Appendix A, "PostgreSQL Error Codes"
//!   (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
//! - MariaDB: "MariaDB Error Codes" (<https://mariadb.com/kb/en/mariadb-error-codes/>);
//!   MySQL: "Server Error Message Reference" and "Client Error Message Reference"
//!   (<https://dev.mysql.com/doc/mysql-errors/8.0/en/>). `perror <number>` on a
//!   MariaDB host prints the symbol of a number.
//! - MongoDB: `src/mongo/base/error_codes.yml` in the server repository (the
//!   codes the drivers' retryability specs also use).

/// MySQL/MariaDB error numbers after which the same statements may succeed.
///
/// Each entry is `(number, symbol)`; the symbol is the server's name for it.
pub const TRANSIENT_MYSQL_ERRORS: [(u16, &str); 18] = [
    // The session or statement was cut short by the server or an operator;
    // the work itself was fine (KILL QUERY, KILL CONNECTION, shutdown).
    (1053, "ER_SERVER_SHUTDOWN"),
    (1317, "ER_QUERY_INTERRUPTED"),
    (1927, "ER_CONNECTION_KILLED"),
    (1969, "ER_STATEMENT_TIMEOUT"),
    // Contention: the transaction lost a race; InnoDB says "try restarting transaction".
    (1205, "ER_LOCK_WAIT_TIMEOUT"),
    (1213, "ER_LOCK_DEADLOCK"),
    // The server is read-only for now (a replica during failover, or
    // `read_only` set for maintenance). 1290 is "running with the %s option
    // so it cannot execute this statement", in practice `--read-only`.
    (1290, "ER_OPTION_PREVENTS_STATEMENT"),
    (1836, "ER_READ_ONLY_MODE"),
    // Too many sessions, broken packets.
    (1040, "ER_CON_COUNT_ERROR"),
    (1158, "ER_NET_READ_ERROR"),
    (1159, "ER_NET_READ_INTERRUPTED"),
    (1160, "ER_NET_ERROR_ON_WRITE"),
    (1161, "ER_NET_WRITE_INTERRUPTED"),
    // MySQL 8.0.24+: the server closed an idle session. (MariaDB uses 4031 for
    // ER_REFERENCED_TRG_DOES_NOT_EXIST, a CREATE TRIGGER error that no
    // consumer's statement raises, so one entry serves both.)
    (4031, "ER_CLIENT_INTERACTION_TIMEOUT"),
    // Client-side codes (CR_*), as drivers and proxies that speak the
    // protocol report a lost server.
    (2002, "CR_CONNECTION_ERROR"),
    (2003, "CR_CONN_HOST_ERROR"),
    (2006, "CR_SERVER_GONE_ERROR"),
    (2013, "CR_SERVER_LOST"),
];

/// True for a MySQL/MariaDB error a retry may cure: its number is in
/// [`TRANSIENT_MYSQL_ERRORS`], or its SQLSTATE
/// is in class `08` (connection exception, e.g. `08S01` for a broken link)
/// or is `40001` (serialization failure: MySQL's deadlock).
pub fn is_transient_mysql(number: u16, sqlstate: Option<&str>) -> bool {
    TRANSIENT_MYSQL_ERRORS.iter().any(|(n, _)| *n == number) || sqlstate.is_some_and(|s| s.starts_with("08") || s == "40001")
}

/// True for a PostgreSQL SQLSTATE a retry may cure (Appendix A):
/// - class `08` connection exception (every code of it);
/// - `40001` serialization_failure, `40P01` deadlock_detected;
/// - `55P03` lock_not_available (`lock_timeout`), `57014` query_canceled
///   (`statement_timeout` or `pg_cancel_backend`: PostgreSQL's KILL QUERY);
/// - `57P01` admin_shutdown, `57P02` crash_shutdown, `57P03` cannot_connect_now
///   (starting up or in recovery), `57P05` idle_session_timeout;
/// - class `53` insufficient resources (`53000`, `53100` disk_full, `53200`
///   out_of_memory, `53300` too_many_connections) except `53400`
///   configuration_limit_exceeded, which the same statement meets again;
/// - `25006` read_only_sql_transaction (a standby until failover completes).
pub fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || (code.starts_with("53") && code != "53400")
        || ["40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "57P05", "25006"].contains(&code)
}

/// True for a database error that a retry may cure: the connection or the
/// pool failed (I/O, pool timed out or closed, the worker died, a garbled
/// protocol exchange), or the server answered with a transient code
/// ([`is_transient_mysql`] for MySQL/MariaDB, [`is_transient_sqlstate`]
/// otherwise). Everything else (a constraint violation, a decode error, bad
/// SQL) fails the same way again.
pub fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            Some(my) => is_transient_mysql(my.number(), my.code()),
            None => db.code().is_some_and(|c| is_transient_sqlstate(&c)),
        },
        _ => false,
    }
}

/// MongoDB server codes after which the same operation may succeed: the
/// node is shutting down, stepping down or not primary, the network failed,
/// or a time limit or write conflict cut the operation short.
pub const TRANSIENT_MONGO_CODES: [(i32, &str); 14] = [
    (6, "HostUnreachable"),
    (7, "HostNotFound"),
    (50, "MaxTimeMSExpired"),
    (89, "NetworkTimeout"),
    (91, "ShutdownInProgress"),
    (112, "WriteConflict"),
    (189, "PrimarySteppedDown"),
    (262, "ExceededTimeLimit"),
    (9001, "SocketException"),
    (10107, "NotWritablePrimary"),
    (11600, "InterruptedAtShutdown"),
    (11602, "InterruptedDueToReplStateChange"),
    (13435, "NotPrimaryNoSecondaryOk"),
    (13436, "NotPrimaryOrSecondary"),
];

/// Phrases of SQLite's `SQLITE_BUSY` / `SQLITE_LOCKED` as FerretDB's SQLite
/// backend passes them on inside a generic error (code 1, InternalError):
/// another writer holds the database file, which is contention, not a bad
/// document. Compared lower-cased.
const SQLITE_CONTENTION: [&str; 4] = ["sqlite_busy", "sqlite_locked", "database is locked", "database table is locked"];

/// Phrases of pgx (FerretDB's PostgreSQL driver) when the backend cannot be
/// reached or the connection broke: PostgreSQL is away or restarting, not a
/// bad document. Compared lower-cased. Seen live: `failed to connect to
/// \`user=ferretdb database=ferretdb\`: ... dial error: ... connection refused`
/// (tests/tests/ferretdb_outage.rs).
const PGX_CONNECTION: [&str; 5] = ["failed to connect to", "dial error", "conn closed", "connection reset by peer", "unexpected eof"];

/// The SQLSTATE in pgx's `(SQLSTATE 57P01)` suffix, if the text has one.
fn sqlstate_in(text: &str) -> Option<&str> {
    let at = text.find("(sqlstate ")? + "(sqlstate ".len();
    text.get(at..at + 5)
}

/// True for a MongoDB (or FerretDB) error a retry may cure: the driver could
/// not reach a usable server (I/O, server selection, DNS, pool cleared) or
/// was shut down under the operation; the driver labelled it retryable; a
/// write concern could not be satisfied; the server answered with a code of
/// [`TRANSIENT_MONGO_CODES`]; or FerretDB's internal error (code 1) carries
/// its backend's contention or outage: SQLite's busy/locked, PostgreSQL
/// unreachable or its connection broken ([`PGX_CONNECTION`]), or a
/// transient SQLSTATE ([`is_transient_sqlstate`]). Everything else (a
/// document the server refuses, a bad argument, a duplicate key) fails the
/// same way again.
pub fn is_transient_mongo(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, RETRYABLE_ERROR, RETRYABLE_WRITE_ERROR, TRANSIENT_TRANSACTION_ERROR, WriteFailure};
    if [RETRYABLE_WRITE_ERROR, RETRYABLE_ERROR, TRANSIENT_TRANSACTION_ERROR].iter().any(|l| e.contains_label(l)) {
        return true;
    }
    let transient_code = |code: i32| TRANSIENT_MONGO_CODES.iter().any(|(c, _)| *c == code);
    let by_kind = match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown
        | ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        ErrorKind::Write(WriteFailure::WriteError(w)) => transient_code(w.code),
        ErrorKind::Command(c) => transient_code(c.code),
        _ => false,
    };
    by_kind || {
        let text = e.to_string().to_lowercase();
        SQLITE_CONTENTION.iter().any(|p| text.contains(p))
            || PGX_CONNECTION.iter().any(|p| text.contains(p))
            || sqlstate_in(&text).is_some_and(|code| is_transient_sqlstate(&code.to_uppercase()))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use mongodb::bson::doc;
    use mongodb::error::{CommandError, Error as MongoError, ErrorKind, WriteError, WriteFailure};

    use super::*;

    #[test]
    fn mysql_and_mariadb_codes() {
        // (number, SQLSTATE the server sends with it, transient?)
        let table: &[(u16, Option<&str>, bool)] = &[
            (1317, Some("70100"), true), // KILL QUERY
            (1927, Some("70100"), true), // KILL CONNECTION
            (1053, Some("08S01"), true), // shutdown in progress
            (1290, Some("HY000"), true), // --read-only
            (1836, Some("HY000"), true), // read-only mode
            (4031, Some("HY000"), true), // idle client disconnected (MySQL)
            (1213, Some("40001"), true), // deadlock
            (1205, Some("HY000"), true), // lock wait timeout
            (1969, Some("70100"), true), // max_statement_time
            (1040, Some("08004"), true), // too many connections
            (2002, None, true),
            (2003, None, true),
            (2006, None, true),
            (2013, None, true),
            (1043, Some("08S01"), true),  // any other class-08 code
            (1062, Some("23000"), false), // duplicate key
            (1451, Some("23000"), false), // foreign key
            (1064, Some("42000"), false), // syntax error
            (3819, Some("HY000"), false), // CHECK constraint violated
            (1146, Some("42S02"), false), // no such table
            (1406, Some("22001"), false), // data too long
        ];
        for (number, state, want) in table {
            assert_eq!(is_transient_mysql(*number, *state), *want, "MySQL {number} ({state:?})");
        }
    }

    #[test]
    fn postgres_sqlstates() {
        let table: &[(&str, bool)] = &[
            ("08000", true), // connection_exception
            ("08003", true), // connection_does_not_exist
            ("08006", true), // connection_failure
            ("08P01", true), // protocol_violation (class 08)
            ("40001", true),
            ("40P01", true),
            ("55P03", true),
            ("57014", true),
            ("57P01", true),
            ("57P02", true),
            ("57P03", true),
            ("53000", true),
            ("53100", true),
            ("53200", true),
            ("53300", true),
            ("25006", true),
            ("53400", false), // configuration_limit_exceeded
            ("23505", false), // unique_violation
            ("23503", false), // foreign_key_violation
            ("23514", false), // check_violation
            ("22P02", false), // invalid_text_representation
            ("42P01", false), // undefined_table
            ("42601", false), // syntax_error
            ("40002", false), // transaction_integrity_constraint_violation
            ("57000", false), // operator_intervention (the class, not a listed code)
        ];
        for (code, want) in table {
            assert_eq!(is_transient_sqlstate(code), *want, "SQLSTATE {code}");
        }
    }

    /// A server error as sqlx hands it over, for the dispatch in `is_transient_sqlx`.
    #[derive(Debug)]
    struct ServerError(&'static str);

    impl std::fmt::Display for ServerError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "server error {}", self.0)
        }
    }

    impl std::error::Error for ServerError {}

    impl sqlx::error::DatabaseError for ServerError {
        fn message(&self) -> &str {
            "server error"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn sqlx_errors() {
        let table: Vec<(sqlx::Error, bool)> = vec![
            (sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)), true),
            (sqlx::Error::PoolTimedOut, true),
            (sqlx::Error::PoolClosed, true),
            (sqlx::Error::WorkerCrashed, true),
            (sqlx::Error::Protocol("unexpected packet".into()), true),
            (sqlx::Error::Database(Box::new(ServerError("40P01"))), true),
            (sqlx::Error::Database(Box::new(ServerError("57P01"))), true),
            (sqlx::Error::Database(Box::new(ServerError("23505"))), false),
            (sqlx::Error::RowNotFound, false),
            (sqlx::Error::ColumnNotFound("sku".into()), false),
            (sqlx::Error::Decode("not a uuid".into()), false),
        ];
        for (e, want) in &table {
            assert_eq!(is_transient_sqlx(e), *want, "{e:?}");
        }
    }

    fn command(code: i32, message: &str) -> MongoError {
        let c: CommandError =
            mongodb::bson::from_document(doc! { "code": code, "codeName": "X", "errmsg": message }).expect("a command error document");
        MongoError::from(ErrorKind::Command(c))
    }

    fn write(code: i32) -> MongoError {
        let w: WriteError = mongodb::bson::from_document(doc! { "code": code, "errmsg": "x" }).expect("a write error document");
        MongoError::from(ErrorKind::Write(WriteFailure::WriteError(w)))
    }

    #[test]
    fn mongo_errors() {
        let io = MongoError::from(ErrorKind::Io(Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))));
        let table: Vec<(&str, MongoError, bool)> = vec![
            ("network", io, true),
            // (ServerSelection cannot be built outside the driver; notification's
            // `an_unreachable_server_is_a_transient_error` meets a real one.)
            ("client shut down", MongoError::from(ErrorKind::Shutdown), true),
            ("ShutdownInProgress", command(91, "shutting down"), true),
            ("NotWritablePrimary", command(10107, "not primary"), true),
            ("MaxTimeMSExpired", command(50, "time limit"), true),
            ("NetworkTimeout as a write error", write(89), true),
            ("FerretDB on SQLite, busy", command(1, "sqlite: step: database is locked (5) (SQLITE_BUSY)"), true),
            ("FerretDB on SQLite, locked table", command(1, "database table is locked (6)"), true),
            (
                "FerretDB on PostgreSQL, backend away",
                command(
                    1,
                    "[msg_insert.go:168 handler.(*Handler).MsgInsert] failed to connect to `user=ferretdb database=ferretdb`:\n\t127.0.0.1:39479 (127.0.0.1): dial error: dial tcp 127.0.0.1:39479: connect: connection refused",
                ),
                true,
            ),
            (
                "FerretDB on PostgreSQL, backend shut down",
                command(1, "FATAL: terminating connection due to administrator command (SQLSTATE 57P01)"),
                true,
            ),
            ("FerretDB on PostgreSQL, deadlock", command(1, "ERROR: deadlock detected (SQLSTATE 40P01)"), true),
            ("FerretDB on PostgreSQL, a bad value", command(1, "ERROR: invalid input syntax for type json (SQLSTATE 22P02)"), false),
            ("other internal error", command(1, "unexpected nil"), false),
            ("duplicate key", write(11000), false),
            ("document validation", write(121), false),
            ("bad value", command(2, "bad value"), false),
            ("a bug of ours", MongoError::custom("bug"), false),
        ];
        for (what, e, want) in &table {
            assert_eq!(is_transient_mongo(e), *want, "{what}: {e}");
        }
    }
}
