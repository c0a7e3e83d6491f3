//! The local embedder matches sentence-transformers.

use grader::embed::{Embedder, dot};
use serde_json::Value;

use crate::common::{data, embedder};

#[tokio::test]
async fn cosine_similarities_match_sentence_transformers() {
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(data("reference-embeddings.json")).unwrap())
            .unwrap();
    let e = embedder();
    for pair in reference["pairs"].as_array().unwrap() {
        let a = pair["a"].as_str().unwrap().to_string();
        let b = pair["b"].as_str().unwrap().to_string();
        let want = pair["cosine"].as_f64().unwrap() as f32;
        let v = e.embed(&[a.clone(), b.clone()]).await.unwrap();
        let got = dot(&v[0], &v[1]);
        assert!(
            (got - want).abs() < 1e-4,
            "cos({a:?}, {b:?}) = {got}, sentence-transformers says {want}"
        );
    }
    // The first components of one embedding, not just the similarities.
    let head = &reference["embedding_head"];
    let v = e
        .embed(&[head["text"].as_str().unwrap().to_string()])
        .await
        .unwrap();
    assert_eq!(v[0].len(), 384);
    for (i, want) in head["first_8"].as_array().unwrap().iter().enumerate() {
        let want = want.as_f64().unwrap() as f32;
        assert!(
            (v[0][i] - want).abs() < 1e-4,
            "component {i}: {} vs {want}",
            v[0][i]
        );
    }
}

#[tokio::test]
async fn batching_and_padding_do_not_change_vectors() {
    let e = embedder();
    let short = "Generators yield values lazily.".to_string();
    let long = "A context manager's __exit__ runs even when the block raises, so files and locks are always released, which is why with statements are preferred over manual try/finally.".to_string();
    let alone = e.embed(std::slice::from_ref(&short)).await.unwrap();
    let together = e.embed(&[long, short]).await.unwrap();
    let d = dot(&alone[0], &together[1]);
    assert!(d > 0.99999, "padding changed the embedding: cos = {d}");
    let norm = dot(&alone[0], &alone[0]).sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[test]
fn missing_model_is_a_clear_error() {
    let err = match grader::embed::LocalEmbedder::load(
        std::path::Path::new("/nonexistent/model"),
        Default::default(),
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded a model from nowhere"),
    };
    assert!(err.contains("run `grader models fetch`"), "{err}");
    assert!(err.contains("config.json"), "{err}");
}

/// Removing the question's direction keeps unit length, leaves nothing along the question, and
/// moves a specific restatement of a claim closer, relative to a vague on-topic sentence, than
/// raw cosine puts it (here −0.130 → −0.069: better, not enough alone; keywords do the rest).
#[tokio::test]
async fn removing_the_topic_direction_separates_what_sentences_claim() {
    use grader::embed::without_direction;
    let e = embedder();
    let texts: Vec<String> = [
        "What is a database index and when does it not help?",
        "It costs extra storage and slows down inserts, updates and deletes because the index must be maintained.",
        "Every insert or update also has to update the index, so writes get slower.",
        "An index makes the database faster.",
    ]
    .map(String::from)
    .to_vec();
    let v = e.embed(&texts).await.unwrap();
    let q = &v[0];
    let r: Vec<Vec<f32>> = v[1..].iter().map(|x| without_direction(x, q)).collect();
    for x in &r {
        assert!((dot(x, x) - 1.0).abs() < 1e-4, "unit length");
        assert!(dot(x, q).abs() < 1e-4, "orthogonal to the question");
    }
    let raw_gap = dot(&v[1], &v[2]) - dot(&v[1], &v[3]);
    let topic_gap = dot(&r[0], &r[1]) - dot(&r[0], &r[2]);
    assert!(
        topic_gap > raw_gap + 0.03,
        "specific − vague similarity: {topic_gap} without the topic, {raw_gap} raw"
    );
    // A vector parallel to the direction has nothing left.
    assert!(without_direction(q, q).iter().all(|x| *x == 0.0));
}

/// A request larger than one piece is shared between the workers and comes back whole and in
/// order; requests sent at once from many callers each get their own vectors.
#[tokio::test]
async fn large_and_concurrent_requests_keep_their_order() {
    let e = embedder();
    let texts: Vec<String> = (0..150)
        .map(|i| {
            format!(
                "Sentence number {i} talks about {}.",
                ["lists", "dicts", "sets"][i % 3]
            )
        })
        .collect();
    let all = e.embed(&texts).await.unwrap();
    assert_eq!(all.len(), texts.len());
    let singles = futures::future::join_all(
        texts
            .iter()
            .step_by(7)
            .map(|t| e.embed(std::slice::from_ref(t))),
    )
    .await;
    for (k, single) in singles.into_iter().enumerate() {
        let d = dot(&single.unwrap()[0], &all[k * 7]);
        assert!(
            d > 0.9999,
            "text {} came back as another's vector: cos = {d}",
            k * 7
        );
    }
}

/// The pair reader (the model with its trained adapter, pairs read together) gives the levels
/// PyTorch gives with the same adapter merged into the weights (`scripts/pair-reference.py`),
/// whether a pair is read alone or in a pass with others.
#[tokio::test]
async fn the_pair_reader_matches_pytorch() {
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(data("pair-reader-reference.json")).unwrap())
            .unwrap();
    let adapter_sha = reference["adapter_sha256"].as_str().unwrap();
    let shipped = grader::embed::pair::BUILTIN;
    assert_eq!(
        sha256_hex(shipped),
        adapter_sha,
        "tests/data/pair-reader-reference.json was made for another adapter: rerun scripts/pair-reference.py"
    );
    let e = embedder();
    let items = reference["pairs"].as_array().unwrap();
    let pairs: Vec<(String, String)> = items
        .iter()
        .map(|p| {
            (
                p["reference"].as_str().unwrap().to_string(),
                p["answer"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let together = e.read_pairs(&pairs).await.unwrap().expect("a pair reader");
    for (i, (pair, item)) in pairs.iter().zip(items).enumerate() {
        let alone = e
            .read_pairs(std::slice::from_ref(pair))
            .await
            .unwrap()
            .unwrap();
        for (k, want) in item["levels"].as_array().unwrap().iter().enumerate() {
            let want = want.as_f64().unwrap() as f32;
            for (how, got) in [("alone", alone[0][k]), ("together", together[i][k])] {
                assert!(
                    (got - want).abs() < 1e-4,
                    "pair {i} level {k} read {how}: {got}, PyTorch says {want}"
                );
            }
        }
    }
    assert_eq!(e.read_pairs(&[]).await.unwrap(), Some(Vec::new()));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
