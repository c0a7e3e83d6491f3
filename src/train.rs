//! Training the coverage judge's correctness head (`grader train`): labelled answer/reference
//! pairs in, a head file out (see [`crate::judge::head`]).
//!
//! Each item is `{question, reference_answer, reference_answers?, answer, score, scale_max}`
//! (the eval format); an answer with the full score is `correct` (label 1), any other is not
//! (0). The pair is the answer and its closest reference. A fifth of the questions (every fifth
//! in sorted order) is held out: the head is trained on the rest and measured there, then
//! retrained on everything; the held-out accuracy and AUC go in the file's header.

use std::collections::BTreeSet;

use crate::embed::{EmbedError, Embedder, dot};
use crate::eval::EvalItem;
use crate::judge::cues;
use crate::judge::head::{self, Head, HeadInfo, PairContext, TrainOptions, pair_features};

/// One training file: how to name it in the head's header (path and sha256) and its items.
pub struct TrainFile {
    pub name: String,
    pub sha256: String,
    pub items: Vec<(usize, EvalItem)>,
}

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(
        "{file}:{line}: an item needs a reference_answer to train on (catalog items by question_id are not pairs)"
    )]
    NoReference { file: String, line: usize },
    #[error(
        "the training data has {positive} correct and {negative} other answers: it needs some of both"
    )]
    OneClass { positive: usize, negative: usize },
}

/// A trained head and what it was measured at.
pub struct Trained {
    pub head: Head,
    pub seconds: f64,
}

/// Texts embedded per call (a progress step).
const CHUNK: usize = 256;

/// Train a head on `files`. `progress(done, total)` hears the embedding's progress.
pub async fn train_head(
    embedder: &dyn Embedder,
    files: &[TrainFile],
    opts: TrainOptions,
    command: &str,
    license: &str,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> Result<Trained, TrainError> {
    let started = std::time::Instant::now();
    struct Pair<'a> {
        file: usize,
        group: String,
        question: &'a str,
        references: Vec<&'a str>,
        answer: &'a str,
        label: f32,
    }
    let mut pairs = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        for (line, item) in &f.items {
            let Some(reference) = item.reference_answer.as_deref() else {
                return Err(TrainError::NoReference {
                    file: f.name.clone(),
                    line: *line,
                });
            };
            let mut references = vec![reference];
            references.extend(
                item.reference_answers
                    .iter()
                    .map(String::as_str)
                    .filter(|r| *r != reference),
            );
            pairs.push(Pair {
                file: fi,
                group: format!("{}\u{1f}{}", f.name, item.group()),
                question: item.question.as_deref().unwrap_or(""),
                references,
                answer: &item.answer,
                label: f32::from(u8::from(item.score >= item.scale_max)),
            });
        }
    }
    let positive = pairs.iter().filter(|p| p.label > 0.5).count();
    if positive == 0 || positive == pairs.len() {
        return Err(TrainError::OneClass {
            positive,
            negative: pairs.len() - positive,
        });
    }
    // Every distinct text once.
    let texts: Vec<String> = pairs
        .iter()
        .flat_map(|p| p.references.iter().copied().chain([p.answer, p.question]))
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(CHUNK) {
        vectors.extend(embedder.embed(chunk).await?);
        progress(vectors.len(), texts.len());
    }
    let vector = |t: &str| -> &[f32] {
        let i = texts
            .binary_search_by(|x| x.as_str().cmp(t))
            .expect("embedded");
        &vectors[i]
    };
    let xs: Vec<Vec<f32>> = pairs
        .iter()
        .map(|p| {
            let a = vector(p.answer);
            let reference = p
                .references
                .iter()
                .copied()
                .max_by(|x, y| dot(vector(x), a).total_cmp(&dot(vector(y), a)))
                .expect("one reference at least");
            let question_words = cues::Words::of(p.question);
            let cx = PairContext {
                question: vector(p.question),
                question_words: &question_words,
            };
            pair_features(
                vector(reference),
                a,
                &cues::Words::of(reference),
                &cues::Words::of(p.answer),
                &cx,
            )
        })
        .collect();
    let ys: Vec<f32> = pairs.iter().map(|p| p.label).collect();
    // Held out: every fifth question in sorted order.
    let groups: Vec<&str> = pairs
        .iter()
        .map(|p| p.group.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let held = |g: &str| groups.binary_search(&g).is_ok_and(|i| i % 5 == 4);
    let split = |keep: bool| -> (Vec<Vec<f32>>, Vec<f32>, Vec<usize>) {
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for (p, (x, y)) in pairs.iter().zip(xs.iter().zip(&ys)) {
            if held(&p.group) == keep {
                out.0.push(x.clone());
                out.1.push(*y);
                out.2.push(p.file);
            }
        }
        out
    };
    let (train_x, train_y, _) = split(false);
    let (test_x, test_y, test_file) = split(true);
    let partial = head::train(&train_x, &train_y, opts);
    let predicted: Vec<f32> = test_x
        .iter()
        .map(|x| partial.predict(x).unwrap_or(0.5))
        .collect();
    let (accuracy, auc) = head::accuracy_auc(&predicted, &test_y);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    // Per file too: one corpus must not buy its AUC with the other's.
    let holdout_auc_per_file = (0..files.len())
        .map(|fi| {
            let (p, y): (Vec<f32>, Vec<f32>) = predicted
                .iter()
                .zip(&test_y)
                .zip(&test_file)
                .filter(|(_, f)| **f == fi)
                .map(|((p, y), _)| (*p, *y))
                .unzip();
            round(head::accuracy_auc(&p, &y).1)
        })
        .collect();
    let mut head = head::train(&xs, &ys, opts);
    head.info = HeadInfo {
        command: command.to_string(),
        data: files
            .iter()
            .map(|f| format!("{} sha256:{}", f.name, f.sha256))
            .collect(),
        pairs: xs.len(),
        epochs: opts.epochs,
        holdout_accuracy: round(accuracy),
        holdout_auc: round(auc),
        holdout_auc_per_file,
        license: license.to_string(),
    };
    Ok(Trained {
        head,
        seconds: started.elapsed().as_secs_f64(),
    })
}
