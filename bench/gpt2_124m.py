#!/usr/bin/env python3
"""GPT-2 124M's shapes on the CPU: qkv against PyTorch eager (Hugging Face transformers), side by
side in one run. No download: the model is randomly initialised at GPT-2's configuration and its
tokenizer is a byte-level BPE trained on the corpus (padded with unused special tokens to GPT-2's
50257), so every shape is GPT-2 124M's.

  gpt2_124m.py QKV CORPUS WORK_DIR [LLMC_DIR]   (the test environment's Python: transformers,
                                                tokenizers)
  e.g. build-libtorch2/venv/bin/python bench/gpt2_124m.py build/qkv ../shared/data/tinyshakespeare.txt /tmp/gpt2

Measures, for each program: load time, generation tokens/s at batch 1 with the KV cache (128
tokens after a 16-token prompt, greedy), evaluation tokens/s (windows of 1024), the fine-tuning
step at batch 4, context 64 (AdamW), and the peak resident memory of each (qkv: one process per
command; PyTorch: one process per measurement). Prints one JSON object.

With LLMC_DIR, llm.c's train_gpt2.c runs there too (built with its Makefile's flags, e.g.
`gcc -Ofast -march=native -fopenmp -DOMP train_gpt2.c -lm`, beside gpt2_124M.bin and
dev/data/tinyshakespeare/*.bin written by llm.c's own writers, train_gpt2.write_model and
data_common.write_datafile): its step at the same B 4, T 64, median of its 40.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

qkv, corpus, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
hf = os.path.join(work, "gpt2_124m")
python = sys.executable
THREADS = os.cpu_count()


def make_model():
    if os.path.exists(os.path.join(hf, "model.safetensors")):
        return
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train([corpus], trainers.BpeTrainer(vocab_size=50257, special_tokens=["<|endoftext|>"],
              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    os.makedirs(hf, exist_ok=True)
    tok.model.save(hf)
    with open(os.path.join(hf, "vocab.json")) as f:
        vocab = json.load(f)
    for i in range(len(vocab), 50257):  # unused ids up to GPT-2's vocabulary
        vocab[f"<|unused_{i}|>"] = i
    with open(os.path.join(hf, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(hf)  # GPT-2 124M: 12 x 768, 1024, 50257


def peak_mb_of(cmd, env=None):
    """Runs cmd, returns (stdout+stderr, seconds, peak RSS in MB from /usr/bin/time)."""
    start = time.time()
    r = subprocess.run(["/usr/bin/time", "-f", "PEAK_KB %M"] + cmd, capture_output=True,
                       text=True, env=env)
    seconds = time.time() - start
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    peak = int(re.search(r"PEAK_KB (\d+)", r.stderr).group(1)) / 1024
    return r.stdout + r.stderr, seconds, peak


def rss_by_phase(cmd):
    """Runs cmd, sampling its resident memory every 50 ms: the peak while it loads, while its
    training steps run, and after the last step (evaluation, checkpoints, report)."""
    import threading
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    phase, peaks, lines = ["load"], {"load": 0, "steps": 0, "end": 0}, []

    def read():
        for line in p.stderr:
            lines.append(line)
            if re.search(r"step 1/", line):
                phase[0] = "steps"
            elif "eval step" in line or "done:" in line:
                phase[0] = "end"
    reader = threading.Thread(target=read)
    reader.start()
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for l in f:
                    if l.startswith("VmRSS:"):
                        peaks[phase[0]] = max(peaks[phase[0]], round(int(l.split()[1]) / 1024))
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    reader.join()
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{''.join(lines[-5:])}")
    return "".join(lines), peaks


def qkv_side():
    out = {}
    run = os.path.join(work, "qkv_run")
    if not os.path.exists(os.path.join(run, "best.pt")):
        log, seconds, peak = peak_mb_of([qkv, "import", hf, "--out", run])
        out["import_s"] = round(seconds, 2)
    # Load: a generation of one token is load plus one forward.
    _, seconds, peak = peak_mb_of([qkv, "generate", run, "--prompt", "ROMEO:",
                                   "--max-new-tokens", "1", "--temperature", "0"])
    out["load_and_one_token_s"] = round(seconds, 2)
    log, seconds, peak = peak_mb_of([qkv, "generate", run, "--prompt-file", prompt_file,
                                     "--max-new-tokens", "128", "--temperature", "0"])
    out["generate_tokens_per_s"] = float(re.search(r"\(([\d.]+) tokens/s", log).group(1))
    out["generate_peak_mb"] = round(peak)
    log, seconds, peak = peak_mb_of([qkv, "eval", run, "--data", eval_file, "--json",
                                     "--batch-size", "1"])
    j = json.loads(log[log.index("{"):log.index("}") + 1])
    out["eval_tokens_per_s"] = round(j["tokens_per_s"])
    out["eval_peak_mb"] = round(peak)
    tune = os.path.join(work, "qkv_tune")
    subprocess.run(["rm", "-rf", tune, os.path.join(work, "qkv_data")])
    log, peaks = rss_by_phase([
        qkv, "train", os.path.join(root, "configs/tiny.yaml"), "--init-from", run,
        "--set", f"data.files={corpus}", "--set", f"data.dir={work}/qkv_data",
        "--set", f"train.out_dir={tune}", "--set", "train.max_steps=12",
        "--set", "model.block_size=64",
        "--set", "train.batch_size=4", "--set", "train.log_every=1", "--set", "eval.every=1000",
        "--set", "eval.batches=1", "--set", "checkpoint.every=0",
        "--set", f"runtime.threads={THREADS}"])
    out["train_step_ms"] = float(re.search(r"median ([\d.]+) ms/step", log).group(1))
    out["train_peak_mb_while_stepping"] = peaks["steps"]
    out["train_peak_mb_with_final_checkpoints"] = max(peaks.values())
    out["train_time_line"] = re.search(r"time: (.*)", log).group(1)
    return out


def torch_measure(what):
    """One measurement in this process (its peak memory is the process's)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2LMHeadModel
    torch.set_num_threads(THREADS)
    tok = ByteLevelBPETokenizer(os.path.join(hf, "vocab.json"), os.path.join(hf, "merges.txt"))
    start = time.time()
    model = GPT2LMHeadModel.from_pretrained(hf)
    out = {"load_s": round(time.time() - start, 2)}
    if what == "generate":
        model.eval()
        ids = torch.tensor([tok.encode(open(prompt_file).read()).ids])
        with torch.no_grad():
            start = time.time()
            new = model.generate(ids, max_new_tokens=128, min_new_tokens=128, do_sample=False,
                                 pad_token_id=0)
            seconds = time.time() - start
        out["generate_tokens_per_s"] = round((new.shape[1] - ids.shape[1]) / seconds, 1)
    elif what == "eval":
        model.eval()
        ids = tok.encode(open(eval_file).read()).ids
        start, scored = time.time(), 0
        with torch.no_grad():
            for i in range(0, len(ids) - 1, 1024):
                window = torch.tensor([ids[i:i + 1025]])
                model(window[:, :-1], labels=window[:, :-1])
                scored += window.shape[1] - 1
        out["eval_tokens_per_s"] = round(scored / (time.time() - start))
    else:  # the fine-tuning step, batch 4, context 64
        model.train()
        ids = torch.tensor(tok.encode(open(corpus).read()[:200000]).ids)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
        times = []
        for step in range(12):
            start = torch.randint(0, len(ids) - 65, (4,))
            batch = torch.stack([ids[s:s + 64] for s in start])
            began = time.time()
            loss = model(batch, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            times.append((time.time() - began) * 1000)
        out["train_step_ms"] = round(statistics.median(times[2:]), 1)
    return out


def torch_side():
    out = {}
    for what in ("generate", "eval", "train"):
        log, _, peak = peak_mb_of([python, os.path.abspath(__file__), qkv, corpus, work, what])
        j = json.loads(log[log.index("{"):log.rindex("}") + 1])
        if what == "generate":
            out["load_s"] = j["load_s"]
        out.update({k: v for k, v in j.items() if k != "load_s"})
        out[f"{what}_peak_mb"] = round(peak)
    return out


root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
make_model()
prompt_file = os.path.join(work, "prompt.txt")
eval_file = os.path.join(work, "eval.txt")
with open(corpus, encoding="utf-8") as f:
    text = f.read()
with open(prompt_file, "w") as f:
    f.write(text[:64])  # ~16 tokens
with open(eval_file, "w") as f:
    f.write(text[:40000])
def llmc_side(directory):
    start = time.time()
    r = subprocess.run(["/usr/bin/time", "-f", "PEAK_KB %M", "./train_gpt2"], cwd=directory,
                       capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(THREADS)))
    if r.returncode != 0:
        raise SystemExit(f"llm.c failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    steps = [float(x) for x in re.findall(r"\(took ([\d.]+) ms\)", r.stdout)]
    return {"train_step_ms": round(statistics.median(steps), 1), "steps": len(steps),
            "peak_mb": round(int(re.search(r"PEAK_KB (\d+)", r.stderr).group(1)) / 1024),
            "wall_s": round(time.time() - start, 1)}


if len(sys.argv) > 4 and sys.argv[4] in ("generate", "eval", "train"):
    print(json.dumps(torch_measure(sys.argv[4])))
else:
    import platform
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    result = {"cpu": cpu, "threads": THREADS, "qkv": qkv_side(), "pytorch_eager": torch_side()}
    if len(sys.argv) > 4:
        result["llm.c"] = llmc_side(sys.argv[4])
    print(json.dumps(result, indent=1))
