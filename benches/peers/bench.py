#!/usr/bin/env python3
"""Side-by-side: the same items graded by grader's LLM judge, promptfoo llm-rubric and DeepEval
G-Eval, all against one fake OpenAI-compatible server (fake_openai.py) with a fixed delay.

Run through run.sh, which installs the peers and passes their paths; this file only uses the
Python standard library. For each tool and each repeat it runs the tool as a child process
twice, on 1 item and on N items, and takes from os.wait4 the child's own user+sys CPU time and
peak RSS (ru_maxrss: the largest single process of the child's tree). The 1-item run gives the
fixed cost (start-up, imports, model load); (N-item run - 1-item run) / (N - 1) is the
marginal cost of one more item. The numbers of a row are medians over the repeats.
"""

import argparse
import concurrent.futures as cf
import datetime
import glob
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- items

def build_items(n):
    """n (question, reference answer, candidate answer) triples from tests/data/labelled.jsonl,
    spread evenly over its lines (so over the 55 questions); question and reference (the
    rubric's first model answer) from rubrics/."""
    rubrics = {}
    for path in glob.glob(os.path.join(ROOT, "rubrics", "**", "*.toml"), recursive=True):
        with open(path, "rb") as f:
            r = tomllib.load(f)
        if "id" in r:
            rubrics[r["id"]] = r
    with open(os.path.join(ROOT, "tests", "data", "labelled.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if n > len(lines):
        sys.exit(f"--items {n}: labelled.jsonl has only {len(lines)} lines")
    items = []
    for i in range(n):
        line = lines[i * len(lines) // n]
        r = rubrics[line["question_id"]]
        items.append({
            "question_id": r["id"],
            "question": r["question"],
            "reference": r["model_answers"][0]["text"].strip(),
            "answer": line["answer"],
            "human_score": line["score"],
        })
    return items


def write_jsonl(path, items):
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it) + "\n")


# ---------------------------------------------------------------- the fake endpoint

class Fake:
    def __init__(self, delay_ms):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fake_openai.py"), "--port", "0", "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening "):
            sys.exit(f"fake server did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def _req(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=b"" if method == "POST" else None)
        body = c.getresponse().read()
        c.close()
        return json.loads(body or b"{}")

    def reset(self):
        self._req("POST", "/stats/reset")

    def stats(self):
        return self._req("GET", "/stats")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# ---------------------------------------------------------------- measuring a child

def proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def exited(proc):
    """Whether the child has exited, without reaping it (os.wait4 must get its rusage)."""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def run_child(argv, cwd, env, timeout, during=None, log_path=None):
    """Start argv, optionally call during(proc) while it runs, reap it with os.wait4.
    Returns dict(wall, cpu, rss_mb, rc, extra)."""
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    extra = None
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        if during is not None:
            extra = during(proc)
    finally:
        _, status, ru = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if log_path:
            log.close()
    wall = time.monotonic() - t0
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024.0,
            "rc": proc.returncode, "extra": extra}


# ---------------------------------------------------------------- grader

class GraderServe:
    """`grader serve` as the measured child; this process is the HTTP client (its CPU is not
    counted, as a caller's would not be)."""

    def __init__(self, args, fake, work):
        self.bin = args.grader
        self.fake = fake
        self.work = work
        self.conc = args.concurrency
        self.data = os.path.join(work, "grader-data")

    def env(self):
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY" and not k.startswith("GRADER_")}
        env.update({
            "GRADER__DATA_DIR": self.data,
            "GRADER__LLM__BASE_URL": self.fake.url + "/v1",
            "GRADER__LOG__FORMAT": "json",
            "GRADER__LOG__LEVEL": "warn,grader=info",
            # Every request admitted (a loaded 2-core machine must not turn grades into 503s);
            # this changes no work per grade.
            "GRADER__LIMITS__MAX_QUEUE_DELAY_MS": "600000",
        })
        return env

    def prepare(self):
        """Seed the data dir from the default one when it has an index, then one unmeasured
        start so the rubric set is indexed (a warm start is what a running service sees)."""
        seed = os.path.expanduser("~/.local/share/grader/store")
        target = os.path.join(self.data, "store")
        if not os.path.isdir(target) and os.path.isdir(seed):
            shutil.copytree(seed, target)
        t = time.monotonic()
        r = run_child([self.bin, "serve", "--port", "0"], self.work, self.env(), 1800,
                      during=lambda p: self._serve(p, [], "grader-prepare.log"),
                      log_path=os.path.join(self.work, "grader-prepare.log"))
        if r["rc"] not in (0, -signal.SIGTERM) or r["extra"] is None:
            raise RuntimeError(f"grader serve did not become ready (see {self.work}/grader-prepare.log)")
        return time.monotonic() - t

    def _serve(self, proc, items, log_name):
        """Wait until it serves, grade `items`, then stop it (always: wait4 waits for it)."""
        try:
            return self._serve_items(proc, items, log_name)
        finally:
            if not exited(proc):
                proc.send_signal(signal.SIGTERM)

    def _serve_items(self, proc, items, log_name):
        addr = None
        deadline = time.monotonic() + 1800
        # Its stderr goes to the log file (JSON lines); poll that for the address.
        while addr is None:
            if exited(proc) or time.monotonic() > deadline:
                return None
            try:
                with open(os.path.join(self.work, log_name)) as f:
                    for line in f:
                        try:
                            v = json.loads(line)
                        except ValueError:
                            continue
                        if "listening" in str(v.get("message")) and v.get("addr"):
                            addr = v["addr"]
            except OSError:
                pass
            time.sleep(0.01)
        port = int(addr.rsplit(":", 1)[1])
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/readyz")
                ok = c.getresponse().status == 200
                c.close()
                if ok:
                    break
            except OSError:
                pass
            if exited(proc) or time.monotonic() > deadline:
                return None
            time.sleep(0.02)
        ready_at = time.monotonic()
        cpu0 = proc_cpu(proc.pid)
        local = threading.local()

        def grade(it):
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            body = json.dumps({"question_id": it["question_id"], "answer": it["answer"]})
            t = time.monotonic()
            try:
                local.conn.request("POST", "/v1/grade", body=body, headers={"content-type": "application/json"})
                resp = local.conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                del local.conn
                return None, time.monotonic() - t
            dt = time.monotonic() - t
            if resp.status != 200:
                return None, dt
            return json.loads(data)["judge"]["kind"], dt

        results = []
        t = time.monotonic()
        if items:
            with cf.ThreadPoolExecutor(self.conc) as ex:
                results = list(ex.map(grade, items))
        grading_wall = time.monotonic() - t
        cpu = proc_cpu(proc.pid) - cpu0
        lat = sorted(dt for _, dt in results)
        return {
            "graded": sum(1 for k, _ in results if k == "llm"),
            "ready_s": ready_at,
            "grading_wall": grading_wall,
            "grading_cpu": cpu,
            "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
        }

    def run(self, items):
        t0 = time.monotonic()
        r = run_child([self.bin, "serve", "--port", "0"], self.work, self.env(), 900,
                      during=lambda p: self._serve(p, items, "grader-serve.log"), log_path=os.path.join(self.work, "grader-serve.log"))
        if r["extra"]:
            r["extra"]["ready_s"] -= t0
            r["graded"] = r["extra"]["graded"]
        else:
            r["graded"] = 0
        return r


# ---------------------------------------------------------------- promptfoo

class Promptfoo:
    def __init__(self, args, fake, work):
        self.node, self.entry = args.node, args.promptfoo
        self.fake, self.work, self.conc = fake, work, args.concurrency

    def run(self, items):
        cfg = {
            "description": "grader benches/peers: llm-rubric",
            "prompts": ["{{answer}}"],
            # The candidate answer is the output under test: the echo provider returns the
            # prompt, so no model call produces it; the only model call is the rubric's.
            "providers": ["echo"],
            "defaultTest": {
                "options": {"provider": {"id": "openai:chat:gpt-4o-mini", "config": {
                    "apiBaseUrl": self.fake.url + "/v1", "apiKey": "sk-fake", "temperature": 0}}},
                "assert": [{"type": "llm-rubric", "value":
                            "The output is a correct and complete answer to the interview question "
                            "\"{{question}}\": it states the key points of this model answer, with no "
                            "factual errors.\n{{reference}}"}],
            },
            "tests": [{"vars": {"question": it["question"], "reference": it["reference"], "answer": it["answer"]}}
                      for it in items],
        }
        path = os.path.join(self.work, f"promptfooconfig-{len(items)}.yaml")  # JSON is YAML
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=1)
        out = os.path.join(self.work, f"promptfoo-out-{len(items)}.json")
        if os.path.exists(out):
            os.remove(out)
        env = dict(os.environ)
        env.update({
            "PATH": os.path.dirname(self.node) + os.pathsep + env.get("PATH", ""),
            "OPENAI_API_KEY": "sk-fake",
            "PROMPTFOO_DISABLE_TELEMETRY": "1",
            "PROMPTFOO_DISABLE_UPDATE": "1",
            "PROMPTFOO_CONFIG_DIR": os.path.join(self.work, "promptfoo-home"),
            "NO_COLOR": "1",
        })
        r = run_child([self.node, self.entry, "eval", "-c", path, "-j", str(self.conc), "--no-cache", "--no-write",
                       "--no-table", "--no-progress-bar", "-o", out], self.work, env, 900,
                      log_path=os.path.join(self.work, "promptfoo.log"))
        r["graded"] = 0
        try:
            with open(out) as f:
                res = json.load(f)["results"]["results"]
            r["graded"] = sum(1 for x in res if (x.get("gradingResult") or {}).get("componentResults"))
        except (OSError, ValueError, KeyError):
            pass
        return r


# ---------------------------------------------------------------- DeepEval

class DeepEval:
    def __init__(self, args, fake, work, steps):
        self.python = args.python
        self.fake, self.work, self.conc, self.steps = fake, work, args.concurrency, steps

    def run(self, items):
        path = os.path.join(self.work, f"items-{len(items)}.jsonl")
        out = os.path.join(self.work, f"deepeval-out-{len(items)}.json")
        if os.path.exists(out):
            os.remove(out)
        env = dict(os.environ)
        env.update({
            "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
            "DEEPEVAL_GRPC_LOGGING": "NO",
            "ERROR_REPORTING": "NO",
            "DEEPEVAL_NO_INSPECT_PROMPT": "1",
            "OPENAI_API_KEY": "sk-fake",
        })
        argv = [self.python, os.path.join(HERE, "deepeval_run.py"), path, self.fake.url + "/v1", str(self.conc), out]
        if self.steps:
            argv.append("--steps")
        r = run_child(argv, self.work, env, 900, log_path=os.path.join(self.work, "deepeval.log"))
        r["graded"] = 0
        try:
            with open(out) as f:
                r["graded"] = json.load(f)["graded"]
        except (OSError, ValueError, KeyError):
            pass
        return r


# ---------------------------------------------------------------- main

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--delay-ms", type=float, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(HERE, ".work"))
    ap.add_argument("--grader")
    ap.add_argument("--node")
    ap.add_argument("--promptfoo")
    ap.add_argument("--python")
    ap.add_argument("--skip", action="append", default=[], help="TOOL=why (grader, promptfoo, deepeval)")
    ap.add_argument("--versions", default="", help="text for the report's header")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    skip = dict(s.split("=", 1) for s in args.skip)

    items = build_items(args.items)
    write_jsonl(os.path.join(args.work, f"items-{len(items)}.jsonl"), items)
    write_jsonl(os.path.join(args.work, "items-1.jsonl"), items[:1])
    fake = Fake(args.delay_ms)
    print(f"items: {len(items)} from tests/data/labelled.jsonl over {len({i['question_id'] for i in items})} questions; "
          f"concurrency {args.concurrency}; fake endpoint {fake.url}, {args.delay_ms:g} ms per call; "
          f"{args.repeat} repeat(s), medians", flush=True)

    tools = []
    if "grader" in skip or not args.grader:
        tools.append(("grader (LLM judge, hints + exemplars)", None, skip.get("grader", "no binary")))
    else:
        g = GraderServe(args, fake, args.work)
        try:
            secs = g.prepare()
            print(f"grader: index ready in the bench's data dir ({secs:.1f} s, unmeasured)", flush=True)
            tools.append(("grader (LLM judge, hints + exemplars)", g, None))
        except RuntimeError as e:
            tools.append(("grader (LLM judge, hints + exemplars)", None, str(e)))
    pf_skip = skip.get("promptfoo") or (None if args.node and args.promptfoo else "not installed")
    tools.append(("promptfoo llm-rubric", None if pf_skip else Promptfoo(args, fake, args.work), pf_skip))
    de_skip = skip.get("deepeval") or (None if args.python else "not installed")
    tools.append(("DeepEval G-Eval (steps generated)", None if de_skip else DeepEval(args, fake, args.work, False), de_skip))
    tools.append(("DeepEval G-Eval (steps given)", None if de_skip else DeepEval(args, fake, args.work, True), de_skip))

    rows = []
    for name, tool, why in tools:
        if tool is None:
            print(f"{name}: skipped: {why}", flush=True)
            rows.append({"tool": name, "skipped": why})
            continue
        runs = {1: [], len(items): []}
        calls = {1: [], len(items): []}
        error = None
        for rep in range(args.repeat):
            for n in (1, len(items)):
                fake.reset()
                r = tool.run(items[:n])
                st = fake.stats()
                r["calls"] = sum(s["calls"] for s in st.values())
                r["prompt_chars"] = sum(s["prompt_chars"] for s in st.values())
                r["kinds"] = {k: s["calls"] for k, s in st.items()}
                if r["graded"] != n:
                    error = f"graded {r['graded']} of {n} (exit {r['rc']}; see {args.work})"
                runs[n].append(r)
                print(f"  {name} [{rep + 1}/{args.repeat}] {n:>3} item(s): wall {r['wall']:.2f} s, CPU {r['cpu']:.2f} s, "
                      f"peak RSS {r['rss_mb']:.0f} MB, {r['calls']} model calls {r['kinds']}, graded {r['graded']}", flush=True)
        N = len(items)
        big, one = runs[N], runs[1]
        row = {
            "tool": name,
            "error": error,
            "wall_s": median(r["wall"] for r in big),
            "wall_range": [min(r["wall"] for r in big), max(r["wall"] for r in big)],
            "cpu_s": median(r["cpu"] for r in big),
            "cpu_ms_per_item": median(1000 * r["cpu"] / N for r in big),
            "fixed_wall_s": median(r["wall"] for r in one),
            "fixed_cpu_s": median(r["cpu"] for r in one),
            "marginal_cpu_ms_per_item": median(1000 * (b["cpu"] - o["cpu"]) / (N - 1) for b, o in zip(big, one)),
            "peak_rss_mb": median(r["rss_mb"] for r in big),
            "calls_per_item": median(r["calls"] / N for r in big),
            "prompt_chars_per_call": median(r["prompt_chars"] / max(r["calls"], 1) for r in big),
        }
        if big and big[0].get("extra"):
            row["grading_wall_s"] = median(r["extra"]["grading_wall"] for r in big)
            row["grading_cpu_ms_per_item"] = median(1000 * r["extra"]["grading_cpu"] / N for r in big)
            row["p50_ms"] = median(r["extra"]["p50_ms"] for r in big)
            row["ready_s"] = median(r["extra"]["ready_s"] for r in big)
        rows.append(row)
    fake.stop()

    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = (f"{when}, {os.cpu_count()} cores, "
            f"load average before {os.getloadavg()[0]:.2f}; {len(items)} items, concurrency {args.concurrency}, "
            f"fake model {args.delay_ms:g} ms per call, median of {args.repeat}. {args.versions}")
    table = [
        "| tool | wall, 100 items | CPU per item (whole process) | marginal CPU per item | fixed cost (1-item run: wall / CPU) | peak RSS | model calls per item | prompt chars per call |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table[0] = table[0].replace("100 items", f"{len(items)} items")
    for row in rows:
        if "skipped" in row:
            table.append(f"| {row['tool']} | skipped: {row['skipped']} | | | | | | |")
            continue
        note = f" (**{row['error']}**)" if row["error"] else ""
        table.append(
            f"| {row['tool']}{note} | {row['wall_s']:.2f} s ({row['wall_range'][0]:.2f}–{row['wall_range'][1]:.2f}) | "
            f"{row['cpu_ms_per_item']:.0f} ms | {row['marginal_cpu_ms_per_item']:.0f} ms | "
            f"{row['fixed_wall_s']:.2f} s / {row['fixed_cpu_s']:.2f} s | {row['peak_rss_mb']:.0f} MB | "
            f"{row['calls_per_item']:.2g} | {row['prompt_chars_per_call']:.0f} |")
    extra = [f"- {r['tool']}: grading phase only (server CPU between first request and last answer): "
             f"{r['grading_wall_s']:.2f} s wall, {r['grading_cpu_ms_per_item']:.0f} ms CPU per item, "
             f"p50 latency {r['p50_ms']:.0f} ms per grade (the model's {args.delay_ms:g} ms included); "
             f"process start to /readyz 200: {r['ready_s']:.2f} s"
             for r in rows if r.get("grading_wall_s") is not None]
    report = "\n".join([head, "", *table, "", *extra]) + "\n"
    print()
    print(report)
    with open(os.path.join(args.work, "results.md"), "w") as f:
        f.write(report)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"header": head, "rows": rows}, f, indent=1)
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
