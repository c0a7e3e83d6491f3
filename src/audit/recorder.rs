//! Writing grades without ever holding one up: `record` hands the record to a bounded queue and
//! returns; one background task writes what has queued up in a transaction. When the store
//! fails, the batch waits in a bounded retry queue (oldest dropped first, every loss counted)
//! and is written when the store is back. `close` drains both queues before shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::record::GradeRecord;
use super::store::{AuditStore, Write};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Grades written.
    pub written: AtomicU64,
    /// Failed write attempts (each retried later).
    pub write_errors: AtomicU64,
    /// Grades given up on: the queues were full, or shutdown came before the store did.
    pub dropped: AtomicU64,
    /// Grades waiting to be written (queued or awaiting a retry).
    pub queued: AtomicU64,
}

enum Job {
    Write(Write),
    /// Reply once everything sent before it is written or waiting for a retry.
    Flush(oneshot::Sender<()>),
    /// Write everything (retrying until the deadline), reply with what is left, stop.
    Close(tokio::time::Instant, oneshot::Sender<usize>),
}

/// Writes sent per transaction at most: large enough to amortise the commit, small enough that
/// one failure does not send thousands of grades into the retry queue at once.
const BATCH: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The write path: cheap to call from any task.
pub struct Recorder {
    tx: mpsc::Sender<Job>,
    stats: Arc<AuditStats>,
    /// Grades not yet written, so `GET /v1/grades/{id}` finds a grade the moment it is returned.
    pending: Arc<Mutex<HashMap<String, Arc<GradeRecord>>>>,
}

impl Recorder {
    /// Start the writer over `store`. `capacity` bounds both the queue and the retry queue.
    pub fn start(store: Arc<AuditStore>, capacity: usize) -> Recorder {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(AuditStats::default());
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let worker = Worker {
            store,
            rx,
            retry: VecDeque::new(),
            retry_cap: capacity,
            stats: stats.clone(),
            pending: pending.clone(),
            backoff: FIRST_BACKOFF,
        };
        tokio::spawn(worker.run());
        Recorder { tx, stats, pending }
    }

    pub fn stats(&self) -> &AuditStats {
        &self.stats
    }

    /// Queue a write; never waits. When the queue is full the write is dropped and counted.
    pub fn record(&self, w: Write) {
        let n = w.grades() as u64;
        let records: Vec<Arc<GradeRecord>> = match &w {
            Write::Grade(g) => vec![Arc::new((**g).clone())],
            Write::Transcript(t) => t.pairs.iter().cloned().map(Arc::new).collect(),
        };
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for r in &records {
                p.insert(r.id().to_string(), r.clone());
            }
        }
        self.stats.queued.fetch_add(n, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(Job::Write(w)) {
            self.stats.queued.fetch_sub(n, Ordering::Relaxed);
            self.stats.dropped.fetch_add(n, Ordering::Relaxed);
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for r in &records {
                p.remove(&r.id().to_string());
            }
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the write queue is full",
                mpsc::error::TrySendError::Closed(_) => "the store is closed",
            };
            tracing::error!(grades = n, why, "grade not stored");
        }
    }

    /// A grade still waiting to be written.
    pub fn pending(&self, id: &str) -> Option<Arc<GradeRecord>> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Wait until everything recorded so far is written or waiting for a retry.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Write everything still queued, retrying until `within` has passed, then stop. Returns
    /// how many grades could not be written (also counted as dropped).
    pub async fn close(&self, within: Duration) -> usize {
        let (tx, rx) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + within;
        if self.tx.send(Job::Close(deadline, tx)).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}

struct Worker {
    store: Arc<AuditStore>,
    rx: mpsc::Receiver<Job>,
    retry: VecDeque<Write>,
    retry_cap: usize,
    stats: Arc<AuditStats>,
    pending: Arc<Mutex<HashMap<String, Arc<GradeRecord>>>>,
    backoff: Duration,
}

impl Worker {
    async fn run(mut self) {
        loop {
            let job = if self.retry.is_empty() {
                self.rx.recv().await
            } else {
                match tokio::time::timeout(self.backoff, self.rx.recv()).await {
                    Ok(j) => j,
                    Err(_) => {
                        self.attempt(Vec::new()).await;
                        continue;
                    }
                }
            };
            let Some(job) = job else {
                // Every sender is gone: write what is left once.
                self.attempt(Vec::new()).await;
                return;
            };
            let mut batch = Vec::new();
            let mut acks = Vec::new();
            let mut close = None;
            let mut next = Some(job);
            while let Some(j) = next.take() {
                match j {
                    Job::Write(w) => batch.push(w),
                    Job::Flush(ack) => acks.push(ack),
                    Job::Close(deadline, ack) => {
                        close = Some((deadline, ack));
                        break;
                    }
                }
                if batch.len() < BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
            self.attempt(batch).await;
            for ack in acks {
                let _ = ack.send(());
            }
            if let Some((deadline, ack)) = close {
                let left = self.drain(deadline).await;
                let _ = ack.send(left);
                return;
            }
        }
    }

    /// Try the retry queue and then `batch`; whatever fails waits for the next attempt.
    async fn attempt(&mut self, batch: Vec<Write>) {
        let mut todo: Vec<Write> = self.retry.drain(..).collect();
        let retrying = !todo.is_empty();
        todo.extend(batch);
        if todo.is_empty() {
            return;
        }
        let mut failed: Vec<Write> = Vec::new();
        for chunk in todo.chunks(BATCH) {
            if !failed.is_empty() {
                // The store just failed: do not hammer it, queue the rest for the retry.
                failed.extend_from_slice(chunk);
                continue;
            }
            match self.store.write(chunk).await {
                Ok(()) => self.done(chunk),
                Err(e) => {
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    let grades: usize = chunk.iter().map(Write::grades).sum();
                    tracing::warn!(error = %e, grades, backoff_ms = self.backoff.as_millis() as u64, "audit store write failed; will retry");
                    failed.extend_from_slice(chunk);
                }
            }
        }
        if failed.is_empty() {
            if retrying {
                tracing::info!("audit store is writable again; retried grades are stored");
            }
            self.backoff = FIRST_BACKOFF;
            return;
        }
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        let mut queued: usize = failed.iter().map(Write::grades).sum();
        self.retry.extend(failed);
        // Bounded: the oldest go first.
        while queued > self.retry_cap {
            let Some(w) = self.retry.pop_front() else {
                break;
            };
            queued -= w.grades();
            self.lost(&w);
            tracing::error!(
                grades = w.grades(),
                "audit retry queue is full; oldest grades dropped"
            );
        }
    }

    fn ids(w: &Write) -> Vec<String> {
        match w {
            Write::Grade(g) => vec![g.id().to_string()],
            Write::Transcript(t) => t.pairs.iter().map(|p| p.id().to_string()).collect(),
        }
    }

    fn done(&self, chunk: &[Write]) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for w in chunk {
            let n = w.grades() as u64;
            self.stats.written.fetch_add(n, Ordering::Relaxed);
            self.stats.queued.fetch_sub(n, Ordering::Relaxed);
            for id in Self::ids(w) {
                p.remove(&id);
            }
        }
    }

    fn lost(&self, w: &Write) {
        let n = w.grades() as u64;
        self.stats.dropped.fetch_add(n, Ordering::Relaxed);
        self.stats.queued.fetch_sub(n, Ordering::Relaxed);
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for id in Self::ids(w) {
            p.remove(&id);
        }
    }

    /// Shutdown: take everything still in the channel, then retry until written or `deadline`.
    async fn drain(&mut self, deadline: tokio::time::Instant) -> usize {
        self.rx.close();
        let mut batch = Vec::new();
        while let Ok(j) = self.rx.try_recv() {
            match j {
                Job::Write(w) => batch.push(w),
                Job::Flush(ack) => {
                    let _ = ack.send(());
                }
                Job::Close(_, ack) => {
                    let _ = ack.send(0);
                }
            }
        }
        self.attempt(batch).await;
        while !self.retry.is_empty() && tokio::time::Instant::now() + self.backoff < deadline {
            tokio::time::sleep(self.backoff).await;
            self.attempt(Vec::new()).await;
        }
        let left: Vec<Write> = self.retry.drain(..).collect();
        let n = left.iter().map(Write::grades).sum();
        for w in &left {
            self.lost(w);
        }
        if n > 0 {
            tracing::error!(
                grades = n,
                "shutting down with grades the audit store did not take"
            );
        }
        n
    }
}
