//! sqlx against PostgreSQL and MariaDB: scratch database, migrate, write, read.

use glasshouse_tests::stack::{self, DB_PASSWORD, DB_USER, MARIADB, POSTGRES};
use sqlx::{Connection, Executor, Row};

#[tokio::test]
async fn postgres_scratch_database_migrates_writes_and_reads() -> anyhow::Result<()> {
    stack::require(POSTGRES).await?;
    let server = format!("postgres://{DB_USER}:{DB_PASSWORD}@{}", POSTGRES.addr());
    let db = stack::unique_name("smoke");
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
    admin.execute(format!(r#"CREATE DATABASE "{db}""#).as_str()).await?;

    let result = async {
        let pool = sqlx::PgPool::connect(&format!("{server}/{db}")).await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let id = uuid::Uuid::new_v4();
        sqlx::query("INSERT INTO smoke_orders (id, sku, quantity) VALUES ($1, $2, $3)")
            .bind(id)
            .bind("SKU-1")
            .bind(3_i32)
            .execute(&pool)
            .await?;
        let row = sqlx::query("SELECT sku, quantity FROM smoke_orders WHERE id = $1").bind(id).fetch_one(&pool).await?;
        assert_eq!(row.get::<String, _>("sku"), "SKU-1");
        assert_eq!(row.get::<i32, _>("quantity"), 3);
        // The CHECK constraint is enforced by the real server.
        let bad =
            sqlx::query("INSERT INTO smoke_orders (id, sku, quantity) VALUES ($1, 'X', 0)").bind(uuid::Uuid::new_v4()).execute(&pool).await;
        assert!(bad.is_err(), "quantity 0 must violate the CHECK constraint");
        pool.close().await;
        anyhow::Ok(())
    }
    .await;

    glasshouse_tests::db::drop_pg_database(&mut admin, &db).await?;
    result
}

#[tokio::test]
async fn mariadb_scratch_database_migrates_writes_and_reads() -> anyhow::Result<()> {
    stack::require(MARIADB).await?;
    let server = format!("mysql://{DB_USER}:{DB_PASSWORD}@{}", MARIADB.addr());
    let db = stack::unique_name("smoke");
    let mut admin = sqlx::MySqlConnection::connect(&server).await?;
    admin.execute(format!("CREATE DATABASE `{db}`").as_str()).await?;

    let result = async {
        let pool = sqlx::MySqlPool::connect(&format!("{server}/{db}")).await?;
        sqlx::migrate!("migrations/mysql").run(&pool).await?;
        sqlx::query("INSERT INTO smoke_stock (sku, stock) VALUES (?, ?)").bind("SKU-1").bind(10_i32).execute(&pool).await?;
        // A conditional decrement, the shape Inventory's reservation will use.
        let done = sqlx::query("UPDATE smoke_stock SET stock = stock - ? WHERE sku = ? AND stock >= ?")
            .bind(4_i32)
            .bind("SKU-1")
            .bind(4_i32)
            .execute(&pool)
            .await?;
        assert_eq!(done.rows_affected(), 1);
        let refused = sqlx::query("UPDATE smoke_stock SET stock = stock - ? WHERE sku = ? AND stock >= ?")
            .bind(7_i32)
            .bind("SKU-1")
            .bind(7_i32)
            .execute(&pool)
            .await?;
        assert_eq!(refused.rows_affected(), 0, "stock 6 cannot give 7");
        let stock: i32 = sqlx::query_scalar("SELECT stock FROM smoke_stock WHERE sku = ?").bind("SKU-1").fetch_one(&pool).await?;
        assert_eq!(stock, 6);
        pool.close().await;
        anyhow::Ok(())
    }
    .await;

    admin.execute(format!("DROP DATABASE IF EXISTS `{db}`").as_str()).await?;
    result
}
