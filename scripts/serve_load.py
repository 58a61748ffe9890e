#!/usr/bin/env python3
"""Load on `qkv serve`: CLIENTS concurrent clients send completions for SECONDS on 127.0.0.1.

  python3 scripts/serve_load.py QKV RUN_DIR [--clients 32] [--seconds 30] [--max-tokens 32]

Starts the server itself (a free port, its default threads), waits for it, then each client
loops: POST /v1/completions (prompt "ROMEO:", max_tokens, temperature 0.8, its own seed), half
of them streamed. Prints requests answered, errors, p50/p99 latency, completion tokens/s in
total and the server's resident memory before and after.
"""
import argparse
import http.client
import json
import socket
import statistics
import subprocess
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("qkv")
parser.add_argument("run_dir")
parser.add_argument("--clients", type=int, default=32)
parser.add_argument("--seconds", type=float, default=30)
parser.add_argument("--max-tokens", type=int, default=32)
args = parser.parse_args()

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen([args.qkv, "serve", args.run_dir, "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rss_mb():
    with open(f"/proc/{server.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def post(body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/v1/completions", body=json.dumps(body))
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    return r.status, payload


deadline = time.time() + 60
while True:
    try:
        if post({"prompt": "A", "max_tokens": 1})[0] == 200:
            break
    except OSError:
        time.sleep(0.2)
    if time.time() > deadline:
        raise SystemExit("serve_load: the server did not answer within 60 s")
for _ in range(8):  # warm-up: the first requests allocate the caches
    post({"prompt": "ROMEO:", "max_tokens": args.max_tokens})
rss_before = rss_mb()

latencies, tokens, errors = [], [0], []
lock = threading.Lock()
stop_at = time.time() + args.seconds


def client(k):
    n = 0
    while time.time() < stop_at:
        stream = k % 2 == 1
        body = {"prompt": "ROMEO:", "max_tokens": args.max_tokens, "temperature": 0.8,
                "seed": k * 100000 + n, "stream": stream,
                "stream_options": {"include_usage": True} if stream else None}
        started = time.time()
        try:
            status, payload = post(body)
            text = payload.decode()
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {text[:200]}")
            if stream:
                assert text.rstrip().endswith("data: [DONE]"), text[-200:]
                usage = [json.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")]
                count = usage[-1]["usage"]["completion_tokens"]
            else:
                count = json.loads(text)["usage"]["completion_tokens"]
            with lock:
                latencies.append(time.time() - started)
                tokens[0] += count
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            with lock:
                errors.append(str(e))
        n += 1


threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
began = time.time()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.time() - began
rss_after = rss_mb()
server.terminate()
server.wait(timeout=20)

latencies.sort()
p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan")
print(f"clients {args.clients}, {elapsed:.1f} s, max_tokens {args.max_tokens}")
print(f"requests answered {len(latencies)}, errors {len(errors)}")
print(f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
print(f"completion tokens/s in total {tokens[0] / elapsed:.0f}")
print(f"server RSS before {rss_before:.1f} MB, after {rss_after:.1f} MB")
for e in errors[:5]:
    print("error:", e)
raise SystemExit(1 if errors else 0)
