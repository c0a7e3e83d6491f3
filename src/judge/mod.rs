//! Judges: turn an answer and a rubric into per-criterion verdicts with evidence.
//!
//! The coverage judge (embedded, no network) lives here; the LLM judge lives in `llm/`
//! because only `llm/` talks to model endpoints.

pub mod calibration;
pub mod coverage;
pub mod fit;

pub use calibration::Calibration;
pub use coverage::{CoverageFeatures, CoverageJudge};
