//! `homcc`: the compiler wrapper's entry point.

fn main() -> std::process::ExitCode {
    homcc_client::main_with_args(std::env::args_os().collect())
}
