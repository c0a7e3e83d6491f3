//! Command-line commands. `anyhow` lives here (and in `main`), not in the library.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use grader::config::{JudgeKind, LogFormat, Settings, Sources};
use grader::engine::{Engine, GradeRequest, QuestionRef};
use grader::eval::{self, BadLine};
use grader::grade::{Grade, Verdict};
use grader::judge::calibration::Calibration;
use grader::judge::fit::{FitItem, fit};
use grader::rubric::{Catalog, RubricSummary};

#[derive(Debug, Parser)]
#[command(
    name = "grader",
    version,
    about = "Grade interview answers against rubrics, criterion by criterion, with quoted evidence."
)]
pub struct Cli {
    /// Configuration file layered over the built-in defaults (else config/$GRADER_ENV.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log as JSON lines (to stderr).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check or list the rubric set.
    Rubrics {
        #[command(subcommand)]
        command: RubricsCommand,
    },
    /// Run the HTTP grading service.
    Serve {
        /// Overrides server.host.
        #[arg(long)]
        host: Option<String>,
        /// Overrides server.port (0 picks a free port).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Grade interview transcripts and write a report per transcript (JSON, Markdown, HTML).
    Batch {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Folder for the reports (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Answers graded at once across all transcripts (default: limits.concurrency).
        #[arg(long)]
        concurrency: Option<usize>,
        /// text, vtt, srt or json (default: detected from each file's content).
        #[arg(long)]
        format: Option<grader::transcript::Format>,
        #[arg(long)]
        judge: Option<JudgeKind>,
        /// Grade again even when a report for the same content and rubric set exists.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Index the rubric set into the configured vector store (only what changed).
    Index {
        #[arg(long)]
        json: bool,
    },
    /// Find the rubric a free-text question asks about.
    Match {
        question: String,
        #[arg(long)]
        json: bool,
    },
    /// Grade one answer.
    Grade(GradeArgs),
    /// Grade a labelled JSONL file and report agreement with the human scores.
    Eval {
        file: PathBuf,
        #[arg(long)]
        judge: Option<JudgeKind>,
        #[arg(long)]
        json: bool,
        /// Only the first N items.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Find the matching threshold that best separates paraphrases (JSONL `{question_id, question}`)
    /// from off-topic questions (one per line); prints it for `matching.threshold`.
    CalibrateMatching {
        paraphrases: PathBuf,
        offtopic: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Fit the coverage judge's thresholds to a labelled JSONL file and write the calibration file.
    Calibrate {
        file: PathBuf,
        /// Where to write (default: judge.calibration from the config).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum RubricsCommand {
    /// Validate every rubric (format and the quality bar of the shipped set).
    Lint {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List the rubrics.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct GradeArgs {
    /// The rubric id (see `grader rubrics list`).
    #[arg(long, group = "q")]
    question_id: Option<String>,
    /// The question as text: matched to a rubric, or with --reference-answer graded ad hoc.
    #[arg(long, group = "q")]
    question: Option<String>,
    /// A reference answer: grade against a rubric derived from it (needs --question).
    #[arg(long, requires = "question")]
    reference_answer: Option<String>,
    /// The answer text.
    #[arg(long, group = "a")]
    answer: Option<String>,
    /// Read the answer from a file.
    #[arg(long, group = "a")]
    answer_file: Option<PathBuf>,
    /// `-` reads the answer from standard input.
    #[arg(value_name = "-", group = "a")]
    stdin: Option<String>,
    #[arg(long)]
    judge: Option<JudgeKind>,
    #[arg(long)]
    json: bool,
}

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
    grader::telemetry::init(format, &settings.log.level, std::io::stderr);
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
        RubricsCommand::Lint { dir } => {
            let dir = dir.unwrap_or_else(|| settings.rubrics_dir.clone());
            let catalog = match Catalog::load_dir(&dir) {
                Ok(c) => c,
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                    eprintln!("{} error(s) in {}", errors.0.len(), dir.display());
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
                println!("{} rubrics OK in {}", catalog.len(), dir.display());
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} problem(s) in {}", problems.len(), dir.display());
                Ok(ExitCode::from(1))
            }
        }
        RubricsCommand::List { dir, json } => {
            let dir = dir.unwrap_or_else(|| settings.rubrics_dir.clone());
            let catalog = Catalog::load_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            let rows: Vec<RubricSummary> = catalog.iter().map(RubricSummary::from).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in rows {
                    println!(
                        "{:<36} {:>2} criteria {:>2} exemplars  {}",
                        r.id, r.criteria, r.exemplars, r.question
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open_engine(settings: Settings) -> anyhow::Result<Engine> {
    let base = std::env::current_dir()?;
    let engine = Engine::open(settings, &base).await?;
    let r = &engine.index_report;
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
        Command::Serve { host, port } => {
            let mut settings = settings;
            if let Some(h) = host {
                settings.server.host = h;
            }
            if let Some(p) = port {
                settings.server.port = p;
            }
            let app = grader::server::Application::build(settings).await?;
            let e = &app.state.engine;
            tracing::info!(
                addr = %app.local_addr()?,
                judge = %format!("{:?}", e.effective_judge(None)).to_lowercase(),
                store = %e.store.describe(),
                rubrics = e.catalog.len(),
                "grader is serving"
            );
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Index { json } => {
            let engine = open_engine(settings).await?;
            let r = &engine.index_report;
            if json {
                println!("{}", serde_json::to_string_pretty(r)?);
            } else {
                println!(
                    "{}: {} added, {} updated, {} removed, {} unchanged ({} points written, {} ms)",
                    engine.store.describe(),
                    r.added.len(),
                    r.updated.len(),
                    r.removed.len(),
                    r.unchanged,
                    r.points_written,
                    r.elapsed_ms
                );
                for (what, ids) in [
                    ("added", &r.added),
                    ("updated", &r.updated),
                    ("removed", &r.removed),
                ] {
                    for id in ids {
                        println!("  {what}: {id}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Match { question, json } => {
            let engine = open_engine(settings).await?;
            let m = engine.match_question(&question).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                match &m.rubric_id {
                    Some(id) => println!("{id} ({:.3})", m.similarity),
                    None => println!(
                        "no rubric matches (best {:.3} < threshold {:.3})",
                        m.similarity, engine.settings.matching.threshold
                    ),
                }
                for c in m.candidates.iter().skip(usize::from(m.rubric_id.is_some())) {
                    println!("  candidate {} ({:.3})", c.rubric_id, c.similarity);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Grade(args) => grade(settings, args).await,
        Command::Batch {
            files,
            out,
            concurrency,
            format,
            judge,
            force,
            json,
        } => {
            batch(
                settings,
                files,
                out,
                concurrency,
                format,
                judge,
                force,
                json,
            )
            .await
        }
        Command::Eval {
            file,
            judge,
            json,
            limit,
        } => eval_cmd(settings, &file, judge, json, limit).await,
        Command::Calibrate { file, out } => calibrate(settings, &file, out).await,
        Command::CalibrateMatching {
            paraphrases,
            offtopic,
            json,
        } => calibrate_matching(settings, &paraphrases, &offtopic, json).await,
    }
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
        },
        (None, Some(q), None) => QuestionRef::Text(q),
        _ => bail!(
            "no question: pass --question-id ID, or --question TEXT (optionally with --reference-answer TEXT)"
        ),
    };
    let engine = open_engine(settings).await?;
    let g = engine
        .grade(&GradeRequest {
            question,
            answer,
            judge: args.judge,
            samples: None,
        })
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&g)?);
    } else {
        print_grade(&g);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_grade(g: &Grade) {
    println!("{}  {:.1} / {}", g.rubric_id, g.score, g.max_score);
    println!("{}", g.question);
    for c in &g.criteria {
        let mark = match c.verdict {
            Verdict::Met => "met    ",
            Verdict::Partial => "partial",
            Verdict::Missed => "missed ",
        };
        if c.evidence.is_empty() {
            println!("  [{mark}] {} (w{})", c.id, c.weight);
        } else {
            println!(
                "  [{mark}] {} (w{}): \"{}\"",
                c.id,
                c.weight,
                one_line(&c.evidence, 100)
            );
        }
    }
    for m in &g.misconceptions {
        println!(
            "  [wrong  ] {} (-{}): \"{}\"",
            m.id,
            m.penalty,
            one_line(&m.evidence, 100)
        );
    }
    if !g.gaps.is_empty() {
        println!("gaps:");
        for gap in &g.gaps {
            println!("  - {gap}");
        }
    }
    println!("{}", g.feedback);
    if !g.flags.is_empty() {
        let flags: Vec<String> = g
            .flags
            .iter()
            .map(|f| {
                serde_json::to_string(f)
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string()
            })
            .collect();
        println!("flags: {}", flags.join(", "));
    }
    println!(
        "judge: {} ({}), {} ms",
        g.judge.kind, g.judge.model, g.latency_ms
    );
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

fn progress(n: usize) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(n as u64);
        pb.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} answers {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    } else {
        ProgressBar::hidden()
    }
}

fn request_for(item: &eval::EvalItem, judge: Option<JudgeKind>) -> GradeRequest {
    let question = match (&item.question_id, &item.question, &item.reference_answer) {
        (Some(id), _, _) => QuestionRef::Id(id.clone()),
        (None, Some(q), Some(r)) => QuestionRef::AdHoc {
            question: q.clone(),
            reference_answer: r.clone(),
        },
        (None, Some(q), None) => QuestionRef::Text(q.clone()),
        _ => QuestionRef::Text(String::new()),
    };
    GradeRequest {
        question,
        answer: item.answer.clone(),
        judge,
        samples: None,
    }
}

async fn eval_cmd(
    settings: Settings,
    file: &Path,
    judge: Option<JudgeKind>,
    json: bool,
    limit: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let (mut items, skipped) = eval::parse_items(&text);
    for b in &skipped {
        eprintln!("{}:{}: skipped: {}", file.display(), b.line, b.error);
    }
    if let Some(n) = limit {
        items.truncate(n);
    }
    let concurrency = settings.limits.concurrency;
    let engine = Arc::new(open_engine(settings).await?);
    let judge_name = format!("{:?}", engine.effective_judge(judge)).to_lowercase();
    let pb = progress(items.len());
    let started = Instant::now();
    let results: Vec<(usize, eval::EvalItem, Result<Grade, String>)> =
        futures::stream::iter(items.into_iter().map(|(line, item)| {
            let engine = engine.clone();
            let pb = pb.clone();
            async move {
                let r = engine
                    .grade(&request_for(&item, judge))
                    .await
                    .map_err(|e| e.to_string());
                pb.inc(1);
                (line, item, r)
            }
        }))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let mut scored = Vec::new();
    let mut failed = Vec::new();
    for (line, item, r) in results {
        match r {
            Ok(g) => scored.push((
                item.group(),
                g.score as f64 / g.max_score as f64 * item.scale_max,
                item.score,
                item.scale_max,
            )),
            Err(e) => {
                eprintln!("{}:{line}: not graded: {e}", file.display());
                failed.push(BadLine { line, error: e });
            }
        }
    }
    let report = eval::report(&scored, elapsed, &judge_name, skipped, failed);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} answers, judge {}: pearson {:.3}  spearman {:.3}  qwk {:.3}  rmse {:.2}  mae {:.2}  ({:.1} answers/s)",
            report.n,
            report.judge,
            report.pearson,
            report.spearman,
            report.qwk,
            report.rmse,
            report.mae,
            report.answers_per_second
        );
        println!("per question (n, pearson, mae):");
        for (q, m) in &report.per_question {
            println!("  {q:<40} {:>3} {:>7.3} {:>6.2}", m.n, m.pearson, m.mae);
        }
        if !report.skipped_lines.is_empty() || !report.failed.is_empty() {
            println!(
                "{} lines skipped, {} items failed",
                report.skipped_lines.len(),
                report.failed.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn calibrate(
    settings: Settings,
    file: &Path,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let (items, skipped) = eval::parse_items(&text);
    for b in &skipped {
        eprintln!("{}:{}: skipped: {}", file.display(), b.line, b.error);
    }
    let out = out.unwrap_or_else(|| settings.judge.calibration.clone());
    let engine = open_engine(settings).await?;
    let command = format!("grader calibrate {}", file.display());
    let data = file.display().to_string();
    let started = Instant::now();
    // Catalog rubrics: each item graded against its rubric.
    let mut measured = Vec::new();
    // Ad hoc rubrics: the same items graded against the rubric's model answer as a reference.
    let mut measured_adhoc = Vec::new();
    for (line, item) in &items {
        let req = request_for(item, Some(JudgeKind::Coverage));
        let resolved = engine
            .resolve(&req.question)
            .await
            .with_context(|| format!("{}:{line}", file.display()))?;
        let f = engine.coverage_features(&resolved, &item.answer).await?;
        let human = item.score / item.scale_max * 10.0;
        if let grader::engine::Resolved::Catalog(r) = &resolved
            && let Some(model) = r.model_answers.first()
        {
            let adhoc = QuestionRef::AdHoc {
                question: r.question.clone(),
                reference_answer: model.text.clone(),
            };
            let ra = engine.resolve(&adhoc).await?;
            let fa = engine.coverage_features(&ra, &item.answer).await?;
            measured_adhoc.push((item.group(), human, ra, fa));
        }
        measured.push((item.group(), human, resolved, f));
    }
    let fit_on = |set: &[(
        String,
        f64,
        grader::engine::Resolved,
        grader::judge::CoverageFeatures,
    )]| {
        let items: Vec<FitItem> = set
            .iter()
            .map(|(group, human, resolved, features)| FitItem {
                group: group.clone(),
                human: *human,
                judge: engine.coverage_judge(resolved),
                features: features.clone(),
            })
            .collect();
        fit(&items, &command, &data)
    };
    let (thresholds, info) = fit_on(&measured);
    let adhoc = (!measured_adhoc.is_empty()).then(|| fit_on(&measured_adhoc));
    let cal = Calibration {
        thresholds,
        fit: info,
        adhoc_thresholds: adhoc.as_ref().map(|a| a.0),
        adhoc_fit: adhoc.map(|a| a.1),
    };
    let body = toml::to_string_pretty(&cal)?;
    let header = format!(
        "# Coverage judge thresholds. Do not edit by hand: refit with\n#   {command}\n# (fit in {:.1} s over {} answers; cv_* = two-fold cross-validation by question;\n# adhoc_* = the same answers graded against each rubric's model answer as an ad hoc reference)\n",
        started.elapsed().as_secs_f64(),
        measured.len()
    );
    std::fs::write(&out, format!("{header}{body}"))
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{header}{body}");
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Deserialize)]
struct Paraphrase {
    question_id: String,
    question: String,
}

async fn calibrate_matching(
    settings: Settings,
    paraphrases: &Path,
    offtopic: &Path,
    json: bool,
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
    let engine = open_engine(settings).await?;
    // (top-1 similarity, top-1 correct) for paraphrases; top similarity for off-topic ones.
    let mut on = Vec::new();
    for p in &para {
        let m = engine.match_question(&p.question).await?;
        let top = m.candidates.first();
        on.push((
            m.similarity,
            top.is_some_and(|c| c.rubric_id == p.question_id),
            p,
        ));
    }
    let mut offs = Vec::new();
    for q in &off {
        offs.push((engine.match_question(q).await?.similarity, q));
    }
    // Every threshold on the grid that separates best; take the middle of that plateau so
    // the chosen value keeps a margin on both sides instead of sitting on the worst off-topic.
    let scored: Vec<(usize, f32)> = (30..=90)
        .map(|step| {
            let t = step as f32 / 100.0;
            let good = on.iter().filter(|(s, ok, _)| *ok && *s >= t).count()
                + offs.iter().filter(|(s, _)| *s < t).count();
            (good, t)
        })
        .collect();
    let top = scored.iter().map(|(g, _)| *g).max().unwrap_or(0);
    let plateau: Vec<f32> = scored
        .iter()
        .filter(|(g, _)| *g == top)
        .map(|(_, t)| *t)
        .collect();
    let t = plateau[plateau.len() / 2];
    let max_off = offs.iter().map(|(s, _)| *s).fold(0.0f32, f32::max);
    let top1 = on.iter().filter(|(_, ok, _)| *ok).count() as f64 / on.len().max(1) as f64;
    let matched =
        on.iter().filter(|(s, ok, _)| *ok && *s >= t).count() as f64 / on.len().max(1) as f64;
    let rejected = offs.iter().filter(|(s, _)| *s < t).count() as f64 / offs.len().max(1) as f64;
    if json {
        println!(
            "{}",
            serde_json::json!({"threshold": t, "plateau": [plateau[0], plateau[plateau.len() - 1]], "max_offtopic_similarity": max_off, "paraphrase_top1": top1, "paraphrase_matched": matched, "offtopic_rejected": rejected, "paraphrases": on.len(), "offtopic": offs.len()})
        );
    } else {
        println!(
            "threshold {t:.2} (best from {:.2} to {:.2}; highest off-topic similarity {max_off:.2}): paraphrases top-1 {:.1}%, matched above threshold {:.1}%, off-topic rejected {:.1}% ({} paraphrases, {} off-topic)",
            plateau[0],
            plateau[plateau.len() - 1],
            top1 * 100.0,
            matched * 100.0,
            rejected * 100.0,
            on.len(),
            offs.len()
        );
        for (s, ok, p) in &on {
            if !*ok || *s < t {
                println!("  miss: {} ({:.2}) {}", p.question_id, s, p.question);
            }
        }
        for (s, q) in &offs {
            if *s >= t {
                println!("  off-topic matched ({s:.2}): {q}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct BatchPairSummary {
    question: String,
    rubric_id: Option<String>,
    score: Option<f32>,
    max_score: Option<f32>,
}

#[derive(serde::Serialize)]
struct BatchSummary {
    file: String,
    /// `graded`, `skipped` (an up-to-date report exists) or `failed`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    pairs: Vec<BatchPairSummary>,
    overall: Option<f32>,
}

fn summary_of(
    file: &str,
    status: &'static str,
    r: &grader::transcript::TranscriptReport,
) -> BatchSummary {
    BatchSummary {
        file: file.to_string(),
        status,
        error: None,
        pairs: r
            .pairs
            .iter()
            .map(|p| BatchPairSummary {
                question: p.question.clone(),
                rubric_id: p.rubric_id.clone(),
                score: p.grade.as_ref().map(|g| g.score),
                max_score: p.grade.as_ref().map(|g| g.max_score),
            })
            .collect(),
        overall: r.overall,
    }
}

/// Report file stem for each input: its own stem, made unique when two inputs share one.
fn report_names(files: &[PathBuf]) -> Vec<String> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    files
        .iter()
        .map(|f| {
            let stem = f.file_stem().map_or_else(
                || "transcript".to_string(),
                |s| s.to_string_lossy().to_string(),
            );
            let n = seen.entry(stem.clone()).or_default();
            *n += 1;
            if *n == 1 { stem } else { format!("{stem}-{n}") }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn batch(
    settings: Settings,
    files: Vec<PathBuf>,
    out: PathBuf,
    concurrency: Option<usize>,
    format: Option<grader::transcript::Format>,
    judge: Option<JudgeKind>,
    force: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use grader::transcript::{TranscriptOptions, grade_transcript, report};
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating the report folder {}", out.display()))?;
    let concurrency = concurrency.unwrap_or(settings.limits.concurrency).max(1);
    let engine = Arc::new(open_engine(settings).await?);
    let rubric_version = engine.catalog.version();
    let mut opts = TranscriptOptions::new(concurrency);
    opts.format = format;
    opts.judge = judge;
    let opts = Arc::new(opts);
    let multi = indicatif::MultiProgress::new();
    if !std::io::stderr().is_terminal() {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let files_bar = multi.add(ProgressBar::new(files.len() as u64));
    files_bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} transcripts {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let answers_bar = multi.add(ProgressBar::new(0));
    answers_bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} answers {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let names = report_names(&files);
    let jobs = files.iter().cloned().zip(names).map(|(file, name)| {
        let engine = engine.clone();
        let opts = opts.clone();
        let out = out.clone();
        let rubric_version = rubric_version.clone();
        let files_bar = files_bar.clone();
        let answers_bar = answers_bar.clone();
        async move {
            let shown = file.display().to_string();
            let result: anyhow::Result<(&'static str, grader::transcript::TranscriptReport)> =
                async {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("{shown}: cannot read"))?;
                    let json_path = out.join(format!("{name}.json"));
                    if !force
                        && let Ok(old) = std::fs::read_to_string(&json_path)
                        && let Ok(old) =
                            serde_json::from_str::<grader::transcript::TranscriptReport>(&old)
                        && old.content_hash == grader::rubric::content_hash(&text)
                        && old.rubric_version == rubric_version
                    {
                        return Ok(("skipped", old));
                    }
                    let on_event = |e: grader::transcript::PairEvent<'_>| match e {
                        grader::transcript::PairEvent::Found(n) => answers_bar.inc_length(n as u64),
                        grader::transcript::PairEvent::Done(_) => answers_bar.inc(1),
                    };
                    let r = grade_transcript(&engine, &shown, &text, &opts, &on_event).await?;
                    std::fs::write(out.join(format!("{name}.md")), report::markdown(&r))?;
                    std::fs::write(out.join(format!("{name}.html")), report::html(&r))?;
                    // The JSON last: its presence marks the transcript as done (resume).
                    std::fs::write(&json_path, serde_json::to_string_pretty(&r)?)?;
                    Ok(("graded", r))
                }
                .await;
            files_bar.inc(1);
            match result {
                Ok((status, r)) => summary_of(&shown, status, &r),
                Err(e) => {
                    files_bar.println(format!("failed: {e:#}"));
                    BatchSummary {
                        file: shown,
                        status: "failed",
                        error: Some(format!("{e:#}")),
                        pairs: Vec::new(),
                        overall: None,
                    }
                }
            }
        }
    });
    let summaries: Vec<BatchSummary> = futures::stream::iter(jobs)
        .buffered(concurrency.min(8))
        .collect()
        .await;
    files_bar.finish_and_clear();
    answers_bar.finish_and_clear();
    let failed = summaries.iter().filter(|s| s.status == "failed").count();
    if json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        for s in &summaries {
            match (s.status, s.overall) {
                ("failed", _) => {
                    println!("FAILED  {}: {}", s.file, s.error.as_deref().unwrap_or(""))
                }
                (status, Some(o)) => println!(
                    "{status:<7} {}: {o:.1}/10 over {} questions",
                    s.file,
                    s.pairs.len()
                ),
                (status, None) => println!(
                    "{status:<7} {}: nothing graded ({} questions)",
                    s.file,
                    s.pairs.len()
                ),
            }
        }
        println!("reports in {}; {} failed", out.display(), failed);
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
