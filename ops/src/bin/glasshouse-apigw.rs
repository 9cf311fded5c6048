//! `glasshouse-apigw`: see `glasshouse_ops::apigw` and deploy/README.md.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let code = glasshouse_ops::apigw::main_with(std::env::args_os().collect());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
