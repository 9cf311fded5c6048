//! `glasshouse-inventory-seed`: loads the demo catalog into the inventory
//! database (the service's settings: `config/*.yaml`, `APP_DATABASE__URL`).
//! Runs the migrations first, so it works before the service ever started.
//! Idempotent; see `glasshouse_inventory::seed`.
//!
//! Exit codes: 0 done, 1 database error, 2 bad arguments, 64 bad settings.

use clap::Parser;
use glasshouse_inventory::{Settings, seed, store};

/// Load the deterministic demo catalog (DEMO-00001..) into the inventory database.
#[derive(Debug, Parser)]
#[command(name = "glasshouse-inventory-seed", version)]
struct Args {
    /// How many demo items (1..=10000).
    #[arg(long, default_value_t = seed::DEFAULT_COUNT, value_parser = clap::value_parser!(u32).range(1..=i64::from(seed::MAX_COUNT)))]
    count: u32,
    /// Also bring the stock of existing demo items back to the seed's values,
    /// each by a delta recorded on the stock ledger as a `count_correction`
    /// (by default their stock is left alone: reservations may hold some).
    #[arg(long)]
    reset_stock: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let settings: Settings = glasshouse_platform::config::load_or_exit(concat!(env!("CARGO_MANIFEST_DIR"), "/config"));
    match run(&settings, &args).await {
        Ok(report) => {
            let reset = if args.reset_stock {
                format!(", stock reset ({} corrected by a recorded count_correction)", report.stock_corrected)
            } else {
                String::new()
            };
            println!(
                "demo catalog: {} items (DEMO-00001..DEMO-{:05}): {} inserted, {} already present{reset}",
                args.count, args.count, report.inserted, report.existing
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("glasshouse-inventory-seed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: &Settings, args: &Args) -> anyhow::Result<seed::SeedReport> {
    let pool = store::connect(&settings.database).await?;
    glasshouse_platform::migrations::run_mysql(&pool, Some(sqlx::migrate!("./migrations")))
        .await
        .map_err(|e| anyhow::anyhow!("migrate the inventory database: {e}"))?;
    let report = seed::seed(&pool, &seed::demo_catalog(args.count), args.reset_stock).await?;
    pool.close().await;
    Ok(report)
}
