//! grader — an LLM-assisted answer grading service.
//!
//! A candidate's free-text answer is matched to its question's rubric, reference answers and
//! graded exemplars come from a vector store, and a judge scores the answer criterion by
//! criterion with quoted evidence and explains the gaps.
//!
//! # Layout
//! - [`config`]: layered settings (embedded defaults → environment file → `GRADER__…` vars).
//! - [`telemetry`]: tracing setup (pretty or JSON), with the sink as a parameter.
//! - [`rubric`]: the rubric format, validation and the catalog.
//! - [`text`]: sentence/clause splitting and evidence normalisation.
//! - [`embed`]: the `Embedder` trait and the local all-MiniLM-L6-v2 model (candle).
//! - [`store`]: the `VectorStore` trait, the embedded exact index, and Qdrant.
//! - [`index`]: indexing rubrics into the store; the judges' cached vectors.
//! - [`matching`]: free-text question → rubric.
//! - [`judge`]: the coverage judge and its calibration.
//! - [`llm`]: OpenAI-compatible endpoints (embeddings; the LLM judge).
//! - [`grade`]: the `Grade` type, evidence verification and the score.
//! - [`guard`]: removes text aimed at the grader (prompt injection) before judging.
//! - [`tokens`]: tiktoken encodings per model family.
//! - [`engine`]: the pipeline that ties it together.
//! - [`eval`]: agreement metrics and the evaluation runner.
//! - [`transcript`]: transcripts → question/answer pairs → graded report (JSON, Markdown, HTML).
//! - [`server`]: the HTTP service (axum): routes, problems, metrics, OpenAPI.
//! - [`slack`]: the Slack bot (slash command, app mentions with transcripts).

pub mod config;
pub mod embed;
pub mod engine;
pub mod eval;
pub mod grade;
pub mod guard;
pub mod index;
pub mod judge;
pub mod llm;
pub mod matching;
pub mod rubric;
pub mod server;
pub mod slack;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod tokens;
pub mod transcript;
