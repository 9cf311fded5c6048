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
        admin.execute(format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name).as_str()).await?;
        Ok(())
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
