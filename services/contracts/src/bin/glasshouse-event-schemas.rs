//! Regenerates the committed event JSON Schemas from the Rust types.
//!
//! Usage: `cargo run -p glasshouse-contracts --bin glasshouse-event-schemas [DIR]`
//! (default DIR: this crate's `schemas/`). Run it after changing an event type;
//! `tests/schema_agreement.rs` fails until you do.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let dir = match (args.next(), args.next()) {
        (None, _) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas"),
        (Some(d), None) if d != "-h" && d != "--help" => PathBuf::from(d),
        _ => {
            eprintln!("usage: glasshouse-event-schemas [DIR]");
            return ExitCode::from(64);
        }
    };
    match glasshouse_contracts::schema::write_all(&dir) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("glasshouse-event-schemas: cannot write to {}: {e}", dir.display());
            ExitCode::from(74)
        }
    }
}
