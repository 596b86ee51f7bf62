//! `viz`: plots, tables and SLA picks from result directories.
use clap::Parser;
use pd_common::{diag, exit};

fn main() {
    let cli = match viz::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help / --version print to stdout and succeed; usage errors exit 2.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    diag::init(cli.verbosity.tracing_level_filter());
    // Tables go to stdout through a writer that treats a closed pipe as "nobody is
    // reading": `viz … | head` still writes every plot.
    let mut out = viz::app::StdoutSink;
    if let Err(e) = viz::app::run(&cli, &mut out) {
        diag::report_error("viz", e.as_ref());
        std::process::exit(exit::FAILED);
    }
}
