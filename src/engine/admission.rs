//! Admission control and fair embedding: a bounded queue of grades in front of the embedder and
//! the judges, and a scheduler that keeps one heavy request from holding the embedder.
//!
//! A request that creates work asks [`Admission::try_admit`] for as many places as it has
//! grades (a batch one per item, a transcript one per question, capped at the whole queue).
//! When the queue is full the answer is [`Overloaded`] at once (the service's 503 with
//! `Retry-After`), never a wait that ends in a timeout. An admitted request runs its work inside
//! [`Admitted::run`], which tags every embedding call it makes with the request's [`Ticket`].
//!
//! [`Fair`] wraps the engine's embedder. Calls made under a ticket are cut into chunks of
//! [`CHUNK`] texts and queued; light chunks go to the embedder least-served ticket first, then
//! heavy ones in their requests' admission order.
//! A ticket of one grade that has asked for fewer than [`FRESH`] texts (a light request, or the
//! start of a long answer; counted when queued; a batch or a transcript is never light) shares
//! the embedder with other light work, up to [`BUDGET`] texts at once; the rest runs one chunk
//! at a time: on an embedder of two or more workers always (it takes one worker, light work has
//! the others), on one worker when no light request is running, or beside light work once it
//! has waited [`MAX_WAIT`]. So a light request waits for at most one chunk of a heavy one, and
//! heavy ones still make progress under a stream of light ones, the oldest first (a batch
//! admitted before a stream of transcripts is not starved by them).
//!
//! The queue is also full when the machine is behind: when a light chunk has waited longer than
//! `limits.max_queue_delay_ms`, or the light work already admitted would take longer than that
//! at the worker's measured rate, new requests are refused (the same 503).
//!
//! Dropping a call's future drops its chunks that have not been sent: the work of a request
//! that timed out or whose client went away stops within one chunk.
//!
//! The file is long because the admission and the scheduler share one queue, and their tests
//! drive that queue directly.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::embed::{EmbedError, Embedder};

/// Texts per embedding call sent to the worker under a ticket: one chunk is what a light
/// request may have to wait for, so it is about one light grade's worth (a typical answer has
/// 5 to 10 sentences); 16 let a light grade take 3.7 times as long beside a heavy batch.
pub const CHUNK: usize = 8;
/// Texts a ticket may have embedded and still count as light: one grade of a typical answer
/// (its sentences, plus the question when it is matched).
pub const FRESH: u64 = 32;
/// Texts in the worker at once from fresh tickets: enough for efficient forward passes under
/// concurrent light load, small enough that a chunk sent to the worker waits at most a short
/// round (the wait the admission control sees is the wait before that).
pub const BUDGET: usize = 64;
/// A heavy ticket's chunk that has waited this long joins the next round (no starvation). The
/// worker answers a round as a whole, so a light chunk in a round with a heavy one waits for
/// both: heavy work should mostly fill the gaps between light work, not join it.
pub const MAX_WAIT: Duration = Duration::from_secs(2);
/// Texts per chunk of heavy work: long answers' sentences, so fewer than [`CHUNK`] make about
/// one light grade's worth of model time (what a light request may wait for).
pub const HEAVY_CHUNK: usize = 4;

/// One request's share of the embedder: how many texts it has asked for, and whether it can
/// be light at all (a request of several grades, a batch or a transcript, never is).
#[derive(Debug, Default)]
pub struct Ticket {
    served: AtomicU64,
    several: bool,
    /// Admission order: heavy chunks go first come, first served, so a large batch finishes
    /// within its client's patience however many heavy requests arrive after it.
    seq: u64,
}

/// Heavy chunks sort after every light one, by their request's admission order.
const HEAVY_KEY: u64 = 1 << 62;

tokio::task_local! {
    static TICKET: Arc<Ticket>;
}

/// The service is full: retry after `retry_after_secs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Overloaded {
    pub capacity: usize,
    pub in_use: usize,
    pub wanted: usize,
    /// Set when the embedder's queue is too slow (rather than the queue too full): how long
    /// light work waits now, in ms.
    pub delay_ms: Option<u64>,
    pub max_delay_ms: u64,
    pub retry_after_secs: u64,
}

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.delay_ms {
            Some(ms) => write!(
                f,
                "the service is at capacity: embedding work waits {ms} ms, more than limits.max_queue_delay_ms ({})",
                self.max_delay_ms
            )?,
            None => write!(
                f,
                "the service is at capacity: {} of {} grades admitted (limits.max_queued_grades) and this request needs {}",
                self.in_use, self.capacity, self.wanted
            )?,
        }
        write!(f, "; retry in {} s", self.retry_after_secs)
    }
}

impl std::error::Error for Overloaded {}

/// How full the queue is (readiness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Load {
    /// `limits.max_queued_grades`.
    pub capacity: usize,
    /// Grades admitted now (running or waiting).
    pub admitted: usize,
    /// How long light embedding work waits now (ms).
    pub queue_delay_ms: u64,
    /// `limits.max_queue_delay_ms`.
    pub max_queue_delay_ms: u64,
}

impl Load {
    /// No room for another grade, or work waits too long to take more.
    pub fn saturated(&self) -> bool {
        self.admitted >= self.capacity || self.queue_delay_ms > self.max_queue_delay_ms
    }
}

/// The bounded queue of grades, and the embedder's queue it watches: a request is refused when
/// all places are taken, or when light embedding work already waits longer than
/// `limits.max_queue_delay_ms` (the places are not all taken, but the machine is behind: more
/// work would only wait into a 504).
pub struct Admission {
    capacity: usize,
    places: Arc<Semaphore>,
    retry_after_secs: u64,
    max_delay: Duration,
    queue: Arc<Mutex<Queue>>,
    /// Requests admitted so far (each ticket's `seq`).
    admitted: AtomicU64,
}

/// An admitted request: holds its places until dropped.
pub struct Admitted {
    _places: OwnedSemaphorePermit,
    ticket: Arc<Ticket>,
    /// Counts this request until dropped: in `several_alive` when it has several grades (its
    /// ticket says), else in `light_alive`.
    queue: Arc<Mutex<Queue>>,
}

/// Requests of several grades (batches, transcripts) admitted at once. Their embedding runs one
/// chunk at a time in admission order, so each one admitted beyond this would only wait
/// behind the others, past its client's patience; it gets the 503 at once instead.
pub const MAX_SEVERAL: usize = 4;

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut q = self.queue.lock().expect("embed queue");
        if self.ticket.several {
            q.several_alive -= 1;
        } else {
            q.light_alive -= 1;
            q.dispatch();
        }
    }
}

impl Admission {
    pub fn new(capacity: usize, retry_after_secs: u64, max_delay: Duration) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            capacity,
            places: Arc::new(Semaphore::new(capacity)),
            retry_after_secs,
            max_delay,
            queue: Arc::new(Mutex::new(Queue::default())),
            admitted: AtomicU64::new(0),
        }
    }

    /// The embedder, scheduled fairly between the requests this admits (and watched by it).
    pub fn fair(&self, inner: Arc<dyn Embedder>) -> Fair {
        self.queue.lock().expect("embed queue").workers = inner.parallelism();
        Fair {
            inner,
            queue: self.queue.clone(),
        }
    }

    /// Admit a request of `grades` grades now, or say the service is full. A request larger
    /// than the queue takes all of it (it runs alone rather than never).
    pub fn try_admit(&self, grades: usize) -> Result<Admitted, Overloaded> {
        let wanted = grades.clamp(1, self.capacity);
        let overloaded = |delay_ms| Overloaded {
            capacity: self.capacity,
            in_use: self.load().admitted,
            wanted,
            delay_ms,
            max_delay_ms: self.max_delay.as_millis() as u64,
            retry_after_secs: self.retry_after_secs,
        };
        let delay = self.delay();
        if delay > self.max_delay {
            return Err(overloaded(Some(delay.as_millis() as u64)));
        }
        let places = self
            .places
            .clone()
            .try_acquire_many_owned(wanted as u32)
            .map_err(|_| overloaded(None))?;
        let several = grades > 1;
        {
            let mut q = self.queue.lock().expect("embed queue");
            if !several {
                q.light_alive += 1;
            } else if q.several_alive < MAX_SEVERAL {
                q.several_alive += 1;
            } else {
                // The error reports the places in use: this request's are given back first,
                // and the queue's lock, which `load` takes.
                drop(q);
                drop(places);
                return Err(overloaded(None));
            }
        }
        Ok(Admitted {
            _places: places,
            ticket: Arc::new(Ticket {
                served: AtomicU64::new(0),
                several,
                seq: self.admitted.fetch_add(1, Ordering::Relaxed),
            }),
            queue: self.queue.clone(),
        })
    }

    /// The wait light work sees now, or will see once what is admitted has queued.
    fn delay(&self) -> Duration {
        let q = self.queue.lock().expect("embed queue");
        q.delay(Instant::now()).max(q.expected_wait())
    }

    pub fn load(&self) -> Load {
        Load {
            capacity: self.capacity,
            admitted: self.capacity - self.places.available_permits().min(self.capacity),
            queue_delay_ms: self.delay().as_millis() as u64,
            max_queue_delay_ms: self.max_delay.as_millis() as u64,
        }
    }
}

/// Busy time the worker's rate is measured over, per sample.
const RATE_SAMPLE: Duration = Duration::from_millis(250);

impl Admitted {
    /// Run this request's work: its embedding calls are scheduled under its ticket.
    pub async fn run<F: std::future::Future>(&self, work: F) -> F::Output {
        TICKET.scope(self.ticket.clone(), work).await
    }
}

/// The ticket of the request being run, if any (CLI work has none and is not scheduled).
fn current_ticket() -> Option<Arc<Ticket>> {
    TICKET.try_with(Arc::clone).ok()
}

/// A chunk waiting for the worker.
struct Waiter {
    texts: usize,
    fresh: bool,
    since: Instant,
    go: oneshot::Sender<()>,
}

#[derive(Default)]
struct Queue {
    /// Texts sent to the worker and not yet answered.
    in_flight: usize,
    /// Of those, texts of light (fresh) chunks.
    light_in_flight: usize,
    /// Of those, chunks of heavy tickets (at most one).
    heavy_in_flight: usize,
    /// Light: by (texts the ticket had been served when it queued, arrival), least served
    /// first; heavy: by ([`HEAVY_KEY`] + admission order, arrival), after every light chunk.
    waiting: BTreeMap<(u64, u64), Waiter>,
    arrivals: u64,
    /// Light requests admitted and not finished: the work about to queue.
    light_alive: usize,
    /// Requests of several grades admitted and not finished (at most [`MAX_SEVERAL`]).
    several_alive: usize,
    /// Forward passes the embedder runs side by side: with two or more, one heavy chunk
    /// always may run (on one worker) while light work has the others.
    workers: usize,
    /// Light texts the worker answers per second while it has light work (a moving average),
    /// and what is gathered for the next sample. Light work only: the wait it predicts is
    /// light work's, and heavy work runs one chunk at a time on one worker, so a rate measured
    /// during a burst of batches (half the machine on two workers) made light requests at
    /// concurrency 8 look 600 ms behind and refused them long after the batches had ended.
    rate: Option<f64>,
    sample_texts: usize,
    sample_busy: Duration,
    last_event: Option<Instant>,
}

impl Queue {
    /// Count the time since the last event as busy if anything was in flight.
    fn tick(&mut self, now: Instant) {
        if let Some(last) = self.last_event
            && self.light_in_flight > 0
        {
            self.sample_busy += now.saturating_duration_since(last);
        }
        self.last_event = Some(now);
    }

    /// A light chunk of `texts` was answered (after [`Queue::tick`]): fold it into the rate
    /// once a sample is long enough.
    fn answered(&mut self, texts: usize) {
        self.sample_texts += texts;
        if self.sample_busy >= RATE_SAMPLE {
            let sample = self.sample_texts as f64 / self.sample_busy.as_secs_f64();
            self.rate = Some(self.rate.map_or(sample, |r| 0.7 * r + 0.3 * sample));
            self.sample_texts = 0;
            self.sample_busy = Duration::ZERO;
        }
    }

    /// How long a new light request would wait for the light work admitted before it (about
    /// [`CHUNK`] texts each) and the heavy chunk in progress, at the measured rate. A burst of
    /// admissions raises it before any of them has queued, which the observed delay cannot.
    fn expected_wait(&self) -> Duration {
        let Some(rate) = self.rate.filter(|r| *r > 0.0) else {
            return Duration::ZERO;
        };
        // Only the work ahead: with nothing ahead a request is always admitted (refusing it
        // would not make it faster, and its work keeps the rate measured).
        let ahead = (self.light_alive + self.heavy_in_flight) * CHUNK;
        Duration::from_secs_f64(ahead as f64 / rate)
    }

    /// How long light work waits now: the oldest light chunk still waiting. Heavy chunks wait
    /// by design and do not count.
    fn delay(&self, now: Instant) -> Duration {
        self.waiting
            .values()
            // A waiter whose caller went away is not waiting for anything.
            .filter(|w| w.fresh && !w.go.is_closed())
            .map(|w| now.saturating_duration_since(w.since))
            .max()
            .unwrap_or_default()
    }

    /// Send every waiting chunk that may go now.
    fn dispatch(&mut self) {
        let now = Instant::now();
        self.tick(now);
        let keys: Vec<(u64, u64)> = self.waiting.keys().copied().collect();
        for key in keys {
            let w = &self.waiting[&key];
            if w.go.is_closed() {
                // Its caller went away while it waited.
                self.waiting.remove(&key);
                continue;
            }
            let fits = self.in_flight + w.texts <= BUDGET;
            let may = if w.fresh {
                self.in_flight == 0 || fits
            } else {
                let aged = now.duration_since(w.since) >= MAX_WAIT;
                // Not while a light request is between its embedding calls either: its CPU work
                // would share the cores with the heavy chunk.
                self.heavy_in_flight == 0
                    && (self.workers >= 2
                        || (self.in_flight == 0 && self.light_alive == 0)
                        || (aged && fits))
            };
            if !may {
                continue;
            }
            let w = self.waiting.remove(&key).expect("present");
            if w.go.send(()).is_ok() {
                self.in_flight += w.texts;
                if w.fresh {
                    self.light_in_flight += w.texts;
                } else {
                    self.heavy_in_flight += 1;
                }
            }
        }
    }
}

/// The engine's embedder, scheduled fairly between tickets (see the module doc). Calls without
/// a ticket go straight to the inner embedder.
///
/// Every [`Embedder`] method is forwarded; a method added to the trait must be forwarded here
/// too (scheduled if it runs the model), or it would fall back to the trait's default.
pub struct Fair {
    inner: Arc<dyn Embedder>,
    queue: Arc<Mutex<Queue>>,
}

/// Texts in flight, released when the chunk's call ends (answered, failed or dropped).
struct Slot {
    queue: Arc<Mutex<Queue>>,
    texts: usize,
    heavy: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut q = self.queue.lock().expect("embed queue");
        let now = Instant::now();
        q.tick(now);
        if self.heavy {
            q.heavy_in_flight -= 1;
        } else {
            q.answered(self.texts);
            q.light_in_flight -= self.texts;
        }
        q.in_flight -= self.texts;
        q.dispatch();
    }
}

impl Fair {
    /// Wait for the chunk's turn; the slot frees its texts when dropped.
    async fn turn(&self, ticket: &Ticket, texts: usize) -> Slot {
        let served = ticket.served.fetch_add(texts as u64, Ordering::Relaxed);
        let fresh = !ticket.several && served < FRESH;
        let (go, ready) = oneshot::channel();
        {
            let mut q = self.queue.lock().expect("embed queue");
            q.arrivals += 1;
            let key = if fresh {
                (served, q.arrivals)
            } else {
                (HEAVY_KEY + ticket.seq, q.arrivals)
            };
            q.waiting.insert(
                key,
                Waiter {
                    texts,
                    fresh,
                    since: Instant::now(),
                    go,
                },
            );
            q.dispatch();
        }
        let mut waiting = Waiting {
            queue: self.queue.clone(),
            ready: Some(ready),
            texts,
            heavy: !fresh,
        };
        loop {
            let ready = waiting
                .ready
                .as_mut()
                .expect("present until the turn comes");
            tokio::select! {
                r = ready => {
                    waiting.ready = None;
                    // The sender is dropped unsent only when this receiver is gone, so `r` is
                    // Ok; were it not, the texts were never counted in flight.
                    return if r.is_ok() {
                        Slot { queue: self.queue.clone(), texts, heavy: !fresh }
                    } else {
                        Slot { queue: self.queue.clone(), texts: 0, heavy: false }
                    };
                }
                // A waiting heavy chunk ages into the next round even if nothing finishes.
                _ = tokio::time::sleep(MAX_WAIT) => {
                    self.queue.lock().expect("embed queue").dispatch();
                }
            }
        }
    }
}

/// A chunk waiting for its turn. If its caller goes away (a timeout, a client gone) just after
/// the turn was given (the `go` sent, not yet received), the texts counted in flight for it are
/// taken back here; otherwise they would stay counted forever and block heavy work.
struct Waiting {
    queue: Arc<Mutex<Queue>>,
    ready: Option<oneshot::Receiver<()>>,
    texts: usize,
    heavy: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut ready) = self.ready.take() else {
            return;
        };
        // Under the lock `dispatch` sends under: after `close`, no turn can be given, and a
        // turn given before is in the channel.
        let mut q = self.queue.lock().expect("embed queue");
        ready.close();
        if ready.try_recv().is_ok() {
            q.tick(Instant::now());
            q.in_flight -= self.texts;
            if self.heavy {
                q.heavy_in_flight -= 1;
            } else {
                q.light_in_flight -= self.texts;
            }
            q.dispatch();
        }
    }
}

impl Embedder for Fair {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn parallelism(&self) -> usize {
        self.inner.parallelism()
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        let Some(ticket) = current_ticket() else {
            return self.inner.embed(texts);
        };
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len());
            let mut rest = texts;
            while !rest.is_empty() {
                let heavy = ticket.several || ticket.served.load(Ordering::Relaxed) >= FRESH;
                let (chunk, tail) =
                    rest.split_at(rest.len().min(if heavy { HEAVY_CHUNK } else { CHUNK }));
                rest = tail;
                let slot = self.turn(&ticket, chunk.len()).await;
                let vectors = self.inner.embed(chunk).await;
                drop(slot);
                out.extend(vectors?);
            }
            Ok(out)
        })
    }

    /// Pairs take their turn like texts (one pass each, few per grade: a rubric's references).
    fn read_pairs<'a>(
        &'a self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Option<Vec<[f32; 3]>>, EmbedError>> {
        let Some(ticket) = current_ticket() else {
            return self.inner.read_pairs(pairs);
        };
        Box::pin(async move {
            let slot = self.turn(&ticket, pairs.len()).await;
            let levels = self.inner.read_pairs(pairs).await;
            drop(slot);
            levels
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(texts: usize, fresh: bool, age: Duration) -> (Waiter, oneshot::Receiver<()>) {
        let (go, rx) = oneshot::channel();
        let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        (
            Waiter {
                texts,
                fresh,
                since,
                go,
            },
            rx,
        )
    }

    /// A light chunk goes before a heavy request's next chunk and does not share its round;
    /// fresh chunks share a round up to the budget; an aged heavy chunk joins.
    #[test]
    fn dispatch_puts_light_work_first() {
        // A heavy request's chunk is running.
        let mut q = Queue {
            in_flight: CHUNK,
            heavy_in_flight: 1,
            ..Queue::default()
        };
        let (heavy, mut heavy_rx) = waiter(CHUNK, false, Duration::ZERO);
        let (light, mut light_rx) = waiter(8, true, Duration::ZERO);
        q.waiting.insert((64, 1), heavy);
        q.waiting.insert((0, 2), light);
        q.dispatch();
        assert!(
            light_rx.try_recv().is_ok(),
            "light goes while a heavy chunk runs"
        );
        assert!(heavy_rx.try_recv().is_err(), "the heavy chunk waits");
        assert_eq!(q.in_flight, CHUNK + 8);
        // Nothing in flight: the heavy chunk goes.
        q.in_flight = 0;
        q.heavy_in_flight = 0;
        q.dispatch();
        assert!(heavy_rx.try_recv().is_ok());
        // Fresh work fills the budget, and no more.
        let mut q = Queue::default();
        let mut rxs = Vec::new();
        for i in 0..(BUDGET / CHUNK + 2) {
            let (w, rx) = waiter(CHUNK, true, Duration::ZERO);
            q.waiting.insert((0, i as u64), w);
            rxs.push(rx);
        }
        q.dispatch();
        let sent = rxs.iter_mut().filter_map(|r| r.try_recv().ok()).count();
        assert_eq!(sent, BUDGET / CHUNK);
        // A heavy chunk that waited long enough joins a busy round, one at a time.
        let mut q = Queue {
            in_flight: 8,
            ..Queue::default()
        };
        let (old, mut old_rx) = waiter(CHUNK, false, MAX_WAIT);
        let (older, mut older_rx) = waiter(CHUNK, false, MAX_WAIT * 2);
        q.waiting.insert((500, 1), old);
        q.waiting.insert((400, 2), older);
        q.dispatch();
        assert!(older_rx.try_recv().is_ok(), "the least served goes");
        assert!(old_rx.try_recv().is_err(), "one heavy chunk at a time");
        assert_eq!((q.in_flight, q.heavy_in_flight), (8 + CHUNK, 1));
        // With two workers one heavy chunk runs beside light work at once (it has a worker to
        // itself), still one at a time.
        let mut q = Queue {
            in_flight: 8,
            light_alive: 3,
            workers: 2,
            ..Queue::default()
        };
        let (first, mut first_rx) = waiter(CHUNK, false, Duration::ZERO);
        let (second, mut second_rx) = waiter(CHUNK, false, Duration::ZERO);
        q.waiting.insert((100, 1), first);
        q.waiting.insert((200, 2), second);
        q.dispatch();
        assert!(
            first_rx.try_recv().is_ok(),
            "a heavy chunk goes beside light work"
        );
        assert!(second_rx.try_recv().is_err(), "one heavy chunk at a time");
        // A waiter whose caller went away is dropped, not sent.
        let mut q = Queue {
            in_flight: 8,
            ..Queue::default()
        };
        let (gone, rx) = waiter(8, true, Duration::ZERO);
        drop(rx);
        q.waiting.insert((0, 1), gone);
        q.dispatch();
        assert!(q.waiting.is_empty());
        assert_eq!(q.in_flight, 8);
    }

    /// An embedder that takes 40 ms a call and records each call's first text.
    #[derive(Default)]
    struct Slow {
        calls: Mutex<Vec<String>>,
    }

    impl Embedder for Slow {
        fn dim(&self) -> usize {
            2
        }
        fn model_id(&self) -> &str {
            "slow"
        }
        fn embed<'a>(
            &'a self,
            texts: &'a [String],
        ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
            Box::pin(async move {
                self.calls.lock().unwrap().push(texts[0].clone());
                tokio::time::sleep(Duration::from_millis(40)).await;
                Ok(vec![vec![1.0, 0.0]; texts.len()])
            })
        }
    }

    /// A light request's call goes to the embedder right after the heavy chunk in progress,
    /// and dropping the heavy call (a timeout, a client gone) stops its remaining chunks.
    #[tokio::test]
    async fn light_work_goes_first_and_dropped_work_stops() {
        let slow = Arc::new(Slow::default());
        let admission = Admission::new(8, 1, Duration::from_secs(60));
        let fair = Arc::new(admission.fair(slow.clone()));
        let heavy_texts = vec!["heavy".to_string(); CHUNK * 10];
        let heavy = {
            let fair = fair.clone();
            let admitted = admission.try_admit(1).unwrap();
            tokio::spawn(async move { admitted.run(fair.embed(&heavy_texts)).await.unwrap().len() })
        };
        tokio::time::sleep(Duration::from_millis(60)).await;
        let light = admission.try_admit(1).unwrap();
        let t = Instant::now();
        let v = light.run(fair.embed(&["light".to_string()])).await.unwrap();
        assert_eq!(v.len(), 1);
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        let order = slow.calls.lock().unwrap().clone();
        let at = order.iter().position(|c| c == "light").unwrap();
        assert!(at <= 3, "light was call {at}: {order:?}");
        // Drop the heavy call (as a timeout would): its remaining chunks never run.
        heavy.abort();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let heavy_calls = slow
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "heavy")
            .count();
        let chunks = FRESH as usize / CHUNK + (CHUNK * 10 - FRESH as usize) / HEAVY_CHUNK;
        assert!(heavy_calls < chunks, "{heavy_calls} of {chunks} chunks ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = slow
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "heavy")
            .count();
        assert_eq!(after, heavy_calls, "nothing runs after the call is dropped");
        // Without a ticket (CLI work) a call goes straight through, whole.
        let n = slow.calls.lock().unwrap().len();
        fair.embed(&vec!["cli".to_string(); CHUNK * 3])
            .await
            .unwrap();
        assert_eq!(slow.calls.lock().unwrap().len(), n + 1);
    }

    /// A caller that leaves just after its turn was given (sent, not yet received) gives the
    /// turn back: nothing stays counted in flight to block later heavy work.
    #[tokio::test]
    async fn a_turn_given_to_a_caller_that_left_is_taken_back() {
        let fair = Admission::new(8, 1, Duration::from_secs(60)).fair(Arc::new(Slow::default()));
        let heavy = Ticket {
            served: AtomicU64::new(FRESH),
            several: false,
            seq: 0,
        };
        let first = fair.turn(&heavy, CHUNK).await;
        let mut second = Box::pin(fair.turn(&heavy, CHUNK));
        assert!(
            futures::poll!(second.as_mut()).is_pending(),
            "one heavy chunk at a time"
        );
        drop(first); // the second chunk's turn is given…
        drop(second); // …and its caller is gone before it sees it.
        let q = fair.queue.lock().unwrap();
        assert_eq!((q.in_flight, q.heavy_in_flight), (0, 0));
        assert!(q.waiting.is_empty());
    }

    #[test]
    fn admission_is_bounded_and_released() {
        let a = Admission::new(4, 2, Duration::from_secs(60));
        let first = a.try_admit(3).unwrap();
        assert_eq!(a.load().admitted, 3);
        let err = a.try_admit(2).err().unwrap();
        assert_eq!((err.in_use, err.wanted, err.retry_after_secs), (3, 2, 2));
        let second = a.try_admit(1).unwrap();
        assert!(a.load().saturated());
        drop(first);
        drop(second);
        assert_eq!(a.load().admitted, 0);
        // Larger than the queue: takes all of it.
        let all = a.try_admit(100).unwrap();
        assert!(a.load().saturated());
        drop(all);
        // Requests of several grades: at most MAX_SEVERAL at once, whatever places are free.
        let a = Admission::new(1000, 2, Duration::from_secs(60));
        let batches: Vec<Admitted> = (0..MAX_SEVERAL).map(|_| a.try_admit(2).unwrap()).collect();
        assert!(a.try_admit(2).is_err(), "one batch too many");
        assert!(a.try_admit(1).is_ok(), "a single grade still goes");
        drop(batches);
        assert!(a.try_admit(2).is_ok(), "places given back");
    }

    /// The rate that predicts light work's wait is measured on light work only: a burst of
    /// batches (one heavy chunk at a time, on one worker) does not lower it.
    #[test]
    fn heavy_work_does_not_set_the_light_rate() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.tick(t0);
        q.in_flight = 8;
        q.heavy_in_flight = 1;
        q.tick(t0 + Duration::from_millis(400));
        q.in_flight = 0;
        q.heavy_in_flight = 0;
        assert_eq!(q.rate, None);
        assert_eq!(q.sample_busy, Duration::ZERO);
        q.in_flight = 8;
        q.light_in_flight = 8;
        q.tick(t0 + Duration::from_millis(700));
        q.answered(8);
        let rate = q.rate.expect("a 300 ms sample");
        assert!((rate - 8.0 / 0.3).abs() < 0.5, "{rate}");
    }

    /// Places free but light work already waiting too long, or about to: refused at once, and
    /// readiness says saturated.
    #[test]
    fn a_slow_embedder_queue_refuses_new_work() {
        let a = Admission::new(100, 3, Duration::from_millis(1000));
        assert!(a.try_admit(1).is_ok());
        let (old, _rx) = waiter(8, true, Duration::from_millis(1500));
        a.queue.lock().unwrap().waiting.insert((0, 1), old);
        let err = a.try_admit(1).err().expect("refused");
        assert!(err.delay_ms.is_some_and(|ms| ms >= 1500), "{err:?}");
        assert!(
            err.to_string().contains("limits.max_queue_delay_ms"),
            "{err}"
        );
        assert!(a.load().saturated());
        // A caller that went away does not count.
        drop(_rx);
        assert_eq!(a.delay(), Duration::ZERO);
        // Heavy chunks wait by design: they do not count.
        let mut q = a.queue.lock().unwrap();
        q.waiting.clear();
        let (heavy, _hrx) = waiter(8, false, Duration::from_secs(5));
        q.waiting.insert((64, 2), heavy);
        assert_eq!(q.delay(Instant::now()), Duration::ZERO);
        q.waiting.clear();
        drop(q);
        // A burst: at 35 texts a second, five light requests admitted are more than a second of
        // work before any has queued; the sixth is refused.
        a.queue.lock().unwrap().rate = Some(35.0);
        let admitted: Vec<_> = (0..5).map(|_| a.try_admit(1).unwrap()).collect();
        let err = a
            .try_admit(1)
            .err()
            .expect("refused before the burst queues");
        assert!(err.delay_ms.is_some(), "{err:?}");
        drop(admitted);
        assert_eq!(a.queue.lock().unwrap().light_alive, 0);
        assert!(a.try_admit(1).is_ok());
    }
}
