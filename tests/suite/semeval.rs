//! Agreement with human graders nobody here wrote: SemEval-2013 Task 7 answers to questions
//! the judge never saw (`tests/data/semeval/`, 300 per corpus, CC BY-SA 3.0). The bars are
//! floors under what the default judge measures (README, "Agreement with human grades"), so a
//! change that loses real agreement fails here; the full splits are `scripts/semeval.sh`.

use grader::eval::{self, RunOptions};

use crate::common::{data, engine};

async fn measure(name: &str) -> eval::EvalReport {
    let text = std::fs::read_to_string(data(&format!("semeval/{name}"))).unwrap();
    let (items, skipped) = eval::parse_items(&text);
    assert!(skipped.is_empty(), "{name}: {} bad lines", skipped.len());
    let report = eval::run(
        engine().await,
        items,
        Vec::new(),
        RunOptions {
            judge: None,
            concurrency: 4,
        },
        &|| {},
        &|bad| panic!("{name}: line {} failed: {}", bad.line, bad.error),
    )
    .await
    .report;
    let c = report
        .classification
        .as_ref()
        .expect("a 0–2 scale has classes");
    eprintln!(
        "{name}: n {} pearson {:.3} qwk {:.3} rmse {:.3} (0–{}) accuracy {:.3} macro-F1 {:.3}",
        report.n,
        report.pearson,
        report.qwk,
        report.rmse,
        report.scale_max.unwrap_or(10.0),
        c.accuracy,
        c.macro_f1
    );
    report
}

#[tokio::test]
async fn unseen_questions_agree_with_human_grades() {
    let mut broken = Vec::new();
    for (name, pearson, macro_f1) in [
        ("sciEntsBank-unseen-questions-300.jsonl", 0.28, 0.34),
        ("beetle-unseen-questions-300.jsonl", 0.42, 0.46),
    ] {
        let r = measure(name).await;
        assert_eq!(r.n, 300);
        assert_eq!(
            r.scale_max,
            Some(2.0),
            "metrics on the items' own 0–2 scale"
        );
        let f1 = r.classification.as_ref().map_or(0.0, |c| c.macro_f1);
        if r.pearson < pearson || f1 < macro_f1 {
            broken.push(format!(
                "{name}: pearson {:.3} (floor {pearson}), macro-F1 {f1:.3} (floor {macro_f1})",
                r.pearson
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("; "));
}
