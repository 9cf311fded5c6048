//! `glasshouse-dlq`: see `glasshouse_ops::dlq::cli` and docs/operations.md.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let code = glasshouse_ops::dlq::cli::main_with(std::env::args_os().collect());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
