//! `grader models fetch` and `grader models check`: the model's folder from the settings, a
//! download bar on a terminal, one line of result on stdout.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use grader::config::Settings;
use grader::models;

use super::args::ModelsCommand;
use super::print::{self, out};

pub(super) async fn run(settings: Settings, command: ModelsCommand) -> anyhow::Result<ExitCode> {
    let base = std::env::current_dir()?;
    let dir_of = |dir: Option<PathBuf>| match dir {
        Some(d) => Ok(d),
        None => grader::assets::model_dir(&settings, &base),
    };
    match command {
        ModelsCommand::Check(args) => {
            let dir = dir_of(args.dir)?;
            match models::check(&dir) {
                models::Status::Ready => {
                    out!("model present and verified: {}", dir.display())?;
                    Ok(ExitCode::SUCCESS)
                }
                models::Status::Incomplete {
                    missing,
                    mismatched,
                } => {
                    eprintln!(
                        "model in {} is incomplete (missing: {}; wrong sha256: {}): run `grader models fetch`",
                        dir.display(),
                        list_or_none(&missing),
                        list_or_none(&mismatched)
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        ModelsCommand::Fetch { dir, index_url } => {
            let dir = dir_of(dir.dir)?;
            let bar: std::sync::OnceLock<indicatif::ProgressBar> = std::sync::OnceLock::new();
            let terminal = std::io::stderr().is_terminal();
            let fetched = models::fetch(&dir, &index_url, &|done, total| {
                if done == 0 {
                    tracing::info!(
                        "downloading {}=={} from {index_url} ({} MB)",
                        models::PACKAGE,
                        models::VERSION,
                        total.map_or("~85".to_string(), |t| (t / 1_000_000).to_string())
                    );
                }
                if terminal {
                    let bar = bar.get_or_init(|| {
                        print::bar(
                            total.unwrap_or(0) as usize,
                            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec}, eta {eta}",
                        )
                    });
                    bar.set_position(done);
                }
            })
            .await;
            if let Some(bar) = bar.get() {
                bar.finish_and_clear();
            }
            match fetched? {
                models::Fetched::AlreadyPresent => {
                    out!("model already present and verified: {}", dir.display())?
                }
                models::Fetched::Installed { url } => out!(
                    "model installed and verified: {} (from {url})",
                    dir.display()
                )?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
