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
    // `viz … | head` must still write the plots: a closed stdout only stops the tables.
    let mut out = ClosedPipeOk(stdout.lock(), false);
    let result = viz::app::run(&cli, &mut out, &mut stderr.lock());
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Stdout that treats a closed pipe (EPIPE) as "nobody is reading" instead of an error.
struct ClosedPipeOk<W>(W, bool);

impl<W: std::io::Write> std::io::Write for ClosedPipeOk<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.1 {
            return Ok(buf.len());
        }
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.1 = true;
                Ok(buf.len())
            }
            r => r,
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    }
}
