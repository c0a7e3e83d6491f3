//! Layered configuration: embedded defaults → environment file → `GRADER__…` variables.
//!
//! `config/default.toml` is compiled into the binary, so a bare `grader` runs with no files
//! around it. Every struct denies unknown fields, so a typo in a file or an environment
//! variable is an error that names the key instead of a silently ignored setting. Secrets
//! (`OPENAI_API_KEY`, `SLACK_SIGNING_SECRET`, `SLACK_BOT_TOKEN`, `QDRANT_API_KEY`) are read
//! into [`SecretString`]s, whose `Debug` prints `[REDACTED]`.
//!
//! The file is long because every section's settings and their checks (`validate`,
//! `validate_secrets`) live together: a key's type, its meaning and what makes it invalid are
//! read in one place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The defaults, embedded at build time.
pub const DEFAULT_TOML: &str = crate::assets::DEFAULT_CONFIG.text;

/// An error in the configuration: names the key or file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid configuration: {0} (check config/default.toml for the known keys and their types)"
    )]
    Invalid(String),
    #[error("invalid configuration: {key}: {message}")]
    Value { key: String, message: String },
}

/// Where each layer comes from. Tests pass their own environment so they do not depend on
/// (or leak into) the process environment.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// An explicit file (`--config FILE`); overrides `GRADER_ENV`.
    pub file: Option<PathBuf>,
    /// `GRADER_ENV`: loads `config/<env>.toml` (which must exist when named).
    pub env_name: Option<String>,
    /// Environment variables to read (`GRADER__…` and the secrets). `None` = the process env.
    pub vars: Option<Vec<(String, String)>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub rubrics_dir: PathBuf,
    pub server: ServerSettings,
    pub log: LogSettings,
    pub embedding: EmbeddingSettings,
    pub store: StoreSettings,
    pub matching: MatchingSettings,
    pub judge: JudgeSettings,
    pub llm: LlmSettings,
    pub limits: Limits,
    pub slack: SlackSettings,
    pub review: ReviewSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Graders' keys: when non-empty, `/v1` needs one of these (or an admin key).
    #[serde(default)]
    pub api_keys: Vec<SecretString>,
    /// Admins' keys: they also read full rubrics (the answer key), read the audit store
    /// (`/v1/grades…`) and review grades.
    #[serde(default)]
    pub admin_keys: Vec<SecretString>,
    /// Serve full rubrics to everyone (local use; a candidate could read the answer key).
    pub expose_rubrics: bool,
    pub cors_origins: Vec<String>,
    pub request_timeout_ms: u64,
    /// A request's headers must arrive within this long of its first byte.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive within this long of its headers.
    pub body_read_timeout_ms: u64,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// Connections open at once; beyond it a new connection gets a 503 and is closed.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingKind {
    Local,
    Openai,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSettings {
    pub kind: EmbeddingKind,
    pub model_dir: PathBuf,
    pub max_tokens: usize,
    pub batch_size: usize,
    /// Forward passes of the local model that run at once; 0 means one per core.
    pub workers: usize,
    /// Load the local model's pair reader (a short reference and the answer read together;
    /// `src/embed/pair.rs`). Off: short references are read by the correctness head alone.
    #[serde(default = "yes")]
    pub pair_reader: bool,
    pub openai_model: String,
    pub openai_dimensions: u32,
}

fn yes() -> bool {
    true
}

impl EmbeddingSettings {
    /// How the local model runs, from these settings.
    pub fn local_options(&self) -> crate::embed::LocalOptions {
        crate::embed::LocalOptions {
            max_tokens: self.max_tokens,
            batch_size: self.batch_size,
            workers: self.workers,
            pair_reader: self.pair_reader,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Embedded,
    Qdrant,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub kind: StoreKind,
    pub url: String,
    pub collection_prefix: String,
    pub shard_number: u32,
    pub replication_factor: u32,
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Store every grade (the audit store); `false` keeps nothing.
    pub audit: bool,
    /// The audit store: a `postgres://` URL (replicas share it), or unset for SQLite at
    /// `data_dir/database_file`. A secret: it may hold a password.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    pub database_file: PathBuf,
    /// Keep candidates' answers (and the evidence quoting them) in the audit store.
    pub keep_answers: bool,
    /// Grades waiting to be written, at most (and as many again awaiting a retry while the
    /// database is down); beyond that new grades are not stored, and are counted.
    pub write_queue: usize,
}

/// The review queue: which grades a person should look at first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSettings {
    /// The pass mark as a share of the maximum score; grades near it are queued for review.
    pub pass_mark: f32,
    /// How near counts as near: within this share of the maximum score.
    pub boundary_margin: f32,
    /// LLM sample agreement under this queues the grade (only with `llm.samples` > 1).
    pub min_agreement: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingSettings {
    pub threshold: f32,
    pub candidates: usize,
}

/// Which judge grades. `auto` is only a request: it resolves to `llm` when an endpoint is
/// configured, else `coverage`, so a grade never reports `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeKind {
    Auto,
    Coverage,
    Llm,
    Hybrid,
}

impl JudgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JudgeKind::Auto => "auto",
            JudgeKind::Coverage => "coverage",
            JudgeKind::Llm => "llm",
            JudgeKind::Hybrid => "hybrid",
        }
    }
}

impl std::fmt::Display for JudgeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JudgeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "coverage" => Ok(Self::Coverage),
            "llm" => Ok(Self::Llm),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!(
                "unknown judge `{other}`: use auto, coverage, llm or hybrid"
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSettings {
    pub kind: JudgeKind,
    pub calibration: PathBuf,
    /// The correctness head's weights (`grader train`); empty: the built-in copy.
    pub head: PathBuf,
    pub exemplars_k: usize,
    /// Give the LLM judge the coverage judge's best-matching sentences as hints.
    pub llm_hints: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    JsonSchema,
    ToolCall,
    JsonObject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    None,
    Coverage,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per million prompt tokens.
    pub input: f64,
    /// USD per million completion tokens.
    pub output: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    pub base_url: String,
    pub model: String,
    #[serde(default)]
    pub api_key: Option<SecretString>,
    pub temperature: f32,
    pub samples: u32,
    pub timeout_ms: u64,
    pub max_retries: u32,
    pub structured_output: StructuredOutput,
    pub fallback: Fallback,
    pub max_concurrency: usize,
    pub max_output_tokens: u32,
    pub prices: BTreeMap<String, Price>,
}

impl LlmSettings {
    /// An endpoint counts as configured when a base URL or an API key is given.
    pub fn is_configured(&self) -> bool {
        !self.base_url.trim().is_empty() || self.api_key.is_some()
    }

    /// The price of `model`: the longest configured name that prefixes it.
    pub fn price_for(&self, model: &str) -> Option<Price> {
        self.prices
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverLimit {
    Reject,
    Truncate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_answer_tokens: usize,
    pub over_limit: OverLimit,
    /// Sentences (and code blocks) per answer: each is embedded and judged.
    pub max_answer_segments: usize,
    pub max_question_chars: usize,
    pub max_reference_chars: usize,
    /// Statements of a reference answer: each becomes a criterion of an ad hoc rubric.
    pub max_reference_statements: usize,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub max_transcript_bytes: usize,
    pub max_transcript_pairs: usize,
    pub concurrency: usize,
    /// Grades admitted at once (running or waiting); beyond it requests get 503 + Retry-After.
    pub max_queued_grades: usize,
    /// The `Retry-After` of a 503 when the queue is full.
    pub retry_after_secs: u64,
    /// Light embedding work waiting longer than this: new requests get 503 + Retry-After.
    pub max_queue_delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    pub api_base_url: String,
    pub max_clock_skew_secs: u64,
    /// Where grades may be posted: a slash command's `response_url` must start with one of these.
    pub response_url_prefixes: Vec<String>,
    #[serde(default)]
    pub signing_secret: Option<SecretString>,
    #[serde(default)]
    pub bot_token: Option<SecretString>,
}

impl SlackSettings {
    pub fn is_configured(&self) -> bool {
        self.signing_secret.is_some()
    }
}

impl Settings {
    /// Load the defaults only (what tests and a bare binary start from).
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load(&Sources {
            vars: Some(Vec::new()),
            ..Sources::default()
        })
    }

    /// Load every layer.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = match &sources.vars {
            Some(v) => v.clone(),
            None => std::env::vars().collect(),
        };
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        let env_name = sources.env_name.clone().or_else(|| {
            vars.iter()
                .find(|(k, _)| k == "GRADER_ENV")
                .map(|(_, v)| v.clone())
        });
        let file = match (&sources.file, env_name) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(name)) if !name.is_empty() => {
                Some(PathBuf::from(format!("config/{name}.toml")))
            }
            _ => None,
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::File {
                path: path.clone(),
                source,
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        // GRADER__SECTION__KEY → section.key; GRADER_ENV (one underscore) is not a key.
        let grader_vars: Vec<(String, String)> = vars
            .iter()
            .filter(|(k, _)| k.starts_with("GRADER__"))
            .cloned()
            .collect();
        // Figment's `Env` provider reads the process environment; tests pass their own
        // variables, so the same mapping is done here on the list we were given.
        for (k, v) in &grader_vars {
            let key = k
                .trim_start_matches("GRADER__")
                .to_lowercase()
                .replace("__", ".");
            figment = figment.merge((key, parse_env_value(v)));
        }
        let mut settings: Settings = figment.extract().map_err(|e| figment_error(&e))?;

        // A secret variable that is set must hold a secret: an empty signing secret would make
        // every forged Slack request verify, so it is an error rather than "not set".
        let secret = |name: &str| -> Result<Option<SecretString>, ConfigError> {
            match vars.iter().find(|(k, _)| k == name) {
                None => Ok(None),
                Some((_, v)) if v.trim().is_empty() => Err(ConfigError::Value {
                    key: name.to_string(),
                    message: EMPTY_SECRET.into(),
                }),
                Some((_, v)) => Ok(Some(SecretString::from(v.trim().to_string()))),
            }
        };
        if let Some(key) = secret("OPENAI_API_KEY")? {
            settings.llm.api_key.get_or_insert(key);
        }
        if let Some(s) = secret("SLACK_SIGNING_SECRET")? {
            settings.slack.signing_secret.get_or_insert(s);
        }
        if let Some(s) = secret("SLACK_BOT_TOKEN")? {
            settings.slack.bot_token.get_or_insert(s);
        }
        if let Some(s) = secret("QDRANT_API_KEY")? {
            settings.store.api_key.get_or_insert(s);
        }
        settings.validate_secrets()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Every configured secret holds something: an empty API key would match an empty
    /// `x-api-key:` header, an empty signing secret would verify forged requests.
    fn validate_secrets(&self) -> Result<(), ConfigError> {
        let empty = |s: &SecretString| s.expose_secret().trim().is_empty();
        let lists = [
            ("server.api_keys", &self.server.api_keys),
            ("server.admin_keys", &self.server.admin_keys),
        ];
        for (key, list) in lists {
            if let Some(i) = list.iter().position(empty) {
                return Err(ConfigError::Value {
                    key: format!("{key}[{i}]"),
                    message: EMPTY_SECRET.into(),
                });
            }
        }
        let single = [
            ("llm.api_key", &self.llm.api_key),
            ("store.api_key", &self.store.api_key),
            ("slack.signing_secret", &self.slack.signing_secret),
            ("slack.bot_token", &self.slack.bot_token),
        ];
        for (key, value) in single {
            if value.as_ref().is_some_and(empty) {
                return Err(ConfigError::Value {
                    key: key.into(),
                    message: EMPTY_SECRET.into(),
                });
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Value {
                key: key.into(),
                message: message.into(),
            })
        };
        if !(0.0..=1.0).contains(&self.matching.threshold) {
            return bad("matching.threshold", "must be between 0 and 1");
        }
        if self.llm.samples == 0 || self.llm.samples > 15 {
            return bad("llm.samples", "must be between 1 and 15");
        }
        if self.llm.max_concurrency == 0 {
            return bad("llm.max_concurrency", "must be at least 1");
        }
        if self.limits.concurrency == 0 {
            return bad("limits.concurrency", "must be at least 1");
        }
        if self.limits.max_batch == 0 {
            return bad("limits.max_batch", "must be at least 1");
        }
        for (key, value) in [
            (
                "limits.max_answer_segments",
                self.limits.max_answer_segments,
            ),
            ("limits.max_question_chars", self.limits.max_question_chars),
            (
                "limits.max_reference_chars",
                self.limits.max_reference_chars,
            ),
            (
                "limits.max_reference_statements",
                self.limits.max_reference_statements,
            ),
            (
                "limits.max_transcript_pairs",
                self.limits.max_transcript_pairs,
            ),
            ("limits.max_queued_grades", self.limits.max_queued_grades),
            (
                "limits.max_queue_delay_ms",
                self.limits.max_queue_delay_ms as usize,
            ),
            ("server.max_connections", self.server.max_connections),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1");
            }
        }
        for (key, value) in [
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            (
                "server.body_read_timeout_ms",
                self.server.body_read_timeout_ms,
            ),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
        ] {
            if value == 0 {
                return bad(
                    key,
                    "must be at least 1 (a stalled client would hold its connection forever)",
                );
            }
        }
        for (i, prefix) in self.slack.response_url_prefixes.iter().enumerate() {
            if let Err(why) = check_url_prefix(prefix) {
                return Err(ConfigError::Value {
                    key: format!("slack.response_url_prefixes[{i}]"),
                    message: why,
                });
            }
        }
        if self.store.write_queue == 0 {
            return bad("store.write_queue", "must be at least 1");
        }
        for (key, v) in [
            ("review.pass_mark", self.review.pass_mark),
            ("review.boundary_margin", self.review.boundary_margin),
            ("review.min_agreement", self.review.min_agreement),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, "must be between 0 and 1");
            }
        }
        if self.embedding.batch_size == 0 {
            return bad("embedding.batch_size", "must be at least 1");
        }
        if self.embedding.max_tokens == 0 || self.embedding.max_tokens > 512 {
            return bad("embedding.max_tokens", "must be between 1 and 512");
        }
        if self.store.kind == StoreKind::Qdrant && self.store.url.trim().is_empty() {
            return bad(
                "store.url",
                "store.kind = \"qdrant\" needs a URL, e.g. GRADER__STORE__URL=http://localhost:6334",
            );
        }
        if !self.llm.base_url.is_empty()
            && !self.llm.base_url.starts_with("http://")
            && !self.llm.base_url.starts_with("https://")
        {
            return bad(
                "llm.base_url",
                "must start with http:// or https:// (e.g. https://api.openai.com/v1)",
            );
        }
        Ok(())
    }

    /// A path from the config, resolved against `base` unless absolute.
    pub fn resolve(base: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }
    }
}

const EMPTY_SECRET: &str =
    "is set but empty (or only whitespace): give the secret, or leave it unset";

/// An allowed URL prefix: an absolute http(s) URL whose path ends in `/`, so
/// `https://hooks.slack.com/` cannot be matched by `https://hooks.slack.com.evil.example/`.
fn check_url_prefix(prefix: &str) -> Result<(), String> {
    let ok = (prefix.starts_with("https://") || prefix.starts_with("http://"))
        && prefix
            .split_once("://")
            .is_some_and(|(_, rest)| rest.contains('/') && !rest.starts_with('/'))
        && prefix.ends_with('/');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{prefix}` must be an http(s) URL with a host that ends in `/`, e.g. https://hooks.slack.com/"
        ))
    }
}

/// Environment values are strings; numbers, booleans and arrays are parsed the way
/// figment's `Env` provider would, so `GRADER__SERVER__PORT=9000` is a number.
fn parse_env_value(raw: &str) -> figment::value::Value {
    raw.parse::<figment::value::Value>()
        .unwrap_or_else(|_| figment::value::Value::from(raw.to_string()))
}

fn figment_error(e: &figment::Error) -> ConfigError {
    let mut parts = Vec::new();
    for err in e.clone() {
        let key = err.path.join(".");
        let what = match &err.kind {
            figment::error::Kind::UnknownField(field, _) => {
                let full = if key.is_empty() {
                    field.clone()
                } else if err.path.last() == Some(field) {
                    key.clone()
                } else {
                    format!("{key}.{field}")
                };
                format!("unknown key `{full}`: remove it or fix its spelling")
            }
            figment::error::Kind::MissingField(field) => {
                let full = if key.is_empty() {
                    field.to_string()
                } else {
                    format!("{key}.{field}")
                };
                format!("missing key `{full}`")
            }
            kind => format!("`{key}`: {kind}"),
        };
        parts.push(what);
    }
    ConfigError::Invalid(parts.join("; "))
}

/// For display: whether a secret is set, never its value.
pub fn secret_state(s: &Option<SecretString>) -> &'static str {
    match s {
        Some(v) if !v.expose_secret().is_empty() => "set",
        _ => "not set",
    }
}
