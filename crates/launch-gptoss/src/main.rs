use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = launch_gptoss::cli::Cli::parse();
    match launch_gptoss::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("launch-gptoss: error: {e:#}");
            std::process::exit(1);
        }
    }
}
