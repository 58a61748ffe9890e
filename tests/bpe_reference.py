#!/usr/bin/env python3
"""Trains a byte-level BPE with Hugging Face `tokenizers` (GPT-2's pre-tokenizer) on varied text
and encodes other varied text with it: the reference tests/bpe_tokenizer_test.cpp holds qkv's
tokenizer to.

  bpe_reference.py OUT_DIR    writes vocab.json, merges.txt, test.txt (UTF-8) and ids.json, and
                              json_only/tokenizer.json (the same tokenizer in one file)
"""
import json
import os
import random
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

out = sys.argv[1]

WORDS = ["the", "king", "Queen", "river", "bank", "money", "über", "naïve", "café", "Straße",
         "Ελλάδα", "Москва", "東京", "日本語", "القاهرة", "हिन्दी", "x²", "Ⅻ", "١٢٣", "ǅemal",
         "ﬁne", "İstanbul", "e\u0301", "a"]
CONTRACTIONS = ["don't", "it's", "we're", "they've", "I'm", "you'll", "he'd", "O'Neil", "'tis",
                "rock'n'roll", "IT'S", "'"]
PUNCTUATION = ["...", "!!!", "?!", "--", "—", "“quoted”", "(x)", "[y]", "{z}", "#", "@@", "$$$",
               "%", "&&", "**", "//", "::", ";;", "<|", "|>", "~~~", ",", ".", "🙂", "👍🏽", "€5"]
NUMBERS = ["0", "7", "42", "123", "3.14", "1,000,000", "2026-11-28", "٣", "0x1F", "1e-9"]
SPACES = [" ", " ", " ", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", " \n", "\u00a0", "\r\n",
          "\n   ", "    \t "]


def text(rng, size, specials):
    parts = []
    total = 0
    while total < size:
        kind = rng.random()
        if kind < 0.5:
            piece = rng.choice(WORDS)
        elif kind < 0.62:
            piece = rng.choice(CONTRACTIONS)
        elif kind < 0.8:
            piece = rng.choice(PUNCTUATION)
        elif kind < 0.95:
            piece = rng.choice(NUMBERS)
        else:
            piece = "<|endoftext|>" if specials and rng.random() < 0.3 else rng.choice(WORDS).upper()
        piece += rng.choice(SPACES) if rng.random() < 0.8 else ""
        parts.append(piece)
        total += len(piece.encode())
    return "".join(parts)


tokenizer = Tokenizer(models.BPE())
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<|endoftext|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                              show_progress=False)
tokenizer.train_from_iterator([text(random.Random(1), 300_000, False)], trainer)
tokenizer.model.save(out)
# The same tokenizer as one tokenizer.json, the form Hugging Face's hub also ships.
os.makedirs(os.path.join(out, "json_only"), exist_ok=True)
tokenizer.save(os.path.join(out, "json_only", "tokenizer.json"))

test = text(random.Random(2), 120_000, True)
with open(os.path.join(out, "test.txt"), "w", encoding="utf-8", newline="") as f:
    f.write(test)
ids = tokenizer.encode(test).ids
assert tokenizer.decode(ids, skip_special_tokens=False) == test
with open(os.path.join(out, "ids.json"), "w") as f:
    json.dump(ids, f)
print(f"bpe_reference: {len(test.encode())} bytes, {len(ids)} tokens, vocabulary "
      f"{tokenizer.get_vocab_size()}")
