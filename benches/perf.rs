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
        "== embedding (all-MiniLM-L6-v2, candle, {} threads)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
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

    println!("== grading (coverage judge, ~80-word answers)");
    let answers: Vec<(String, String)> = catalog
        .iter()
        .filter_map(|r| {
            r.exemplars
                .iter()
                .find(|e| (40..140).contains(&e.answer.split_whitespace().count()))
                .map(|e| (r.id.clone(), e.answer.clone()))
        })
        .collect();
    let words: usize = answers
        .iter()
        .map(|(_, a)| a.split_whitespace().count())
        .sum::<usize>()
        / answers.len().max(1);
    let engine = Arc::new(engine);
    for concurrency in [1usize, 4] {
        let n = reps(400);
        let t = Instant::now();
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
        latencies.sort();
        println!(
            "  concurrency {concurrency}: {:>6.1} answers/s  p50 {:.1} ms  p99 {:.1} ms  (mean answer {words} words, {n} grades)",
            n as f64 / secs,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99))
        );
    }
}
