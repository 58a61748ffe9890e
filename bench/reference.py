#!/usr/bin/env python3
"""qkv's transformer in PyTorch eager mode: the yardstick for speed and an independent check of
numerics.

  reference.py logits CHECKPOINT          logits of a qkv checkpoint on a fixed input, as JSON
  reference.py bench CONFIG [--steps N]   median training step of the same model, as JSON

Written for Debian's python3-torch (1.13), which runs the same ATen kernels as the LibTorch qkv
links; nothing here imports qkv code. The fixed input of `logits` is idx[b, t] = (7b + 3t + 1) % V
with B = 2 and T = block_size; qkv's test computes the same.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- configuration ------------------------------------------------------------------------------

def parse_resolved_yaml(text):
    """qkv writes its resolved config as two-level `section: {key: value}` YAML (see
    Config::to_yaml); a small reader keeps this script free of a YAML dependency."""
    config, section = {}, None
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if not raw.startswith(" "):
            section = config.setdefault(key, {})
            continue
        if value.startswith("["):
            section[key] = [v.strip().strip('"') for v in value.strip("[]").split(",") if v.strip()]
        elif value.startswith('"'):
            section[key] = value.strip('"')
        elif value in ("true", "false"):
            section[key] = value == "true"
        else:
            try:
                section[key] = int(value)
            except ValueError:
                try:
                    section[key] = float(value)
                except ValueError:
                    section[key] = value
    return config


# Defaults of qkv's ModelConfig, for configs that leave a key out.
MODEL_DEFAULTS = dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, d_model=128, d_ff=0,
                      dropout=0.0, bias=True, tie_weights=False, positional_encoding="sinusoidal")


# --- the model: one class per idea, as in qkv ----------------------------------------------------

class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, b = c["d_model"], c["bias"]
        self.n_head = c["n_head"]
        self.w_q, self.w_k = nn.Linear(C, C, bias=b), nn.Linear(C, C, bias=b)
        self.w_v, self.w_o = nn.Linear(C, C, bias=b), nn.Linear(C, C, bias=b)
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q = self.w_q(x).view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = self.w_k(x).view(B, T, H, D).transpose(1, 2)
        v = self.w_v(x).view(B, T, H, D).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)  # (B, H, T, T)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
        y = self.drop(att) @ v  # (B, H, T, D)
        return self.drop(self.w_o(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, F_ = c["d_model"], c["d_ff"] or 4 * c["d_model"]
        self.ln1 = nn.LayerNorm(C, elementwise_affine=True)
        self.attn = SelfAttention(c)
        self.ln2 = nn.LayerNorm(C, elementwise_affine=True)
        self.fc_in = nn.Linear(C, F_, bias=c["bias"])
        self.fc_out = nn.Linear(F_, C, bias=c["bias"])
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.drop(self.fc_out(F.gelu(self.fc_in(self.ln2(x)))))


def sinusoidal_table(max_len, d):
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    angle = pos / torch.pow(10000.0, torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.empty(max_len, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return pe.float()


class TransformerLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        C = c["d_model"]
        self.tok_emb = nn.Parameter(torch.randn(c["vocab_size"], C) * 0.02)
        if c["positional_encoding"] == "sinusoidal":
            self.register_buffer("pe", sinusoidal_table(c["block_size"], C))
        else:
            self.pos_emb = nn.Embedding(c["block_size"], C)
        self.drop = nn.Dropout(c["dropout"])
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = None if c["tie_weights"] else nn.Parameter(torch.randn(c["vocab_size"], C) * 0.02)
        if not c["bias"]:  # qkv's layer norms drop their bias with the linear layers'
            for m in self.modules():
                if isinstance(m, nn.LayerNorm):
                    m.bias = None

    def forward(self, idx):
        T = idx.shape[1]
        tok = F.embedding(idx, self.tok_emb) * math.sqrt(self.c["d_model"])
        pos = self.pe[:T] if hasattr(self, "pe") else self.pos_emb(torch.arange(T, device=idx.device))
        x = self.drop(tok + pos)
        for block in self.blocks:
            x = block(x)
        head = self.tok_emb if self.lm_head is None else self.lm_head
        return F.linear(self.ln_f(x), head)  # (B, T, V)


def qkv_name(name):
    """Our parameter names -> qkv's (the two layouts differ only where nn.Module forces it)."""
    name = name.replace("tok_emb", "tok_emb.weight") if name == "tok_emb" else name
    name = name.replace(".fc_in.", ".ffn.fc_in.").replace(".fc_out.", ".ffn.fc_out.")
    return {"pe": "pos_enc.pe", "lm_head": "lm_head"}.get(name, name)


def load_checkpoint(path):
    archive = torch.jit.load(path, map_location="cpu")
    config_text = bytes(archive.config.tolist()) if hasattr(archive, "config") else None
    if config_text is None:
        config_text = bytes(dict(archive.named_parameters(recurse=False))["config"].tolist())
    config = parse_resolved_yaml(config_text.decode())
    model_config = {**MODEL_DEFAULTS, **config["model"]}
    model = TransformerLM(model_config)
    stored = {**dict(archive.model.named_parameters()), **dict(archive.model.named_buffers())}
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            tensor.copy_(stored[qkv_name(name)])
    return model.eval(), model_config


# --- commands ------------------------------------------------------------------------------------

def cmd_logits(args):
    model, c = load_checkpoint(args.checkpoint)
    V, T = c["vocab_size"], c["block_size"]
    idx = torch.tensor([[(7 * b + 3 * t + 1) % V for t in range(T)] for b in range(2)])
    with torch.no_grad():
        logits = model(idx)
    json.dump({"shape": list(logits.shape), "logits": logits.flatten().tolist()}, sys.stdout)


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    config_text = open(args.config).read()
    config = parse_resolved_yaml(config_text)
    c = {**MODEL_DEFAULTS, **config.get("model", {})}
    train = config.get("train", {})
    optim = config.get("optim", {})
    B, T = train.get("batch_size", 12), c["block_size"]
    torch.manual_seed(1337)
    model = TransformerLM(c).train()
    params = model
    if args.compile:
        if not hasattr(torch, "compile"):
            sys.exit(f"reference.py: --compile needs PyTorch 2.x, this is {torch.__version__}")
        model = torch.compile(model)  # compiled in the warm-up steps, which are not timed
    decay = [p for p in params.parameters() if p.dim() >= 2]
    no_decay = [p for p in params.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": optim.get("weight_decay", 0.1)},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=optim.get("lr", 1e-3),
                            betas=(optim.get("beta1", 0.9), optim.get("beta2", 0.99)))
    times = []
    for step in range(args.warmup + args.steps):
        x = torch.randint(0, c["vocab_size"], (B, T))
        y = torch.randint(0, c["vocab_size"], (B, T))
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x).view(-1, c["vocab_size"]), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.parameters(), train.get("grad_clip", 1.0))
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1000
    json.dump({"implementation": "pytorch-compile" if args.compile else "pytorch-eager",
               "torch": torch.__version__,
               "threads": torch.get_num_threads(), "ms_per_step": ms,
               "tokens_per_s": B * T / (ms / 1000)}, sys.stdout)
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("logits")
    p.add_argument("checkpoint")
    p.set_defaults(fn=cmd_logits)
    p = sub.add_parser("bench")
    p.add_argument("config")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch 2.x)")
    p.set_defaults(fn=cmd_bench)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
