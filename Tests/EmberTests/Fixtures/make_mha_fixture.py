"""Writes mha.safetensors, the fixture of Ember's MultiheadAttention test.

Run from this folder with torch==2.13.0+cpu and safetensors installed:
    python3 make_mha_fixture.py
It holds the state dict of torch.nn.MultiheadAttention(8, 2) under PyTorch's names
(in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias), fixed inputs
query [3, 2, 8], key [4, 2, 8], value [4, 2, 8] (sequence-first), and PyTorch's outputs:
  plain.output, plain.weights        need_weights=True (weights averaged over heads)
  masked.output                      key_padding_mask (True = ignore) and a boolean attn_mask
                                     (True = not allowed), need_weights=False
  masked.weights_per_head            the same masks, need_weights=True, average_attn_weights=False
  causal.output                      self-attention on query with a causal float mask, is_causal=True
"""
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
mha = torch.nn.MultiheadAttention(8, 2).eval()
with torch.no_grad():
    mha.in_proj_bias.normal_()
    mha.out_proj.bias.normal_()
q, k, v = torch.randn(3, 2, 8), torch.randn(4, 2, 8), torch.randn(4, 2, 8)
key_padding_mask = torch.tensor([[False, False, False, True], [False, True, False, False]])
attn_mask = torch.tensor([[False, True, False, False], [False, False, False, False], [True, False, False, False]])
causal = torch.nn.Transformer.generate_square_subsequent_mask(3)
with torch.no_grad():
    plain_out, plain_w = mha(q, k, v)
    masked_out, _ = mha(q, k, v, key_padding_mask=key_padding_mask, attn_mask=attn_mask, need_weights=False)
    _, masked_w = mha(q, k, v, key_padding_mask=key_padding_mask, attn_mask=attn_mask, average_attn_weights=False)
    causal_out, _ = mha(q, q, q, attn_mask=causal, is_causal=True, need_weights=False)
tensors = {name: t.detach().contiguous() for name, t in mha.state_dict().items()}
tensors.update({
    "query": q, "key": k, "value": v,
    "key_padding_mask": key_padding_mask.float(), "attn_mask": attn_mask.float(),
    "plain.output": plain_out, "plain.weights": plain_w,
    "masked.output": masked_out, "masked.weights_per_head": masked_w,
    "causal.output": causal_out,
})
save_file(tensors, "mha.safetensors", metadata={"source": "make_mha_fixture.py", "torch": torch.__version__})
