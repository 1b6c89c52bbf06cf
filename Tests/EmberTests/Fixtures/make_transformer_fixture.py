"""Writes transformer.safetensors, the fixture of Ember's TransformerEncoder test.

Run from this folder with torch==2.13.0+cpu and safetensors installed:
    python3 make_transformer_fixture.py
Two torch.nn.TransformerEncoder stacks of 2 layers (d_model 8, nhead 2, dim_feedforward 16,
dropout 0, batch_first=True) with a final LayerNorm, their LayerNorm weights and biases
randomised: "post." (ReLU, norm after each branch) and "pre." (GELU, norm_first=True). Each
holds its state dict under PyTorch's names, its output on src [2, 5, 8] with a key padding mask
(True = ignore) and, for "post.", a causal mask too, and the gradient of
sum(output * upstream) with respect to src. The inputs require grad, so PyTorch takes its
composed (not fused inference) path.
"""
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
src = torch.randn(2, 5, 8)
upstream = torch.randn(2, 5, 8)
padding = torch.tensor([[False, False, False, False, True], [False, False, True, True, False]])
causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
tensors = {"src": src, "upstream": upstream, "key_padding_mask": padding.float()}
for prefix, activation, norm_first, mask in [("post.", "relu", False, causal), ("pre.", "gelu", True, None)]:
    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation=activation,
                                             batch_first=True, norm_first=norm_first)
    encoder = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(8), enable_nested_tensor=False).eval()
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if "norm" in name:
                p.normal_()
    x = src.clone().requires_grad_(True)
    out = encoder(x, mask=mask, src_key_padding_mask=padding)
    (out * upstream).sum().backward()
    tensors.update({prefix + name: t.detach().contiguous() for name, t in encoder.state_dict().items()})
    tensors[prefix + "output"] = out.detach()
    tensors[prefix + "src_grad"] = x.grad
save_file(tensors, "transformer.safetensors", metadata={"source": "make_transformer_fixture.py", "torch": torch.__version__})
