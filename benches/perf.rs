//! Performance numbers for the embedded default: embedding throughput, matching latency,
//! index times, and grading throughput with the coverage judge.
//!
//! `cargo bench --bench perf` prints the full numbers. Under `cargo test` (no `--bench`
//! argument) it runs a tiny smoke version so the benchmark itself stays working: it indexes
//! one rubric cold and takes the rest from the suite's prebuilt index.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grader::config::JudgeKind;
use grader::embed::dot;
use grader::engine::{Engine, GradeRequest, QuestionRef};
use grader::index::{Collections, index_catalog};
use grader::judge::Calibration;
use grader::rubric::Catalog;
use grader::store::{EmbeddedStore, Filter, Payload, Point, VectorStore};

#[path = "../tests/suite/common.rs"]
mod common;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1 } else { 0 };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&root, scale));
}

async fn run(root: &Path, scale: usize) {
    let reps = |n: usize| if scale == 0 { (n / 50).max(2) } else { n };
    let embedder = common::embedder();
    println!(
        "== embedding (all-MiniLM-L6-v2, candle, RAYON_NUM_THREADS={}; one pass at a time here)",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    let short: Vec<String> = (0..256)
        .map(|i| format!("Generators produce values lazily, number {i}."))
        .collect();
    let para = "A shallow copy creates a new outer container but shares the nested objects with the original, so mutating an inner list through one name is visible through the other. A deep copy recursively copies every nested object and uses a memo dictionary to handle shared references and cycles. Shallow copies are cheap and fine for flat or immutable data; deep copies cost more but are necessary when nested data will be mutated independently.";
    let paras: Vec<String> = (0..64).map(|i| format!("{para} ({i})")).collect();
    embedder.embed_sync(&short[..4]).unwrap(); // warm up
    for (name, texts) in [
        ("short sentences", &short),
        ("paragraphs (~80 words)", &paras),
    ] {
        for batch in [1usize, 32] {
            let n = reps(texts.len()).min(texts.len());
            let started = Instant::now();
            for chunk in texts[..n].chunks(batch) {
                embedder.embed_sync(chunk).unwrap();
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "  {name:<24} batch {batch:>2}: {:>8.1} texts/s",
                n as f64 / secs
            );
        }
    }

    println!("== vector search (exact, 384 dims)");
    let dim = 384;
    for n in [1_000usize, 10_000, 50_000] {
        let n = if scale == 0 { n / 100 } else { n };
        let store = EmbeddedStore::in_memory();
        store.ensure_collection("b", dim).await.unwrap();
        let points: Vec<Point> = (0..n)
            .map(|i| {
                let mut v: Vec<f32> = (0..dim)
                    .map(|j| (((i * 7919 + j * 104729) % 1000) as f32 / 500.0) - 1.0)
                    .collect();
                grader::embed::normalize(&mut v);
                Point {
                    id: i as u64,
                    vector: v,
                    payload: Payload {
                        rubric_id: format!("r.{}", i % 55),
                        kind: "exemplar".into(),
                        index: 0,
                        text: String::new(),
                        score: None,
                        item_id: None,
                        hash: String::new(),
                        rationale: None,
                    },
                }
            })
            .collect();
        let q = points[n / 2].vector.clone();
        store.upsert("b", points).await.unwrap();
        let iters = reps(200);
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            std::hint::black_box(store.search("b", &q, &Filter::default(), 10).await.unwrap());
            times.push(t.elapsed());
        }
        times.sort();
        let gflops = (n * dim * 2) as f64 / percentile(&times, 0.5).as_secs_f64() / 1e9;
        println!(
            "  {n:>6} vectors: p50 {:.3} ms  p99 {:.3} ms  ({gflops:.1} GFLOP/s in dot products)",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    let a: Vec<f32> = (0..dim).map(|i| i as f32 / dim as f32).collect();
    let t = Instant::now();
    let mut acc = 0.0;
    let dots = if scale == 0 { 10_000 } else { 2_000_000 };
    for _ in 0..dots {
        acc += dot(std::hint::black_box(&a), std::hint::black_box(&a));
    }
    std::hint::black_box(acc);
    println!(
        "  dot(384): {:.1} ns each",
        t.elapsed().as_nanos() as f64 / dots as f64
    );

    println!("== rubric index (embedded store)");
    let catalog = Catalog::load_dir(&root.join("rubrics")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names = Collections::new("grader");
    // The layout Engine::open uses: <data_dir>/store.
    let store = EmbeddedStore::open(&dir.path().join("store")).unwrap();
    // The smoke run indexes one rubric cold (the path stays exercised) and starts the warm
    // measurements from the suite's prebuilt index of the whole set.
    let cold = if scale == 0 {
        common::catalog(common::Rubrics::Fixture)
    } else {
        catalog.clone()
    };
    let t = Instant::now();
    let r = index_catalog(&cold, &store, &embedder, &names, &|_, _| {})
        .await
        .unwrap();
    println!(
        "  cold index of {} rubrics: {:.2} s ({} points)",
        cold.len(),
        t.elapsed().as_secs_f64(),
        r.points_written
    );
    drop(store);
    if scale == 0 {
        let _ = std::fs::remove_dir_all(dir.path().join("store"));
        common::data_dir_from_snapshot(dir.path()).await;
    }
    let t = Instant::now();
    let mut settings = common::settings();
    settings.data_dir = dir.path().to_path_buf();
    let cal = Calibration::load(&root.join("config/calibration.toml")).unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap());
    let engine = Engine::with_parts(
        settings.clone(),
        catalog.clone(),
        Arc::new(embedder.clone()),
        store,
        cal.clone(),
        &|_, _| {},
    )
    .await
    .unwrap();
    println!(
        "  warm start (open store, nothing changed, load judge vectors): {:.0} ms (unchanged {}, written {})",
        ms(t.elapsed()),
        engine.index_report().unchanged,
        engine.index_report().points_written
    );
    // Process-level warm start including model load and rubric parsing.
    let t = Instant::now();
    let base = root.to_path_buf();
    let s2 = settings.clone();
    // The built-in rubric set and calibration, as an installed binary starts.
    let _e2 = Engine::open(s2, &base).await.unwrap();
    println!(
        "  warm start incl. model load and rubric parsing: {:.0} ms",
        ms(t.elapsed())
    );

    println!("== question matching (full catalog, incl. query embedding)");
    let questions: Vec<String> = catalog
        .iter()
        .flat_map(|r| r.aliases.iter().take(2).cloned())
        .collect();
    let iters = reps(400);
    let mut times = Vec::with_capacity(iters);
    for i in 0..iters {
        let q = &questions[i % questions.len()];
        let t = Instant::now();
        std::hint::black_box(engine.match_question(q).await.unwrap());
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "  p50 {:.2} ms  p99 {:.2} ms over {iters} questions",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );

    let engine = Arc::new(engine);
    let words = |a: &str| a.split_whitespace().count();
    // Answers of three lengths from the rubrics' own exemplars and model answers: short ones
    // as they are, long ones built from a model answer and the rubric's exemplars.
    let pick = |range: std::ops::Range<usize>| -> Vec<(String, String)> {
        catalog
            .iter()
            .flat_map(|r| {
                r.exemplars
                    .iter()
                    .filter(|e| range.contains(&words(&e.answer)))
                    .map(|e| (r.id.clone(), e.answer.clone()))
            })
            .collect()
    };
    let long: Vec<(String, String)> = catalog
        .iter()
        .map(|r| {
            let mut text = r
                .model_answers
                .first()
                .map(|m| m.text.clone())
                .unwrap_or_default();
            for e in &r.exemplars {
                if words(&text) >= 140 {
                    break;
                }
                text.push(' ');
                text.push_str(&e.answer);
            }
            let cut: Vec<&str> = text.split_whitespace().take(160).collect();
            (r.id.clone(), cut.join(" "))
        })
        .collect();
    let sets = [
        ("20-25-word answers", pick(20..26)),
        ("40-140-word answers", pick(40..140)),
        ("~150-word answers", long),
    ];
    for (label, answers) in &sets {
        let mean = answers.iter().map(|(_, a)| words(a)).sum::<usize>() / answers.len().max(1);
        println!(
            "== grading (coverage judge), {label} (mean {mean} words, {} answers)",
            answers.len()
        );
        // The model time: each answer's segments embedded once, on this thread, one pass each.
        let n = reps(200);
        let (cpu0, t) = (common::cpu_seconds(), Instant::now());
        let mut segments = 0;
        for k in 0..n {
            let texts: Vec<String> = grader::text::segments(&answers[k % answers.len()].1)
                .into_iter()
                .map(|s| s.text)
                .collect();
            segments += texts.len();
            embedder.embed_sync(&texts).unwrap();
        }
        let model_cpu = (common::cpu_seconds() - cpu0) * 1000.0 / n as f64;
        println!(
            "  model time, segments embedded once: {model_cpu:.1} ms CPU per answer ({:.1} segments; wall {:.1} ms)",
            segments as f64 / n as f64,
            ms(t.elapsed()) / n as f64
        );
        for concurrency in [1usize, 8] {
            let n = reps(400);
            let (cpu0, t) = (common::cpu_seconds(), Instant::now());
            let mut latencies = Vec::with_capacity(n);
            let mut i = 0;
            while i < n {
                let batch: Vec<_> = (i..(i + concurrency).min(n))
                    .map(|k| {
                        let engine = engine.clone();
                        let (id, answer) = answers[k % answers.len()].clone();
                        tokio::spawn(async move {
                            let t = Instant::now();
                            engine
                                .grade(&GradeRequest {
                                    question: QuestionRef::Id(id),
                                    answer,
                                    judge: Some(JudgeKind::Coverage),
                                    samples: None,
                                })
                                .await
                                .unwrap();
                            t.elapsed()
                        })
                    })
                    .collect();
                for h in batch {
                    latencies.push(h.await.unwrap());
                }
                i += concurrency;
            }
            let secs = t.elapsed().as_secs_f64();
            let cpu = (common::cpu_seconds() - cpu0) * 1000.0 / n as f64;
            latencies.sort();
            println!(
                "  concurrency {concurrency}: {:>6.1} answers/s  p50 {:.1} ms  p99 {:.1} ms  CPU {cpu:.1} ms per answer ({:.2}x the model time)",
                n as f64 / secs,
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99)),
                cpu / model_cpu
            );
        }
    }
}
