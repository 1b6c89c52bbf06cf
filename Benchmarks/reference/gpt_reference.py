#!/usr/bin/env python3
"""PyTorch reference for `ember train --model gpt`: the same model (nanoGPT's architecture,
from Tests/EmberTests/Fixtures/make_gpt_fixture.py), data (the bundled Shakespeare, a sorted
character vocabulary, the first 90% for training, nanoGPT's get_batch), initialisation
scheme (nanoGPT's), optimizer (AdamW betas (0.9, 0.99) with weight decay 0.1 on >= 2-D
parameters only), schedule (nanoGPT's get_lr: 100 warm-up iterations, cosine to 1e-4 at
max_iters) and gradient clipping (1.0), with Ember's loop: train and validation loss
(eval_iters batches each) before iterations 0, eval_interval, ... and after the last.

Usage: python3 Benchmarks/reference/gpt_reference.py [--max-iters 2000] [--eval-interval 250]
       [--eval-iters 20] [--seed 0] [--threads N]
Needs torch (2.13.0+cpu was used) and nothing else.
"""
import argparse
import gzip
import math
import os
import sys
import time

import torch
from torch.nn import functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Tests", "EmberTests", "Fixtures"))
sys.dont_write_bytecode = True
from make_gpt_fixture import GPT  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-iters", type=int, default=2000)
    ap.add_argument("--eval-interval", type=int, default=250)
    ap.add_argument("--eval-iters", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup-iters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    with gzip.open(os.path.join(ROOT, "Sources", "Ember", "Resources", "Data", "shakespeare.txt.gz"), "rt") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    splits = {"train": data[:n], "val": data[n:]}
    B, T = a.batch_size, a.block_size

    def get_batch(split):
        d = splits[split]
        ix = torch.randint(len(d) - T, (B,))
        return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])

    c = dict(vocab_size=len(chars), block_size=T, n_layer=a.n_layer, n_head=a.n_head, n_embd=a.n_embd, bias=False)
    model = GPT(c)
    params = [p for p in model.parameters()]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.99))

    def get_lr(it):
        if it < a.warmup_iters:
            return a.lr * (it + 1) / (a.warmup_iters + 1)
        if it > a.max_iters:
            return a.min_lr
        ratio = (it - a.warmup_iters) / (a.max_iters - a.warmup_iters)
        return a.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (a.lr - a.min_lr)

    @torch.no_grad()
    def estimate_loss():
        model.eval()
        out = {}
        for split in ("train", "val"):
            losses = torch.zeros(a.eval_iters)
            for k in range(a.eval_iters):
                x, y = get_batch(split)
                logits = model(x)
                losses[k] = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).item()
            out[split] = losses.mean().item()
        model.train()
        return out

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {sum(p.numel() for p in params)} parameters; "
          f"vocabulary {len(chars)}; {n} train / {len(data) - n} val characters")
    start = time.perf_counter()
    train_s = 0.0
    for it in range(a.max_iters + 1):
        for g in opt.param_groups:
            g["lr"] = get_lr(it)
        if it % a.eval_interval == 0 or it == a.max_iters:
            losses = estimate_loss()
            print(f"step {it:5d}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}, "
                  f"lr {get_lr(it):.2e}, {time.perf_counter() - start:.1f} s", flush=True)
        if it == a.max_iters:
            break
        t0 = time.perf_counter()
        x, y = get_batch("train")
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        train_s += time.perf_counter() - t0
    print(f"{a.max_iters} iterations: {train_s / a.max_iters * 1e3:.1f} ms/iter, {B * T * a.max_iters / train_s:.0f} tokens/s")


if __name__ == "__main__":
    main()
