//! The `grader` binary: parse the command line, set up telemetry, load config, dispatch.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    single_threaded_kernels();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        // The reader went away (`grader rubrics list | head -5`): nothing left to say to it.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", causes(&e));
            std::process::ExitCode::from(2)
        }
    }
}

/// The local model's forward passes run side by side, one per core (`embedding.workers`), so
/// candle's kernels should not also spread each pass over every core: on short texts that
/// costs more than it gains. candle reads this variable on every matrix product, so it is set
/// here, before any thread starts; a value the user set is kept.
fn single_threaded_kernels() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet (the runtime and the embedding workers start
        // later), so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message before
/// it already contains (many errors quote their source, which would otherwise print twice).
fn causes(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}
