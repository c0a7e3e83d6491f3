//! Agreement metrics against hand-computed values, and JSONL parsing.

use grader::eval::{Metrics, parse_items, pearson, qwk, ranks};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn pearson_by_hand() {
    // x = 1,2,3,4 ; y = 2,4,5,4 → mean 2.5, 3.75; sxy = 3.5; sxx = 5; syy = 4.75
    let r = pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 5.0, 4.0]);
    assert!(close(r, 3.5 / (5.0f64 * 4.75).sqrt()), "{r}");
    assert!(
        close(pearson(&[1.0, 2.0], &[3.0, 3.0]), 0.0),
        "constant side → 0"
    );
}

#[test]
fn ranks_average_ties() {
    assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
}

#[test]
fn qwk_by_hand() {
    assert!(close(qwk(&[0.0, 1.0, 2.0], &[0.0, 1.0, 2.0], 2.0), 1.0));
    // pred 0,2 vs human 2,0 on 0..2: observed weight 2 (each off by 2 → w = 1);
    // expected: hist_p = [1,0,1], hist_h = [1,0,1], E[i][j] = 0.5 → Σ w·E = 0.5·(1+1) = 1 → κ = 1 − 2/1 = −1
    assert!(close(qwk(&[0.0, 2.0], &[2.0, 0.0], 2.0), -1.0));
    // Rounding: 0.6 → 1.
    assert!(close(
        qwk(&[0.6, 1.4, 2.0], &[1.0, 1.0, 2.0], 2.0),
        qwk(&[1.0, 1.0, 2.0], &[1.0, 1.0, 2.0], 2.0)
    ));
}

#[test]
fn metrics_by_hand() {
    let m = Metrics::compute(&[(1.0, 2.0), (3.0, 3.0), (5.0, 3.0)], 10.0);
    assert_eq!(m.n, 3);
    assert!(close(m.mae, (1.0 + 0.0 + 2.0) / 3.0));
    assert!(close(m.rmse, ((1.0 + 0.0 + 4.0) / 3.0f64).sqrt()));
    assert!(close(
        m.spearman,
        pearson(&[1.0, 2.0, 3.0], &[1.0, 2.5, 2.5])
    ));
}

#[test]
fn malformed_lines_are_reported_with_their_number() {
    let text = r#"{"question_id": "core.copy", "answer": "x", "score": 5, "scale_max": 10}
not json

{"question_id": "core.copy", "answer": "x", "score": 11, "scale_max": 10}
{"answer": "x", "score": 1, "scale_max": 10}
{"question": "q", "reference_answer": "r", "answer": "x", "score": 1, "scale_max": 5}
"#;
    let (items, bad) = parse_items(text);
    assert_eq!(
        items.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        vec![1, 6]
    );
    assert_eq!(
        bad.iter().map(|b| b.line).collect::<Vec<_>>(),
        vec![2, 4, 5]
    );
    assert!(bad[1].error.contains("outside"), "{:?}", bad[1]);
    assert!(bad[2].error.contains("question_id"), "{:?}", bad[2]);
}

#[test]
fn semeval_samples_parse_and_share_the_0_to_2_scale() {
    // tests/data/semeval/ (scripts/semeval.py): every line an eval item, ad hoc, on 0–2, with
    // all three labels present.
    for (name, n) in [
        ("train-600.jsonl", 600),
        ("sciEntsBank-unseen-questions-300.jsonl", 300),
        ("beetle-unseen-questions-300.jsonl", 300),
    ] {
        let text = std::fs::read_to_string(crate::common::data(&format!("semeval/{name}")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (items, bad) = parse_items(&text);
        assert!(bad.is_empty(), "{name}: {bad:?}");
        assert_eq!(items.len(), n, "{name}");
        for (line, it) in &items {
            assert!(
                it.question_id.is_none() && it.reference_answer.is_some(),
                "{name}:{line}"
            );
            assert_eq!(it.scale_max, 2.0, "{name}:{line}");
        }
        for level in [0.0, 1.0, 2.0] {
            assert!(
                items.iter().any(|(_, it)| it.score == level),
                "{name}: no item scored {level}"
            );
        }
    }
}
