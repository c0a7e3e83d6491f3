//! One conformance suite for every vector store backend: the embedded store, the Qdrant backend
//! over gRPC against the protocol fake (`fake_qdrant`), and a real Qdrant when
//! `GRADER_TEST_QDRANT_URL` points at one (an ignored test, run by `.ci/run` then).

use std::sync::Arc;

use grader::embed::normalize;
use grader::engine::Engine;
use grader::server::Application;
use grader::store::{
    EmbeddedStore, Filter, Payload, Point, QdrantOptions, QdrantStore, VectorStore, point_id,
};
use serde_json::{Value, json};

use crate::common::Rubrics;
use crate::fake_qdrant::FakeQdrant;

fn payload(rubric: &str, kind: &str, index: u32) -> Payload {
    Payload {
        rubric_id: rubric.into(),
        kind: kind.into(),
        index,
        text: format!("{rubric} {kind} {index}"),
        score: (kind == "exemplar").then_some(index as f32),
        item_id: None,
        hash: "h1".into(),
        rationale: None,
    }
}

/// Deterministic, distinct unit vectors in 8 dimensions.
fn vector(seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..8u64)
        .map(|i| ((seed >> (i * 8)) & 0xff) as f32 - 127.5)
        .collect();
    normalize(&mut v);
    v
}

fn point(rubric: &str, kind: &str, index: u32) -> Point {
    Point {
        id: point_id(rubric, kind, index),
        vector: vector(point_id(rubric, kind, index)),
        payload: payload(rubric, kind, index),
    }
}

/// The behaviour every backend must have.
async fn conformance(store: &dyn VectorStore, col: &str) {
    store.delete(col, &Filter::default()).await.ok();
    store.ensure_collection(col, 8).await.unwrap();
    store.ensure_collection(col, 8).await.unwrap(); // idempotent
    let mut points = Vec::new();
    for r in ["core.copy", "oop.mro"] {
        for i in 0..5 {
            points.push(point(r, "exemplar", i));
            points.push(point(r, "model_answer", i));
        }
    }
    store.upsert(col, points.clone()).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.count(col).await.unwrap(), 20);
    // Upserting the same ids again replaces instead of duplicating.
    store.upsert(col, points.clone()).await.unwrap();
    assert_eq!(store.count(col).await.unwrap(), 20);

    // Exact search: the query point itself comes first with similarity 1.
    let q = points[3].vector.clone();
    let hits = store.search(col, &q, &Filter::default(), 3).await.unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].id, points[3].id);
    assert!((hits[0].score - 1.0).abs() < 1e-4, "{}", hits[0].score);
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "sorted best first"
    );

    // Filters apply before scoring: only matching points, even when others score higher.
    let f = Filter::rubric("oop.mro").kinds(&["exemplar"]);
    let hits = store.search(col, &q, &f, 10).await.unwrap();
    assert_eq!(hits.len(), 5);
    assert!(
        hits.iter()
            .all(|h| h.payload.rubric_id == "oop.mro" && h.payload.kind == "exemplar")
    );
    assert_eq!(
        hits.iter()
            .find(|h| h.payload.index == 2)
            .unwrap()
            .payload
            .score,
        Some(2.0),
        "payload round-trips"
    );
    let f = Filter::default().kinds(&["exemplar", "model_answer"]);
    assert_eq!(store.search(col, &q, &f, 100).await.unwrap().len(), 20);

    // Brute force agrees with a hand computation.
    let mut expected: Vec<(f32, u64)> = points
        .iter()
        .map(|p| (grader::embed::dot(&p.vector, &q), p.id))
        .collect();
    expected.sort_by(|a, b| b.0.total_cmp(&a.0));
    let hits = store.search(col, &q, &Filter::default(), 20).await.unwrap();
    for (h, e) in hits.iter().zip(&expected) {
        assert!((h.score - e.0).abs() < 1e-4);
    }

    // Scroll returns vectors and payloads.
    let all = store
        .scroll(col, &Filter::rubric("core.copy"))
        .await
        .unwrap();
    assert_eq!(all.len(), 10);
    let p = all.iter().find(|p| p.id == points[0].id).unwrap();
    assert_eq!(p.payload, points[0].payload);
    assert!(
        p.vector
            .iter()
            .zip(&points[0].vector)
            .all(|(a, b)| (a - b).abs() < 1e-5)
    );

    // Delete by filter.
    store
        .delete(col, &Filter::rubric("core.copy"))
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.count(col).await.unwrap(), 10);
    assert!(
        store
            .scroll(col, &Filter::rubric("core.copy"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count("grader_test_never_created").await.unwrap(), 0);

    // Recreating empties the collection (`grader index --recreate`).
    store.recreate_collection(col, 8).await.unwrap();
    assert_eq!(store.count(col).await.unwrap(), 0);
    store.ensure_collection(col, 8).await.unwrap();
}

#[tokio::test]
async fn embedded_store_conforms() {
    conformance(&EmbeddedStore::in_memory(), "conf").await;
    let dir = tempfile::tempdir().unwrap();
    conformance(&EmbeddedStore::open(dir.path()).unwrap(), "conf").await;
}

#[tokio::test]
async fn embedded_store_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pts: Vec<Point> = (0..7).map(|i| point("core.copy", "exemplar", i)).collect();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.ensure_collection("c", 8).await.unwrap();
        s.upsert("c", pts.clone()).await.unwrap();
        s.flush().await.unwrap();
    }
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.count("c").await.unwrap(), 7);
    let back = s.scroll("c", &Filter::default()).await.unwrap();
    let mut want = pts.clone();
    want.sort_by_key(|p| p.id);
    assert_eq!(
        back, want,
        "vectors and payloads are bit-identical after reopening"
    );
}

#[tokio::test]
async fn corrupt_store_files_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.ensure_collection("c", 8).await.unwrap();
        s.upsert("c", vec![point("a.b", "exemplar", 1)])
            .await
            .unwrap();
        s.flush().await.unwrap();
    }
    std::fs::write(dir.path().join("c/vectors.f32"), [1u8, 2, 3]).unwrap();
    let err = EmbeddedStore::open(dir.path())
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("delete that folder"), "{err}");
}

#[tokio::test]
async fn dimension_mismatch_is_an_error() {
    let s = EmbeddedStore::in_memory();
    s.ensure_collection("c", 8).await.unwrap();
    let mut p = point("a.b", "exemplar", 1);
    p.vector.push(0.0);
    let err = s.upsert("c", vec![p]).await.unwrap_err().to_string();
    assert!(err.contains("dimension 8"), "{err}");
}

fn qdrant(url: &str) -> QdrantStore {
    QdrantStore::connect(QdrantOptions {
        url: url.to_string(),
        api_key: None,
        shard_number: 1,
        replication_factor: 1,
    })
    .unwrap()
}

/// What the Qdrant backend must do on a server at `url`, beyond the conformance suite.
async fn qdrant_checks(url: &str) {
    let store = qdrant(url);
    conformance(&store, "grader_conformance").await;

    // A collection made for another model is refused with what to do, until recreated.
    let col = "grader_conformance_dims";
    store.recreate_collection(col, 16).await.unwrap();
    let err = store
        .ensure_collection(col, 8)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("16-dimensional") && err.contains("grader index --recreate"),
        "{err}"
    );
    // The server's own refusal of a point of the wrong size comes through as an error.
    let err = store
        .upsert(col, vec![point("a.b", "exemplar", 1)])
        .await
        .unwrap_err();
    assert!(!err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("dim"), "{err}");
    store.recreate_collection(col, 8).await.unwrap();
    store.ensure_collection(col, 8).await.unwrap();

    // Replicas starting together on a new prefix: every one of them creates or finds it.
    let col = format!("grader_conformance_race_{}", std::process::id());
    let stores: Vec<QdrantStore> = (0..4).map(|_| qdrant(url)).collect();
    let results =
        futures::future::join_all(stores.iter().map(|s| s.ensure_collection(&col, 8))).await;
    for r in results {
        r.unwrap();
    }
}

#[tokio::test]
#[ignore = "needs a Qdrant server: GRADER_TEST_QDRANT_URL=http://localhost:6334; .ci/run runs it when set"]
async fn qdrant_store_conforms() {
    qdrant_checks(&crate::common::required_env("GRADER_TEST_QDRANT_URL")).await;
}

/// The same checks over Qdrant's gRPC protocol against the local fake, which refuses what a
/// real server refuses (a second create of one collection, a point of the wrong size).
#[tokio::test]
async fn qdrant_store_conforms_over_the_protocol() {
    let fake = FakeQdrant::new();
    let running = fake.serve(None).await;
    qdrant_checks(&running.url()).await;
    // The fake refuses a second create, so the race above was won by handling it.
    let raw = qdrant_client::Qdrant::from_url(&running.url())
        .skip_compatibility_check()
        .build()
        .unwrap();
    let again = raw
        .create_collection(
            qdrant_client::qdrant::CreateCollectionBuilder::new("grader_conformance_dims")
                .vectors_config(qdrant_client::qdrant::VectorParamsBuilder::new(
                    8,
                    qdrant_client::qdrant::Distance::Cosine,
                )),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("already exists"), "{again}");
    running.stop().await;
}

/// `grader serve` on Qdrant (the fake, over gRPC): it indexes into it, grades and matches as on
/// the embedded store, answers 503 with Retry-After for what needs the store while Qdrant is
/// down (grading by question_id goes on from memory), and recovers by itself when Qdrant is
/// back on the same address with its data.
#[tokio::test]
async fn the_service_on_qdrant_grades_as_embedded_and_rides_out_a_restart() {
    let fake = FakeQdrant::new();
    let running = fake.serve(None).await;
    let qdrant_url = running.url();
    let serve = |store: Arc<dyn VectorStore>| async move {
        let mut settings = crate::common::settings();
        settings.server.port = 0;
        let engine = Engine::with_parts(
            settings,
            crate::common::catalog(Rubrics::Fixture),
            Arc::new(crate::common::embedder()),
            store,
            crate::common::calibration(),
            &|_, _| {},
        )
        .await
        .unwrap();
        let app = Application::with_engine(Arc::new(engine)).await.unwrap();
        let addr = app.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        (format!("http://{addr}"), tx)
    };
    let (on_qdrant, stop_q) = serve(Arc::new(qdrant(&qdrant_url))).await;
    let (on_embedded, stop_e) = serve(Arc::new(EmbeddedStore::in_memory())).await;
    let names = fake.collections();
    for c in ["grader_questions", "grader_criteria", "grader_exemplars"] {
        assert!(names.iter().any(|n| n == c), "{c} not in {names:?}");
    }

    let client = crate::common::http();
    let question = "What is the difference between a deep copy and a shallow copy in Python?";
    let answers = [
        "A shallow copy makes a new list but the inner lists are the same objects. A deep copy copies everything recursively.",
        "copy.copy copies only the outer object; copy.deepcopy also copies what it refers to, using a memo for cycles.",
        "They are the same thing.",
    ];
    let grade = |base: String, body: Value| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{base}/v1/grade"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").is_some();
            (status, retry, r.json::<Value>().await.unwrap())
        }
    };
    for a in answers {
        for body in [
            json!({"question": question, "answer": a}),
            json!({"question_id": "core.copy", "answer": a}),
        ] {
            let (sq, _, q) = grade(on_qdrant.clone(), body.clone()).await;
            let (se, _, e) = grade(on_embedded.clone(), body.clone()).await;
            assert_eq!((sq, se), (200, 200), "{q} {e}");
            assert_eq!(q["question_id"], e["question_id"], "{body}");
            assert_eq!(q["score"], e["score"], "{body}: qdrant {q} embedded {e}");
            assert_eq!(q["criteria"], e["criteria"], "{body}");
        }
    }
    let search = client
        .get(format!("{on_qdrant}/v1/questions?q=deep%20copy"))
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200);

    // Qdrant goes away.
    let addr = running.addr;
    running.stop().await;
    let (status, retry, body) = grade(
        on_qdrant.clone(),
        json!({"question": question, "answer": answers[0]}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(retry, "503 without Retry-After");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{body}"
    );
    let ready = client
        .get(format!("{on_qdrant}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert!(ready["store_error"].as_str().is_some(), "{ready}");
    let (status, _, body) = grade(
        on_qdrant.clone(),
        json!({"question_id": "core.copy", "answer": answers[0]}),
    )
    .await;
    assert_eq!(status, 200, "by id, from memory: {body}");

    // Qdrant is back on the same address with its data: the service recovers by itself.
    let running = fake.serve(Some(addr)).await;
    let (status, _, body) = grade(
        on_qdrant.clone(),
        json!({"question": question, "answer": answers[0]}),
    )
    .await;
    assert_eq!(status, 200, "after the restart: {body}");
    let ready = client
        .get(format!("{on_qdrant}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let _ = stop_q.send(());
    let _ = stop_e.send(());
    running.stop().await;
}

/// A Qdrant server that cannot be reached is `Unavailable` (the service's 503), from the real
/// client over a refused connection.
#[tokio::test]
async fn unreachable_qdrant_is_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let store = qdrant(&url);
    for err in [
        store.count("grader_questions").await.unwrap_err(),
        store
            .ensure_collection("grader_questions", 8)
            .await
            .unwrap_err(),
        store
            .search("grader_questions", &[0.0; 8], &Filter::default(), 3)
            .await
            .unwrap_err(),
    ] {
        assert!(err.is_unavailable(), "{err}");
        assert!(err.to_string().contains("cannot be reached"), "{err}");
    }
}
