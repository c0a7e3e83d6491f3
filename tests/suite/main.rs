//! One integration-test binary; each module tests one capability.

mod adversarial;
mod anywhere;
mod architecture;
mod audit;
mod cli;
mod common;
mod config;
mod connections;
mod embed;
mod eval;
mod fake_openai;
mod fake_qdrant;
mod grading;
mod guard;
mod learn;
mod llm;
mod matching;
mod models;
mod reviews;
mod rubrics;
mod semeval;
mod server;
mod slack;
mod store;
mod transcripts;
mod ui;

/// The small engine the server and transcript tests share (fixture catalog: core.copy).
pub async fn server_engine() -> std::sync::Arc<grader::engine::Engine> {
    server::shared().await
}
