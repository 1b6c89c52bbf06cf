"""Writes gpt_bias.safetensors and gpt_nobias.safetensors: tiny nanoGPT models (nanoGPT's
model.py architecture, written out below), exported as nanoGPT checkpoints are to safetensors
(every state_dict entry, so lm_head.weight is a copy of the tied transformer.wte.weight),
plus the test input `fixture.idx` [2, 8] and PyTorch's logits `fixture.logits` [2, 8, 11]
and loss `fixture.loss` for targets `fixture.targets`.

Run with torch 2.13.0+cpu and safetensors: python3 make_gpt_fixture.py
"""
import math
import os

import torch
import torch.nn as nn
from torch.nn import functional as F
from safetensors.torch import save_file


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (nanoGPT's)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"], bias=c["bias"])
        self.n_head, self.n_embd = c["n_head"], c["n_embd"]

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"], bias=c["bias"])
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"], bias=c["bias"])

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = LayerNorm(c["n_embd"], c["bias"])
        self.attn = CausalSelfAttention(c)
        self.ln_2 = LayerNorm(c["n_embd"], c["bias"])
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c["vocab_size"], c["n_embd"]),
            wpe=nn.Embedding(c["block_size"], c["n_embd"]),
            drop=nn.Dropout(0.0),
            h=nn.ModuleList([Block(c) for _ in range(c["n_layer"])]),
            ln_f=LayerNorm(c["n_embd"], c["bias"])))
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c["n_layer"]))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx):
        pos = torch.arange(0, idx.size(1), dtype=torch.long)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for bias in (True, False):
        torch.manual_seed(7)
        c = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=bias)
        model = GPT(c).eval()
        with torch.no_grad():  # larger than nanoGPT's init so the logits are not all near 0
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        idx = torch.randint(0, c["vocab_size"], (2, 8))
        targets = torch.randint(0, c["vocab_size"], (2, 8))
        with torch.no_grad():
            logits = model(idx)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        tensors["fixture.idx"] = idx.to(torch.int32)
        tensors["fixture.targets"] = targets.to(torch.int32)
        tensors["fixture.logits"] = logits
        tensors["fixture.loss"] = loss.reshape(1)
        name = "gpt_bias.safetensors" if bias else "gpt_nobias.safetensors"
        save_file(tensors, os.path.join(here, name), metadata={"format": "pt"})
        print(name, sorted(k for k in tensors if not k.startswith("transformer.h.1")), float(loss))


if __name__ == "__main__":
    main()
