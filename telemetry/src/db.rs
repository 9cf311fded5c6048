//! Database client spans with the semantic-convention attribute names, for
//! drivers that emit none of their own (sqlx, the MongoDB driver): one span
//! per statement or logical operation, named `<operation> <collection>`.

use tracing::field::Empty;

/// A client span for one database operation: `db.system.name` (`postgresql`,
/// `mysql`, `mongodb`), `db.operation.name` (`INSERT`, `find`),
/// `db.collection.name` (table or collection) and `db.namespace` (database).
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
    )
}

/// Marks `span` as failed with `error` (kept short: a type, not a message).
pub fn record_error(span: &tracing::Span, error: &dyn std::fmt::Display) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", tracing::field::display(error));
}
