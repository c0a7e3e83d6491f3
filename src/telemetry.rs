//! Tracing setup. The sink is a parameter so tests stay quiet (or capture logs) and the
//! binary writes to stderr, keeping stdout for results.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Install the global subscriber. `RUST_LOG` overrides `level`. `ansi` colours the pretty
/// format (the binary passes whether stderr is a terminal, so logs in files and pipes carry no
/// escape codes). Safe to call twice (the second call is ignored), which tests rely on.
pub fn init<W>(format: LogFormat, level: &str, ansi: bool, sink: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_ansi(ansi)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
