//! `viz`: plots, tables and SLA picks from result directories.
use clap::Parser;

fn main() {
    // Diagnostics only when asked for (RUST_LOG=viz=debug); warnings are printed by `run`.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let cli = viz::cli::Cli::parse();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let result = viz::app::run(&cli, &mut stdout.lock(), &mut stderr.lock());
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
