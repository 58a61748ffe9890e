"""Loads a `qkv export --format hf` directory with Hugging Face transformers, as a user would,
and compares it with what qkv computed (tests/export_test.cpp writes the expectation).

usage: hf_export_check.py EXPORT_DIR TEXT_FILE EXPECTED.safetensors
EXPECTED holds `ids` (qkv's token ids for the text) and `logits` (qkv's logits for them)."""
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, GPT2LMHeadModel

TOLERANCE = 1e-4


def main(export_dir, text_file, expected_file):
    expected = load_file(expected_file)
    with open(text_file, encoding="utf-8") as f:
        text = f.read()

    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    ids = tokenizer(text)["input_ids"]
    if ids != expected["ids"].tolist():
        sys.exit(f"tokenizer ({type(tokenizer).__name__}) gives {ids}, qkv {expected['ids'].tolist()}")
    if tokenizer.decode(ids) != text:
        sys.exit(f"tokenizer decodes {tokenizer.decode(ids)!r}, the text was {text!r}")

    model, info = GPT2LMHeadModel.from_pretrained(export_dir, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"transformers loaded the weights with problems: {problems}")
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    diff = (logits - expected["logits"]).abs().max().item()
    if not diff <= TOLERANCE:
        sys.exit(f"logits differ from qkv's by {diff:.3g} (tolerance {TOLERANCE})")
    print(f"transformers agrees: {len(ids)} tokens, {type(tokenizer).__name__}, "
          f"largest logit difference {diff:.2g}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
