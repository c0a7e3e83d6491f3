#!/usr/bin/env python3
"""A fake OpenAI-compatible server for benches/peers: every call answers after a fixed delay.

Python standard library only. Binds 127.0.0.1 (port 0 = any free port), prints
`listening http://127.0.0.1:PORT` on stdout once it accepts connections, and serves:

  POST /v1/chat/completions   a valid answer for whichever judge asked:
      - `response_format.json_schema` (grader's structured output, DeepEval's steps and
        score schemas): an object that satisfies the schema; for grader, one criterion
        verdict per id in the schema's enum, as benches/service.rs `fake_llm` does;
      - promptfoo llm-rubric (asks for `{reason: string, pass: boolean, score: number}`):
        `{"reason": ..., "pass": true, "score": 0.5}`;
      - DeepEval G-Eval (asks for "steps", or for "score" and "reason"): that JSON, with
        `logprobs` for the score token when the request asks for logprobs;
      - anything else: a plain short text.
      `tools` with `tool_choice` forcing a function is answered with a tool call whose
      arguments are built the same way.
  POST /v1/embeddings         deterministic 384-dim vectors (no tool here needs it).
  GET  /stats                 calls, request bytes and prompt characters so far, by kind.
  POST /stats/reset           zero the counters.

Nothing is streamed. The delay (`--delay-ms`, default 50) is applied per request in its own
thread, so concurrent requests overlap as they would against a real endpoint.
"""

import argparse
import hashlib
import json
import math
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY = 0.05
LOCK = threading.Lock()
STATS = {}


def record(kind, req_bytes, prompt_chars):
    with LOCK:
        s = STATS.setdefault(kind, {"calls": 0, "request_bytes": 0, "prompt_chars": 0})
        s["calls"] += 1
        s["request_bytes"] += req_bytes
        s["prompt_chars"] += prompt_chars


def prompt_text(req):
    parts = []
    for m in req.get("messages") or []:
        c = m.get("content")
        if isinstance(c, str):
            parts.append(c)
        elif isinstance(c, list):
            parts.extend(p.get("text", "") for p in c if isinstance(p, dict))
    return "\n".join(parts)


def resolve(schema, root):
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        node = root
        for part in ref.lstrip("#/").split("/"):
            node = node.get(part, {})
        schema = node
    if isinstance(schema, dict):
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema and schema[key]:
                options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
                return resolve(options[0], root)
    return schema


def from_schema(schema, root, name=""):
    """A value that satisfies `schema` (the subset of JSON Schema structured outputs use)."""
    schema = resolve(schema, root)
    if not isinstance(schema, dict):
        return None
    if "enum" in schema:
        # grader's verdicts: "missed" as benches/service.rs does; otherwise the first value.
        return "missed" if "missed" in schema["enum"] else schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object" or "properties" in schema:
        return {k: from_schema(v, root, k) for k, v in (schema.get("properties") or {}).items()}
    if t == "array":
        items = resolve(schema.get("items") or {}, root)
        id_enum = (((items or {}).get("properties") or {}).get("id") or {}).get("enum")
        if id_enum:
            # grader: one verdict per criterion id the schema allows.
            out = []
            for i in id_enum:
                v = from_schema(items, root)
                v["id"] = i
                out.append(v)
            return out
        if (items or {}).get("type") == "string":
            return [f"fake {name or 'item'} {k}" for k in (1, 2, 3)]
        return []
    if t == "string":
        # grader verifies quotes against the answer; an empty quote is what fake_llm sends.
        return "" if name in ("evidence", "quote") else "fake"
    if t == "integer":
        return int(schema.get("minimum", 0))
    if t == "number":
        return float(schema.get("minimum", 0))
    if t == "boolean":
        return True
    return None


def answer(req):
    """(kind, content text, logprobs or None, tool call name or None)."""
    text = prompt_text(req)
    rf = req.get("response_format") or {}
    tools = req.get("tools") or []
    choice = req.get("tool_choice")
    if rf.get("type") == "json_schema":
        js = rf.get("json_schema") or {}
        schema = js.get("schema") or {}
        props = schema.get("properties") or {}
        kind = "grader" if "criteria" in props else "json_schema:" + str(js.get("name", "?"))
        obj = from_schema(schema, schema)
        if kind == "grader" and "gaps" in obj:
            obj["gaps"] = []  # as benches/service.rs fake_llm answers
        if kind != "grader" and "score" in props and "reason" in props:
            obj["score"], obj["reason"] = 7, "fake"
        return kind, json.dumps(obj), None, None
    if tools and isinstance(choice, dict):
        fn = choice.get("function", {}).get("name")
        for t in tools:
            f = t.get("function") or {}
            if f.get("name") == fn:
                params = f.get("parameters") or {}
                return "tool_call:" + fn, json.dumps(from_schema(params, params)), None, fn
    if "reason: string, pass: boolean, score: number" in text:
        return "promptfoo llm-rubric", json.dumps({"reason": "fake", "pass": True, "score": 0.5}), None, None
    if '"steps"' in text:
        return "deepeval steps", json.dumps({"steps": ["fake step 1", "fake step 2", "fake step 3"]}), None, None
    if "score" in text and "reason" in text:
        content = '{"score": 7, "reason": "fake"}'
        logprobs = None
        if req.get("logprobs"):
            k = max(1, min(int(req.get("top_logprobs") or 1), 20))
            tops = [{"token": str(s), "logprob": math.log(p), "bytes": None}
                    for s, p in ((7, 0.7), (6, 0.2), (8, 0.1))][:k]
            tokens = ['{"', "score", '":', " ", "7", ",", ' "', "reason", '":', ' "', "fake", '"}']
            logprobs = {"content": [
                {"token": t, "logprob": (tops[0]["logprob"] if t == "7" else -0.01), "bytes": None,
                 "top_logprobs": (tops if t == "7" else [{"token": t, "logprob": -0.01, "bytes": None}])}
                for t in tokens]}
        return "deepeval g-eval score", content, logprobs, None
    return "other", "fake", None, None


def embedding(text, dims=384):
    out, seed, i = [], text.encode(), 0
    while len(out) < dims:
        h = hashlib.sha256(seed + i.to_bytes(4, "little")).digest()
        out.extend(x / 2**31 for x in struct.unpack("<8i", h))
        i += 1
    n = math.sqrt(sum(x * x for x in out[:dims])) or 1.0
    return [x / n for x in out[:dims]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, and each response goes out in one write (send_json): otherwise Nagle's
    # algorithm and the client's delayed ACK add ~40 ms to a kept-alive request.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        head = (f"HTTP/1.1 {code} {self.responses[code][0]}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n")
        self.wfile.write(head.encode() + body)

    def do_GET(self):
        if self.path.rstrip("/") == "/stats":
            with LOCK:
                self.send_json(200, STATS)
        elif self.path.rstrip("/") in ("/v1/models", "/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.split("?")[0].rstrip("/")
        if path == "/stats/reset":
            with LOCK:
                STATS.clear()
            return self.send_json(200, {})
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            return self.send_json(400, {"error": {"message": "invalid JSON"}})
        if path.endswith("/chat/completions"):
            kind, content, logprobs, tool = answer(req)
            record(kind, len(raw), len(prompt_text(req)))
            time.sleep(DELAY)
            message = {"role": "assistant", "content": content, "refusal": None}
            if tool:
                message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                    {"id": "call_fake", "type": "function", "function": {"name": tool, "arguments": content}}]}
            choice = {"index": 0, "finish_reason": "tool_calls" if tool else "stop",
                      "message": message, "logprobs": logprobs}
            prompt_tokens = max(1, len(raw) // 4)
            self.send_json(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": req.get("model") or "fake", "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 150,
                          "total_tokens": prompt_tokens + 150}})
        elif path.endswith("/embeddings"):
            inputs = req.get("input")
            inputs = [inputs] if isinstance(inputs, str) else (inputs or [])
            record("embeddings", len(raw), sum(len(str(x)) for x in inputs))
            time.sleep(DELAY)
            dims = int(req.get("dimensions") or 384)
            self.send_json(200, {"object": "list", "model": req.get("model") or "fake",
                                 "data": [{"object": "embedding", "index": i, "embedding": embedding(str(x), dims)}
                                          for i, x in enumerate(inputs)],
                                 "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        else:
            self.send_json(404, {"error": {"message": "not found: " + self.path}})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    global DELAY
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    args = ap.parse_args()
    DELAY = args.delay_ms / 1000.0
    srv = Server(("127.0.0.1", args.port), Handler)
    print(f"listening http://127.0.0.1:{srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
