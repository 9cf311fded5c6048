//! Operating Glasshouse: the two commands an operator runs against a live
//! stack, as a library the tests (and the chaos suite) call directly.
//!
//! - `glasshouse-dlq list|show|redrive`: look at dead letters and put them
//!   back on their topic once the cause is fixed, each at most once.
//! - `glasshouse-audit`: check the invariants that span the three services'
//!   databases (final orders, the stock ledger, reservations against order
//!   fates, one notification per event, outboxes drained, dead letters).
//! - `glasshouse-apigw`: the Amazon API Gateway HTTP API definition of the
//!   public edge, generated from `services/*/openapi.yaml` ([`apigw`]).
//!
//! Both are documented for operators in `docs/operations.md`.
//!
//! # Layout
//! - [`dlq`]: dead letters: reading, redrive progress, republishing, the CLI.
//! - [`audit`]: [`audit::run_audit`], one module per family of checks (a pure
//!   function over loaded rows), the loader, the CLI.
//! - [`args`]: what both command lines share: environment defaults, argument
//!   checks, exit codes.
#![forbid(unsafe_code)]

pub mod apigw;
pub mod args;
pub mod audit;
pub mod dlq;
