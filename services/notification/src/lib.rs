//! The Notification service: customer notifications on MongoDB (FerretDB locally).
//!
//! It will consume the order lifecycle events and store one notification per
//! event, unique on the event id so that redelivery stores nothing twice, and
//! list them over HTTP (`GET /notifications?order_id=`).
#![forbid(unsafe_code)]
