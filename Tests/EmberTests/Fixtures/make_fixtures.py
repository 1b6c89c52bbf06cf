"""Writes the safetensors fixtures the Swift tests read.

Run from this folder with numpy and safetensors installed (pip install numpy safetensors):
    python3 make_fixtures.py
It writes:
  python_tensors.safetensors  tensors of several dtypes and shapes plus __metadata__
  mlp_state.safetensors       the state dict of torch.nn.Sequential(Linear(4, 3), ReLU(), Linear(3, 2))
                              under PyTorch's names and layouts (weight [out, in])
  mlp_io.safetensors          a fixed input "input" [2, 4] and that module's output "expected" [2, 2],
                              computed as PyTorch's Linear does it: x @ W.T + b
"""
import numpy as np
from safetensors.numpy import save_file

rng = np.random.default_rng(0)

save_file({
    "weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    "bias": np.array([-1.5, 2.25], dtype=np.float32),
    "scalar": np.array(3.5, dtype=np.float32),
    "steps": np.array([1, -2, 2**31 - 1], dtype=np.int64),
    "half": np.array([0.5, -2.0, 65504.0], dtype=np.float16),
    "double": np.array([[1e-3], [2.5]], dtype=np.float64),
    "mask": np.array([True, False, True]),
}, "python_tensors.safetensors", metadata={"source": "make_fixtures.py"})

w0 = rng.standard_normal((3, 4)).astype(np.float32)
b0 = rng.standard_normal(3).astype(np.float32)
w2 = rng.standard_normal((2, 3)).astype(np.float32)
b2 = rng.standard_normal(2).astype(np.float32)
x = rng.standard_normal((2, 4)).astype(np.float32)
hidden = np.maximum(x @ w0.T + b0, 0)
expected = (hidden @ w2.T + b2).astype(np.float32)
save_file({"0.weight": w0, "0.bias": b0, "2.weight": w2, "2.bias": b2}, "mlp_state.safetensors", metadata={"format": "pt"})
save_file({"input": x, "expected": expected}, "mlp_io.safetensors")
