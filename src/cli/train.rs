//! `grader train`: read labelled pairs, train the correctness head, write the head file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use grader::config::Settings;
use grader::engine::Parts;
use grader::judge::head::TrainOptions;
use grader::train::{TrainFile, train_head};

use super::args::TrainArgs;
use super::print::{self, out};

pub(super) async fn train(settings: Settings, args: TrainArgs) -> anyhow::Result<ExitCode> {
    let out_path = head_out(&settings, args.out.clone())?;
    let mut files = Vec::new();
    for path in &args.files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let (items, skipped) = grader::eval::parse_items(&text);
        if let Some(bad) = skipped.first() {
            bail!(
                "{}:{}: {} (fix the line: training reads every line)",
                path.display(),
                bad.line,
                bad.error
            );
        }
        files.push(TrainFile {
            name: path.display().to_string(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            items,
        });
    }
    let base = std::env::current_dir()?;
    let parts = Parts::load(settings, &base)?;
    let command = format!(
        "grader train {} --epochs {}",
        args.files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        args.epochs
    );
    let opts = TrainOptions {
        epochs: args.epochs,
        ..TrainOptions::default()
    };
    let bar = std::sync::OnceLock::new();
    let trained = train_head(
        parts.embedder.as_ref(),
        &files,
        opts,
        &command,
        &args.license,
        &|done, total| {
            bar.get_or_init(|| {
                print::bar(total, "embedding {bar:30} {pos}/{len} texts, eta {eta}")
            })
            .set_position(done as u64);
        },
    )
    .await?;
    if let Some(bar) = bar.get() {
        bar.finish_and_clear();
    }
    let text = trained.head.file_text()?;
    std::fs::write(&out_path, &text).with_context(|| format!("writing {}", out_path.display()))?;
    let info = &trained.head.info;
    out!(
        "trained on {} pairs in {:.1} s: held-out accuracy {:.3}, AUC {:.3}",
        info.pairs,
        trained.seconds,
        info.holdout_accuracy,
        info.holdout_auc
    )?;
    out!("wrote {}", out_path.display())?;
    Ok(ExitCode::SUCCESS)
}

/// Where the head goes: --out, else judge.head, else the repository's copy.
fn head_out(settings: &Settings, out: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match out {
        Some(out) => out,
        None if !settings.judge.head.as_os_str().is_empty() => settings.judge.head.clone(),
        None if Path::new("config").is_dir() => PathBuf::from("config/entail-head.toml"),
        None => bail!(
            "where to write? pass --out FILE (then set judge.head to it), or run from the repository root to retrain config/entail-head.toml"
        ),
    })
}
