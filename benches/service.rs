//! Service-level numbers: the LLM judge's overhead against a fake OpenAI server with a fixed
//! 50 ms latency, HTTP load on `grader serve` (coverage and LLM), transcript throughput, and
//! process startup. Everything runs on 127.0.0.1 and every loop is bounded.
//!
//! `cargo bench --bench service` prints the numbers; under `cargo test` it runs a tiny smoke
//! version on the suite's prebuilt index (so it never indexes the rubric set itself).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use grader::config::{JudgeKind, Settings};
use grader::engine::{Engine, GradeRequest, QuestionRef};
use grader::rubric::Catalog;
use serde_json::{Value, json};

#[path = "../tests/suite/common.rs"]
mod common;

const LATENCY: Duration = Duration::from_millis(50);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A fake OpenAI server: answers every chat completion after `LATENCY` with a valid grading
/// object for whatever criteria the request's schema lists. Responses go out with TCP_NODELAY.
async fn fake_llm() -> SocketAddr {
    async fn chat(body: Bytes) -> axum::response::Response {
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let ids = req["response_format"]["json_schema"]["schema"]["properties"]["criteria"]["items"]["properties"]["id"]["enum"].as_array().cloned().unwrap_or_default();
        let out = json!({
            "criteria": ids.iter().map(|id| json!({"id": id, "verdict": "missed", "evidence": "", "reason": "fake"})).collect::<Vec<_>>(),
            "misconceptions": [], "gaps": [], "feedback": "fake"
        });
        tokio::time::sleep(LATENCY).await;
        let resp = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "fake",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": out.to_string()}}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 150, "total_tokens": 1050}});
        ([("content-type", "application/json")], resp.to_string()).into_response()
    }
    use axum::response::IntoResponse;
    let app = Router::new().route("/v1/chat/completions", post(chat));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let l = listener.tap_io(|t| {
            let _ = t.set_nodelay(true);
        });
        axum::serve(l, app).await.unwrap();
    });
    addr
}

/// An engine over the shipped set (from the prebuilt index) with `tweak`ed settings.
async fn engine(tweak: impl FnOnce(&mut Settings)) -> Arc<Engine> {
    Arc::new(common::engine_with(common::Rubrics::Shipped, tweak).await)
}

/// One exemplar per rubric whose length in words is in `words`.
fn answers_of(catalog: &Catalog, words: std::ops::Range<usize>) -> Vec<(String, String)> {
    catalog
        .iter()
        .filter_map(|r| {
            r.exemplars
                .iter()
                .find(|e| words.contains(&e.answer.split_whitespace().count()))
                .map(|e| (r.id.clone(), e.answer.clone()))
        })
        .collect()
}

fn answers(catalog: &Catalog) -> Vec<(String, String)> {
    answers_of(catalog, 40..140)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&root, full));
}

async fn run(root: &Path, full: bool) {
    let n = |big: usize| if full { big } else { (big / 100).max(4) };
    let llm_addr = fake_llm().await;
    let base_url = format!("http://{llm_addr}/v1");
    let llm = engine(|s| {
        s.llm.base_url = base_url.clone();
        s.llm.max_concurrency = 64;
        s.judge.kind = JudgeKind::Llm;
    })
    .await;
    let set = answers(llm.catalog());

    let coverage = engine(|_| {}).await;
    let minimal = engine(|s| {
        s.llm.base_url = base_url.clone();
        s.llm.max_concurrency = 64;
        s.judge.kind = JudgeKind::Llm;
        s.judge.llm_hints = false;
        s.judge.exemplars_k = 0;
    })
    .await;
    let request = |id: &str, a: &str, judge| GradeRequest {
        question: QuestionRef::Id(id.to_string()),
        answer: a.to_string(),
        judge: Some(judge),
        samples: None,
    };

    println!(
        "== LLM judge overhead (fake endpoint, fixed {} ms latency, one grade at a time)",
        LATENCY.as_millis()
    );
    // Per answer, paired: the coverage grade (the embedding pass the LLM judge's hints and
    // exemplar retrieval share, plus the coverage decision), then the LLM grade with hints and
    // exemplars, then the LLM grade without them (no embedding at all).
    let count = n(200);
    let (mut shared, mut rest, mut hinted, mut bare) = (vec![], vec![], vec![], vec![]);
    let (mut cpu_full, mut cpu_bare) = (0.0, 0.0);
    for (id, a) in set.iter().cycle().take(count) {
        let t = Instant::now();
        coverage
            .grade(&request(id, a, JudgeKind::Coverage))
            .await
            .unwrap();
        let cov = t.elapsed();
        let cpu0 = common::cpu_seconds();
        let t = Instant::now();
        llm.grade(&request(id, a, JudgeKind::Llm)).await.unwrap();
        let f = t.elapsed().saturating_sub(LATENCY);
        cpu_full += common::cpu_seconds() - cpu0;
        let cpu0 = common::cpu_seconds();
        let t = Instant::now();
        minimal
            .grade(&request(id, a, JudgeKind::Llm))
            .await
            .unwrap();
        bare.push(t.elapsed().saturating_sub(LATENCY));
        cpu_bare += common::cpu_seconds() - cpu0;
        shared.push(cov);
        rest.push(f.saturating_sub(cov));
        hinted.push(f);
    }
    for v in [&mut shared, &mut rest, &mut hinted, &mut bare] {
        v.sort();
    }
    let p = |v: &[Duration], q| ms(percentile(v, q));
    println!(
        "  with hints + exemplars: p50 {:.1} ms, p99 {:.1} ms beyond the model; of which the embedding pass (as a coverage grade) p50 {:.1} ms, everything else p50 {:.2} ms, p99 {:.2} ms; CPU {:.1} ms per grade",
        p(&hinted, 0.5),
        p(&hinted, 0.99),
        p(&shared, 0.5),
        p(&rest, 0.5),
        p(&rest, 0.99),
        cpu_full / count as f64 * 1000.0
    );
    println!(
        "  without (llm_hints = false, exemplars_k = 0): p50 {:.2} ms, p99 {:.2} ms beyond the model; CPU {:.2} ms per grade",
        p(&bare, 0.5),
        p(&bare, 0.99),
        cpu_bare / count as f64 * 1000.0
    );
    let total = n(1000);
    let conc = 32;
    for (label, e) in [("with hints + exemplars", &llm), ("without", &minimal)] {
        let t = Instant::now();
        let jobs = set.iter().cycle().take(total).cloned().map(|(id, a)| {
            let e = e.clone();
            async move {
                e.grade(&GradeRequest {
                    question: QuestionRef::Id(id),
                    answer: a,
                    judge: Some(JudgeKind::Llm),
                    samples: None,
                })
                .await
                .unwrap()
            }
        });
        use futures::StreamExt;
        let _: Vec<_> = futures::stream::iter(jobs)
            .buffer_unordered(conc)
            .collect()
            .await;
        let wall = t.elapsed();
        let ideal = LATENCY.as_secs_f64() * (total as f64 / conc as f64).ceil();
        println!(
            "  {total} grades at concurrency {conc}, {label}: {:.2} s (ideal {:.2} s, ratio {:.3})",
            wall.as_secs_f64(),
            ideal,
            wall.as_secs_f64() / ideal
        );
    }

    println!("== transcripts (100 × 10 answers)");
    let transcripts: Vec<String> = (0..n(100))
        .map(|k| {
            let mut s = String::new();
            for (i, (id, a)) in set.iter().cycle().skip(k * 3).take(10).enumerate() {
                let q = llm.catalog().get(id).unwrap().question.clone();
                s.push_str(&format!(
                    "Interviewer: {q}\nCandidate: {} (take {k}.{i})\n",
                    a.replace('\n', " ")
                ));
            }
            s
        })
        .collect();
    use futures::StreamExt;
    for (name, e, judge, conc) in [
        ("coverage", coverage.clone(), JudgeKind::Coverage, 4usize),
        ("llm (fake, 50 ms)", llm.clone(), JudgeKind::Llm, 32),
    ] {
        let mut opts = grader::transcript::TranscriptOptions::new(conc);
        opts.judge = Some(judge);
        let opts = Arc::new(opts);
        let t = Instant::now();
        let jobs = transcripts.iter().enumerate().map(|(i, text)| {
            let e = e.clone();
            let opts = opts.clone();
            async move {
                grader::transcript::grade_transcript(&e, &format!("t{i}"), text, &opts, &|_| {})
                    .await
                    .unwrap()
            }
        });
        let reports: Vec<_> = futures::stream::iter(jobs)
            .buffer_unordered(conc)
            .collect()
            .await;
        let answers: usize = reports
            .iter()
            .map(|r| r.pairs.iter().filter(|p| p.grade.is_some()).count())
            .sum();
        let wall = t.elapsed().as_secs_f64();
        let ideal = if judge == JudgeKind::Llm {
            format!(
                " (ideal {:.2} s)",
                LATENCY.as_secs_f64() * (answers as f64 / conc as f64).ceil()
            )
        } else {
            String::new()
        };
        println!(
            "  {name}: {answers} answers in {wall:.2} s = {:.1} answers/s{ideal}",
            answers as f64 / wall
        );
    }

    println!("== HTTP load on `grader serve` (separate process, loopback)");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_grader"));
    let data = tempfile::tempdir().unwrap();
    if !full {
        // The smoke run starts from the prebuilt index: the first server start is warm too.
        common::data_dir_from_snapshot(data.path()).await;
    }
    for (label, llm_url) in [
        ("coverage", None),
        ("llm (fake, 50 ms)", Some(base_url.clone())),
    ] {
        let started = Instant::now();
        let (mut child, addr) = spawn_server(&bin, root, data.path(), llm_url.as_deref());
        let startup = started.elapsed();
        let how = if llm_url.is_none() && full {
            "cold: loads the model and indexes the rubric set"
        } else {
            "warm: index already on disk"
        };
        println!(
            "  [{label}] process start to serving: {:.0} ms ({how})",
            ms(startup)
        );
        grader::llm::install_crypto_provider();
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .unwrap();
        let short = answers_of(llm.catalog(), 20..26);
        let sets: Vec<(&str, &Vec<(String, String)>)> = if llm_url.is_some() {
            vec![("40-140 words", &set)]
        } else {
            vec![("20-25 words", &short), ("40-140 words", &set)]
        };
        for ((words, set), conc) in sets.iter().flat_map(|s| [1usize, 8, 64].map(|c| (*s, c))) {
            let total = if full {
                if conc == 1 { 200 } else { 1000 }
            } else {
                8
            };
            let cpu0 = common::process_cpu_seconds(child.id());
            let t = Instant::now();
            let jobs = set.iter().cycle().take(total).cloned().map(|(id, a)| {
                let client = client.clone();
                async move {
                    let t = Instant::now();
                    let r = client
                        .post(format!("http://{addr}/v1/grade"))
                        .json(&json!({"question_id": id, "answer": a}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    let _ = r.bytes().await;
                    t.elapsed()
                }
            });
            let mut lat: Vec<Duration> = futures::stream::iter(jobs)
                .buffer_unordered(conc)
                .collect()
                .await;
            let wall = t.elapsed().as_secs_f64();
            let cpu = (common::process_cpu_seconds(child.id()) - cpu0) / total as f64 * 1000.0;
            lat.sort();
            let extra = if llm_url.is_some() {
                format!(
                    ", service adds p50 {:.1} ms beyond the model",
                    ms(percentile(&lat, 0.5).saturating_sub(LATENCY))
                )
            } else {
                String::new()
            };
            println!(
                "  [{label}, {words}] concurrency {conc:>2}: {:>6.1} grades/s  p50 {:>6.1} ms  p99 {:>6.1} ms  server CPU {cpu:.1} ms per grade{extra}",
                total as f64 / wall,
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.99))
            );
        }
        println!(
            "  [{label}] peak RSS of the server: {:.0} MB",
            peak_rss_mb(child.id())
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Start `grader serve --port 0` and wait until `/readyz` answers 200 (the port answers at
/// once; readiness waits for the index).
fn spawn_server(bin: &Path, root: &Path, data: &Path, llm: Option<&str>) -> (Child, SocketAddr) {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--port", "0"])
        .current_dir(root)
        .env("GRADER__DATA_DIR", data)
        .env("GRADER__EMBEDDING__MODEL_DIR", common::model_dir())
        .env("GRADER__LOG__LEVEL", "info")
        .env("GRADER__LOG__FORMAT", "json")
        .env("GRADER__LIMITS__MAX_BATCH", "64")
        // Throughput under a fixed concurrency is measured here, so every request is admitted;
        // admission (503s when behind) is what benches/soak.rs measures.
        .env("GRADER__LIMITS__MAX_QUEUE_DELAY_MS", "600000")
        .env("GRADER__LIMITS__MAX_QUEUED_GRADES", "100000")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(url) = llm {
        cmd.env("GRADER__LLM__BASE_URL", url)
            .env("GRADER__LLM__MAX_CONCURRENCY", "64")
            .env("GRADER__LOG__LEVEL", "warn,grader=info");
    }
    let mut child = cmd.spawn().expect("spawn grader serve");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr: SocketAddr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && let Some(a) = v["addr"].as_str()
        {
            break a.parse().unwrap();
        }
    };
    // Keep draining its logs so the pipe never fills.
    std::thread::spawn(move || for _ in lines {});
    let deadline = Instant::now() + Duration::from_secs(600);
    while !readyz_ok(addr) {
        assert!(
            Instant::now() < deadline,
            "grader serve not ready after 600 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

/// Whether `GET /readyz` answers 200 (a plain HTTP/1.1 request: this runs outside the runtime).
fn readyz_ok(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut tcp) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = tcp.write_all(b"GET /readyz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}
