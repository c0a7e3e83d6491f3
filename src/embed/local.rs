//! all-MiniLM-L6-v2 in pure Rust: candle's BERT, mean pooling over the attention mask, L2 norm.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use futures::future::BoxFuture;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{EmbedError, Embedder, normalize};

/// The local sentence embedder. Cheap to clone (the model is shared).
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    batch_size: usize,
    model_id: String,
}

const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

impl LocalEmbedder {
    /// Load the model from `dir` (as written by `scripts/fetch-models.sh`).
    pub fn load(dir: &Path, max_tokens: usize, batch_size: usize) -> Result<Self, EmbedError> {
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
        // The bundled tokenizer pads every input to a fixed 128 tokens; pad to the longest in
        // the batch instead (less work, and sentence-transformers does the same) and cut at
        // `max_tokens` (the model was trained on up to 256).
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token: "[PAD]".into(),
            ..PaddingParams::default()
        }));
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
        let model = BertModel::load(vb, &config).map_err(|e| load_err(format!("BERT: {e}")))?;
        Ok(LocalEmbedder {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                device,
                dim: config.hidden_size,
                batch_size: batch_size.max(1),
                model_id: format!("all-MiniLM-L6-v2/{max_tokens}"),
            }),
        })
    }

    /// Embed synchronously (CPU-bound; async callers go through [`Embedder::embed`], which
    /// moves the work off the async runtime).
    pub fn embed_sync(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        // Sort by length so each batch pads to similar lengths, then restore the order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut sorted = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.inner.batch_size) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            let vectors = self.embed_batch(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                sorted[i] = v;
            }
        }
        out.extend(sorted);
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inner = &*self.inner;
        let infer = |e: candle_core::Error| EmbedError::Inference(e.to_string());
        let encodings = inner
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let n = encodings.len();
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        let mut types = Vec::with_capacity(n * len);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
            types.extend_from_slice(e.get_type_ids());
        }
        let ids = Tensor::from_vec(ids, (n, len), &inner.device).map_err(infer)?;
        let mask = Tensor::from_vec(mask, (n, len), &inner.device).map_err(infer)?;
        let types = Tensor::from_vec(types, (n, len), &inner.device).map_err(infer)?;
        let hidden = inner
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(infer)?; // (n, len, dim)
        // Mean pooling over real tokens only.
        let mask_f = mask
            .to_dtype(DType::F32)
            .map_err(infer)?
            .unsqueeze(2)
            .map_err(infer)?;
        let summed = hidden
            .broadcast_mul(&mask_f)
            .and_then(|t| t.sum(1))
            .map_err(infer)?; // (n, dim)
        let counts = mask_f.sum(1).map_err(infer)?; // (n, 1)
        let pooled = summed.broadcast_div(&counts).map_err(infer)?;
        let mut rows: Vec<Vec<f32>> = pooled.to_vec2().map_err(infer)?;
        for r in &mut rows {
            normalize(r);
        }
        Ok(rows)
    }
}

impl Embedder for LocalEmbedder {
    fn dim(&self) -> usize {
        self.inner.dim
    }

    fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        let this = self.clone();
        let texts = texts.to_vec();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.embed_sync(&texts))
                .await
                .map_err(|e| EmbedError::Inference(format!("embedding task failed: {e}")))?
        })
    }
}
