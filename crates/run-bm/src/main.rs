//! `run-bm` binary: parse flags, run, report errors once, exit with pd_common::exit codes.
use clap::Parser;

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cli = run_bm::cli::Cli::parse();
    pd_common::diag::init_with_writer(
        cli.verbosity.tracing_level_filter(),
        run_bm::progress::ConsoleWriter,
    );
    match run_bm::run(cli, argv) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            pd_common::diag::report_error("run-bm", e.as_ref());
            std::process::exit(run_bm::exit_code_of(&e));
        }
    }
}
