//! Database client spans with the semantic-convention attribute names, for
//! drivers that emit none of their own (sqlx, the MongoDB driver): one span
//! per statement or logical operation, named `<operation> <collection>`.

use tracing::field::Empty;

/// A client span for one database operation: `db.system.name` (`postgresql`,
/// `mysql`, `mongodb`), `db.operation.name` (`INSERT`, `find`),
/// `db.collection.name` (table or collection) and `db.namespace` (database);
/// `server.address`/`server.port` are declared for [`client_span_at`].
/// Enter it or `.instrument()` the call; record `error.type` on failure.
pub fn client_span(system: &'static str, operation: &'static str, collection: &'static str, namespace: &str) -> tracing::Span {
    tracing::info_span!(
        "db.client",
        otel.name = %format!("{operation} {collection}"),
        otel.kind = "client",
        otel.status_code = Empty,
        error.type = Empty,
        db.system.name = system,
        db.operation.name = operation,
        db.collection.name = collection,
        db.namespace = %namespace,
        server.address = Empty,
        server.port = Empty,
    )
}

/// [`client_span`] with `server.address` and `server.port` (the database
/// server's host and port, as the semantic conventions put them on client spans).
pub fn client_span_at(
    system: &'static str,
    operation: &'static str,
    collection: &'static str,
    namespace: &str,
    server: (&str, u16),
) -> tracing::Span {
    let span = client_span(system, operation, collection, namespace);
    span.record("server.address", server.0);
    span.record("server.port", server.1);
    span
}

/// Marks `span` as failed with `error` (kept short: a type, not a message).
pub fn record_error(span: &tracing::Span, error: &dyn std::fmt::Display) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", tracing::field::display(error));
}
