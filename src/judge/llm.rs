//! The LLM judge: any OpenAI-compatible chat endpoint grades the answer criterion by criterion.
//!
//! The prompt (templates in `prompts/`) carries the rubric, the model answer(s), graded
//! exemplars retrieved by similarity to the answer, and a local judge's evidence as hints; the
//! answer sits in a block whose delimiter is random per request and cannot occur in the answer.
//! The model returns verdicts, verbatim quotes, misconceptions, gaps and feedback in one of
//! three structured-output modes; the code validates the object (every criterion exactly once),
//! votes across samples, and never lets a parse failure become a score. Sending, retries and
//! accounting are the transport's (`crate::llm::LlmClient`).
//!
//! Long because a judge is one file: what is asked (prompt, schema) and how the answer is read
//! (parsing, voting) change together, and splitting them would spread one judge over several.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use minijinja::{Environment, context};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{JudgeKind, LlmSettings, StructuredOutput};
use crate::grade::{CriterionResult, JudgeInfo, Judgement, MisconceptionResult, Usage, Verdict};
use crate::llm::chat::add_usage;
use crate::llm::{LlmClient, LlmError, LlmStats};
use crate::rubric::Rubric;
use crate::store::{Filter, VectorStore};

use super::{Judge, JudgeContext, JudgeError, RubricSource};

const SYSTEM_TEMPLATE: &str = include_str!("../../prompts/judge_system.j2");
const USER_TEMPLATE: &str = include_str!("../../prompts/judge_user.j2");

/// The function name in `tool_call` mode.
pub const TOOL_NAME: &str = "submit_grade";

/// A graded exemplar shown to the model.
#[derive(Debug, Clone, Serialize)]
pub struct ExemplarRef {
    pub score: f32,
    pub answer: String,
    pub rationale: String,
}

/// A local judge's best sentence per criterion, shown as a hint.
#[derive(Debug, Clone, Serialize)]
pub struct Hint {
    pub id: String,
    pub evidence: String,
    pub similarity: String,
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

/// Where the few-shot exemplars come from: the rubric's graded exemplars in the store and the
/// answers people reviewed (the exemplars collection), ranked together by similarity to the
/// answer's vector.
pub struct ExemplarSource {
    pub store: Arc<dyn VectorStore>,
    /// The `references` collection.
    pub collection: String,
    /// The collection of reviewed answers (`audit::learn` writes it), if any.
    pub reviewed: Option<String>,
    /// How many to show (`judge.exemplars_k`, > 0).
    pub k: usize,
}

impl ExemplarSource {
    async fn retrieve(
        &self,
        rubric: &Rubric,
        answer_vector: &[f32],
    ) -> Result<Vec<ExemplarRef>, JudgeError> {
        let filter = Filter::rubric(&rubric.id).kinds(&["exemplar"]);
        let hits = self
            .store
            .search(&self.collection, answer_vector, &filter, self.k)
            .await?;
        let mut ranked: Vec<(f32, ExemplarRef)> = hits
            .into_iter()
            .filter_map(|h| {
                let e = rubric.exemplars.get(h.payload.index as usize)?;
                Some((
                    h.score,
                    ExemplarRef {
                        score: e.score,
                        answer: e.answer.clone(),
                        rationale: e.rationale.clone(),
                    },
                ))
            })
            .collect();
        if let Some(reviewed) = &self.reviewed {
            let filter = Filter::rubric(&rubric.id).kinds(&["reviewed"]);
            for h in self
                .store
                .search(reviewed, answer_vector, &filter, self.k)
                .await?
            {
                let Some(score) = h.payload.score else {
                    continue;
                };
                ranked.push((
                    h.score,
                    ExemplarRef {
                        score,
                        answer: h.payload.text,
                        rationale: h
                            .payload
                            .rationale
                            .filter(|r| !r.trim().is_empty())
                            .unwrap_or_else(|| "Scored by a human reviewer.".into()),
                    },
                ));
            }
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(ranked.into_iter().take(self.k).map(|(_, e)| e).collect())
    }
}

/// The LLM judge (a [`Judge`]).
pub struct LlmJudge {
    client: LlmClient,
    env: Environment<'static>,
    /// Few-shot anchors (none when `judge.exemplars_k = 0`).
    exemplars: Option<ExemplarSource>,
    /// The local judge whose verdicts are shown as hints (`judge.llm_hints`).
    hints: Option<Arc<dyn Judge>>,
}

impl LlmJudge {
    pub fn new(
        settings: &LlmSettings,
        exemplars: Option<ExemplarSource>,
        hints: Option<Arc<dyn Judge>>,
    ) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        env.add_template("system", SYSTEM_TEMPLATE)
            .map_err(|e| LlmError::Invalid(format!("prompts/judge_system.j2: {e}")))?;
        env.add_template("user", USER_TEMPLATE)
            .map_err(|e| LlmError::Invalid(format!("prompts/judge_user.j2: {e}")))?;
        Ok(LlmJudge {
            client: LlmClient::new(settings)?,
            env,
            exemplars: exemplars.filter(|x| x.k > 0),
            hints,
        })
    }

    pub fn model(&self) -> &str {
        self.client.model()
    }

    /// The transport's counters (exported as metrics).
    pub fn stats(&self) -> &LlmStats {
        &self.client.stats
    }

    /// Grade with the given local judgement as hints (the hybrid judge runs its local judge
    /// once and passes it here): exemplars retrieved, prompt rendered, `cx.samples` calls
    /// voted per criterion.
    pub async fn grade(
        &self,
        cx: &JudgeContext<'_>,
        local: Option<&Judgement>,
    ) -> Result<Judgement, JudgeError> {
        let rubric = cx.rubric.rubric();
        let exemplars = match &self.exemplars {
            Some(source)
                if cx.rubric.source == RubricSource::Catalog && !cx.answer.vector.is_empty() =>
            {
                source.retrieve(rubric, &cx.answer.vector).await?
            }
            _ => Vec::new(),
        };
        let hints = local.map(hints_from).unwrap_or_default();
        let prepared = self.prepare(rubric, &cx.answer.text, &exemplars, &hints)?;
        Ok(self.sample(rubric, &prepared, cx.samples).await?)
    }

    /// Render the request body for the configured structured-output mode.
    pub fn prepare(
        &self,
        rubric: &Rubric,
        answer: &str,
        exemplars: &[ExemplarRef],
        hints: &[Hint],
    ) -> Result<Prepared, LlmError> {
        let settings = self.client.settings();
        let (open, close) = delimiter(answer);
        let schema = output_schema(
            rubric,
            settings.structured_output != StructuredOutput::JsonSchema,
        );
        let mode = match settings.structured_output {
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
                exemplars => minijinja::value::Serde(exemplars),
                hints => minijinja::value::Serde(hints),
                open => &open,
                close => &close,
                answer => answer,
                criterion_ids => criterion_ids,
            },
        )?;
        let bpe = crate::tokens::bpe_for_model(&settings.model);
        // Chat formatting adds a few tokens per message.
        let prompt_tokens =
            bpe.encode_ordinary(&system).len() + bpe.encode_ordinary(&user).len() + 8;
        let mut body = json!({
            "model": settings.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user}
            ],
            "temperature": settings.temperature,
            "max_tokens": settings.max_output_tokens,
            "stream": false
        });
        match settings.structured_output {
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

    /// `samples` concurrent calls, then the per-criterion majority.
    async fn sample(
        &self,
        rubric: &Rubric,
        prepared: &Prepared,
        samples: u32,
    ) -> Result<Judgement, LlmError> {
        let n = samples.max(1);
        let parse = |text: &str| parse_output(text, rubric);
        let calls = (0..n).map(|_| {
            self.client
                .call_with_retries(&prepared.body, prepared.prompt_tokens, &parse)
        });
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
            rubric,
            &replies.iter().collect::<Vec<_>>(),
            self.client.model(),
        );
        j.usage = usage;
        Ok(j)
    }
}

impl Judge for LlmJudge {
    fn kind(&self) -> JudgeKind {
        JudgeKind::Llm
    }

    /// Vectors only for hints or exemplar retrieval; without both the answer is not embedded.
    fn needs_vectors(&self) -> bool {
        self.hints.is_some() || self.exemplars.is_some()
    }

    fn judge<'a>(
        &'a self,
        cx: &'a JudgeContext<'a>,
    ) -> BoxFuture<'a, Result<Judgement, JudgeError>> {
        Box::pin(async move {
            let local = match &self.hints {
                Some(h) => Some(h.judge(cx).await?),
                None => None,
            };
            self.grade(cx, local.as_ref()).await
        })
    }
}

/// A local judgement as hints: its evidence per criterion with its strength.
fn hints_from(local: &Judgement) -> Vec<Hint> {
    local
        .criteria
        .iter()
        .enumerate()
        .map(|(i, c)| Hint {
            id: c.id.clone(),
            evidence: c.evidence.clone(),
            similarity: local
                .strength
                .get(i)
                .map(|s| format!("{s:.2}"))
                .unwrap_or_default(),
        })
        .collect()
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
            credit: None,
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
        strength: Vec::new(),
        judge: JudgeInfo {
            kind: JudgeKind::Llm,
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
