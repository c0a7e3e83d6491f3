//! The Qdrant backend (`store.kind = "qdrant"`): the same collections on a Qdrant server or
//! cluster, over gRPC with `qdrant-client`. Several stateless `grader` replicas can share one
//! cluster; sharding and replication are Qdrant's (configurable at collection creation).

use std::collections::HashMap;

use futures::future::BoxFuture;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vector_output::Vector;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, DeletePointsBuilder, Distance,
    Filter as QFilter, PointId, PointStruct, ScrollPointsBuilder, SearchPointsBuilder,
    UpsertPointsBuilder, VectorParamsBuilder,
};
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
            if self
                .client
                .collection_exists(name)
                .await
                .map_err(|e| self.err(e))?
            {
                return Ok(());
            }
            self.client
                .create_collection(
                    CreateCollectionBuilder::new(name)
                        .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine))
                        .shard_number(self.opts.shard_number)
                        .replication_factor(self.opts.replication_factor),
                )
                .await
                .map_err(|e| self.err(e))?;
            Ok(())
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
                .map_err(|e| self.err(e))?;
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
                .map_err(|e| self.err(e))?;
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
                .map_err(|e| self.err(e))?;
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
                .map_err(|e| self.err(e))?
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
                let resp = self.client.scroll(req).await.map_err(|e| self.err(e))?;
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
                .map_err(|e| self.err(e))?
            {
                return Ok(0);
            }
            let resp = self
                .client
                .count(CountPointsBuilder::new(collection).exact(true))
                .await
                .map_err(|e| self.err(e))?;
            Ok(resp.result.map_or(0, |r| r.count as usize))
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}
