//! The correctness head: a small learned model over the frozen sentence embeddings that reads
//! a (claim, sentence) pair and gives the probability that the sentence *correctly states* the
//! claim, not merely that it is about the same thing.
//!
//! It reads standardised pair features: `u ⊙ v` and `|u − v|` of the two MiniLM vectors (the
//! classic sentence-pair features), their cosine, and the lexical cues of [`super::cues`] (word
//! overlap both ways, flipped polarity, a negation in the sentence, a hedge) — through one small
//! hidden layer (ReLU), or, with none, as logistic regression. It is trained by `grader train` on human-labelled answer/reference pairs (SemEval
//! 2013's `train` split: `correct` = 1, `incorrect` and `contradictory` = 0) and shipped as
//! `config/entail-head.toml`, whose header records the command, the data's sha256 and the
//! held-out metrics. Plain Rust: a dot product per pair at grade time; training is a few
//! seconds of gradient descent (Adam) after the pairs are embedded.
//!
//! The file is long because the head's two forms (logistic, and one hidden layer) share one
//! file format, one prediction and one training entry point, and their tests sit beside them.

use serde::{Deserialize, Serialize};

use super::cues;
use crate::embed::dot;

/// Lexical and scalar features after the two vector blocks.
const SCALARS: usize = 13 + cues::OVERLAP_FEATURES;

/// What a pair is read against: the question (its vector, empty if unknown, and its words).
pub struct PairContext<'a> {
    pub question: &'a [f32],
    pub question_words: &'a cues::Words,
}

/// One (claim, sentence) pair's raw features. `sentence_words` is the sentence read once
/// ([`cues::Words::of`]); a judge reads each answer sentence once for all its criteria.
pub fn pair_features(
    claim: &[f32],
    sentence: &[f32],
    claim_words: &cues::Words,
    sentence_words: &cues::Words,
    cx: &PairContext<'_>,
) -> Vec<f32> {
    let polarity = &cues::polarity_of(claim_words, sentence_words);
    let mut x = Vec::with_capacity(claim.len() * 2 + SCALARS);
    x.extend(claim.iter().zip(sentence).map(|(a, b)| a * b));
    x.extend(claim.iter().zip(sentence).map(|(a, b)| (a - b).abs()));
    let negated = sentence_words
        .tokens()
        .iter()
        .any(|w| ["not", "no", "never", "cannot", "without", "none"].contains(&w.as_str()));
    let cos = dot(claim, sentence);
    x.extend([
        cos,
        cos * cos,
        polarity.recall,
        polarity.precision,
        f32::from(u8::from(polarity.flipped)),
        f32::from(u8::from(polarity.opposes())),
        f32::from(u8::from(negated)),
        f32::from(u8::from(sentence_words.is_hedged())),
    ]);
    // Against the question: an answer that only echoes it is close to it; overlap with the
    // reference beyond the question's own words is what says something.
    let (to_q, claim_to_q, beyond) = if cx.question.len() == claim.len() {
        let a = crate::embed::without_direction(claim, cx.question);
        let b = crate::embed::without_direction(sentence, cx.question);
        (
            dot(sentence, cx.question),
            dot(claim, cx.question),
            dot(&a, &b),
        )
    } else {
        (0.0, 0.0, cos)
    };
    x.extend([
        to_q,
        claim_to_q,
        beyond,
        cues::demoted_recall(claim_words, sentence_words, cx.question_words),
        (1.0 + sentence_words.content_len() as f32).ln(),
    ]);
    x.extend(cues::overlap_features(
        claim_words,
        sentence_words,
        cx.question_words,
    ));
    x
}

/// What a head file says about how it was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadInfo {
    pub command: String,
    /// The training files and their sha256.
    pub data: Vec<String>,
    pub pairs: usize,
    pub epochs: usize,
    /// On the held-out fifth of the questions (trained on the rest first).
    pub holdout_accuracy: f64,
    pub holdout_auc: f64,
    /// The held-out AUC of each training file's questions alone (in `data`'s order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holdout_auc_per_file: Vec<f64>,
    pub license: String,
}

/// The fitted head (see the module doc). An empty head (no weights) gives no probabilities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    #[serde(serialize_with = "short_f32")]
    pub bias: f32,
    #[serde(serialize_with = "short_f32s")]
    pub mean: Vec<f32>,
    #[serde(serialize_with = "short_f32s")]
    pub scale: Vec<f32>,
    /// The output layer: one weight per hidden unit (per feature when there is no hidden layer).
    #[serde(serialize_with = "short_f32s")]
    pub weights: Vec<f32>,
    /// The hidden layer, one row of a weight per feature for each unit, row after row; empty
    /// for a logistic head.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "short_f32s"
    )]
    pub hidden: Vec<f32>,
    /// The hidden units' biases (one per unit).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "short_f32s"
    )]
    pub hidden_bias: Vec<f32>,
    /// Last: TOML writes tables after values.
    pub info: HeadInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error(
        "head file {origin}: {message} (retrain with `grader train`, or leave judge.head empty for the built-in head)"
    )]
    Invalid { origin: String, message: String },
}

impl Head {
    /// Parse and check a head file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Head, HeadError> {
        let err = |message: String| HeadError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let head: Head = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let n = head.mean.len();
        let units = head.hidden_bias.len();
        let out = if units == 0 { n } else { units };
        if head.scale.len() != n || head.weights.len() != out || head.hidden.len() != units * n {
            return Err(err(format!(
                "mean and scale must have one value per feature ({n}, {}), hidden one row of as \
                 many per unit ({} for {units} units), and weights one per hidden unit or, \
                 without a hidden layer, per feature ({})",
                head.scale.len(),
                head.hidden.len(),
                head.weights.len()
            )));
        }
        if head
            .weights
            .iter()
            .chain(&head.mean)
            .chain(&head.scale)
            .chain(&head.hidden)
            .chain(&head.hidden_bias)
            .any(|x| !x.is_finite())
        {
            return Err(err("a weight is not a finite number".into()));
        }
        Ok(head)
    }

    /// The head built into the binary (`config/entail-head.toml` when it was built).
    pub fn builtin() -> Head {
        let shipped = crate::assets::ENTAIL_HEAD;
        Head::parse(shipped.text, shipped.path)
            .expect("the built-in head parses (a test checks it)")
    }

    /// Whether the head has weights (an empty one predicts nothing).
    pub fn is_trained(&self) -> bool {
        !self.weights.is_empty()
    }

    /// The number of features it reads ([`pair_features`]: `2 × dim` and the scalars).
    pub fn inputs(&self) -> usize {
        self.mean.len()
    }

    /// P(the sentence correctly states the claim) for raw features from [`pair_features`];
    /// `None` for an untrained head or features of another embedding size.
    pub fn predict(&self, x: &[f32]) -> Option<f32> {
        if !self.is_trained() || x.len() != self.inputs() {
            return None;
        }
        let z: Vec<f32> = x
            .iter()
            .zip(self.mean.iter().zip(&self.scale))
            .map(|(x, (m, s))| (x - m) * s)
            .collect();
        Some(sigmoid(self.logit(&z)))
    }

    /// The output before the sigmoid, for standardised features.
    fn logit(&self, z: &[f32]) -> f32 {
        if self.hidden_bias.is_empty() {
            return self.bias + dot(&self.weights, z);
        }
        let n = z.len();
        self.bias
            + self
                .hidden_bias
                .iter()
                .enumerate()
                .map(|(j, b)| {
                    let a = b + dot(&self.hidden[j * n..(j + 1) * n], z);
                    self.weights[j] * a.max(0.0)
                })
                .sum::<f32>()
    }

    /// The file's text: a header saying how it was made, then the TOML.
    pub fn file_text(&self) -> Result<String, toml::ser::Error> {
        let body = toml::to_string(self)?;
        Ok(format!(
            "# The correctness head of the coverage judge (src/judge/head.rs). Do not edit by hand: retrain with\n#   {}\n# (the SemEval files: `python3 scripts/semeval.py --full /tmp/se`). The weights are an\n# adaptation of their training data: {}\n{body}",
            self.info.command, self.info.license
        ))
    }
}

/// An f32 as the shortest decimal that reads back to it (widened to f64 it would print
/// 0.001029142178595066 for 0.0010291422).
fn short(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

fn short_f32<S: serde::Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(short(*x))
}

fn short_f32s<S: serde::Serializer>(xs: &[f32], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(xs.len()))?;
    for x in xs {
        seq.serialize_element(&short(*x))?;
    }
    seq.end()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
    /// The two vector blocks (`u ⊙ v`, `|u − v|`) enter at this share of their standardised
    /// size, so they can learn less than the scalar features: the vectors carry the training
    /// questions' topics, which do not carry over to new questions and domains.
    pub vector_scale: f32,
    /// Units of the hidden layer; 0 makes the head logistic regression (full-batch steps).
    /// With units, `epochs` are passes over the data in shuffled minibatches of [`BATCH`].
    pub hidden: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 300,
            learning_rate: 0.01,
            l2: 1e-3,
            vector_scale: 1.0,
            hidden: 0,
        }
    }
}

impl TrainOptions {
    /// The defaults for a head of `hidden` units: a logistic head takes [`Default`]'s
    /// full-batch steps; minibatch steps are many and noisy, so a hidden layer takes fewer
    /// passes at a smaller rate.
    pub fn for_hidden(hidden: usize) -> Self {
        if hidden == 0 {
            return TrainOptions::default();
        }
        TrainOptions {
            epochs: 40,
            learning_rate: 1e-3,
            hidden,
            ..TrainOptions::default()
        }
    }
}

/// Pairs per step when the head has a hidden layer.
pub const BATCH: usize = 256;

/// Fit the head on raw features and 0/1 labels (Adam: full-batch for a logistic head,
/// minibatches for a hidden layer; the features are standardised first, their mean and scale
/// kept in the head). Deterministic.
pub fn train(xs: &[Vec<f32>], ys: &[f32], opts: TrainOptions) -> Head {
    let n = xs.len();
    let d = xs.first().map_or(0, Vec::len);
    if n == 0 || d == 0 {
        return Head::default();
    }
    let mut mean = vec![0.0f64; d];
    for x in xs {
        for (m, v) in mean.iter_mut().zip(x) {
            *m += *v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0.0f64; d];
    for x in xs {
        for ((s, v), m) in var.iter_mut().zip(x).zip(&mean) {
            *s += (*v as f64 - m).powi(2);
        }
    }
    let mean: Vec<f32> = mean.into_iter().map(|m| m as f32).collect();
    let vector_features = d.saturating_sub(SCALARS);
    let scale: Vec<f32> = var
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let sd = (v / n as f64).sqrt();
            let shrink = if i < vector_features {
                opts.vector_scale
            } else {
                1.0
            };
            if sd > 1e-8 {
                (1.0 / sd) as f32 * shrink
            } else {
                0.0
            }
        })
        .collect();
    let z: Vec<Vec<f32>> = xs
        .iter()
        .map(|x| {
            x.iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((v, m), s)| (v - m) * s)
                .collect()
        })
        .collect();
    // Classes weighted to balance: the data has more wrong answers than right ones.
    let pos = ys.iter().filter(|y| **y > 0.5).count().max(1) as f32;
    let neg = (n as f32 - pos).max(1.0);
    let class_weight = |y: f32| {
        if y > 0.5 {
            n as f32 / (2.0 * pos)
        } else {
            n as f32 / (2.0 * neg)
        }
    };
    let (hidden, hidden_bias, weights, bias) = if opts.hidden > 0 {
        train_hidden(&z, ys, &class_weight, opts)
    } else {
        let (weights, bias) = train_logistic(&z, ys, &class_weight, opts);
        (Vec::new(), Vec::new(), weights, bias)
    };
    Head {
        info: HeadInfo {
            epochs: opts.epochs,
            pairs: n,
            ..HeadInfo::default()
        },
        bias,
        mean,
        scale,
        weights,
        hidden,
        hidden_bias,
    }
}

/// Fit a weight per feature and a bias on standardised features: full-batch Adam on the
/// class-weighted log loss with an L2 penalty on the weights. Returns (weights, bias).
fn train_logistic(
    z: &[Vec<f32>],
    ys: &[f32],
    class_weight: &dyn Fn(f32) -> f32,
    opts: TrainOptions,
) -> (Vec<f32>, f32) {
    let (n, d) = (z.len(), z[0].len());
    let mut w = vec![0.0f32; d];
    let mut b = [0.0f32];
    let (mut aw, mut ab) = (Adam::new(d), Adam::new(1));
    for epoch in 1..=opts.epochs {
        let mut gw = vec![0.0f32; d];
        let mut gb = [0.0f32];
        for (x, &y) in z.iter().zip(ys) {
            let p = sigmoid(b[0] + dot(&w, x));
            let g = (p - y) * class_weight(y) / n as f32;
            gb[0] += g;
            for (gi, xi) in gw.iter_mut().zip(x) {
                *gi += g * xi;
            }
        }
        for (gi, wi) in gw.iter_mut().zip(&w) {
            *gi += opts.l2 * wi;
        }
        let t = epoch as i32;
        aw.step(&mut w, &gw, opts.learning_rate, t);
        ab.step(&mut b, &gb, opts.learning_rate, t);
    }
    (w, b[0])
}

/// Adam's state for one block of parameters.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(n: usize) -> Self {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One step of `params` down `grads` at step `t` (from 1).
    fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32, t: i32) {
        let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let lr = lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t));
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *p -= lr * *m / (v.sqrt() + eps);
        }
    }
}

/// A small deterministic generator (splitmix64) for the initial weights and the shuffles, so
/// one command trains one head.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let (a, b) = (self.unit(), self.unit());
        (-2.0 * a.ln()).sqrt() * (std::f32::consts::TAU * b).cos()
    }
}

/// Fit one hidden layer (ReLU) and the output on standardised features: minibatch Adam on the
/// class-weighted log loss with an L2 penalty on the weights. Returns (hidden, hidden biases,
/// output weights, output bias).
fn train_hidden(
    z: &[Vec<f32>],
    ys: &[f32],
    class_weight: &dyn Fn(f32) -> f32,
    opts: TrainOptions,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, f32) {
    let (n, d, h) = (z.len(), z[0].len(), opts.hidden);
    let mut rng = Rng(0x5eed);
    let he = (2.0 / d as f32).sqrt();
    let mut w1: Vec<f32> = (0..h * d).map(|_| rng.normal() * he).collect();
    let mut b1 = vec![0.0f32; h];
    let mut w2: Vec<f32> = (0..h)
        .map(|_| rng.normal() * (1.0 / h as f32).sqrt())
        .collect();
    let mut b2 = [0.0f32];
    let (mut a1, mut ab1, mut a2, mut ab2) =
        (Adam::new(h * d), Adam::new(h), Adam::new(h), Adam::new(1));
    let mut order: Vec<usize> = (0..n).collect();
    let mut t = 0;
    let mut act = vec![0.0f32; h];
    for _ in 0..opts.epochs {
        for i in (1..n).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        for batch in order.chunks(BATCH) {
            let (mut g1, mut gb1) = (vec![0.0f32; h * d], vec![0.0f32; h]);
            let (mut g2, mut gb2) = (vec![0.0f32; h], [0.0f32]);
            for &i in batch {
                let x = &z[i];
                for j in 0..h {
                    act[j] = (b1[j] + dot(&w1[j * d..(j + 1) * d], x)).max(0.0);
                }
                let p = sigmoid(b2[0] + dot(&w2, &act));
                let g = (p - ys[i]) * class_weight(ys[i]) / batch.len() as f32;
                gb2[0] += g;
                for j in 0..h {
                    g2[j] += g * act[j];
                    if act[j] > 0.0 {
                        let gj = g * w2[j];
                        gb1[j] += gj;
                        for (gk, xk) in g1[j * d..(j + 1) * d].iter_mut().zip(x) {
                            *gk += gj * xk;
                        }
                    }
                }
            }
            for (g, w) in g1.iter_mut().zip(&w1) {
                *g += opts.l2 * w;
            }
            for (g, w) in g2.iter_mut().zip(&w2) {
                *g += opts.l2 * w;
            }
            t += 1;
            a1.step(&mut w1, &g1, opts.learning_rate, t);
            ab1.step(&mut b1, &gb1, opts.learning_rate, t);
            a2.step(&mut w2, &g2, opts.learning_rate, t);
            ab2.step(&mut b2, &gb2, opts.learning_rate, t);
        }
    }
    (w1, b1, w2, b2[0])
}

/// Accuracy at 0.5 and the area under the ROC curve of predictions against 0/1 labels.
pub fn accuracy_auc(p: &[f32], y: &[f32]) -> (f64, f64) {
    let n = p.len().max(1) as f64;
    let acc = p
        .iter()
        .zip(y)
        .filter(|(p, y)| (**p >= 0.5) == (**y > 0.5))
        .count() as f64
        / n;
    // AUC as the share of (positive, negative) pairs ranked right (ties count half).
    let pos: Vec<f32> = p
        .iter()
        .zip(y)
        .filter(|(_, y)| **y > 0.5)
        .map(|(p, _)| *p)
        .collect();
    let neg: Vec<f32> = p
        .iter()
        .zip(y)
        .filter(|(_, y)| **y <= 0.5)
        .map(|(p, _)| *p)
        .collect();
    let mut right = 0.0f64;
    for a in &pos {
        for b in &neg {
            right += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    let auc = right / (pos.len() * neg.len()).max(1) as f64;
    (acc, auc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_rule_and_round_trips_through_its_file() {
        // Label = first feature above its middle; the second is noise.
        let xs: Vec<Vec<f32>> = (0..200)
            .map(|i| vec![(i % 20) as f32, ((i * 7) % 13) as f32])
            .collect();
        let ys: Vec<f32> = xs
            .iter()
            .map(|x| f32::from(u8::from(x[0] >= 10.0)))
            .collect();
        let head = train(&xs, &ys, TrainOptions::default());
        let p: Vec<f32> = xs.iter().map(|x| head.predict(x).unwrap()).collect();
        let (acc, auc) = accuracy_auc(&p, &ys);
        assert!(acc >= 0.95 && auc >= 0.99, "accuracy {acc}, auc {auc}");
        let text = head.file_text().unwrap();
        let back = Head::parse(&text, "test").unwrap();
        assert_eq!(back.predict(&xs[3]), head.predict(&xs[3]));
        assert_eq!(Head::default().predict(&[1.0]), None);
        assert!(Head::parse("weights = [1.0]\nbias = 0.0\nmean = []\nscale = []\n[info]\ncommand=''\ndata=[]\npairs=0\nepochs=0\nholdout_accuracy=0.0\nholdout_auc=0.0\nlicense=''", "x").is_err());
    }

    #[test]
    fn a_hidden_layer_learns_what_a_line_cannot_and_round_trips_through_its_file() {
        // Label = the two features have opposite signs (XOR): no line separates it.
        let xs: Vec<Vec<f32>> = (0..400)
            .map(|i| {
                let a = ((i * 37) % 200) as f32 / 100.0 - 0.995;
                let b = ((i * 91 + 13) % 200) as f32 / 100.0 - 0.995;
                vec![a, b]
            })
            .collect();
        let ys: Vec<f32> = xs
            .iter()
            .map(|x| f32::from(u8::from((x[0] > 0.0) != (x[1] > 0.0))))
            .collect();
        let auc = |head: &Head| {
            let p: Vec<f32> = xs.iter().map(|x| head.predict(x).unwrap()).collect();
            accuracy_auc(&p, &ys).1
        };
        let logistic = train(&xs, &ys, TrainOptions::default());
        let hidden = train(
            &xs,
            &ys,
            TrainOptions {
                hidden: 16,
                epochs: 300,
                ..TrainOptions::default()
            },
        );
        assert!(auc(&logistic) < 0.7, "a line: {}", auc(&logistic));
        assert!(auc(&hidden) > 0.95, "a hidden layer: {}", auc(&hidden));
        assert_eq!(hidden.inputs(), 2);
        let back = Head::parse(&hidden.file_text().unwrap(), "test").unwrap();
        for x in &xs[..20] {
            assert_eq!(back.predict(x), hidden.predict(x));
        }
        // A hidden layer whose rows do not fit the features is refused.
        let mut bad = hidden.clone();
        bad.hidden.pop();
        let err = Head::parse(&bad.file_text().unwrap(), "bad.toml").unwrap_err();
        assert!(err.to_string().contains("bad.toml"), "{err}");
    }

    #[test]
    fn the_shipped_head_reads_the_pair_features() {
        let head = Head::builtin();
        assert!(head.is_trained());
        assert_eq!(head.inputs(), 2 * 384 + SCALARS);
    }

    #[test]
    fn auc_counts_ranked_pairs() {
        let (acc, auc) = accuracy_auc(&[0.9, 0.2, 0.6, 0.4], &[1.0, 0.0, 0.0, 1.0]);
        assert_eq!(acc, 0.5);
        assert_eq!(auc, 0.75);
    }
}
