//! The platform's own tables (`outbox`, `processed_events`), as sqlx migrations.
//!
//! `sql/<dialect>/10000000000001_*` creates the tables; `..0002_*` indexes
//! `processed_events.processed_at` for the pruner ([`crate::prune`]). An
//! applied migration is never edited: a change is a new file.
//!
//! A service runs [`run_postgres`] / [`run_mysql`] with its own migrator;
//! both sets record themselves in `_sqlx_migrations`, so each is told to
//! ignore the other's versions (the platform's are 10000000000001.., a
//! service's are timestamps, so they never collide).

use sqlx::migrate::{MigrateError, Migrator};

/// Runs the platform's PostgreSQL migrations, then the service's (`sqlx::migrate!("migrations")`), if any.
pub async fn run_postgres(pool: &sqlx::PgPool, service: Option<Migrator>) -> Result<(), MigrateError> {
    let mut platform = sqlx::migrate!("sql/postgres");
    platform.set_ignore_missing(true);
    platform.run(pool).await?;
    if let Some(mut own) = service {
        own.set_ignore_missing(true);
        own.run(pool).await?;
    }
    Ok(())
}

/// Runs the platform's MySQL migrations, then the service's, if any.
pub async fn run_mysql(pool: &sqlx::MySqlPool, service: Option<Migrator>) -> Result<(), MigrateError> {
    let mut platform = sqlx::migrate!("sql/mysql");
    platform.set_ignore_missing(true);
    platform.run(pool).await?;
    if let Some(mut own) = service {
        own.set_ignore_missing(true);
        own.run(pool).await?;
    }
    Ok(())
}
