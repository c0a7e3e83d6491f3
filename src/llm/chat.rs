//! The OpenAI-compatible chat transport: one client per endpoint with typed HTTP errors
//! (status and `retry-after` kept), a concurrency limit, retries with jittered exponential
//! backoff, token/cost accounting and the counters exported as metrics. What is sent and how
//! the reply is read belong to the caller (the LLM judge in `judge/llm.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use rand::RngExt;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::config::{LlmSettings, StructuredOutput};
use crate::grade::Usage;

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

/// A chat-completions client for one configured endpoint and model.
pub struct LlmClient {
    client: Client<OpenAIConfig>,
    settings: LlmSettings,
    semaphore: Arc<Semaphore>,
    pub stats: Arc<LlmStats>,
}

impl LlmClient {
    /// Fails when the HTTP client cannot be built (the configured timeout would be lost).
    pub fn new(settings: &LlmSettings) -> Result<Self, LlmError> {
        Ok(LlmClient {
            client: client_with_status_errors(settings)?,
            settings: settings.clone(),
            semaphore: Arc::new(Semaphore::new(settings.max_concurrency)),
            stats: Arc::new(LlmStats::default()),
        })
    }

    pub fn model(&self) -> &str {
        &self.settings.model
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    /// Send `body` (a chat-completions request), retrying retryable faults, and read the
    /// reply's text with `parse` (a parse error is retried like any malformed output). Returns
    /// usage even on failure: tokens of failed attempts were still spent.
    pub async fn call_with_retries<T>(
        &self,
        body: &Value,
        prompt_tokens: usize,
        parse: &(dyn Fn(&str) -> Result<T, LlmError> + Sync),
    ) -> Result<(T, Usage), (LlmError, Usage)> {
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
                self.call_once(body, prompt_tokens, parse).await
            };
            match result {
                Ok((reply, spent)) => {
                    add_usage(&mut usage, &spent);
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

    async fn call_once<T>(
        &self,
        body: &Value,
        prompt_tokens: usize,
        parse: &(dyn Fn(&str) -> Result<T, LlmError> + Sync),
    ) -> Result<(T, Usage), (LlmError, Usage)> {
        let resp: Value = self
            .client
            .chat()
            .create_byot(body.clone())
            .await
            .map_err(|e| (map_openai_error(e), Usage::default()))?;
        let usage = self.usage_of(&resp, prompt_tokens);
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
        let output = parse(&text).map_err(|e| (e, usage))?;
        Ok((output, usage))
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

/// Add one call's usage to a total.
pub fn add_usage(total: &mut Usage, u: &Usage) {
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

/// An async-openai client whose HTTP layer keeps non-success statuses (with `retry-after`)
/// as typed errors, and applies the request timeout.
fn client_with_status_errors(llm: &LlmSettings) -> Result<Client<OpenAIConfig>, LlmError> {
    let base = super::client(llm)?;
    let http = super::http_client(llm)?;
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
    Ok(base.with_http_service(service))
}
