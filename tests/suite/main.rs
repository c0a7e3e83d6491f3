//! One integration-test binary; each module tests one capability.

mod common;
mod config;
mod embed;
mod eval;
mod fake_openai;
mod grading;
mod llm;
mod matching;
mod rubrics;
mod server;
mod store;
