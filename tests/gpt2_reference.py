#!/usr/bin/env python3
"""A small GPT-2 made and saved by Hugging Face `transformers`, and what transformers computes
with it: the reference tests/import_test.cpp holds `qkv import` to. No download: the tokenizer
is a byte-level BPE trained here, the model is trained here for a few steps.

  gpt2_reference.py OUT_DIR
writes, for VARIANT tied and untied (the output matrix wte itself, or its own), OUT_DIR/VARIANT/hf
(config.json, model.safetensors, vocab.json, merges.txt) and OUT_DIR/VARIANT/expected.json: the
test text's ids and logits, the greedy continuation of a prompt (64 tokens), the mean NLL of a
text.
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel

root = sys.argv[1]

corpus = ("First Citizen: Before we proceed any further, hear me speak.\n"
          "All: Speak, speak. We're resolved rather to die than to famish?\n"
          "First Citizen: You know Caius Marcius is chief enemy to the people; it's 1,000 times "
          "true.\tÜber café naïve — ok!!\n") * 40
def make(out, tie):
    hf = os.path.join(out, "hf")
    os.makedirs(hf, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator([corpus], trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer.model.save(hf)
    vocab = tokenizer.get_vocab_size()

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab, n_positions=128, n_embd=64, n_layer=3, n_head=4,
                        activation_function="gelu_new", tie_word_embeddings=tie, bos_token_id=0,
                        eos_token_id=0)
    model = GPT2LMHeadModel(config)
    # A few steps of training: logits with real margins, so greedy decoding is a stable reference.
    ids = torch.tensor(tokenizer.encode(corpus).ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(60):
        start = torch.randint(0, len(ids) - 65, (8,))
        batch = torch.stack([ids[s:s + 64] for s in start])
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(hf)

    text = "First Citizen: We're resolved, speak!\tÜber 1,000 times."
    text_ids = tokenizer.encode(text).ids
    prompt = "All: Speak"
    prompt_ids = tokenizer.encode(prompt).ids
    nll_text = corpus[:400]
    nll_ids = tokenizer.encode(nll_text).ids
    assert len(nll_ids) <= 128, len(nll_ids)
    with torch.no_grad():
        logits = model(torch.tensor([text_ids])).logits[0]
        generated = model.generate(torch.tensor([prompt_ids]), max_new_tokens=64, do_sample=False,
                                   pad_token_id=0)[0, len(prompt_ids):].tolist()
        nll = model(torch.tensor([nll_ids]), labels=torch.tensor([nll_ids])).loss.item()
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"text": text, "ids": text_ids, "logits": logits.tolist(), "prompt": prompt,
                   "generated_ids": generated, "generated": tokenizer.decode(generated),
                   "nll_text": nll_text, "nll_tokens": len(nll_ids), "mean_nll": nll}, f)
    print(f"gpt2_reference: vocabulary {vocab}, loss after training {loss.item():.3f}, "
          f"{'tied' if tie else 'untied'}")


for variant in ("tied", "untied"):
    make(os.path.join(root, variant), variant == "tied")
