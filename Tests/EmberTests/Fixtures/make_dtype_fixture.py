"""Writes dtypes.safetensors: sources of every dtype and PyTorch's conversions of them.

Run from this folder with torch and safetensors installed (pip install torch safetensors):
    python3 make_dtype_fixture.py
Each source tensor `<type>` holds values chosen for their edge cases (ties, subnormals,
overflow, wrap-around); `<source>_to_<target>` holds `source.to(target)` as PyTorch computes
it on the CPU. The Swift tests cast each source on every device and compare the bits, and
write the file back to check that every dtype round-trips byte for byte.
"""
import torch
from safetensors.torch import save_file

names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
         "int32": torch.int32, "int64": torch.int64, "uint8": torch.uint8, "bool": torch.bool}

# Floats: exact ties of float16 and bfloat16 (round half to even), their largest finite values
# and the first values that overflow, float16 subnormals and underflow, infinities and a NaN.
f32 = torch.tensor([
    0.0, -0.0, 1.0, -1.0, 1 / 3, 0.1, -2.5, 1e-3,
    1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-11 + 2**-20,
    65504.0, 65519.0, 65520.0, 3.3895e38, 3.39e38, 6.1035e-5, 1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9,
    float("inf"), float("-inf"), float("nan"), 1e30, -7e-39,
], dtype=torch.float32)
# (2**62 + 2**38 + 1 needs one rounding to float32: through Double it would round to 2**62.)
# Floats in range of every integer type's conversion (truncation toward zero; uint8 wraps
# as PyTorch does: through int64, modulo 256).
f32_int = torch.tensor([-300.7, -2.5, -1.5, -0.5, -0.0, 0.5, 1.5, 2.99, 127.5, 255.7, 256.3, 1e6 + 0.5,
                        -1e9, 2e9, 123456789.0, 16777217.0], dtype=torch.float32)
i64 = torch.tensor([2**40 + 1, -2**40 - 3, 2**31 + 5, -2**31 - 7, 2**24 + 1, 2**53 + 1, 2**62 + 2**38 + 1,
                    -1, 255, 256, 300, 0, 7, 65519, 65520, -9_223_372_036_854_775_807], dtype=torch.int64)
i32 = torch.tensor([2**31 - 1, -2**31, 2**24 + 1, 2**24 + 3, -1, 300, 0, 65504, 70000, -129], dtype=torch.int32)
u8 = torch.tensor([0, 1, 127, 128, 200, 255], dtype=torch.uint8)
boolean = torch.tensor([True, False, True, True, False])
f16 = torch.tensor([0.0, -0.0, 1.0, 65504.0, -65504.0, 6.1e-5, 5.96e-8, 1 / 3, 1 + 2**-10, 1 + 3 * 2**-10,
                    2049.0, 300.5, -1.5, float("inf"), float("nan")], dtype=torch.float16)
bf16 = torch.tensor([0.0, 1.0, -1.0, 3.3895e38, 1e-38, 1 / 3, 1 + 2**-7, 255.0, 257.0, 65536.0, 1e5, -300.0,
                     float("-inf"), float("nan")], dtype=torch.bfloat16)

sources = {"float32": f32, "float32_int": f32_int, "int64": i64, "int32": i32, "uint8": u8, "bool": boolean,
           "float16": f16, "bfloat16": bf16}
tensors = dict(sources)
for source_name, source in sources.items():
    for target_name, target in names.items():
        if source.dtype == target:
            continue
        if source_name == "float32" and not target.is_floating_point and target != torch.bool:
            continue  # out-of-range float-to-integer conversions are undefined in C++
        if source.dtype.is_floating_point and source_name != "float32_int" and target in (torch.int32, torch.int64, torch.uint8):
            continue  # the same (infinities and NaN have no integer value)
        tensors[f"{source_name}_to_{target_name}"] = source.to(target)

# A 2-D tensor of each type for the layout check.
gen = torch.Generator().manual_seed(0)
for name, dtype in names.items():
    if dtype.is_floating_point:
        tensors[f"matrix_{name}"] = torch.randn(3, 5, generator=gen).to(dtype)
    elif dtype == torch.bool:
        tensors[f"matrix_{name}"] = torch.rand(3, 5, generator=gen) > 0.5
    else:
        tensors[f"matrix_{name}"] = torch.randint(0, 200, (3, 5), generator=gen).to(dtype)

save_file(tensors, "dtypes.safetensors", metadata={"source": "make_dtype_fixture.py", "torch": torch.__version__})
