//! A local server that speaks Qdrant's gRPC protocol — the `Collections` and `Points` services
//! as qdrant-client's own generated server traits define them — over collections held in
//! memory. Qdrant is not installable from the registries CI reaches, so this is what the Qdrant
//! backend is tested against there (a real server, where there is one, runs the same checks:
//! `store::qdrant_store_conforms`).
//!
//! It does what the backend asks of Qdrant, with Qdrant's semantics and errors: creating a
//! collection that exists is refused ("Collection `x` already exists!"), a point of the wrong
//! size is refused ("Vector dimension error"), points in a Cosine collection are normalised,
//! search is exact and sorted, scroll pages by id, filters are `must` / `should` / `must_not`
//! of keyword matches. Every other call is `unimplemented`, so a backend that starts using one
//! fails here first. [`FakeQdrant::serve`] can stop and start again on the same port with the
//! same data, as a restarted Qdrant would.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_client::qdrant::{self as q, value::Kind};
use tonic::{Request, Response, Status};

/// One collection: its vectors' size and distance, and its points by id.
struct Collection {
    size: u64,
    distance: i32,
    points: BTreeMap<u64, (Vec<f32>, HashMap<String, q::Value>)>,
}

#[derive(Default)]
struct State {
    collections: HashMap<String, Collection>,
}

/// The fake's data, kept across restarts.
#[derive(Clone, Default)]
pub struct FakeQdrant {
    state: Arc<Mutex<State>>,
    /// How long a create waits before it looks: several replicas creating one collection at
    /// once all pass their "does it exist" check, as they can against a real server.
    create_delay: Duration,
}

/// A running fake: its address, and the handle that stops it.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving and close the listener (the data stays in the [`FakeQdrant`]).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.expect("fake qdrant task");
    }
}

impl FakeQdrant {
    pub fn new() -> Self {
        FakeQdrant {
            create_delay: Duration::from_millis(50),
            ..Default::default()
        }
    }

    /// Serve on `addr` (a restart), or on a free loopback port.
    pub async fn serve(&self, addr: Option<SocketAddr>) -> Running {
        let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        // A restart may find the port in TIME_WAIT for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("fake qdrant cannot bind {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let svc = self.clone();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(CollectionsServer::new(svc.clone()))
                .add_service(PointsServer::new(svc))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await
                .expect("fake qdrant serves");
        });
        Running {
            addr,
            stop: Some(tx),
            task,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The names of the collections held now.
    pub fn collections(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().collections.keys().cloned().collect();
        names.sort();
        names
    }

    /// Run `f` on a collection, or answer as Qdrant does when there is none.
    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Collection) -> Result<T, Status>,
    ) -> Result<T, Status> {
        match self.lock().collections.get_mut(name) {
            Some(c) => f(c),
            None => Err(Status::not_found(format!(
                "Not found: Collection `{name}` doesn't exist!"
            ))),
        }
    }
}

fn op() -> q::CollectionOperationResponse {
    q::CollectionOperationResponse {
        result: true,
        time: 0.0,
    }
}

fn points_op() -> q::PointsOperationResponse {
    q::PointsOperationResponse {
        result: Some(q::UpdateResult {
            operation_id: Some(0),
            status: q::UpdateStatus::Completed as i32,
        }),
        ..Default::default()
    }
}

/// The dense vector a point carries (either of the protocol's two encodings).
#[allow(deprecated)]
fn dense(vectors: Option<q::Vectors>) -> Result<Vec<f32>, Status> {
    match vectors.and_then(|v| v.vectors_options) {
        Some(q::vectors::VectorsOptions::Vector(v)) => match v.vector {
            Some(q::vector::Vector::Dense(d)) => Ok(d.data),
            None if v.indices.is_none() => Ok(v.data),
            _ => Err(Status::invalid_argument(
                "Wrong input: this fake holds dense vectors only",
            )),
        },
        _ => Err(Status::invalid_argument(
            "Wrong input: expected one unnamed dense vector",
        )),
    }
}

fn output(v: &[f32]) -> q::VectorsOutput {
    q::VectorsOutput {
        vectors_options: Some(q::vectors_output::VectorsOptions::Vector(q::VectorOutput {
            vector: Some(q::vector_output::Vector::Dense(q::DenseVector {
                data: v.to_vec(),
            })),
            ..Default::default()
        })),
    }
}

fn num(id: u64) -> q::PointId {
    q::PointId {
        point_id_options: Some(q::point_id::PointIdOptions::Num(id)),
    }
}

fn id_of(p: Option<&q::PointId>) -> Result<u64, Status> {
    match p.and_then(|p| p.point_id_options.as_ref()) {
        Some(q::point_id::PointIdOptions::Num(n)) => Ok(*n),
        other => Err(Status::invalid_argument(format!(
            "Wrong input: this fake holds numeric ids only, got {other:?}"
        ))),
    }
}

fn string(v: Option<&q::Value>) -> Option<&str> {
    match v.and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn condition(c: &q::Condition, payload: &HashMap<String, q::Value>) -> Result<bool, Status> {
    use q::condition::ConditionOneOf;
    use q::r#match::MatchValue;
    match &c.condition_one_of {
        Some(ConditionOneOf::Field(f)) => {
            let value = string(payload.get(&f.key));
            match f.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
                Some(MatchValue::Keyword(k)) => Ok(value == Some(k.as_str())),
                Some(MatchValue::Keywords(ks)) => {
                    Ok(value.is_some_and(|v| ks.strings.iter().any(|k| k == v)))
                }
                other => Err(Status::unimplemented(format!(
                    "this fake matches keywords only, not {other:?}"
                ))),
            }
        }
        Some(ConditionOneOf::Filter(f)) => matches(Some(f), payload),
        other => Err(Status::unimplemented(format!(
            "this fake has no condition {other:?}"
        ))),
    }
}

/// Qdrant's filter: every `must`, at least one `should` (when there are any), no `must_not`.
fn matches(
    filter: Option<&q::Filter>,
    payload: &HashMap<String, q::Value>,
) -> Result<bool, Status> {
    let Some(f) = filter else { return Ok(true) };
    for c in &f.must {
        if !condition(c, payload)? {
            return Ok(false);
        }
    }
    for c in &f.must_not {
        if condition(c, payload)? {
            return Ok(false);
        }
    }
    if f.should.is_empty() {
        return Ok(true);
    }
    for c in &f.should {
        if condition(c, payload)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Qdrant's refusal of a vector of the wrong size.
fn wrong_size(expected: u64, got: usize) -> Status {
    Status::invalid_argument(format!(
        "Wrong input: Vector dimension error: expected dim: {expected}, got {got}"
    ))
}

/// A point's payload as a reply carries it: whole when asked for, else none.
fn payload_if(with: bool, payload: &HashMap<String, q::Value>) -> HashMap<String, q::Value> {
    if with {
        payload.clone()
    } else {
        HashMap::new()
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// What the fake does not do: every call but the ones the backend makes. Written as
/// `async_trait` expands a method, since that attribute does not look inside a macro.
macro_rules! unimplemented_rpcs {
    ($($name:ident($req:ident) -> $resp:ident;)*) => {
        $(
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                _: Request<q::$req>,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<Output = Result<Response<q::$resp>, Status>>
                        + Send
                        + 'async_trait,
                >,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(std::future::ready(Err(Status::unimplemented(concat!(
                    "the Qdrant fake does not do ",
                    stringify!($name)
                )))))
            }
        )*
    };
}

#[tonic::async_trait]
impl Collections for FakeQdrant {
    async fn get(
        &self,
        request: Request<q::GetCollectionInfoRequest>,
    ) -> Result<Response<q::GetCollectionInfoResponse>, Status> {
        let name = request.into_inner().collection_name;
        self.with(&name, |c| {
            let params = q::VectorParams {
                size: c.size,
                distance: c.distance,
                ..Default::default()
            };
            Ok(Response::new(q::GetCollectionInfoResponse {
                result: Some(q::CollectionInfo {
                    status: q::CollectionStatus::Green as i32,
                    points_count: Some(c.points.len() as u64),
                    config: Some(q::CollectionConfig {
                        params: Some(q::CollectionParams {
                            vectors_config: Some(q::VectorsConfig {
                                config: Some(q::vectors_config::Config::Params(params)),
                            }),
                            shard_number: 1,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                time: 0.0,
            }))
        })
    }

    async fn create(
        &self,
        request: Request<q::CreateCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        let req = request.into_inner();
        tokio::time::sleep(self.create_delay).await;
        let (size, distance) = match req.vectors_config.and_then(|v| v.config) {
            Some(q::vectors_config::Config::Params(p)) => (p.size, p.distance),
            _ => {
                return Err(Status::invalid_argument(
                    "Wrong input: this fake makes collections of one unnamed vector",
                ));
            }
        };
        let mut st = self.lock();
        if st.collections.contains_key(&req.collection_name) {
            return Err(Status::invalid_argument(format!(
                "Wrong input: Collection `{}` already exists!",
                req.collection_name
            )));
        }
        st.collections.insert(
            req.collection_name,
            Collection {
                size,
                distance,
                points: BTreeMap::new(),
            },
        );
        Ok(Response::new(op()))
    }

    async fn delete(
        &self,
        request: Request<q::DeleteCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        let name = request.into_inner().collection_name;
        let existed = self.lock().collections.remove(&name).is_some();
        Ok(Response::new(q::CollectionOperationResponse {
            result: existed,
            time: 0.0,
        }))
    }

    async fn collection_exists(
        &self,
        request: Request<q::CollectionExistsRequest>,
    ) -> Result<Response<q::CollectionExistsResponse>, Status> {
        let name = request.into_inner().collection_name;
        let exists = self.lock().collections.contains_key(&name);
        Ok(Response::new(q::CollectionExistsResponse {
            result: Some(q::CollectionExists { exists }),
            time: 0.0,
        }))
    }

    unimplemented_rpcs! {
        list(ListCollectionsRequest) -> ListCollectionsResponse;
        update(UpdateCollection) -> CollectionOperationResponse;
        update_aliases(ChangeAliases) -> CollectionOperationResponse;
        list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
        list_aliases(ListAliasesRequest) -> ListAliasesResponse;
        collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
        update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
        create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
        delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
        list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
    }
}

#[tonic::async_trait]
impl Points for FakeQdrant {
    async fn upsert(
        &self,
        request: Request<q::UpsertPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        let req = request.into_inner();
        self.with(&req.collection_name, |c| {
            // All or nothing, as one Qdrant operation.
            let mut parsed = Vec::with_capacity(req.points.len());
            for p in req.points {
                let id = id_of(p.id.as_ref())?;
                let v = dense(p.vectors)?;
                if v.len() as u64 != c.size {
                    return Err(wrong_size(c.size, v.len()));
                }
                let v = if c.distance == q::Distance::Cosine as i32 {
                    normalised(v)
                } else {
                    v
                };
                parsed.push((id, v, p.payload));
            }
            for (id, v, payload) in parsed {
                c.points.insert(id, (v, payload));
            }
            Ok(Response::new(points_op()))
        })
    }

    async fn delete(
        &self,
        request: Request<q::DeletePoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        use q::points_selector::PointsSelectorOneOf;
        let req = request.into_inner();
        self.with(&req.collection_name, |c| {
            match req.points.and_then(|p| p.points_selector_one_of) {
                Some(PointsSelectorOneOf::Filter(f)) => {
                    let mut gone = Vec::new();
                    for (id, (_, payload)) in &c.points {
                        if matches(Some(&f), payload)? {
                            gone.push(*id);
                        }
                    }
                    for id in gone {
                        c.points.remove(&id);
                    }
                }
                Some(PointsSelectorOneOf::Points(ids)) => {
                    for id in &ids.ids {
                        c.points.remove(&id_of(Some(id))?);
                    }
                }
                None => return Err(Status::invalid_argument("Wrong input: no points selector")),
            }
            Ok(Response::new(points_op()))
        })
    }

    async fn search(
        &self,
        request: Request<q::SearchPoints>,
    ) -> Result<Response<q::SearchResponse>, Status> {
        let req = request.into_inner();
        let with_payload = req.with_payload.is_some();
        self.with(&req.collection_name, |c| {
            if req.vector.len() as u64 != c.size {
                return Err(wrong_size(c.size, req.vector.len()));
            }
            let query = if c.distance == q::Distance::Cosine as i32 {
                normalised(req.vector.clone())
            } else {
                req.vector.clone()
            };
            let mut hits = Vec::new();
            for (id, (v, payload)) in &c.points {
                if matches(req.filter.as_ref(), payload)? {
                    let score: f32 = v.iter().zip(&query).map(|(a, b)| a * b).sum();
                    hits.push(q::ScoredPoint {
                        id: Some(num(*id)),
                        payload: payload_if(with_payload, payload),
                        score,
                        ..Default::default()
                    });
                }
            }
            hits.sort_by(|a, b| b.score.total_cmp(&a.score));
            hits.truncate(req.limit as usize);
            Ok(Response::new(q::SearchResponse {
                result: hits,
                ..Default::default()
            }))
        })
    }

    async fn scroll(
        &self,
        request: Request<q::ScrollPoints>,
    ) -> Result<Response<q::ScrollResponse>, Status> {
        let req = request.into_inner();
        let limit = req.limit.unwrap_or(10) as usize;
        let from = match &req.offset {
            Some(o) => id_of(Some(o))?,
            None => 0,
        };
        let with_vectors = req.with_vectors.is_some();
        let with_payload = req.with_payload.is_some();
        self.with(&req.collection_name, |c| {
            let mut result = Vec::new();
            let mut next = None;
            for (id, (v, payload)) in c.points.range(from..) {
                if !matches(req.filter.as_ref(), payload)? {
                    continue;
                }
                if result.len() == limit {
                    next = Some(num(*id));
                    break;
                }
                result.push(q::RetrievedPoint {
                    id: Some(num(*id)),
                    payload: payload_if(with_payload, payload),
                    vectors: with_vectors.then(|| output(v)),
                    ..Default::default()
                });
            }
            Ok(Response::new(q::ScrollResponse {
                next_page_offset: next,
                result,
                ..Default::default()
            }))
        })
    }

    async fn count(
        &self,
        request: Request<q::CountPoints>,
    ) -> Result<Response<q::CountResponse>, Status> {
        let req = request.into_inner();
        self.with(&req.collection_name, |c| {
            let mut count = 0;
            for (_, payload) in c.points.values() {
                if matches(req.filter.as_ref(), payload)? {
                    count += 1;
                }
            }
            Ok(Response::new(q::CountResponse {
                result: Some(q::CountResult { count }),
                ..Default::default()
            }))
        })
    }

    unimplemented_rpcs! {
        get(GetPoints) -> GetResponse;
        update_vectors(UpdatePointVectors) -> PointsOperationResponse;
        delete_vectors(DeletePointVectors) -> PointsOperationResponse;
        set_payload(SetPayloadPoints) -> PointsOperationResponse;
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
        create_field_index(CreateFieldIndexCollection) -> PointsOperationResponse;
        delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
        search_batch(SearchBatchPoints) -> SearchBatchResponse;
        search_groups(SearchPointGroups) -> SearchGroupsResponse;
        recommend(RecommendPoints) -> RecommendResponse;
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
        discover(DiscoverPoints) -> DiscoverResponse;
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
        query(QueryPoints) -> QueryResponse;
        query_batch(QueryBatchPoints) -> QueryBatchResponse;
        query_groups(QueryPointGroups) -> QueryGroupsResponse;
        facet(FacetCounts) -> FacetResponse;
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
    }
}
