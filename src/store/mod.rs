//! The vector store: the [`VectorStore`] trait, the embedded exact index, and Qdrant.
//!
//! Only this module imports Qdrant crates. Both backends keep the same collections and
//! payloads and pass the same conformance tests (`tests/suite/store.rs`).

mod embedded;
mod qdrant;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use embedded::EmbeddedStore;
pub use qdrant::{QdrantOptions, QdrantStore};

/// What a stored vector stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Payload {
    pub rubric_id: String,
    /// `question` | `alias` | `model_answer` | `exemplar` | `criterion` | `misconception` |
    /// `model_sentence` | `reviewed` (a reviewed answer in the exemplars collection)
    pub kind: String,
    /// Position within its kind (criterion phrasings: `criterion index * 100 + phrasing index`).
    pub index: u32,
    /// The text that was embedded.
    pub text: String,
    /// Exemplar score, when the point is an exemplar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Criterion or misconception id the point belongs to, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// Content hash of the rubric (and embedding model) the point was built from.
    pub hash: String,
    /// Why a reviewed exemplar got its score (the reviewer's note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: u64,
    pub vector: Vec<f32>,
    pub payload: Payload,
}

/// A search hit: cosine similarity (vectors are unit length) and the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
    pub payload: Payload,
}

/// Payload conditions, all of which must hold (applied before scoring).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub rubric_id: Option<String>,
    /// Any of these kinds (empty = any kind).
    pub kinds: Vec<String>,
    /// Only points of this criterion, misconception or reviewed grade (`Payload::item_id`).
    pub item_id: Option<String>,
}

impl Filter {
    pub fn rubric(id: &str) -> Self {
        Filter {
            rubric_id: Some(id.to_string()),
            ..Filter::default()
        }
    }

    pub fn item(mut self, id: &str) -> Self {
        self.item_id = Some(id.to_string());
        self
    }

    pub fn kinds(mut self, kinds: &[&str]) -> Self {
        self.kinds = kinds.iter().map(|k| k.to_string()).collect();
        self
    }

    pub fn matches(&self, p: &Payload) -> bool {
        self.rubric_id.as_ref().is_none_or(|r| *r == p.rubric_id)
            && (self.kinds.is_empty() || self.kinds.contains(&p.kind))
            && self
                .item_id
                .as_ref()
                .is_none_or(|i| p.item_id.as_ref() == Some(i))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "vector store data in {path} is unreadable: {message}; delete that folder to rebuild the index"
    )]
    Corrupt { path: String, message: String },
    #[error("vector store I/O on {path}: {message}")]
    Io { path: String, message: String },
    #[error("collection `{0}` does not exist; run `grader index`")]
    NoCollection(String),
    #[error("vector of length {got} does not fit collection `{collection}` of dimension {want}")]
    Dimension {
        collection: String,
        want: usize,
        got: usize,
    },
    #[error("Qdrant at {url}: {message}")]
    Qdrant { url: String, message: String },
    /// The store cannot be reached (connection refused, timed out, unavailable): a retry later
    /// may succeed.
    #[error("Qdrant at {url} cannot be reached: {message}")]
    Unavailable { url: String, message: String },
    /// An existing collection does not fit the embedding model.
    #[error(
        "collection `{collection}` holds {have} vectors but the embedding model gives {want}: run `grader index --recreate` to rebuild it (every replica must use the same model), or set another store.collection_prefix"
    )]
    Mismatch {
        collection: String,
        have: String,
        want: String,
    },
}

impl StoreError {
    /// Whether the store could not be reached (a 503 with `Retry-After`, not a 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// A collection of vectors with payloads. Vectors are L2-normalised by the caller.
pub trait VectorStore: Send + Sync {
    /// Which backend (for /readyz and logs).
    fn describe(&self) -> String;
    /// Create the collection if missing; an existing one must hold `dim`-sized vectors (the
    /// embedded store recreates it, Qdrant refuses with [`StoreError::Mismatch`]). Creating is
    /// idempotent: replicas may race to it.
    fn ensure_collection<'a>(
        &'a self,
        name: &'a str,
        dim: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Drop the collection (if it exists) and create it empty for `dim`-sized vectors
    /// (`grader index --recreate`: a new embedding model).
    fn recreate_collection<'a>(
        &'a self,
        name: &'a str,
        dim: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Insert or replace points by id.
    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        points: Vec<Point>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Remove every point matching the filter.
    fn delete<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The `limit` best points by cosine similarity among those matching `filter`.
    fn search<'a>(
        &'a self,
        collection: &'a str,
        vector: &'a [f32],
        filter: &'a Filter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>>;
    /// Every point matching `filter`, vectors included, in id order.
    fn scroll<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Point>, StoreError>>;
    /// Number of points in the collection (0 when it does not exist).
    fn count<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<usize, StoreError>>;
    /// Make writes durable (the embedded store writes its files; Qdrant already did).
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// Deterministic point id: the first 8 bytes of sha256(rubric id, kind, index).
pub fn point_id(rubric_id: &str, kind: &str, index: u32) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{rubric_id}\u{1f}{kind}\u{1f}{index}").as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}
