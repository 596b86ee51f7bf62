//! Shell completions (bash, zsh, fish) and man pages for `viz`:
//! `cargo run -p viz --example viz_cli_assets -- [OUT_DIR]` (default `target/cli-assets`);
//! `scripts/gen-completions.sh` runs it for every tool.
use clap::CommandFactory;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/cli-assets".into());
    pd_common::cli_assets::write_cli_assets(viz::cli::Cli::command(), dir.as_ref())?;
    Ok(())
}
