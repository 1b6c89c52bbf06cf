"""Writes rnn.safetensors, the fixture of Ember's recurrent layer tests.

Run from this folder with torch==2.13.0+cpu and safetensors installed:
    python3 make_rnn_fixture.py
Three layers under PyTorch's parameter names, each with a prefix:
  "lstm."  torch.nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True), given (h0, c0)
  "gru."   torch.nn.GRU(3, 4, num_layers=2), zero initial state
  "rnn."   torch.nn.RNN(3, 4, nonlinearity='relu', bidirectional=True), given h0
For each: its output, its final states (h_n, and c_n for the LSTM), and the gradient of
sum(output * upstream) + sum(h_n) with respect to the input ("x_grad").
Inputs: "x_batch_first" [2, 5, 3] for the LSTM and "x" [5, 2, 3] (sequence first) for the others.
"""
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
x = torch.randn(5, 2, 3)
tensors = {"x": x, "x_batch_first": x.transpose(0, 1).contiguous()}
layers = [
    ("lstm.", torch.nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True), True),
    ("gru.", torch.nn.GRU(3, 4, num_layers=2), False),
    ("rnn.", torch.nn.RNN(3, 4, nonlinearity="relu", bidirectional=True), False),
]
for prefix, layer, batch_first in layers:
    inp = (tensors["x_batch_first"] if batch_first else x).clone().requires_grad_(True)
    directions = 2 if layer.bidirectional else 1
    state_shape = (layer.num_layers * directions, 2, 4)
    if prefix == "lstm.":
        h0, c0 = torch.randn(state_shape), torch.randn(state_shape)
        out, (hn, cn) = layer(inp, (h0, c0))
        tensors.update({prefix + "h0": h0, prefix + "c0": c0, prefix + "c_n": cn.detach().contiguous()})
    elif prefix == "rnn.":
        h0 = torch.randn(state_shape)
        out, hn = layer(inp, h0)
        tensors[prefix + "h0"] = h0
    else:
        out, hn = layer(inp)
    upstream = torch.randn(out.shape)
    ((out * upstream).sum() + hn.sum()).backward()
    tensors.update({prefix + name: t.detach().contiguous() for name, t in layer.state_dict().items()})
    tensors.update({prefix + "output": out.detach().contiguous(), prefix + "h_n": hn.detach().contiguous(), prefix + "upstream": upstream, prefix + "x_grad": inp.grad})
save_file(tensors, "rnn.safetensors", metadata={"source": "make_rnn_fixture.py", "torch": torch.__version__})
