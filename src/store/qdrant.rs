//! The Qdrant backend (`store.kind = "qdrant"`): the same collections on a Qdrant server or
//! cluster, over gRPC with `qdrant-client`. Several stateless `grader` replicas can share one
//! cluster; sharding and replication are Qdrant's (configurable at collection creation).

use std::collections::HashMap;

use futures::future::BoxFuture;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vector_output::Vector;
use qdrant_client::qdrant::vectors_config;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, DeletePointsBuilder, Distance,
    Filter as QFilter, PointId, PointStruct, ScrollPointsBuilder, SearchPointsBuilder,
    UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Qdrant, QdrantError};
use secrecy::{ExposeSecret, SecretString};

use super::{Filter, Hit, Payload, Point, StoreError, VectorStore};

/// Options for creating collections.
#[derive(Debug, Clone)]
pub struct QdrantOptions {
    pub url: String,
    pub api_key: Option<SecretString>,
    pub shard_number: u32,
    pub replication_factor: u32,
}

pub struct QdrantStore {
    client: Qdrant,
    opts: QdrantOptions,
}

impl QdrantStore {
    pub fn connect(opts: QdrantOptions) -> Result<Self, StoreError> {
        let mut builder = Qdrant::from_url(&opts.url).skip_compatibility_check();
        if let Some(key) = &opts.api_key {
            builder = builder.api_key(key.expose_secret().to_string());
        }
        let client = builder.build().map_err(|e| StoreError::Qdrant {
            url: opts.url.clone(),
            message: e.to_string(),
        })?;
        Ok(QdrantStore { client, opts })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Qdrant {
            url: self.opts.url.clone(),
            message: e.to_string(),
        }
    }

    /// A client error, as [`StoreError::Unavailable`] when the server could not be reached.
    fn call_err(&self, e: QdrantError) -> StoreError {
        let (code, message) = match &e {
            QdrantError::ResponseError { status } => {
                (i32::from(status.code()), status.message().to_string())
            }
            QdrantError::ResourceExhaustedError { .. } => (RESOURCE_EXHAUSTED, e.to_string()),
            _ => (-1, e.to_string()),
        };
        if unreachable(code, &message) {
            StoreError::Unavailable {
                url: self.opts.url.clone(),
                message,
            }
        } else {
            self.err(e)
        }
    }

    /// The size and distance of an existing collection's vectors (`None`: no such collection).
    async fn existing(&self, name: &str) -> Result<Option<VectorShape>, StoreError> {
        if !self
            .client
            .collection_exists(name)
            .await
            .map_err(|e| self.call_err(e))?
        {
            return Ok(None);
        }
        let info = self
            .client
            .collection_info(name)
            .await
            .map_err(|e| self.call_err(e))?;
        let vectors = info
            .result
            .and_then(|r| r.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config);
        Ok(Some(match vectors {
            Some(vectors_config::Config::Params(p)) => VectorShape::Single {
                size: p.size,
                distance: p.distance,
            },
            _ => VectorShape::Other,
        }))
    }
}

// gRPC status codes (stable across gRPC implementations).
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const DEADLINE_EXCEEDED: i32 = 4;
const RESOURCE_EXHAUSTED: i32 = 8;
const INTERNAL: i32 = 13;
const UNAVAILABLE: i32 = 14;

/// Whether a failed call means the server could not be reached (retry later) rather than that
/// it refused the request: unavailable, timed out, cancelled, overloaded, or the client's
/// "Failed to connect" / transport errors, which it reports as internal or unknown.
fn unreachable(code: i32, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    match code {
        UNAVAILABLE | DEADLINE_EXCEEDED | CANCELLED | RESOURCE_EXHAUSTED => true,
        INTERNAL | UNKNOWN => {
            m.contains("failed to connect")
                || m.contains("transport error")
                || m.contains("connection")
        }
        _ => false,
    }
}

/// What an existing collection's vectors look like.
#[derive(Debug, Clone, Copy, PartialEq)]
enum VectorShape {
    Single {
        size: u64,
        distance: i32,
    },
    /// Named or sparse vectors: not a collection grader made.
    Other,
}

/// An existing collection fits when it holds unnamed `dim`-sized cosine vectors; otherwise the
/// error says what it holds and what to do.
fn check_shape(collection: &str, shape: VectorShape, dim: usize) -> Result<(), StoreError> {
    let want = format!("{dim}-dimensional Cosine vectors");
    let have = match shape {
        VectorShape::Single { size, distance }
            if size == dim as u64 && distance == Distance::Cosine as i32 =>
        {
            return Ok(());
        }
        VectorShape::Single { size, distance } => {
            let d = Distance::try_from(distance)
                .map_or_else(|_| format!("distance {distance}"), |d| format!("{d:?}"));
            format!("{size}-dimensional {d}")
        }
        VectorShape::Other => "named or sparse".to_string(),
    };
    Err(StoreError::Mismatch {
        collection: collection.to_string(),
        have,
        want,
    })
}

/// The one place payload filters become Qdrant conditions.
pub(crate) fn to_qdrant_filter(filter: &Filter) -> Option<QFilter> {
    let mut must = Vec::new();
    if let Some(r) = &filter.rubric_id {
        must.push(Condition::matches("rubric_id", r.clone()));
    }
    if !filter.kinds.is_empty() {
        must.push(Condition::matches("kind", filter.kinds.clone()));
    }
    if let Some(i) = &filter.item_id {
        must.push(Condition::matches("item_id", i.clone()));
    }
    (!must.is_empty()).then(|| QFilter::must(must))
}

fn to_payload(p: &Payload) -> Result<qdrant_client::Payload, String> {
    let json = serde_json::to_value(p).map_err(|e| e.to_string())?;
    qdrant_client::Payload::try_from(json).map_err(|e| e.to_string())
}

fn from_payload(map: HashMap<String, qdrant_client::qdrant::Value>) -> Result<Payload, String> {
    let json: serde_json::Value = qdrant_client::Payload::from(map).into();
    serde_json::from_value(json).map_err(|e| format!("unexpected payload: {e}"))
}

fn num_id(id: Option<PointId>) -> Result<u64, String> {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Num(n)) => Ok(n),
        other => Err(format!(
            "unexpected point id {other:?} (grader uses numeric ids)"
        )),
    }
}

impl VectorStore for QdrantStore {
    fn describe(&self) -> String {
        format!("qdrant at {}", self.opts.url)
    }

    fn ensure_collection<'a>(
        &'a self,
        name: &'a str,
        dim: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if let Some(shape) = self.existing(name).await? {
                return check_shape(name, shape, dim);
            }
            let created = self
                .client
                .create_collection(
                    CreateCollectionBuilder::new(name)
                        .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine))
                        .shard_number(self.opts.shard_number)
                        .replication_factor(self.opts.replication_factor),
                )
                .await;
            match created {
                Ok(_) => Ok(()),
                // Replicas starting together race to create it: whoever lost finds it there,
                // and it is fine if it has the right shape.
                Err(e) => match self.existing(name).await? {
                    Some(shape) => check_shape(name, shape, dim),
                    None => Err(self.call_err(e)),
                },
            }
        })
    }

    fn recreate_collection<'a>(
        &'a self,
        name: &'a str,
        dim: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if self.existing(name).await?.is_some() {
                self.client
                    .delete_collection(name)
                    .await
                    .map_err(|e| self.call_err(e))?;
            }
            self.ensure_collection(name, dim).await
        })
    }

    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        points: Vec<Point>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if points.is_empty() {
                return Ok(());
            }
            let mut structs = Vec::with_capacity(points.len());
            for p in points {
                let payload = to_payload(&p.payload).map_err(|e| self.err(e))?;
                structs.push(PointStruct::new(p.id, p.vector, payload));
            }
            self.client
                .upsert_points(UpsertPointsBuilder::new(collection, structs).wait(true))
                .await
                .map_err(|e| self.call_err(e))?;
            Ok(())
        })
    }

    fn delete<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let f = to_qdrant_filter(filter).unwrap_or_default();
            self.client
                .delete_points(DeletePointsBuilder::new(collection).points(f).wait(true))
                .await
                .map_err(|e| self.call_err(e))?;
            Ok(())
        })
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        vector: &'a [f32],
        filter: &'a Filter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>> {
        Box::pin(async move {
            let mut req = SearchPointsBuilder::new(collection, vector.to_vec(), limit as u64)
                .with_payload(true)
                // Exact search: the collections are small and results must match the embedded store.
                .params(qdrant_client::qdrant::SearchParamsBuilder::default().exact(true));
            if let Some(f) = to_qdrant_filter(filter) {
                req = req.filter(f);
            }
            let resp = self
                .client
                .search_points(req)
                .await
                .map_err(|e| self.call_err(e))?;
            resp.result
                .into_iter()
                .map(|p| {
                    Ok(Hit {
                        id: num_id(p.id).map_err(|e| self.err(e))?,
                        score: p.score,
                        payload: from_payload(p.payload).map_err(|e| self.err(e))?,
                    })
                })
                .collect()
        })
    }

    fn scroll<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Point>, StoreError>> {
        Box::pin(async move {
            if !self
                .client
                .collection_exists(collection)
                .await
                .map_err(|e| self.call_err(e))?
            {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            let mut offset: Option<PointId> = None;
            loop {
                let mut req = ScrollPointsBuilder::new(collection)
                    .limit(1000)
                    .with_payload(true)
                    .with_vectors(true);
                if let Some(f) = to_qdrant_filter(filter) {
                    req = req.filter(f);
                }
                if let Some(o) = offset.take() {
                    req = req.offset(o);
                }
                let resp = self
                    .client
                    .scroll(req)
                    .await
                    .map_err(|e| self.call_err(e))?;
                for p in resp.result {
                    let vector = match p.vectors.as_ref().and_then(|v| v.get_vector()) {
                        Some(Vector::Dense(d)) => d.data,
                        other => {
                            return Err(self.err(format!("expected a dense vector, got {other:?}")));
                        }
                    };
                    out.push(Point {
                        id: num_id(p.id).map_err(|e| self.err(e))?,
                        vector,
                        payload: from_payload(p.payload).map_err(|e| self.err(e))?,
                    });
                }
                match resp.next_page_offset {
                    Some(next) => offset = Some(next),
                    None => break,
                }
            }
            out.sort_by_key(|p| p.id);
            Ok(out)
        })
    }

    fn count<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            if !self
                .client
                .collection_exists(collection)
                .await
                .map_err(|e| self.call_err(e))?
            {
                return Ok(0);
            }
            let resp = self
                .client
                .count(CountPointsBuilder::new(collection).exact(true))
                .await
                .map_err(|e| self.call_err(e))?;
            Ok(resp.result.map_or(0, |r| r.count as usize))
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_servers_are_told_from_refusals() {
        for (code, message, want) in [
            (UNAVAILABLE, "connection refused", true),
            (DEADLINE_EXCEEDED, "timeout", true),
            (RESOURCE_EXHAUSTED, "too many requests", true),
            (
                INTERNAL,
                "Failed to connect to http://127.0.0.1:1/: tonic::transport::Error(Transport, ConnectError(\"tcp connect error\"))",
                true,
            ),
            (UNKNOWN, "transport error", true),
            (INTERNAL, "Service internal error: shard failure", false),
            (
                3,
                "Wrong input: Vector dimension error: expected dim: 16, got 384",
                false,
            ),
            (5, "Not found: Collection `x` doesn't exist!", false),
            (-1, "Invalid URI", false),
        ] {
            assert_eq!(unreachable(code, message), want, "{code} {message}");
        }
    }

    #[test]
    fn an_existing_collection_must_fit_the_model() {
        let cosine = Distance::Cosine as i32;
        assert!(
            check_shape(
                "g_questions",
                VectorShape::Single {
                    size: 384,
                    distance: cosine
                },
                384
            )
            .is_ok()
        );
        for (shape, has) in [
            (
                VectorShape::Single {
                    size: 16,
                    distance: cosine,
                },
                "16-dimensional Cosine",
            ),
            (
                VectorShape::Single {
                    size: 384,
                    distance: Distance::Dot as i32,
                },
                "384-dimensional Dot",
            ),
            (VectorShape::Other, "named or sparse"),
        ] {
            let e = check_shape("g_questions", shape, 384)
                .unwrap_err()
                .to_string();
            for part in [
                has,
                "384-dimensional Cosine",
                "grader index --recreate",
                "store.collection_prefix",
                "g_questions",
            ] {
                assert!(e.contains(part), "{e} lacks {part}");
            }
        }
    }
}
