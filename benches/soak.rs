//! A bounded soak of `grader serve` (loopback only): mixed heavy and light requests at
//! concurrency 64 for at most 60 s, then the connections close. Prints the status counts (5xx
//! other than the intended 503s must be 0), the light requests' latency (p99 must be ≤ 1 s),
//! and the server's RSS at the start, at its peak, and after the connections closed (must be
//! back within 10 % of the start). Then it holds half-open connections (half a request head
//! each) against the same server: `/healthz` must still answer, the header-read timeout must
//! close them, and RSS must come back again.
//!
//! `cargo bench --bench soak -- --bench` runs it in full, as does `cargo test --bench soak --
//! --bench` without a release build (dependencies, where the time goes, are optimised in the
//! dev profile too; the README quotes that run);
//! `cargo test` runs a few seconds of it at concurrency 4 with small heavy requests as a smoke
//! test, which checks only what holds on any machine: no 500, no dropped connection, and the
//! half-open connections closed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../tests/suite/common.rs"]
mod common;

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kb(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn rss_mb(pid: u32) -> f64 {
    status_kb(pid, "VmRSS:") / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn start(root: &std::path::Path, data: &std::path::Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_grader"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .current_dir(root)
        .env("GRADER__DATA_DIR", data)
        .env("GRADER__LOG__LEVEL", "warn")
        // Short enough that the half-open phase does not wait long for them to be closed.
        .env("GRADER__SERVER__HEADER_READ_TIMEOUT_MS", "3000")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn grader serve");
    let server = Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let client = common::http();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !client
        .get(format!("http://{}/readyz", server.addr))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "grader serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
}

/// Six of a rubric's typical answers in one: ~50 sentences, inside every limit.
fn long_answer(typical: &[(String, String, String)], i: usize) -> (String, String, String) {
    let (id, q, a) = &typical[i % typical.len()];
    (
        id.clone(),
        q.clone(),
        vec![a.replace('\n', " "); 6].join("\n\n"),
    )
}

/// What one request of the mix is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    /// One grade of a typical answer.
    Light,
    /// A batch of long answers.
    Batch,
    /// A transcript of long answers, streamed.
    Transcript,
    /// Ad hoc grading against a long reference answer.
    AdHoc,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(full));
}

async fn run(full: bool) {
    let (concurrency, duration, heavy) = if full {
        (64, Duration::from_secs(45), 1)
    } else {
        (4, Duration::from_secs(3), 4)
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    common::data_dir_from_snapshot(data.path()).await;
    let catalog = common::catalog(common::Rubrics::Shipped);
    let typical: Vec<(String, String, String)> = catalog
        .iter()
        .filter_map(|r| {
            r.exemplars
                .iter()
                .find(|e| (50..120).contains(&e.answer.split_whitespace().count()))
                .map(|e| (r.id.clone(), r.question.clone(), e.answer.clone()))
        })
        .collect();
    let server = start(&root, data.path()).await;
    let pid = server.child.id();
    let base = format!("http://{}", server.addr);
    let rss_cold = rss_mb(pid);
    // Warm up: the model's pages are in, the allocator has its working set.
    let warm = common::http();
    for (id, _, a) in typical.iter().take(8) {
        let _ = warm
            .post(format!("{base}/v1/grade"))
            .json(&json!({"question_id": id, "answer": a}))
            .send()
            .await
            .unwrap()
            .bytes()
            .await;
    }
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_start = rss_mb(pid);

    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let stop = Instant::now() + duration;
    let seq = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(std::sync::Mutex::new(rss_start));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let r = rss_mb(pid);
                {
                    let mut p = peak.lock().unwrap();
                    *p = p.max(r);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let client = client.clone();
            let base = base.clone();
            let seq = seq.clone();
            let typical = typical.clone();
            tokio::spawn(async move {
                let long = |i: usize| long_answer(&typical, i);
                let mut out: Vec<(Kind, u16, Duration)> = Vec::new();
                while Instant::now() < stop {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    // One request in ten is heavy, of three kinds.
                    let kind = match n % 30 {
                        7 => Kind::Batch,
                        17 => Kind::Transcript,
                        27 => Kind::AdHoc,
                        _ => Kind::Light,
                    };
                    let req = match kind {
                        Kind::Light => {
                            let (id, _, a) = &typical[n % typical.len()];
                            client
                                .post(format!("{base}/v1/grade"))
                                .json(&json!({"question_id": id, "answer": a}))
                        }
                        Kind::Batch => {
                            let items: Vec<Value> = (0..16 / heavy)
                                .map(|i| {
                                    let (id, _, a) = long(n + i);
                                    json!({"question_id": id, "answer": a})
                                })
                                .collect();
                            client
                                .post(format!("{base}/v1/grade/batch"))
                                .json(&json!({ "items": items }))
                        }
                        Kind::Transcript => {
                            let mut t = String::new();
                            for i in 0..12 / heavy {
                                let (_, q, a) = long(n + i);
                                t.push_str(&format!(
                                    "Interviewer: {q}\nCandidate: {}\n",
                                    a.replace('\n', " ")
                                ));
                            }
                            client
                                .post(format!("{base}/v1/transcripts"))
                                .header("content-type", "text/plain")
                                .header("accept", "application/x-ndjson")
                                .body(t)
                        }
                        Kind::AdHoc => {
                            let (_, q, a) = long(n);
                            let (_, _, reference) = &typical[(n + 1) % typical.len()];
                            client.post(format!("{base}/v1/grade")).json(&json!({
                                "question": q,
                                "reference_answer": reference,
                                "answer": a,
                            }))
                        }
                    };
                    let t = Instant::now();
                    let status = match req.send().await {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            let _ = r.bytes().await;
                            s
                        }
                        Err(_) => 0,
                    };
                    out.push((kind, status, t.elapsed()));
                    if status == 503 {
                        // As a client honouring Retry-After would, only sooner.
                        tokio::time::sleep(Duration::from_millis(200 + (w as u64 % 7) * 50)).await;
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let wall = started.elapsed();
    drop(client);
    sampler.abort();
    // The connections are closed; give the server a moment to let go of them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_end = rss_mb(pid);
    let rss_peak = *peak.lock().unwrap();

    let mut counts: BTreeMap<(Kind, u16), usize> = BTreeMap::new();
    for (k, s, _) in &all {
        *counts.entry((*k, *s)).or_default() += 1;
    }
    let mut light: Vec<Duration> = all
        .iter()
        .filter(|(k, s, _)| *k == Kind::Light && *s == 200)
        .map(|(_, _, d)| *d)
        .collect();
    light.sort();
    let mut light_all: Vec<Duration> = all
        .iter()
        .filter(|(k, _, _)| *k == Kind::Light)
        .map(|(_, _, d)| *d)
        .collect();
    light_all.sort();
    let bad_5xx = all
        .iter()
        .filter(|(_, s, _)| (*s >= 500 && *s != 503) || *s == 0)
        .count();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "== soak: concurrency {concurrency}, {:.1} s, {} requests ({:.1}/s)",
        wall.as_secs_f64(),
        all.len(),
        all.len() as f64 / wall.as_secs_f64()
    );
    for ((k, s), n) in &counts {
        println!("  {k:?} {s}: {n}");
    }
    println!(
        "  light 200s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (all light incl. 503: p99 {:.0} ms)",
        ms(percentile(&light, 0.5)),
        ms(percentile(&light, 0.99)),
        ms(light.last().copied().unwrap_or_default()),
        ms(percentile(&light_all, 0.99)),
    );
    println!("  5xx other than 503 (and transport errors): {bad_5xx}");
    println!(
        "  server RSS: {rss_cold:.0} MB at ready, {rss_start:.0} MB warm (start), {rss_peak:.0} MB peak, {rss_end:.0} MB after the connections closed ({:+.1} % of start)",
        (rss_end - rss_start) / rss_start * 100.0
    );
    let (closed_all, rss_back) = half_open(&server, if full { 1000 } else { 200 }, rss_end).await;
    let p99 = percentile(&light, 0.99);
    let verdict = [
        ("no 5xx but 503", bad_5xx == 0),
        ("light p99 ≤ 1 s", p99 <= Duration::from_secs(1)),
        ("RSS within 10 % of start", rss_end <= rss_start * 1.10),
        ("half-open connections closed, /healthz served", closed_all),
        ("RSS back within 10 % after the half-open ones", rss_back),
    ];
    for (what, ok) in verdict {
        println!("  {}: {what}", if ok { "PASS" } else { "FAIL" });
    }
    if full {
        assert_eq!(bad_5xx, 0, "the soak saw 5xx responses other than 503");
    } else {
        let broken = all.iter().filter(|(_, s, _)| *s == 500 || *s == 0).count();
        assert_eq!(broken, 0, "500s or dropped connections in the smoke run");
        assert!(closed_all, "half-open connections were not all closed");
    }
}

/// Hold `n` half-open connections (half a request head each; fewer than
/// `server.max_connections`, beyond which new connections get a 503 by design): `/healthz`
/// must answer beside
/// them, the header-read timeout (3 s here) must close every one, and RSS must come back
/// within 10 % of `rss_before`. Says (all closed and `/healthz` served, RSS back).
async fn half_open(server: &Server, n: usize, rss_before: f64) -> (bool, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pid = server.child.id();
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut s) = tokio::net::TcpStream::connect(server.addr).await else {
            break;
        };
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        socks.push(s);
    }
    let opened = socks.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_held = rss_mb(pid);
    let client = common::http();
    let t = Instant::now();
    let health = client
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    let health_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Every one is closed by the server within the timeout (plus slack for the machine).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = 0;
    for s in &mut socks {
        let mut buf = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => {
                    closed += 1;
                    break;
                }
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
    }
    drop(socks);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_mb(pid);
    println!(
        "  half-open: {opened} held, RSS {rss_before:.0} MB before, {rss_held:.0} MB while held, {rss_after:.0} MB after ({:+.1} %); /healthz beside them {health} in {health_ms:.0} ms; {closed} of {opened} closed by the server",
        (rss_after - rss_before) / rss_before * 100.0
    );
    (
        health == 200 && closed == opened,
        rss_after <= rss_before * 1.10,
    )
}
