//! Diagnostics shared by the three tools (feature `cli`): `tracing` is the one channel for
//! warnings, progress notes and debug output (on stderr); results go to stdout through
//! [`outln!`](crate::outln), which never panics when the reader went away (`tool | head`).
//! Errors are reported once, with their chain of causes, by [`report_error`].

use std::fmt;
use std::io::Write;

pub use tracing::level_filters::LevelFilter;

/// Install the stderr subscriber: `level` from the tool's `-q`/`-v` flags; `RUST_LOG`, when
/// set, overrides it (e.g. `RUST_LOG=run_bm=debug`). Safe to call more than once.
pub fn init(level: LevelFilter) {
    init_with_writer(level, std::io::stderr);
}

/// [`init`] with another stderr writer (run-bm's prints above its progress bars).
pub fn init_with_writer<W>(level: LevelFilter, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(v).unwrap_or_else(|_| EnvFilter::new(level.to_string()))
        }
        _ => EnvFilter::new(level.to_string()),
    };
    // Colours only on a terminal: logs redirected to files (the simulator daemon's) stay
    // plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .without_time()
        .with_target(false)
        // A broken stderr (a dropped ssh session, `2>&-` into a closed pipe) must not
        // turn into a panic: the subscriber would otherwise `eprintln!` its write errors.
        .log_internal_errors(false)
        .try_init();
}

/// Write to stdout; a closed or full stdout is ignored (a pipeline reader that went away
/// must not stop a benchmark or lose its files).
pub fn write_stdout(args: fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args);
    if newline {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// `println!` that never panics on a closed stdout.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::diag::write_stdout(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::diag::write_stdout(format_args!($($arg)*), true)
    };
}

/// `print!` that never panics on a closed stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::diag::write_stdout(format_args!($($arg)*), false)
    };
}

/// The message of an error followed by each cause that adds something, joined by ": ".
/// A cause whose text the previous messages already contain is skipped, so that an error
/// that embeds its source in its own message is not printed twice.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let t = src.to_string();
        if !t.is_empty() && !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cur = src.source();
    }
    text
}

/// Print `tool: error: <chain>` on stderr (never panics).
pub fn report_error(tool: &str, e: &(dyn std::error::Error + 'static)) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "{tool}: error: {}",
        error_chain(e)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading x.json: {source}")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load")]
    struct Top {
        #[source]
        source: Outer,
    }

    #[test]
    fn chain_prints_each_cause_once() {
        let e = Top {
            source: Outer {
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            },
        };
        assert_eq!(error_chain(&e), "cannot load: reading x.json: no such file");
    }
}
