//! grader — an LLM-assisted answer grading service.
//!
//! A candidate's free-text answer is matched to its question's rubric, reference answers and
//! graded exemplars come from a vector store, and a judge scores the answer criterion by
//! criterion with quoted evidence and explains the gaps.
//!
//! # Layout
//! - [`assets`]: what ships inside the binary (rubrics, defaults, calibration) and the per-user
//!   folders for the model and the index.
//! - [`config`]: layered settings (embedded defaults → environment file → `GRADER__…` vars).
//! - [`telemetry`]: tracing setup (pretty or JSON), with the sink as a parameter.
//! - [`rubric`]: the rubric format, validation and the catalog.
//! - [`text`]: sentence/clause splitting and evidence normalisation.
//! - [`embed`]: the `Embedder` trait and the local all-MiniLM-L6-v2 model (candle).
//! - [`models`]: checking and fetching the local model's files (`grader models fetch`).
//! - [`store`]: the `VectorStore` trait, the embedded exact index, and Qdrant.
//! - [`index`]: indexing rubrics into the store; the judges' cached vectors.
//! - [`matching`]: free-text question → rubric.
//! - [`judge`]: the `Judge` trait and its context; the coverage, LLM and hybrid judges; the
//!   coverage judge's calibration file.
//! - [`llm`]: the OpenAI-compatible transport (embeddings; the chat client the LLM judge uses).
//! - [`grade`]: the `Grade` type, evidence verification and the score formula.
//! - [`guard`]: removes text aimed at the grader (prompt injection) before judging.
//! - [`tokens`]: tiktoken encodings per model family.
//! - [`engine`]: the pipeline that ties it together (resolve once, embed once, judge, score).
//! - [`eval`]: agreement metrics and the evaluation runner (`grader eval`).
//! - [`calibrate`]: fitting the coverage thresholds and the matching threshold.
//! - [`transcript`]: transcripts → question/answer pairs → graded report (JSON, Markdown,
//!   HTML); the resumable batch runner.
//! - [`problem`]: `application/problem+json` errors for every HTTP interface.
//! - [`server`]: the HTTP service (axum): routes by resource, middleware, metrics, OpenAPI.
//! - [`slack`]: the Slack bot (slash command, app mentions with transcripts), its own router.
//! - [`audit`]: the audit store (SQLite or PostgreSQL): every grade kept, human reviews beside
//!   it, and what the grader learns from them (calibration, exemplars).

pub mod assets;
pub mod audit;
pub mod calibrate;
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
pub mod models;
pub mod problem;
pub mod rubric;
pub mod server;
pub mod slack;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod tokens;
pub mod train;
pub mod transcript;
