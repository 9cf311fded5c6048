//! `glasshouse-loadtest`: see `glasshouse_loadtest::cli` and loadtest/README.md.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let code = glasshouse_loadtest::cli::main_with(std::env::args_os().collect());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(3))
}
