//! The audit store's commands: `calibrate --from-reviews`, `export-reviews`, `purge`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use grader::audit::{Audit, learn};
use grader::config::Settings;

use super::args::{CalibrateArgs, PurgeArgs};
use super::print::out;

/// The audit store the settings name (SQLite in data_dir unless `store.database_url`).
pub(super) async fn open_audit(settings: &Settings) -> anyhow::Result<Arc<Audit>> {
    let base = std::env::current_dir()?;
    Ok(Arc::new(Audit::open(settings, &base).await?))
}

pub(super) async fn calibrate_from_reviews(
    settings: Settings,
    args: CalibrateArgs,
) -> anyhow::Result<ExitCode> {
    let audit = open_audit(&settings).await?;
    let answers = audit
        .store()
        .reviewed_answers()
        .await
        .context("reading the reviews")?;
    let out = calibration_out(&settings, args.out.clone())?;
    let engine = super::open_engine(settings).await?;
    let opts = learn::FromReviews {
        holdout: args.holdout,
        min_per_rubric: args.min_per_rubric,
        judge: args.judge,
        command: "grader calibrate --from-reviews".into(),
    };
    let (_engine, report) = learn::calibrate_from_reviews(engine, &answers, &opts).await?;
    let write = report.improved() || args.force;
    if write {
        let text = file_text(&report)?;
        std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    }
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["improved"] = report.improved().into();
        v["written"] = write.then(|| out.display().to_string()).into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} reviews, {} usable: fitted on {}, held out {}",
        report.reviews, report.usable, report.fitted_on, report.held_out
    );
    for (rubric, n) in &report.per_rubric {
        println!("  own thresholds: {rubric} ({n} reviews)");
    }
    let line = |name: &str, m: &grader::eval::Metrics| {
        println!(
            "  {name:<7} pearson {:.3}  qwk {:.3}  mae {:.2}  (n {})",
            m.pearson, m.qwk, m.mae, m.n
        )
    };
    println!("agreement with the held-out reviews:");
    line("before", &report.before);
    line("after", &report.after);
    if write {
        println!("wrote {} (restart `grader serve` to use it)", out.display());
    } else {
        println!(
            "held-out agreement did not rise: {} left as it is (--force writes anyway)",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn file_text(report: &learn::FromReviewsReport) -> anyhow::Result<String> {
    let header = format!(
        "# Coverage judge thresholds refitted from human reviews. Do not edit by hand: refit with\n#   grader calibrate --from-reviews\n# ({} reviews fitted, {} held out: pearson {:.3} -> {:.3}, qwk {:.3} -> {:.3} on the held-out reviews)\n",
        report.fitted_on,
        report.held_out,
        report.before.pearson,
        report.after.pearson,
        report.before.qwk,
        report.after.qwk
    );
    Ok(format!(
        "{header}{}",
        toml::to_string_pretty(&report.calibration)?
    ))
}

pub(super) async fn export_reviews(
    settings: Settings,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let audit = open_audit(&settings).await?;
    let answers = audit.store().reviewed_answers().await?;
    let text = learn::export_jsonl(&answers);
    match out {
        Some(path) => {
            std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "{} reviewed answers written to {}",
                answers.len(),
                path.display()
            );
        }
        None if text.is_empty() => {}
        None => out!("{}", text.trim_end_matches('\n'))?,
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn purge(settings: Settings, args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let before = args
        .before
        .as_deref()
        .map(grader::audit::time::parse_time)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--before: {e}"))?;
    let audit = open_audit(&settings).await?;
    let purged = audit
        .store()
        .purge(before, args.candidate.as_deref())
        .await?;
    // Reviewed answers are also exemplars in the vector store: they go too.
    if !purged.reviewed_grade_ids.is_empty() {
        let engine = super::open_engine(settings).await?;
        let ids: Vec<String> = purged
            .reviewed_grade_ids
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        learn::remove_exemplars(&engine, &ids).await?;
    }
    if args.json {
        out!(
            "{}",
            serde_json::json!({"grades": purged.grades, "reviews": purged.reviews, "transcripts": purged.transcripts, "exemplars": purged.reviewed_grade_ids.len()})
        )?;
    } else {
        out!(
            "deleted {} grades, {} reviews, {} transcripts, {} exemplars from {}",
            purged.grades,
            purged.reviews,
            purged.transcripts,
            purged.reviewed_grade_ids.len(),
            audit.store().describe()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `grader calibrate` writes: `--out`, else `judge.calibration`, else the source of the
/// built-in copy (refitting is done in the repository).
pub(super) fn calibration_out(
    settings: &Settings,
    out: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    Ok(match out {
        Some(out) => out,
        None if !settings.judge.calibration.as_os_str().is_empty() => {
            settings.judge.calibration.clone()
        }
        None if Path::new("config").is_dir() => PathBuf::from("config/calibration.toml"),
        None => bail!(
            "where to write? pass --out FILE (then set judge.calibration to it), or run from the repository root to refit config/calibration.toml"
        ),
    })
}

/// `grader grade --save`: store the grade and wait until it is written.
pub(super) async fn save_grade(
    store: &Audit,
    candidate: Option<String>,
    req: &grader::engine::GradeRequest,
    g: &grader::grade::Grade,
) -> anyhow::Result<()> {
    use grader::audit::{CLOSE_WITHIN, Origin, Source, Via};
    let origin = Origin::new(Source::new(Via::Cli))
        .request_id(Some(uuid::Uuid::new_v4().to_string()))
        .candidate(candidate);
    store.record_grade(origin, &req.question, &req.answer, g);
    if store.close(CLOSE_WITHIN).await > 0 {
        anyhow::bail!("the grade was not stored in {}", store.store().describe());
    }
    eprintln!("stored as {} in {}", g.id, store.store().describe());
    Ok(())
}

/// After `grader batch`: write what is queued, and say if some grades could not be stored.
pub(super) async fn close_warning(store: &Audit) {
    let left = store.close(grader::audit::CLOSE_WITHIN).await;
    if left > 0 {
        eprintln!(
            "warning: {left} grades were not stored in {}",
            store.store().describe()
        );
    }
}
