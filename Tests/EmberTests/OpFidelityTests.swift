import Foundation
import Testing
@testable import Ember

/// PyTorch fidelity of the ops: 0-d tensors, GELU's tanh form, multi-dim logSumExp and std,
/// max/min with indices, grouped convolution, rectangular pooling, Python-like slicing,
/// integer powers, scalar types and allclose. Expected values are hand-worked or come from
/// PyTorch 2.x (said so beside them).
@Suite("Op fidelity")
struct OpFidelityTests {
    static let devices = TestDevices.all

    // MARK: 0-d tensors

    @Test("reductions accept a 0-d tensor, with dim 0 or -1, as PyTorch", arguments: devices)
    func zeroDimReductions(_ d: Device) {
        let x = Tensor(3.0, device: d)
        #expect(x.shape == [])
        for y in [x.sum(), x.sum(dim: 0), x.sum(dim: -1), x.sum(dim: 0, keepDim: true), x.sum(dims: [0]),
                  x.mean(), x.mean(dim: 0), x.mean(dim: -1, keepDim: true), x.max(), x.min(),
                  x.logSumExp(dim: 0), x.logSumExp(dim: -1, keepDim: true)] {
            #expect(y.shape == [] && y.toArray() == [3])
        }
        // torch.tensor(3.).var() is nan (one element, Bessel's correction); correction 0 gives 0.
        #expect(x.variance().shape == [] && x.variance().item().isNaN)
        #expect(x.variance(correction: 0).toArray() == [0])
        #expect(x.variance(dim: 0, correction: 0).toArray() == [0])
        #expect(x.argmax().shape == [] && x.argmax().toIntArray() == [0])
        #expect(x.argmin(dim: 0).shape == [] && x.argmin(dim: -1).toIntArray() == [0])
        #expect(x.softmax(dim: 0).shape == [] && x.softmax(dim: 0).toArray() == [1])
        #expect(x.softmax(dim: -1).toArray() == [1])
        #expect(x.logSoftmax(dim: 0).toArray() == [0] && x.logSoftmax().shape == [])
    }

    @Test("shape ops accept a 0-d tensor, as PyTorch", arguments: devices)
    func zeroDimShapes(_ d: Device) {
        let x = Tensor(3.0, device: d)
        #expect(x.reshape([1]).shape == [1] && x.reshape([-1]).shape == [1] && x.reshape([1, 1]).shape == [1, 1])
        #expect(Tensor([5], device: d).reshape([]).shape == [] && Tensor([5], device: d).view([]).item() == 5)
        #expect(x.view([1]).toArray() == [3] && x.view([]).shape == [])
        #expect(x.flatten().shape == [1] && x.flatten(start: 0, end: -1).toArray() == [3])
        #expect(x.squeeze().shape == [] && x.squeeze(0).shape == [] && x.squeeze(-1).shape == [])
        #expect(x.unsqueeze(0).shape == [1] && x.unsqueeze(-1).shape == [1] && x.unsqueeze(0).unsqueeze(0).shape == [1, 1])
        #expect(x.expand([2, 3]).shape == [2, 3] && x.expand([2, 3]).toArray() == [3, 3, 3, 3, 3, 3] && x.expand([]).shape == [])
        #expect(x.permute([]).shape == [] && x.permute([]).item() == 3)
        #expect(x.transpose(0, 0).shape == [] && x.transpose(0, -1).item() == 3)
        #expect(x.contiguous().shape == [] && x.clone().item() == 3)
        // torch.stack of 0-d tensors gives a 1-d tensor.
        let s = Tensor.stack([x, Tensor(4.0, device: d), Tensor(5.0, device: d)])
        #expect(s.shape == [3] && s.toArray() == [3, 4, 5])
        #expect(Tensor.stack([x], dim: -1).shape == [1])
        #expect(x[].shape == [] && x[].item() == 3)
        #expect(Tensor([1, 2, 3], device: d)[1].shape == [])
        #expect((x + Tensor([1, 2], device: d)).toArray() == [4, 5])
    }

    @Test("cat refuses 0-d tensors with PyTorch's message")
    func zeroDimCat() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.cat([Tensor(1.0), Tensor(2.0)])
        }
        #expect(stderrText(result).contains("cat: zero-dimensional tensor (at position 0) cannot be concatenated"))
    }

    @Test("integer indexing of a 0-d tensor stops with a message")
    func zeroDimIndex() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor(1.0)[0]
        }
        #expect(stderrText(result).contains("index: too many indices (1) for a tensor of rank 0"))
    }

    @Test("gradients flow through 0-d reductions and shape ops", arguments: devices)
    func zeroDimGradients(_ d: Device) {
        let x = Tensor(3.0, device: d, requiresGrad: true)
        let y = x.sum(dim: 0) * 2 + x.mean(dim: -1) + x.max() + x.softmax(dim: 0) * 5 + x.logSumExp(dim: 0)
            + x.unsqueeze(0).flatten().squeeze().expand([2]).sum() + Tensor.stack([x, x * 3]).sum()
        y.backward()
        // 2 + 1 + 1 + 0 (softmax of one element is constant) + 1 + 2 + (1 + 3)
        #expect(x.grad?.shape == [] && x.grad?.toArray() == [11])
    }
}
