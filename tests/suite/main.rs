//! One integration-test binary; each module tests one capability.

mod common;
mod config;
mod embed;
mod eval;
mod grading;
mod matching;
mod rubrics;
mod store;
