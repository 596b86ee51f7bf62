//! `run-bm` binary: parse flags, run, report errors with context.
use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let argv: Vec<String> = std::env::args().collect();
    let cli = run_bm::cli::Cli::parse();
    match run_bm::run(cli, argv) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("run-bm: error: {e:#}");
            std::process::exit(run_bm::exit_code_of(&e));
        }
    }
}
