//! The pair reader: all-MiniLM-L6-v2 read as a cross-encoder. A (reference, answer) pair goes
//! through the encoder *together* (`[CLS] reference [SEP] answer [SEP]`, the answer's tokens of
//! type 1), so attention compares the two word by word, which two separate sentence vectors
//! cannot; a linear layer over the mean of the pair's hidden states gives SemEval's three
//! levels (contradictory, incorrect, correct).
//!
//! It shares the base model's weights: what training changed is low-rank adapters (LoRA) on
//! each of the encoder's dense layers, `y = x·Wᵀ + b + s·(x·A)·B`, the layers' norms and the
//! classifier, about 1.4 MB (`config/pair-adapter.safetensors`, compiled in), against 87 MB
//! for a second copy of the model. `scripts/train-pair.py` trains it on SemEval-2013's `train`
//! split; the file's metadata records the command, the data's sha256 and the held-out metrics.

use candle_core::{DType, Device, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use super::bert::Config;

/// The adapter shipped with grader (see `scripts/train-pair.py`).
pub const BUILTIN: &[u8] = include_bytes!("../../config/pair-adapter.safetensors");

/// The classifier's levels, in order (SemEval-2013's 3-way labels as `score` 0, 1, 2).
pub const LEVELS: usize = 3;

/// One low-rank update `s·(x·A)·B` of a dense layer.
pub(super) struct Lora {
    /// (inputs, rank)
    down: Tensor,
    /// (rank, outputs), already multiplied by the scale.
    up: Tensor,
}

impl Lora {
    pub(super) fn delta(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.down)?.matmul(&self.up)
    }
}

/// What the adapter changes in one encoder layer.
pub(super) struct LayerAdapter {
    pub(super) qkv: Lora,
    pub(super) attention_out: Lora,
    pub(super) intermediate: Lora,
    pub(super) out: Lora,
    pub(super) attention_norm: LayerNorm,
    pub(super) out_norm: LayerNorm,
}

/// The trained pair reader's own weights.
pub struct Adapter {
    pub(super) layers: Vec<LayerAdapter>,
    /// (levels, hidden)
    classifier: Tensor,
    /// (levels,)
    classifier_bias: Tensor,
    /// Metadata: the training command, data hash and metrics.
    pub info: std::collections::HashMap<String, String>,
}

impl Adapter {
    /// Read an adapter file (safetensors, names as `scripts/train-pair.py` writes them) for a
    /// base model of `config`'s shape.
    pub fn from_bytes(bytes: &[u8], c: &Config) -> Result<Adapter, String> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors file: {e}"))?;
        let info = meta.metadata().clone().unwrap_or_default();
        let scale: f64 = info
            .get("scale")
            .ok_or("metadata has no \"scale\"")?
            .parse()
            .map_err(|e| format!("metadata \"scale\": {e}"))?;
        let rank: usize = info
            .get("rank")
            .ok_or("metadata has no \"rank\"")?
            .parse()
            .map_err(|e| format!("metadata \"rank\": {e}"))?;
        let dev = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(bytes.to_vec(), DType::F32, &dev)
            .map_err(|e| e.to_string())?;
        let h = c.hidden_size;
        let lora = |vb: VarBuilder, inputs: usize, outputs: usize| -> candle_core::Result<Lora> {
            Ok(Lora {
                down: vb.get((inputs, rank), "A")?,
                up: vb.get((rank, outputs), "B")?.affine(scale, 0.0)?,
            })
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| -> candle_core::Result<LayerAdapter> {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention.self");
                let [q, k, v] = ["query", "key", "value"].map(|p| lora(a.pp(p), h, h));
                let (q, k, v) = (q?, k?, v?);
                // Query, key and value are one product in the encoder: one update, the three
                // `A`s side by side and the three `B`s on a block diagonal.
                let down = Tensor::cat(&[&q.down, &k.down, &v.down], 1)?;
                let zeros = Tensor::zeros((rank, h), DType::F32, &dev)?;
                let up = Tensor::cat(
                    &[
                        Tensor::cat(&[&q.up, &zeros, &zeros], 1)?,
                        Tensor::cat(&[&zeros, &k.up, &zeros], 1)?,
                        Tensor::cat(&[&zeros, &zeros, &v.up], 1)?,
                    ],
                    0,
                )?;
                Ok(LayerAdapter {
                    qkv: Lora { down, up },
                    attention_out: lora(l.pp("attention.output.dense"), h, h)?,
                    intermediate: lora(l.pp("intermediate.dense"), h, c.intermediate_size)?,
                    out: lora(l.pp("output.dense"), c.intermediate_size, h)?,
                    attention_norm: candle_nn::layer_norm(
                        h,
                        c.layer_norm_eps,
                        l.pp("attention.output.LayerNorm"),
                    )?,
                    out_norm: candle_nn::layer_norm(h, c.layer_norm_eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        let classifier = vb
            .pp("head")
            .get((LEVELS, h), "weight")
            .map_err(|e| e.to_string())?;
        let classifier_bias = vb
            .pp("head")
            .get(LEVELS, "bias")
            .map_err(|e| e.to_string())?;
        Ok(Adapter {
            layers,
            classifier,
            classifier_bias,
            info,
        })
    }

    /// The three levels' probabilities from one pair's mean hidden state.
    pub fn classify(&self, mean: &[f32]) -> candle_core::Result<[f32; LEVELS]> {
        let x = Tensor::from_slice(mean, (1, mean.len()), &Device::Cpu)?;
        let logits = x
            .matmul(&self.classifier.t()?)?
            .broadcast_add(&self.classifier_bias)?;
        let p: Vec<f32> = candle_nn::ops::softmax_last_dim(&logits)?
            .flatten_all()?
            .to_vec1()?;
        Ok([p[0], p[1], p[2]])
    }
}
