//! The LLM judge: any OpenAI-compatible chat endpoint grades the answer criterion by criterion.
//!
//! The prompt (templates in `prompts/`) carries the rubric, the model answer(s), graded
//! exemplars retrieved by similarity, and the coverage judge's evidence as hints; the answer
//! sits in a block whose delimiter is random per request and cannot occur in the answer. The
//! model returns verdicts, verbatim quotes, misconceptions, gaps and feedback in one of three
//! structured-output modes; the code validates the object (every criterion exactly once),
//! retries faults with jittered exponential backoff, votes across samples, and never lets a
//! parse failure become a score.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use minijinja::{Environment, context};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::config::{LlmSettings, StructuredOutput};
use crate::grade::{CriterionResult, JudgeInfo, Judgement, MisconceptionResult, Usage, Verdict};
use crate::rubric::Rubric;

const SYSTEM_TEMPLATE: &str = include_str!("../../prompts/judge_system.j2");
const USER_TEMPLATE: &str = include_str!("../../prompts/judge_user.j2");

/// The function name in `tool_call` mode.
pub const TOOL_NAME: &str = "submit_grade";

/// Why an LLM call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("endpoint answered HTTP {status}: {body}")]
    Http {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    #[error("request timed out")]
    Timeout,
    #[error("cannot connect to the endpoint: {0}")]
    Connect(String),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("the model refused: {0}")]
    Refusal(String),
    #[error("the model's output does not fit the schema: {0}")]
    Schema(String),
    #[error("request rejected by the client: {0}")]
    Invalid(String),
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: Box<LlmError> },
}

impl LlmError {
    /// Faults worth another try: rate limits, server errors, timeouts, connection problems,
    /// refusals and malformed output (models are not deterministic about format).
    pub fn retryable(&self) -> bool {
        match self {
            LlmError::Http { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            LlmError::Timeout
            | LlmError::Connect(_)
            | LlmError::Transport(_)
            | LlmError::Refusal(_)
            | LlmError::Schema(_) => true,
            LlmError::Invalid(_) | LlmError::Exhausted { .. } => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A non-success HTTP response, kept with its status and `retry-after` (async-openai would
/// otherwise turn it into a message and drop the headers).
#[derive(Debug)]
struct HttpStatusError {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
}

impl std::fmt::Display for HttpStatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.body)
    }
}

impl std::error::Error for HttpStatusError {}

fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs.min(300.0)));
    }
    None
}

fn map_openai_error(e: OpenAIError) -> LlmError {
    match e {
        OpenAIError::Boxed(b) => match b.downcast::<HttpStatusError>() {
            Ok(h) => LlmError::Http {
                status: h.status,
                retry_after: h.retry_after,
                body: h.body,
            },
            Err(other) => LlmError::Transport(other.to_string()),
        },
        OpenAIError::Reqwest(r) if r.is_timeout() => LlmError::Timeout,
        OpenAIError::Reqwest(r) if r.is_connect() => LlmError::Connect(r.to_string()),
        OpenAIError::Reqwest(r) => LlmError::Transport(r.to_string()),
        OpenAIError::JSONDeserialize(err, content) => LlmError::Schema(format!(
            "response is not valid JSON ({err}): {}",
            crate::grade::short(&content, 200)
        )),
        OpenAIError::InvalidArgument(m) => LlmError::Invalid(m),
        other => LlmError::Transport(other.to_string()),
    }
}

/// Counters shared by every request (exported as metrics).
#[derive(Debug, Default)]
pub struct LlmStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub errors: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    /// Cost in micro-dollars (integer, so it can be atomic).
    pub cost_micro_usd: AtomicU64,
}

/// A graded exemplar shown to the model.
#[derive(Debug, Clone, Serialize)]
pub struct ExemplarRef {
    pub score: f32,
    pub answer: String,
    pub rationale: String,
}

/// The coverage judge's best sentence per criterion, shown as a hint.
#[derive(Debug, Clone, Serialize)]
pub struct Hint {
    pub id: String,
    pub evidence: String,
    pub similarity: String,
}

/// Everything one grading call needs.
pub struct JudgeInput<'a> {
    pub rubric: &'a Rubric,
    /// The answer as the judge should see it (already guarded against injection).
    pub answer: &'a str,
    pub exemplars: Vec<ExemplarRef>,
    pub hints: Vec<Hint>,
    pub samples: u32,
}

/// The model's output object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LlmOutput {
    pub criteria: Vec<LlmCriterion>,
    #[serde(default)]
    pub misconceptions: Vec<LlmMisconception>,
    #[serde(default)]
    pub gaps: Vec<String>,
    #[serde(default)]
    pub feedback: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LlmCriterion {
    pub id: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub evidence: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LlmMisconception {
    pub id: String,
    #[serde(default)]
    pub evidence: String,
}

/// The JSON schema of the output object for a rubric.
///
/// `pinned` fixes the array to one entry per criterion, in rubric order (`prefixItems` with a
/// `const` id each): servers that turn the schema into a decoding grammar (llama.cpp, vLLM)
/// then cannot skip or repeat a criterion. OpenAI's strict `json_schema` mode does not accept
/// `prefixItems`, so that mode gets the plain form with the ids as an enum; the output object
/// is the same either way, and the parser checks every id exactly once regardless.
pub fn output_schema(rubric: &Rubric, pinned: bool) -> Value {
    let ids: Vec<&str> = rubric.criteria.iter().map(|c| c.id.as_str()).collect();
    let mids: Vec<&str> = rubric
        .misconceptions
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    let mid_schema = if mids.is_empty() {
        json!({"type": "string"})
    } else {
        json!({"type": "string", "enum": mids})
    };
    // Grammar-decoding servers also get length bounds, so a rambling model cannot run out of
    // output tokens mid-object.
    let text = |max: usize| {
        if pinned {
            json!({"type": "string", "maxLength": max})
        } else {
            json!({"type": "string"})
        }
    };
    let item = |id: Value| {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "verdict", "evidence", "reason"],
            "properties": {
                "id": id,
                "verdict": {"type": "string", "enum": ["met", "partial", "missed"]},
                "evidence": text(200),
                "reason": text(200)
            }
        })
    };
    let criteria = if pinned {
        json!({
            "type": "array",
            "prefixItems": ids.iter().map(|id| item(json!({"type": "string", "const": id}))).collect::<Vec<_>>(),
            "items": false,
            "minItems": ids.len(),
            "maxItems": ids.len()
        })
    } else {
        json!({"type": "array", "items": item(json!({"type": "string", "enum": ids}))})
    };
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["criteria", "misconceptions", "gaps", "feedback"],
        "properties": {
            "criteria": criteria,
            "misconceptions": {
                "type": "array",
                "maxItems": mids.len(),
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["id", "evidence"],
                    "properties": {"id": mid_schema, "evidence": text(200)}
                }
            },
            "gaps": if pinned { json!({"type": "array", "items": text(240), "maxItems": 8}) } else { json!({"type": "array", "items": text(240)}) },
            "feedback": text(600)
        }
    })
}

/// Parse and validate the model's text: code fences and stray prose around the object are
/// tolerated; a missing, unknown or repeated criterion id is a schema error.
pub fn parse_output(text: &str, rubric: &Rubric) -> Result<LlmOutput, LlmError> {
    let trimmed = text.trim();
    let body = match (trimmed.find('{'), trimmed.rfind('}')) {
        (Some(a), Some(b)) if b > a => &trimmed[a..=b],
        _ => {
            return Err(LlmError::Schema(format!(
                "no JSON object in the reply: {}",
                crate::grade::short(trimmed, 120)
            )));
        }
    };
    let out: LlmOutput =
        serde_json::from_str(body).map_err(|e| LlmError::Schema(format!("{e}")))?;
    let want: HashSet<&str> = rubric.criteria.iter().map(|c| c.id.as_str()).collect();
    let mut seen = HashSet::new();
    for c in &out.criteria {
        if !want.contains(c.id.as_str()) {
            return Err(LlmError::Schema(format!("unknown criterion id `{}`", c.id)));
        }
        if !seen.insert(c.id.as_str()) {
            return Err(LlmError::Schema(format!(
                "criterion `{}` appears twice",
                c.id
            )));
        }
    }
    if let Some(missing) = rubric
        .criteria
        .iter()
        .find(|c| !seen.contains(c.id.as_str()))
    {
        return Err(LlmError::Schema(format!(
            "criterion `{}` is missing",
            missing.id
        )));
    }
    for m in &out.misconceptions {
        if !rubric.misconceptions.iter().any(|d| d.id == m.id) {
            return Err(LlmError::Schema(format!(
                "unknown misconception id `{}`",
                m.id
            )));
        }
    }
    Ok(out)
}

/// A random delimiter that does not occur in the answer.
fn delimiter(answer: &str) -> (String, String) {
    let mut rng = rand::rng();
    loop {
        let nonce: u64 = rng.random();
        let tag = format!("ANSWER-{nonce:016x}");
        if !answer.contains(&tag) {
            return (format!("<<<{tag}>>>"), format!("<<<END-{tag}>>>"));
        }
    }
}

/// One rendered request and what it costs to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub body: Value,
    pub prompt_tokens: usize,
}

/// One call's result.
struct Reply {
    output: LlmOutput,
    usage: Usage,
}

pub struct LlmJudge {
    client: Client<OpenAIConfig>,
    settings: LlmSettings,
    semaphore: Arc<Semaphore>,
    env: Environment<'static>,
    pub stats: Arc<LlmStats>,
}

impl LlmJudge {
    pub fn new(settings: &LlmSettings) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        env.add_template("system", SYSTEM_TEMPLATE)
            .map_err(|e| LlmError::Invalid(format!("prompts/judge_system.j2: {e}")))?;
        env.add_template("user", USER_TEMPLATE)
            .map_err(|e| LlmError::Invalid(format!("prompts/judge_user.j2: {e}")))?;
        Ok(LlmJudge {
            client: client_with_status_errors(settings),
            settings: settings.clone(),
            semaphore: Arc::new(Semaphore::new(settings.max_concurrency)),
            env,
            stats: Arc::new(LlmStats::default()),
        })
    }

    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// Render the request body for the configured structured-output mode.
    pub fn prepare(&self, input: &JudgeInput<'_>) -> Result<Prepared, LlmError> {
        let rubric = input.rubric;
        let (open, close) = delimiter(input.answer);
        let schema = output_schema(
            rubric,
            self.settings.structured_output != StructuredOutput::JsonSchema,
        );
        let mode = match self.settings.structured_output {
            StructuredOutput::JsonSchema => "json_schema",
            StructuredOutput::ToolCall => "tool_call",
            StructuredOutput::JsonObject => "json_object",
        };
        let render = |name: &str, ctx: minijinja::Value| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(ctx))
                .map_err(|e| LlmError::Invalid(format!("prompt template {name}: {e}")))
        };
        let system = render(
            "system",
            context! { open => &open, close => &close, mode => mode, schema => serde_json::to_string(&schema).unwrap_or_default() },
        )?;
        let model_answers: Vec<String> = rubric
            .model_answers
            .iter()
            .take(2)
            .map(|m| m.text.clone())
            .collect();
        let criterion_ids: Vec<String> = rubric.criteria.iter().map(|c| c.id.clone()).collect();
        let user = render(
            "user",
            context! {
                rubric => minijinja::value::Serde(rubric),
                model_answers => model_answers,
                exemplars => minijinja::value::Serde(&input.exemplars),
                hints => minijinja::value::Serde(&input.hints),
                open => &open,
                close => &close,
                answer => input.answer,
                criterion_ids => criterion_ids,
            },
        )?;
        let bpe = crate::tokens::bpe_for_model(&self.settings.model);
        // Chat formatting adds a few tokens per message.
        let prompt_tokens =
            bpe.encode_ordinary(&system).len() + bpe.encode_ordinary(&user).len() + 8;
        let mut body = json!({
            "model": self.settings.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user}
            ],
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_output_tokens,
            "stream": false
        });
        match self.settings.structured_output {
            StructuredOutput::JsonSchema => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": {"name": "grade", "strict": true, "schema": schema}
                });
            }
            StructuredOutput::ToolCall => {
                body["tools"] = json!([{
                    "type": "function",
                    "function": {
                        "name": TOOL_NAME,
                        "description": "Submit the per-criterion grading of the candidate's answer.",
                        "parameters": schema
                    }
                }]);
                body["tool_choice"] = json!({"type": "function", "function": {"name": TOOL_NAME}});
            }
            StructuredOutput::JsonObject => {
                // The schema is in the prompt; llama.cpp-based servers also read it from
                // `response_format.schema` and constrain decoding with it.
                body["response_format"] = json!({"type": "json_object", "schema": schema});
            }
        }
        Ok(Prepared {
            body,
            prompt_tokens,
        })
    }

    /// Grade with `samples` concurrent calls and take the per-criterion majority.
    pub async fn judge(&self, input: &JudgeInput<'_>) -> Result<Judgement, LlmError> {
        let prepared = self.prepare(input)?;
        let n = input.samples.max(1);
        let calls = (0..n).map(|_| self.call_with_retries(&prepared, input.rubric));
        let results = futures::future::join_all(calls).await;
        let mut replies = Vec::new();
        let mut usage = Usage::default();
        let mut last_err = None;
        for r in results {
            match r {
                Ok((reply, u)) => {
                    add_usage(&mut usage, &u);
                    replies.push(reply);
                }
                Err((e, u)) => {
                    add_usage(&mut usage, &u);
                    last_err = Some(e);
                }
            }
        }
        if replies.is_empty() {
            return Err(last_err.unwrap_or(LlmError::Invalid("no samples".into())));
        }
        let mut j = vote(
            input.rubric,
            &replies.iter().map(|r| &r.output).collect::<Vec<_>>(),
            &self.settings.model,
        );
        j.usage = usage;
        Ok(j)
    }

    /// One sample: call, retrying retryable faults. Returns usage even on failure (tokens of
    /// failed attempts were still spent).
    async fn call_with_retries(
        &self,
        prepared: &Prepared,
        rubric: &Rubric,
    ) -> Result<(Reply, Usage), (LlmError, Usage)> {
        let mut usage = Usage::default();
        let max = self.settings.max_retries;
        let mut attempt = 0u32;
        loop {
            let result = {
                let _permit = self
                    .semaphore
                    .acquire()
                    .await
                    .expect("semaphore never closed");
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                self.call_once(prepared, rubric).await
            };
            match result {
                Ok(reply) => {
                    add_usage(&mut usage, &reply.usage);
                    return Ok((reply, usage));
                }
                Err((e, spent)) => {
                    add_usage(&mut usage, &spent);
                    if !e.retryable() || attempt >= max {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        let err = if attempt == 0 {
                            e
                        } else {
                            LlmError::Exhausted {
                                attempts: attempt + 1,
                                last: Box::new(e),
                            }
                        };
                        return Err((err, usage));
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let delay = e.retry_after().unwrap_or_else(|| backoff(attempt));
                    tracing::warn!(attempt = attempt + 1, delay_ms = delay.as_millis() as u64, error = %e, "LLM call failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn call_once(
        &self,
        prepared: &Prepared,
        rubric: &Rubric,
    ) -> Result<Reply, (LlmError, Usage)> {
        let resp: Value = self
            .client
            .chat()
            .create_byot(prepared.body.clone())
            .await
            .map_err(|e| (map_openai_error(e), Usage::default()))?;
        let usage = self.usage_of(&resp, prepared.prompt_tokens);
        let choice = &resp["choices"][0];
        let message = &choice["message"];
        if let Some(refusal) = message["refusal"].as_str().filter(|r| !r.is_empty()) {
            return Err((LlmError::Refusal(refusal.to_string()), usage));
        }
        match choice["finish_reason"].as_str() {
            Some("content_filter") => {
                return Err((LlmError::Refusal("content filter".into()), usage));
            }
            Some("length") => {
                return Err((
                    LlmError::Schema("the reply was cut off at max_tokens".into()),
                    usage,
                ));
            }
            _ => {}
        }
        let text = match self.settings.structured_output {
            StructuredOutput::ToolCall => message["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_string)
                // Some servers put the object straight into content even when a tool is forced.
                .or_else(|| message["content"].as_str().map(str::to_string)),
            _ => message["content"].as_str().map(str::to_string),
        };
        let Some(text) = text else {
            return Err((LlmError::Schema("the reply has no content".into()), usage));
        };
        let output = parse_output(&text, rubric).map_err(|e| (e, usage))?;
        Ok(Reply { output, usage })
    }

    fn usage_of(&self, resp: &Value, estimated_prompt: usize) -> Usage {
        let prompt = resp["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap_or(estimated_prompt as u64);
        let completion = resp["usage"]["completion_tokens"].as_u64().unwrap_or(0);
        let cost = self
            .settings
            .price_for(&self.settings.model)
            .map_or(0.0, |p| {
                (prompt as f64 * p.input + completion as f64 * p.output) / 1e6
            });
        self.stats
            .prompt_tokens
            .fetch_add(prompt, Ordering::Relaxed);
        self.stats
            .completion_tokens
            .fetch_add(completion, Ordering::Relaxed);
        self.stats
            .cost_micro_usd
            .fetch_add((cost * 1e6).round() as u64, Ordering::Relaxed);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cost_usd: cost,
        }
    }
}

fn add_usage(total: &mut Usage, u: &Usage) {
    total.prompt_tokens += u.prompt_tokens;
    total.completion_tokens += u.completion_tokens;
    total.cost_usd += u.cost_usd;
}

/// Exponential backoff with jitter: 0.5 s, 1 s, 2 s, … capped at 20 s, each scaled by a
/// random factor in [0.5, 1.0] so clients that failed together do not retry together.
fn backoff(attempt: u32) -> Duration {
    let base = 0.5f64 * 2f64.powi(attempt.min(10) as i32);
    let capped = base.min(20.0);
    let jitter = rand::rng().random_range(0.5..=1.0);
    Duration::from_secs_f64(capped * jitter)
}

/// Majority vote per criterion (ties go to the lower verdict: the conservative choice);
/// misconceptions count when most samples report them. Agreement = the mean share of samples
/// that voted with the majority.
pub fn vote(rubric: &Rubric, outputs: &[&LlmOutput], model: &str) -> Judgement {
    let n = outputs.len().max(1);
    let mut criteria = Vec::with_capacity(rubric.criteria.len());
    let mut agree_total = 0.0f32;
    for c in &rubric.criteria {
        let votes: Vec<&LlmCriterion> = outputs
            .iter()
            .filter_map(|o| o.criteria.iter().find(|x| x.id == c.id))
            .collect();
        let mut counts: BTreeMap<Verdict, usize> = BTreeMap::new();
        for v in &votes {
            *counts.entry(v.verdict).or_default() += 1;
        }
        // Highest count; on a tie the lower verdict (BTreeMap iterates Missed < Partial < Met).
        let (verdict, count) = counts
            .iter()
            .fold((Verdict::Missed, 0usize), |best, (v, k)| {
                if *k > best.1 { (*v, *k) } else { best }
            });
        agree_total += count as f32 / n as f32;
        let pick = votes.iter().find(|v| v.verdict == verdict);
        criteria.push(CriterionResult {
            id: c.id.clone(),
            verdict,
            weight: c.weight,
            evidence: pick.map(|v| v.evidence.clone()).unwrap_or_default(),
            evidence_verified: false,
            reason: pick.map(|v| v.reason.clone()).unwrap_or_default(),
        });
    }
    let mut misconceptions = Vec::new();
    for m in &rubric.misconceptions {
        let hits: Vec<&LlmMisconception> = outputs
            .iter()
            .filter_map(|o| o.misconceptions.iter().find(|x| x.id == m.id))
            .collect();
        if hits.len() * 2 > n {
            misconceptions.push(MisconceptionResult {
                id: m.id.clone(),
                evidence: hits[0].evidence.clone(),
                penalty: m.penalty,
            });
        }
    }
    // Gaps and feedback from the sample closest to the majority.
    let best = outputs
        .iter()
        .max_by_key(|o| {
            criteria
                .iter()
                .filter(|c| {
                    o.criteria
                        .iter()
                        .any(|x| x.id == c.id && x.verdict == c.verdict)
                })
                .count()
        })
        .copied();
    Judgement {
        criteria,
        misconceptions,
        gaps: best.map(|o| o.gaps.clone()).unwrap_or_default(),
        feedback: best.map(|o| o.feedback.clone()).unwrap_or_default(),
        judge: JudgeInfo {
            kind: "llm".into(),
            model: model.to_string(),
            samples: n as u32,
            agreement: if rubric.criteria.is_empty() {
                1.0
            } else {
                agree_total / rubric.criteria.len() as f32
            },
        },
        flags: Vec::new(),
        usage: Usage::default(),
    }
}

/// An async-openai client whose HTTP layer keeps non-success statuses (with `retry-after`)
/// as typed errors, and applies the request timeout.
fn client_with_status_errors(llm: &LlmSettings) -> Client<OpenAIConfig> {
    let base = super::client(llm);
    let mut builder = reqwest::Client::builder().tcp_nodelay(true);
    if llm.timeout_ms > 0 {
        builder = builder.timeout(Duration::from_millis(llm.timeout_ms));
    }
    let http = builder.build().unwrap_or_default();
    let service = tower::service_fn(move |factory: HttpRequestFactory| {
        let http = http.clone();
        async move {
            let request = factory.build().await?;
            let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = response.text().await.unwrap_or_default();
            Err(OpenAIError::Boxed(Box::new(HttpStatusError {
                status: status.as_u16(),
                retry_after,
                body: crate::grade::short(&body, 300),
            })))
        }
    });
    base.with_http_service(service)
}
