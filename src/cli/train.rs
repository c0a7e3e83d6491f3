//! The fitting commands: `grader train` (labelled pairs in, the correctness head's file out)
//! `grader calibrate FILES…` (labelled answers in, the thresholds file out) and
//! `grader calibrate-matching` (paraphrases and off-topic questions in, a threshold out).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use grader::calibrate::{self, Paraphrase};
use grader::config::Settings;
use grader::engine::Parts;
use grader::judge::head::TrainOptions;
use grader::train::{TrainFile, train_head};

use super::args::{JsonFlag, TrainArgs};
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
    let defaults = TrainOptions::for_hidden(args.hidden);
    let epochs = args.epochs.unwrap_or(defaults.epochs);
    let command = format!(
        "grader train {} --hidden {} --epochs {epochs} --vector-scale {}",
        args.files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        args.hidden,
        args.vector_scale
    );
    if !(args.vector_scale > 0.0 && args.vector_scale <= 1.0) {
        anyhow::bail!("--vector-scale {}: it must be in (0, 1]", args.vector_scale);
    }
    let opts = TrainOptions {
        epochs,
        vector_scale: args.vector_scale,
        ..defaults
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
    for (file, auc) in args.files.iter().zip(&info.holdout_auc_per_file) {
        out!("  held-out AUC on {}: {auc:.3}", file.display())?;
    }
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

pub(super) async fn calibrate(
    settings: Settings,
    files: &[PathBuf],
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    // One list, numbered on: an error's line number maps back to its file.
    let mut items = Vec::new();
    let mut starts = Vec::new();
    let mut offset = 0;
    for file in files {
        let (its, _) = super::read_items(file)?;
        starts.push((offset, file));
        let lines = its.iter().map(|(l, _)| *l).max().unwrap_or(0);
        items.extend(its.into_iter().map(|(l, it)| (l + offset, it)));
        offset += lines;
    }
    let names = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let out = super::audit::calibration_out(&settings, out)?;
    let engine = super::open_engine(settings).await?;
    let command = format!("grader calibrate {names}");
    let fitted = calibrate::fit_thresholds(&engine, &items, &command, &names)
        .await
        .map_err(|e| {
            let (start, file) = starts
                .iter()
                .rev()
                .find(|(s, _)| *s < e.line)
                .copied()
                .unwrap_or((0, &files[0]));
            anyhow::Error::new(e.source).context(format!("{}:{}", file.display(), e.line - start))
        })?;
    let text = fitted.file_text(&command)?;
    std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    out!("{text}")?;
    out!("wrote {}", out.display())?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn calibrate_matching(
    settings: Settings,
    paraphrases: &Path,
    offtopic: &Path,
    out: JsonFlag,
) -> anyhow::Result<ExitCode> {
    let para: Vec<Paraphrase> = std::fs::read_to_string(paraphrases)
        .with_context(|| format!("reading {}", paraphrases.display()))?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", paraphrases.display(), i + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    let off: Vec<String> = std::fs::read_to_string(offtopic)
        .with_context(|| format!("reading {}", offtopic.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let engine = super::open_engine(settings).await?;
    let f = calibrate::fit_matching(&engine, &para, &off).await?;
    if out.json {
        out!(
            "{}",
            serde_json::json!({"threshold": f.threshold, "plateau": [f.plateau.0, f.plateau.1], "max_offtopic_similarity": f.max_offtopic_similarity, "paraphrase_top1": f.paraphrase_top1, "paraphrase_matched": f.paraphrase_matched, "offtopic_rejected": f.offtopic_rejected, "paraphrases": f.paraphrases, "offtopic": f.offtopic})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "threshold {:.2} (best from {:.2} to {:.2}; highest off-topic similarity {:.2}): paraphrases top-1 {:.1}%, matched above threshold {:.1}%, off-topic rejected {:.1}% ({} paraphrases, {} off-topic)",
        f.threshold,
        f.plateau.0,
        f.plateau.1,
        f.max_offtopic_similarity,
        f.paraphrase_top1 * 100.0,
        f.paraphrase_matched * 100.0,
        f.offtopic_rejected * 100.0,
        f.paraphrases,
        f.offtopic
    )?;
    for (s, p) in &f.misses {
        out!("  miss: {} ({s:.2}) {}", p.question_id, p.question)?;
    }
    for (s, q) in &f.offtopic_matched {
        out!("  off-topic matched ({s:.2}): {q}")?;
    }
    Ok(ExitCode::SUCCESS)
}
