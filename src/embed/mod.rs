//! Sentence embeddings: the [`Embedder`] trait and the local all-MiniLM-L6-v2 model.
//!
//! Every vector an embedder returns is L2-normalised, so cosine similarity is a dot product
//! everywhere else in the crate. The OpenAI-compatible embedder lives in `llm/` (the only
//! module that talks to such endpoints).

mod bert;
mod local;
pub mod pair;

use futures::future::BoxFuture;

pub use local::{LocalEmbedder, LocalOptions};

/// Why embedding failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "embedding model not found in {dir}: {missing} is missing; run `grader models fetch` to download it (or set embedding.model_dir)"
    )]
    ModelMissing { dir: String, missing: String },
    #[error("embedding model in {dir} could not be loaded: {message}")]
    ModelLoad { dir: String, message: String },
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("embedding inference failed: {0}")]
    Inference(String),
    #[error("embedding endpoint failed: {0}")]
    Remote(String),
}

/// Turns texts into L2-normalised vectors.
pub trait Embedder: Send + Sync {
    /// Vector length.
    fn dim(&self) -> usize;
    /// A stable name of the model; a change invalidates stored vectors.
    fn model_id(&self) -> &str;
    /// Embed a batch; one vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String])
    -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
    /// Embedding calls that run side by side without slowing each other down (the local
    /// model's workers); a remote endpoint counts as one.
    fn parallelism(&self) -> usize {
        1
    }
    /// Read (reference, answer) pairs together ([`pair`]): per pair, the probabilities that
    /// the answer contradicts the reference, is incorrect, is correct. `None` when this
    /// embedder has no pair reader (a remote endpoint, or the reader turned off).
    fn read_pairs<'a>(
        &'a self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Option<Vec<[f32; 3]>>, EmbedError>> {
        let _ = pairs;
        Box::pin(async { Ok(None) })
    }
}

/// Dot product of two equal-length slices (cosine similarity for unit vectors).
///
/// Written as eight independent accumulators over chunks of eight so the compiler vectorises it
/// (SSE/AVX on x86-64) without `unsafe` or a SIMD crate; see `benches/` for the numbers.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let rem: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc.iter().sum::<f32>() + rem
}

/// `v` with its component along the unit vector `dir` removed, re-normalised (zero when `v`
/// is (almost) parallel to `dir`). Used to compare texts on what they say beyond a shared
/// topic: two sentences about database indexes are close in MiniLM space whatever they claim.
pub fn without_direction(v: &[f32], dir: &[f32]) -> Vec<f32> {
    let along = dot(v, dir);
    let mut r: Vec<f32> = v.iter().zip(dir).map(|(x, d)| x - along * d).collect();
    let norm = dot(&r, &r).sqrt();
    if norm < 1e-3 {
        r.iter_mut().for_each(|x| *x = 0.0);
    } else {
        r.iter_mut().for_each(|x| *x /= norm);
    }
    r
}

/// Scale `v` to unit length (left as is when it is all zeros).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}
