//! all-MiniLM-L6-v2 in pure Rust: the BERT encoder of `bert.rs` on candle, each text's mean over
//! its tokens, L2 norm; and the pair reader's passes (`pair.rs`) on the same workers.
//!
//! The file is long because embedding and pair reading share the worker pool, its queue and
//! the batch plan.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use futures::future::BoxFuture;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::bert::{Bert, Config};
use super::pair::Adapter;
use super::{EmbedError, Embedder, normalize};

/// The local sentence embedder. Cheap to clone (the model and its workers are shared).
///
/// Async callers ([`Embedder::embed`]) hand their texts to a pool of worker threads (one per
/// core by default). A free worker takes every request waiting, up to [`MAX_TEXTS_PER_ROUND`]
/// texts, and embeds them together: under concurrent load the forward passes get larger (the
/// matrix kernels run several times more efficiently on a few dozen rows than on one) and
/// nothing waits on a timer, so a lone request is not delayed. A request of more than
/// [`PIECE`] texts is cut into pieces that the workers share.
///
/// Each forward pass runs on one core: on short texts candle's own threading costs more in
/// synchronisation than it gains (measured on 2 cores: 92 vs 82 short sentences/s at batch 1,
/// the same at batch 32, and the idle threads spin), so passes run side by side instead. The
/// `grader` binary sets `RAYON_NUM_THREADS=1` for that before anything starts (see `main.rs`);
/// a library user who leaves candle threaded gets the same results, less efficiently.
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
    queue: Arc<Handle>,
}

type Reply = tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>;

/// What a caller asks of the workers: texts to embed, or (reference, answer) pairs for the
/// pair reader (three probabilities per pair).
enum Work {
    Texts(Vec<String>),
    Pairs(Vec<(String, String)>),
}

impl Work {
    fn len(&self) -> usize {
        match self {
            Work::Texts(t) => t.len(),
            Work::Pairs(p) => p.len(),
        }
    }
}

type Job = (Work, Reply);

/// The workers' inbox.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// Workers waiting for work.
    idle: usize,
    /// Every embedder is gone: the workers exit.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // The lock is never held while a job runs, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: Job) {
        self.lock().jobs.push_back(job);
        self.ready.notify_one();
    }

    /// The next round for a worker: wait for work, then take a fair share of what waits (the
    /// texts waiting divided among the idle workers, at most [`MAX_TEXTS_PER_ROUND`]), so
    /// concurrent requests spread over the workers instead of one worker taking them all.
    /// `None` once every embedder is dropped.
    fn next_round(&self) -> Option<Vec<Job>> {
        let mut st = self.lock();
        st.idle += 1;
        while st.jobs.is_empty() && !st.closed {
            st = self.ready.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        let idle = st.idle;
        st.idle -= 1;
        if st.closed {
            return None;
        }
        let waiting: usize = st.jobs.iter().map(|(work, _)| work.len()).sum();
        let share = waiting.div_ceil(idle).clamp(1, MAX_TEXTS_PER_ROUND);
        let mut jobs = Vec::new();
        let mut taken = 0;
        while taken < share
            && let Some(job) = st.jobs.pop_front()
        {
            taken += job.0.len();
            jobs.push(job);
        }
        if !st.jobs.is_empty() {
            self.ready.notify_one();
        }
        Some(jobs)
    }
}

/// Held by every clone of one embedder; the last one dropped stops the workers.
struct Handle(Arc<Queue>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// Texts a worker takes into one round at most (then it starts on them; later requests wait
/// for the next round, or another worker). Two batches of [`PIECE`]: large enough for
/// efficient passes, small enough that a big request is shared between the workers.
const MAX_TEXTS_PER_ROUND: usize = 64;

/// A request of more texts than this is sent to the workers in pieces of this size.
const PIECE: usize = 32;

/// How the local model runs.
#[derive(Debug, Clone, Copy)]
pub struct LocalOptions {
    /// Texts are cut at this many tokens.
    pub max_tokens: usize,
    /// Texts per forward pass at most.
    pub batch_size: usize,
    /// Forward passes that run at once (worker threads); 0 means one per core.
    pub workers: usize,
    /// Load the pair reader ([`super::pair`]): (reference, answer) pairs read together.
    pub pair_reader: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            max_tokens: 256,
            batch_size: 32,
            workers: 0,
            pair_reader: true,
        }
    }
}

struct Inner {
    model: Bert,
    /// The pair reader's adapter, when loaded.
    adapter: Option<Adapter>,
    tokenizer: Tokenizer,
    dim: usize,
    batch_size: usize,
    workers: usize,
    model_id: String,
}

const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

impl LocalEmbedder {
    /// Queues the pieces at once, so idle workers share them (each has its own reply), and
    /// returns their outputs in order: the text vectors, or the pair reader's probabilities.
    fn submit<I: Iterator<Item = Work>>(
        &self,
        pieces: I,
        n: usize,
    ) -> impl std::future::Future<Output = Result<Vec<Vec<f32>>, EmbedError>> + use<I> {
        let replies: Vec<_> = pieces
            .map(|work| {
                let (reply, result) = tokio::sync::oneshot::channel();
                self.queue.0.push((work, reply));
                result
            })
            .collect();
        async move {
            let mut out = Vec::with_capacity(n);
            for result in replies {
                out.extend(result.await.map_err(|_| {
                    EmbedError::Inference("the embedding workers have stopped".into())
                })??);
            }
            Ok(out)
        }
    }

    /// Load the model from `dir` (as written by `scripts/fetch-models.sh`) and start its workers.
    pub fn load(dir: &Path, options: LocalOptions) -> Result<Self, EmbedError> {
        let LocalOptions {
            max_tokens,
            batch_size,
            workers,
            pair_reader,
        } = options;
        let shown = dir.display().to_string();
        for f in FILES {
            if !dir.join(f).is_file() {
                return Err(EmbedError::ModelMissing {
                    dir: shown,
                    missing: f.to_string(),
                });
            }
        }
        let load_err = |message: String| EmbedError::ModelLoad {
            dir: shown.clone(),
            message,
        };
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load_err(format!("config.json: {e}")))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| load_err(format!("config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_err(format!("tokenizer.json: {e}")))?;
        // The bundled tokenizer pads every input to a fixed 128 tokens. Turn that off: a pass
        // packs its texts' tokens (see `bert.rs`; texts are grouped into passes by length, see
        // `plan_batches`), and cut at `max_tokens` (the model was trained on up to 256).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| load_err(format!("tokenizer truncation: {e}")))?;
        let device = Device::Cpu;
        let weights: PathBuf = dir.join("model.safetensors");
        // SAFETY: the file is memory-mapped read-only and not modified while the model lives;
        // it is ours (fetched and checksummed by scripts/fetch-models.sh).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(|e| load_err(format!("model.safetensors: {e}")))?;
        let model = Bert::load(vb, &config).map_err(|e| load_err(format!("BERT: {e}")))?;
        let adapter = if pair_reader {
            Some(
                Adapter::from_bytes(super::pair::BUILTIN, &config)
                    .map_err(|e| load_err(format!("the pair reader's adapter: {e}")))?,
            )
        } else {
            None
        };
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            workers
        };
        let inner = Arc::new(Inner {
            workers,
            model,
            adapter,
            tokenizer,
            dim: config.hidden_size,
            batch_size: batch_size.max(1),
            model_id: format!("all-MiniLM-L6-v2/{max_tokens}"),
        });
        let queue = Arc::new(Queue::default());
        for i in 0..workers {
            let core = inner.clone();
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("grader-embed-{i}"))
                .spawn(move || worker(&core, &queue))
                .map_err(|e| load_err(format!("starting the embedding threads: {e}")))?;
        }
        Ok(LocalEmbedder {
            inner,
            queue: Arc::new(Handle(queue)),
        })
    }

    /// Embed synchronously on the calling thread (CPU-bound; async callers go through
    /// [`Embedder::embed`], which runs on the embedding worker).
    pub fn embed_sync(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts, &|| false)
    }

    /// [`Embedder::read_pairs`] synchronously on the calling thread.
    pub fn read_pairs_sync(
        &self,
        pairs: &[(String, String)],
    ) -> Result<Option<Vec<[f32; 3]>>, EmbedError> {
        if self.inner.adapter.is_none() {
            return Ok(None);
        }
        let out = self.inner.read_pairs(pairs, &|| false)?;
        Ok(Some(out.iter().map(|p| levels(p)).collect()))
    }
}

/// A pair's probabilities as the fixed-size array callers get.
fn levels(p: &[f32]) -> [f32; 3] {
    [p[0], p[1], p[2]]
}

/// An embedding worker: one round per wake-up, every waiting request at once.
fn worker(inner: &Inner, queue: &Queue) {
    while let Some(mut jobs) = queue.next_round() {
        // A caller that went away (its request timed out, its client disconnected) is not
        // embedded for: dropped before the round, and the round stops between forward passes
        // once every caller in it is gone.
        jobs.retain(|(_, reply)| !reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let (texts, pairs): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|(work, _)| matches!(work, Work::Texts(_)));
        for jobs in [texts, pairs] {
            if !jobs.is_empty() {
                run_round(inner, jobs);
            }
        }
    }
}

/// One round of jobs of one kind, all in one call, each caller answered with its share.
fn run_round(inner: &Inner, jobs: Vec<Job>) {
    let mut texts = Vec::new();
    let mut pairs = Vec::new();
    for (work, _) in &jobs {
        match work {
            Work::Texts(t) => texts.extend(t.iter().cloned()),
            Work::Pairs(p) => pairs.extend(p.iter().cloned()),
        }
    }
    let abandoned = || jobs.iter().all(|(_, reply)| reply.is_closed());
    // A panic inside the model must not take the worker (and every later request) down.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if pairs.is_empty() {
            inner.embed(&texts, &abandoned)
        } else {
            inner.read_pairs(&pairs, &abandoned)
        }
    }))
    .unwrap_or_else(|_| Err(EmbedError::Inference("the embedding model panicked".into())));
    match result {
        Ok(mut vectors) => {
            for (work, reply) in jobs.into_iter().rev() {
                let mine = vectors.split_off(vectors.len() - work.len());
                let _ = reply.send(Ok(mine));
            }
        }
        Err(e) => {
            for (_, reply) in jobs {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

impl Inner {
    /// Embed on the calling thread, texts grouped into forward passes by token length;
    /// `abandoned` is asked before each pass whether anyone still wants the result.
    fn embed(
        &self,
        texts: &[String],
        abandoned: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        self.in_passes(&encodings, abandoned, |batch| self.embed_encodings(batch))
    }

    /// Read (reference, answer) pairs through the pair reader: per pair, the probabilities of
    /// its three levels. Grouped into passes by length like [`Self::embed`].
    fn read_pairs(
        &self,
        pairs: &[(String, String)],
        abandoned: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let Some(adapter) = &self.adapter else {
            return Err(EmbedError::Inference("no pair reader is loaded".into()));
        };
        let infer = |e: candle_core::Error| EmbedError::Inference(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(
                pairs
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect::<Vec<_>>(),
                true,
            )
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        self.in_passes(&encodings, abandoned, |batch| {
            let ids: Vec<&[u32]> = batch.iter().map(|e| e.get_ids()).collect();
            let types: Vec<&[u32]> = batch.iter().map(|e| e.get_type_ids()).collect();
            let hidden: Vec<f32> = self
                .model
                .forward_pairs(&ids, &types, adapter)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .map_err(infer)?;
            mean_rows(&hidden, &ids, self.dim)
                .iter()
                .map(|mean| Ok(adapter.classify(mean).map_err(infer)?.to_vec()))
                .collect()
        })
    }

    /// Run `pass` over the encodings grouped into forward passes by token length (shortest
    /// first, then groups that each pad to their own longest: one answer's sentences and its
    /// code block do not all pad to the code block's length), one output per encoding, in
    /// order; `abandoned` is asked before each pass whether anyone still wants the result.
    fn in_passes(
        &self,
        encodings: &[Encoding],
        abandoned: &dyn Fn() -> bool,
        pass: impl Fn(&[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let lengths: Vec<usize> = order
            .iter()
            .map(|&i| encodings[i].get_ids().len())
            .collect();
        let mut out = vec![Vec::new(); encodings.len()];
        for range in plan_batches(&lengths, self.batch_size) {
            if abandoned() {
                return Err(EmbedError::Inference(
                    "abandoned: every caller went away".into(),
                ));
            }
            let batch: Vec<&Encoding> = order[range.clone()]
                .iter()
                .map(|&i| &encodings[i])
                .collect();
            for (&i, v) in order[range].iter().zip(pass(&batch)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One forward pass over encodings, then each text's mean over its tokens, L2-normalised.
    fn embed_encodings(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let infer = |e: candle_core::Error| EmbedError::Inference(e.to_string());
        // Every encoding holds at least [CLS] and [SEP], and has no padding (see `load`).
        let texts: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let hidden: Vec<f32> = self
            .model
            .forward(&texts)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(infer)?; // (Σ lengths × dim), the texts' rows in turn
        let mut out = mean_rows(&hidden, &texts, self.dim);
        out.iter_mut().for_each(|v| normalize(v));
        Ok(out)
    }
}

/// Each text's mean over its rows of packed hidden states (Σ lengths × dim).
fn mean_rows(hidden: &[f32], texts: &[&[u32]], dim: usize) -> Vec<Vec<f32>> {
    let mut rows = hidden.chunks_exact(dim);
    let mut out = Vec::with_capacity(texts.len());
    for t in texts {
        let mut mean = vec![0f32; dim];
        for row in rows.by_ref().take(t.len()) {
            mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
        }
        let n = t.len() as f32;
        mean.iter_mut().for_each(|m| *m /= n);
        out.push(mean);
    }
    out
}

/// A forward pass has a fixed cost (a few dozen small kernels per layer) on top of the work per
/// padded token; measured here it is worth about this many tokens.
const PASS_COST_TOKENS: usize = 48;

/// Split texts sorted by token length (ascending) into contiguous batches of at most
/// `max_batch`, minimising the padded tokens computed plus a fixed cost per forward pass
/// (dynamic programming over the split points; n is at most a few hundred).
///
/// Since `bert.rs` packs a pass's texts (its dense layers compute no padding), padded tokens
/// are a proxy: they still price attention's padding, and they keep passes small, which pays
/// because passes of ≤ 32 rows multiply faster per row. Pricing real tokens instead (Σ lengths,
/// plus a padded-attention term) merged more texts per pass and was slower: the labelled set's
/// `grader eval` took 5.5–5.7 s of CPU against 5.2–5.5 s with this plan (several settings of
/// both costs tried; none beat this one beyond the machine's noise).
pub(crate) fn plan_batches(lengths: &[usize], max_batch: usize) -> Vec<std::ops::Range<usize>> {
    let n = lengths.len();
    let max_batch = max_batch.max(1);
    // best[j] = (cost of embedding the first j texts, start of the last batch)
    let mut best = vec![(0usize, 0usize); n + 1];
    for j in 1..=n {
        best[j] = (usize::MAX, 0);
        for i in j.saturating_sub(max_batch)..j {
            let cost = best[i].0 + PASS_COST_TOKENS + (j - i) * lengths[j - 1];
            if cost < best[j].0 {
                best[j] = (cost, i);
            }
        }
    }
    let mut out = Vec::new();
    let mut j = n;
    while j > 0 {
        let i = best[j].1;
        out.push(i..j);
        j = i;
    }
    out.reverse();
    out
}

impl Embedder for LocalEmbedder {
    fn dim(&self) -> usize {
        self.inner.dim
    }

    fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    fn parallelism(&self) -> usize {
        self.inner.workers
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        let pieces = texts.chunks(PIECE).map(|p| Work::Texts(p.to_vec()));
        Box::pin(self.submit(pieces, texts.len()))
    }

    fn read_pairs<'a>(
        &'a self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Option<Vec<[f32; 3]>>, EmbedError>> {
        if self.inner.adapter.is_none() || pairs.is_empty() {
            let none = self.inner.adapter.as_ref().map(|_| Vec::new());
            return Box::pin(async move { Ok(none) });
        }
        let outputs = self.submit(
            pairs.chunks(PIECE).map(|p| Work::Pairs(p.to_vec())),
            pairs.len(),
        );
        Box::pin(async move { Ok(Some(outputs.await?.iter().map(|p| levels(p)).collect())) })
    }
}

#[cfg(test)]
mod tests {
    use super::plan_batches;

    /// Batches cover every text once, in order, within the size limit; short texts are not
    /// padded to a long one's length, and texts of one length share a pass.
    #[test]
    fn batch_plan_groups_texts_by_length() {
        let check = |lengths: &[usize], max: usize| {
            let plan = plan_batches(lengths, max);
            let mut next = 0;
            for r in &plan {
                assert_eq!(r.start, next, "{plan:?}");
                assert!(!r.is_empty() && r.len() <= max, "{plan:?}");
                next = r.end;
            }
            assert_eq!(next, lengths.len());
            plan
        };
        assert!(check(&[], 32).is_empty());
        // Eight sentences and one long code block: the block gets its own pass.
        let plan = check(&[10, 12, 12, 14, 15, 18, 20, 22, 240], 32);
        assert_eq!(plan.last().unwrap().len(), 1, "{plan:?}");
        // Equal lengths: one pass, limited by the batch size.
        assert_eq!(check(&[16; 10], 32).len(), 1);
        assert_eq!(check(&[16; 70], 32).len(), 3);
    }
}
