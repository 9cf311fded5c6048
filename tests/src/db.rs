//! Scratch databases on the stack's real servers: one per test, random name,
//! dropped by [`ScratchPg::drop_db`] / [`ScratchMySql::drop_db`] at the end.

use sqlx::{Connection, Executor};

use crate::stack::{self, DB_PASSWORD, DB_USER, MARIADB, POSTGRES};

/// A fresh PostgreSQL database and a pool on it.
pub struct ScratchPg {
    pub name: String,
    pub url: String,
    pub pool: sqlx::PgPool,
}

impl ScratchPg {
    pub async fn new() -> anyhow::Result<Self> {
        stack::require(POSTGRES).await?;
        let server = format!("postgres://{DB_USER}:{DB_PASSWORD}@{}", POSTGRES.addr());
        let name = stack::unique_name("scratch");
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
        admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await?;
        let url = format!("{server}/{name}");
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(10).connect(&url).await?;
        Ok(Self { name, url, pool })
    }

    pub async fn drop_db(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let server = format!("postgres://{DB_USER}:{DB_PASSWORD}@{}", POSTGRES.addr());
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
        drop_pg_database(&mut admin, &self.name).await
    }
}

/// `DROP DATABASE … WITH (FORCE)`, which ends the sessions still on it (a
/// test's services), retried while an autovacuum worker is in the database:
/// that worker belongs to the superuser, so the test role may not end it
/// ("must be a member of the role whose process is being terminated"), and it
/// is gone within moments.
pub async fn drop_pg_database(admin: &mut sqlx::PgConnection, name: &str) -> anyhow::Result<()> {
    let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match admin.execute(sql.as_str()).await {
            // 42501 insufficient_privilege: the autovacuum worker; ask again shortly.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => return other.map(|_| ()).map_err(Into::into),
        }
    }
}

/// A fresh MariaDB database and a pool on it.
pub struct ScratchMySql {
    pub name: String,
    pub url: String,
    pub pool: sqlx::MySqlPool,
}

impl ScratchMySql {
    pub async fn new() -> anyhow::Result<Self> {
        stack::require(MARIADB).await?;
        let server = format!("mysql://{DB_USER}:{DB_PASSWORD}@{}", MARIADB.addr());
        let name = stack::unique_name("scratch");
        let mut admin = sqlx::MySqlConnection::connect(&server).await?;
        admin.execute(format!("CREATE DATABASE `{name}`").as_str()).await?;
        let url = format!("{server}/{name}");
        let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(10).connect(&url).await?;
        Ok(Self { name, url, pool })
    }

    pub async fn drop_db(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let server = format!("mysql://{DB_USER}:{DB_PASSWORD}@{}", MARIADB.addr());
        let mut admin = sqlx::MySqlConnection::connect(&server).await?;
        admin.execute(format!("DROP DATABASE IF EXISTS `{}`", self.name).as_str()).await?;
        Ok(())
    }
}
