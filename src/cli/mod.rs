//! Command-line commands: parse arguments, open the engine, call the library, print.
//! `anyhow` lives here (and in `main`), not in the library.
//!
//! # Layout
//! - `args.rs`: the clap argument structs.
//! - `models.rs`: `grader models fetch` and `check`.
//! - `audit.rs`: the audit store's commands (`grade --save`, `calibrate --from-reviews`,
//!   `export-reviews`, `purge`).
//! - `print.rs`: human-readable output, written with `out!` so a closed pipe is an error
//!   (`main` ends quietly on it) rather than a panic; progress bars.

mod args;
mod audit;
mod models;
mod print;
mod train;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use grader::config::{LogFormat, Settings, Sources};
use grader::engine::{Engine, GradeRequest, Parts, QuestionRef};
use grader::eval;
use grader::rubric::{Catalog, RubricSummary};
use grader::transcript::batch::{self, BatchEvent, BatchOptions};

pub use args::Cli;
use args::{
    BatchArgs, Command, DirArgs, EvalArgs, GradeArgs, IndexArgs, JsonFlag, RubricsCommand,
    ServeArgs,
};
use print::{out, print_batch, print_grade, progress};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&Sources {
        file: cli.config.clone(),
        ..Sources::default()
    })?;
    let format = if cli.log_json {
        LogFormat::Json
    } else {
        settings.log.format
    };
    // Colour only for a person at a terminal (and never with NO_COLOR set).
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    grader::telemetry::init(format, &settings.log.level, ansi, std::io::stderr);
    match cli.command {
        Command::Rubrics { command } => rubrics(&settings, command),
        command => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async_main(settings, command))
        }
    }
}

fn rubrics(settings: &Settings, cmd: RubricsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RubricsCommand::Lint(DirArgs { dir }) => {
            let (catalog, place) = rubric_set(settings, dir);
            let catalog = match catalog {
                Ok(c) => c,
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                    eprintln!("{} error(s) in {place}", errors.0.len());
                    return Ok(ExitCode::from(1));
                }
            };
            let mut problems = Vec::new();
            for r in catalog.iter() {
                let file = catalog.file_of(&r.id).unwrap_or(Path::new("?"));
                problems.extend(r.lint_quality(file));
            }
            for p in &problems {
                eprintln!("{p}");
            }
            if problems.is_empty() {
                out!("{} rubrics OK in {place}", catalog.len())?;
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} problem(s) in {place}", problems.len());
                Ok(ExitCode::from(1))
            }
        }
        RubricsCommand::List {
            dir: DirArgs { dir },
            out: JsonFlag { json },
        } => {
            let catalog = rubric_set(settings, dir)
                .0
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let rows: Vec<RubricSummary> = catalog.iter().map(RubricSummary::from).collect();
            if json {
                out!("{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                for r in rows {
                    out!(
                        "{:<36} {:>2} criteria {:>2} exemplars  {}",
                        r.id,
                        r.criteria,
                        r.exemplars,
                        r.question
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--dir`, else `rubrics_dir`, else the built-in set; with a name for messages.
fn rubric_set(
    settings: &Settings,
    dir: Option<PathBuf>,
) -> (Result<Catalog, grader::rubric::RubricErrors>, String) {
    let setting = dir.unwrap_or_else(|| settings.rubrics_dir.clone());
    let place = if setting.as_os_str().is_empty() {
        "the built-in rubric set".to_string()
    } else {
        setting.display().to_string()
    };
    let base = std::env::current_dir().unwrap_or_default();
    (Catalog::open(&setting, &base), place)
}

/// Load and check everything, then index what changed: with a progress bar on a terminal,
/// progress log lines otherwise.
async fn open_engine(settings: Settings) -> anyhow::Result<Engine> {
    let base = std::env::current_dir()?;
    let parts = Parts::load(settings, &base)?;
    let engine = if std::io::stderr().is_terminal() {
        let bar = std::sync::OnceLock::new();
        let engine = parts
            .open(&|done, total| {
                let bar = bar.get_or_init(|| {
                    print::bar(
                        total,
                        "indexing the rubric set (first run; later runs reuse it) {bar:30} {pos}/{len} texts, eta {eta}",
                    )
                });
                bar.set_position(done as u64);
            })
            .await;
        if let Some(bar) = bar.get() {
            bar.finish_and_clear();
        }
        engine?
    } else {
        parts.open(&grader::index::log_progress()).await?
    };
    let r = engine.index_report();
    if r.changed() {
        tracing::info!(
            added = r.added.len(),
            updated = r.updated.len(),
            removed = r.removed.len(),
            ms = r.elapsed_ms,
            "indexed rubric set"
        );
    }
    Ok(engine)
}

async fn async_main(settings: Settings, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Rubrics { .. } => unreachable!("handled without a runtime"),
        Command::Serve(args) => serve(settings, args).await,
        Command::Index(args) => index(settings, args).await,
        Command::Match { question, out } => match_cmd(settings, &question, out).await,
        Command::Grade(args) => grade(settings, args).await,
        Command::Batch(args) => batch_cmd(settings, args).await,
        Command::Eval(args) => eval_cmd(settings, args).await,
        Command::Calibrate(args) if args.from_reviews => {
            audit::calibrate_from_reviews(settings, args).await
        }
        Command::Calibrate(args) => train::calibrate(settings, &args.files, args.out).await,
        Command::Train(args) => train::train(settings, args).await,
        Command::ExportReviews { out } => audit::export_reviews(settings, out).await,
        Command::Purge(args) => audit::purge(settings, args).await,
        Command::CalibrateMatching {
            paraphrases,
            offtopic,
            out,
        } => train::calibrate_matching(settings, &paraphrases, &offtopic, out).await,
        Command::Models { command } => models::run(settings, command).await,
    }
}

async fn serve(mut settings: Settings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(h) = args.host {
        settings.server.host = h;
    }
    if let Some(p) = args.port {
        settings.server.port = p;
    }
    let app = grader::server::Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

async fn index(settings: Settings, args: IndexArgs) -> anyhow::Result<ExitCode> {
    let out = args.out;
    if args.recreate {
        let base = std::env::current_dir()?;
        Engine::recreate_index(&settings, &base).await?;
    }
    let engine = open_engine(settings).await?;
    let r = engine.index_report();
    if out.json {
        out!("{}", serde_json::to_string_pretty(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "{}: {} added, {} updated, {} removed, {} unchanged ({} points written, {} ms)",
        engine.store().describe(),
        r.added.len(),
        r.updated.len(),
        r.removed.len(),
        r.unchanged,
        r.points_written,
        r.elapsed_ms
    )?;
    for (what, ids) in [
        ("added", &r.added),
        ("updated", &r.updated),
        ("removed", &r.removed),
    ] {
        for id in ids {
            out!("  {what}: {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn match_cmd(settings: Settings, question: &str, out: JsonFlag) -> anyhow::Result<ExitCode> {
    let engine = open_engine(settings).await?;
    let m = engine.match_question(question).await?;
    if out.json {
        out!("{}", serde_json::to_string_pretty(&m)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    match &m.rubric_id {
        Some(id) => out!("{id} ({:.3})", m.similarity)?,
        None => out!(
            "no rubric matches (best {:.3} < threshold {:.3})",
            m.similarity,
            engine.settings().matching.threshold
        )?,
    }
    for c in m.candidates.iter().skip(usize::from(m.rubric_id.is_some())) {
        out!("  candidate {} ({:.3})", c.rubric_id, c.similarity)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn grade(settings: Settings, args: GradeArgs) -> anyhow::Result<ExitCode> {
    let answer = match (&args.answer, &args.answer_file, &args.stdin) {
        (Some(a), _, _) => a.clone(),
        (_, Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("reading --answer-file {}", path.display()))?,
        (_, _, Some(dash)) if dash == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the answer from standard input")?;
            s
        }
        (_, _, Some(other)) => bail!(
            "unexpected argument `{other}`: pass the answer with --answer, --answer-file or `-` for stdin"
        ),
        _ => bail!(
            "no answer: pass --answer TEXT, --answer-file PATH, or `-` to read standard input"
        ),
    };
    let question = match (args.question_id, args.question, args.reference_answer) {
        (Some(id), _, _) => QuestionRef::Id(id),
        (None, Some(q), Some(reference)) => QuestionRef::AdHoc {
            question: q,
            reference_answer: reference,
            alternatives: Vec::new(),
        },
        (None, Some(q), None) => QuestionRef::Text(q),
        _ => bail!(
            "no question: pass --question-id ID, or --question TEXT (optionally with --reference-answer TEXT)"
        ),
    };
    let store = match args.save {
        true => Some(audit::open_audit(&settings).await?),
        false => None,
    };
    let engine = open_engine(settings).await?;
    let req = GradeRequest {
        question,
        answer,
        judge: args.judge,
        samples: None,
    };
    let g = engine.grade(&req).await?;
    if let Some(store) = store {
        audit::save_grade(&store, args.candidate.clone(), &req, &g).await?;
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(&g)?)?;
    } else {
        print_grade(&g)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Labelled items with their line numbers.
type Items = Vec<(usize, eval::EvalItem)>;

/// Read a labelled JSONL file; unusable lines are reported on stderr and returned.
fn read_items(file: &Path) -> anyhow::Result<(Items, Vec<eval::BadLine>)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let (items, skipped) = eval::parse_items(&text);
    for b in &skipped {
        eprintln!("{}:{}: skipped: {}", file.display(), b.line, b.error);
    }
    Ok((items, skipped))
}

async fn eval_cmd(settings: Settings, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let (mut items, skipped) = read_items(&args.file)?;
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    let opts = eval::RunOptions {
        judge: args.judge,
        concurrency: settings.limits.concurrency,
    };
    let engine = Arc::new(open_engine(settings).await?);
    let pb = progress(items.len());
    let file = args.file.display().to_string();
    // Opened before grading, so a path that cannot be written costs no run.
    let mut predictions = args
        .predictions
        .as_ref()
        .map(|path| {
            std::fs::File::create(path)
                .map(|f| (path, std::io::BufWriter::new(f)))
                .with_context(|| {
                    format!(
                        "cannot write --predictions {}: choose a writable path",
                        path.display()
                    )
                })
        })
        .transpose()?;
    let graded = eval::run(engine, items, skipped, opts, &|| pb.inc(1), &|bad| {
        eprintln!("{file}:{}: not graded: {}", bad.line, bad.error)
    })
    .await;
    pb.finish_and_clear();
    if let Some((path, w)) = predictions.as_mut() {
        use std::io::Write;
        let written = graded
            .predictions
            .iter()
            .try_for_each(|p| {
                serde_json::to_writer(&mut *w, p)?;
                w.write_all(b"\n").map_err(serde_json::Error::io)
            })
            .and_then(|()| w.flush().map_err(serde_json::Error::io));
        written.with_context(|| format!("writing --predictions {}", path.display()))?;
    }
    let report = graded.report;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let scale = match report.scale_max {
        Some(s) => format!("0–{s}"),
        None => "0–10, mixed scales".into(),
    };
    out!(
        "{} answers, judge {}: pearson {:.3}  spearman {:.3}  qwk {:.3}  rmse {:.2}  mae {:.2} (on {scale})  ({:.1} answers/s)",
        report.n,
        report.judge,
        report.pearson,
        report.spearman,
        report.qwk,
        report.rmse,
        report.mae,
        report.answers_per_second
    )?;
    if let Some(c) = &report.classification {
        let f1: Vec<String> = c
            .f1_per_level
            .iter()
            .enumerate()
            .map(|(level, f)| match f {
                Some(f) => format!("{level}: {f:.3}"),
                None => format!("{level}: -"),
            })
            .collect();
        out!(
            "levels (0–{}): accuracy {:.3}  macro-F1 {:.3}  (F1 per level {})",
            c.levels - 1,
            c.accuracy,
            c.macro_f1,
            f1.join(", ")
        )?;
    }
    if !report.worst.is_empty() {
        out!("worst graded (line, human, predicted, question, answer):")?;
        for w in &report.worst {
            out!(
                "  {:>5} {:>5} {:>6.2}  {:<40}  {}",
                w.line,
                w.human,
                w.predicted,
                eval::excerpt(&w.question, 40),
                w.answer
            )?;
        }
    }
    out!("per question (n, pearson, mae):")?;
    for (q, m) in &report.per_question {
        out!(
            "  {:<40} {:>3} {:>7.3} {:>6.2}",
            eval::excerpt(q, 40),
            m.n,
            m.pearson,
            m.mae
        )?;
    }
    if !report.skipped_lines.is_empty() || !report.failed.is_empty() {
        out!(
            "{} lines skipped, {} items failed",
            report.skipped_lines.len(),
            report.failed.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn batch_cmd(settings: Settings, args: BatchArgs) -> anyhow::Result<ExitCode> {
    let opts = BatchOptions {
        out: args.out,
        concurrency: args
            .concurrency
            .unwrap_or(settings.limits.concurrency)
            .max(1),
        format: args.format,
        judge: args.judge,
        force: args.force,
    };
    let store = match settings.store.audit {
        true => Some(audit::open_audit(&settings).await?),
        false => None,
    };
    let mut engine = open_engine(settings).await?;
    if let Some(store) = &store {
        engine = engine.with_audit(store.clone());
    }
    let engine = Arc::new(engine);
    let multi = indicatif::MultiProgress::new();
    if !std::io::stderr().is_terminal() {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let bar = |len: usize, template: &str| {
        let b = multi.add(ProgressBar::new(len as u64));
        b.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let files_bar = bar(args.files.len(), "{bar:30} {pos}/{len} transcripts {msg}");
    let answers_bar = bar(0, "{bar:30} {pos}/{len} answers {per_sec}");
    let on_event = |e: BatchEvent<'_>| match e {
        BatchEvent::AnswersFound(n) => answers_bar.inc_length(n as u64),
        BatchEvent::AnswerDone => answers_bar.inc(1),
        BatchEvent::FileDone(s) => {
            files_bar.inc(1);
            if let Some(e) = &s.error {
                files_bar.println(format!("failed: {e}"));
            }
        }
    };
    let summaries = batch::run(engine, &args.files, &opts, &on_event).await?;
    if let Some(store) = &store {
        audit::close_warning(store).await;
    }
    files_bar.finish_and_clear();
    answers_bar.finish_and_clear();
    let failed = summaries.iter().filter(|s| s.status == "failed").count();
    if args.json {
        out!("{}", serde_json::to_string_pretty(&summaries)?)?;
    } else {
        print_batch(&summaries)?;
        out!("reports in {}; {} failed", opts.out.display(), failed)?;
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
