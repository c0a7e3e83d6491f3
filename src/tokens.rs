//! Token counting with tiktoken: the encoding each model family uses.

use tiktoken_rs::CoreBPE;

/// o200k for the gpt-4o / gpt-4.1 / gpt-5 / o-series families, cl100k for everything else
/// (older OpenAI models, and a fair estimate for open models behind compatible servers).
pub fn bpe_for_model(model: &str) -> &'static CoreBPE {
    let m = model.to_ascii_lowercase();
    let m = m.rsplit('/').next().unwrap_or(&m);
    let o200k = m.starts_with("gpt-4o")
        || m.starts_with("gpt-4.1")
        || m.starts_with("gpt-4.5")
        || m.starts_with("gpt-5")
        || m.starts_with("chatgpt-4o")
        || (m.starts_with('o') && m[1..].starts_with(|c: char| c.is_ascii_digit()));
    if o200k {
        tiktoken_rs::o200k_base_singleton()
    } else {
        tiktoken_rs::cl100k_base_singleton()
    }
}

/// Name of the encoding [`bpe_for_model`] picks (for logs and tests).
pub fn encoding_name(model: &str) -> &'static str {
    if std::ptr::eq(bpe_for_model(model), tiktoken_rs::o200k_base_singleton()) {
        "o200k_base"
    } else {
        "cl100k_base"
    }
}

pub fn count(model: &str, text: &str) -> usize {
    bpe_for_model(model).encode_ordinary(text).len()
}
