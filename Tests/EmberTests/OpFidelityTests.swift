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
        #expect(x.std().shape == [] && x.std().item().isNaN && x.std(dim: -1, correction: 0).toArray() == [0])
        let m = x.max(dim: -1), n = x.min(dim: 0, keepDim: true)
        #expect(m.values.toArray() == [3] && m.indices.shape == [] && n.values.shape == [] && n.indices.toIntArray() == [0])
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

    // MARK: GELU, logSumExp, std, max/min

    @Test("gelu's tanh form and its derivative match PyTorch", arguments: devices)
    func geluTanh(_ d: Device) {
        let x = Tensor([-2, -0.5, 0, 0.5, 2], device: d, requiresGrad: true)
        // torch.nn.functional.gelu(x, approximate='tanh')
        let y = x.gelu(approximate: .tanh)
        expectClose(y.toArray(), [-0.04540231, -0.15428599, 0, 0.34571401, 1.95459769], atol: 1e-6)
        y.sum().backward()
        expectClose(x.grad!.toArray(), [-0.0860993, 0.1326301, 0.5, 0.8673699, 1.0860993], atol: 1e-6)
        // The exact form stays the default, for the function and the layer.
        expectClose(x.gelu().toArray(), [-0.04550026, -0.15426877, 0, 0.34573123, 1.95449974], atol: 1e-6)
        expectClose(GELU()(x).toArray(), x.gelu(approximate: .none).toArray())
        expectClose(GELU(approximate: .tanh)(x).toArray(), y.toArray())
    }

    @Test("logSumExp over several dims, stable at large and infinite values", arguments: devices)
    func logSumExpDims(_ d: Device) {
        let x = Tensor.arange(0, 24, device: d).reshape([2, 3, 4]) / 10
        expectClose(x.logSumExp(dims: [0, 2]).toArray(), [3.005818, 3.405818, 3.805818], atol: 1e-5)
        #expect(x.logSumExp(dims: [0, -1], keepDim: true).shape == [1, 3, 1])
        expectClose(x.logSumExp(dims: []).toArray(), [4.557069], atol: 1e-5)
        #expect(x.logSumExp(dims: [2, 0]).shape == [3])
        expectClose(Tensor([[1000, 1000], [-1000, -1000]], device: d).logSumExp(dims: [1]).toArray(),
                    [1000 + Float(M_LN2), -1000 + Float(M_LN2)], atol: 1e-3)
        #expect(Tensor([-Float.infinity, -Float.infinity], device: d).logSumExp(dims: [0]).item() == -.infinity)
    }

    @Test("std and variance with correction or unbiased, as torch.std / torch.var", arguments: devices)
    func stdAndVariance(_ d: Device) {
        let x = Tensor.arange(0, 24, device: d).reshape([2, 3, 4]) / 10
        expectClose(x.std(dims: [0, 2]).toArray(), [0.65246784, 0.65246784, 0.65246784], atol: 1e-5)
        expectClose(x.std(dims: [0, 2], correction: 0).toArray(), [0.61032778, 0.61032778, 0.61032778], atol: 1e-5)
        expectClose(x.std(dims: [0, 2], unbiased: false).toArray(), x.std(dims: [0, 2], correction: 0).toArray())
        #expect(x.std(dims: [0, 2], keepDim: true).shape == [1, 3, 1])
        let y = Tensor([[1, 2, 3, 4], [2, 4, 6, 8]], device: d)
        expectClose(y.std(dim: 1).toArray(), [1.29099445, 2.5819889])
        expectClose(y.std(dim: -1, unbiased: false).toArray(), [1.11803399, 2.23606798])
        expectClose(y.std().toArray(), [2.31455025])
        expectClose(y.std(unbiased: false).toArray(), [2.16506351])
        expectClose(y.variance(dim: 1, unbiased: true).toArray(), [1.66666667, 6.66666667])
        expectClose(y.variance(unbiased: false).toArray(), [4.6875])
        // A constant row has std 0 and, as PyTorch, gradient 0 there (not NaN).
        let c = Tensor([[2, 2, 2], [1, 2, 3]], device: d, requiresGrad: true)
        c.std(dim: 1).sum().backward()
        expectClose(c.grad!.toArray(), [0, 0, 0, -0.5, 0, 0.5])
    }

    @Test("max(dim:) and min(dim:) return values and Int64 indices, first on ties", arguments: devices)
    func maxMinIndices(_ d: Device) {
        let x = Tensor([[1, 3, 3], [2, 2, 0]], device: d, requiresGrad: true)
        let (values, indices) = x.max(dim: 1)
        #expect(values.toArray() == [3, 2] && indices.toIntArray() == [1, 0] && indices.dtype == .int64)
        let m = x.min(dim: 1, keepDim: true)
        #expect(m.values.shape == [2, 1] && m.indices.shape == [2, 1])
        #expect(m.values.toArray() == [1, 0] && m.indices.toIntArray() == [0, 2])
        let column = x.max(dim: 0)
        #expect(column.values.toArray() == [2, 3, 3] && column.indices.toIntArray() == [1, 0, 0])
        (values.sum() + m.values.sum() * 10).backward()
        #expect(x.grad!.toArray() == [10, 1, 0, 1, 0, 10])
        let z = Tensor(4.0, device: d).max(dim: 0)
        #expect(z.values.shape == [] && z.indices.shape == [] && z.indices.toIntArray() == [0])
        #expect(x.max().item() == 3 && x.min().item() == 0)
        #expect(x.maximum(Tensor(2.5, device: d)).toArray() == [2.5, 3, 3, 2.5, 2.5, 2.5])
    }

    @Test("every op that returns indices returns Int64, as PyTorch's", arguments: devices)
    func indexOutputsAreInt64(_ d: Device) {
        let x = Tensor([[0.5, -1, 2], [3, 3, -4]], device: d)
        // torch.argmax(x, 1) = [2, 0]; argmin(x) over the flattened tensor = 5.
        let outputs: [(String, Tensor, [Int64])] = [
            ("argmax", x.argmax(dim: 1), [2, 0]),
            ("argmin", x.argmin(), [5]),
            ("argmax(keepDim)", x.argmax(dim: 0, keepDim: true), [1, 1, 0]),
            ("max(dim:)", x.max(dim: 0).indices, [1, 1, 0]),
            ("min(dim:)", x.min(dim: 1).indices, [1, 2]),
            ("sort", x.sort(dim: 1).indices, [1, 0, 2, 2, 0, 1]),
            ("argsort", x.argsort(dim: 0, descending: true), [1, 1, 0, 0, 0, 1]),
            ("topk", x.topk(2, dim: 1).indices, [2, 0, 0, 1]),
            ("sort 0-d", Tensor(1.0, device: d).sort().indices, [0]),
            ("multinomial", Tensor.multinomial(Tensor([0, 0, 1], device: d), numSamples: 1), [2]),
            ("arange", Tensor.arange(3, device: d), [0, 1, 2]),
        ]
        for (name, t, expected) in outputs {
            #expect(t.dtype == .int64, "\(name) gave \(t.dtype)")
            #expect(t.toInt64Array() == expected, "\(name)")
        }
        let r = Tensor.withRandomSeed(3) { Tensor.randint(-2, 5, [64], device: d) }
        #expect(r.dtype == .int64 && r.toInt64Array().allSatisfy { (-2..<5).contains($0) })
        // An index output indexes directly, as in PyTorch: x.gather(1, x.argsort(1)) sorts each row.
        #expect(x.gather(dim: 1, index: x.argsort(dim: 1)).toArray() == [-1, 0.5, 2, -4, 3, 3])
    }

    @Test("max over an empty dim stops with a message naming the op and shape")
    func maxEmpty() async {
        var result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { _ = Tensor.zeros([0]).max() }
        #expect(stderrText(result).contains("max: cannot reduce an empty dimension of shape [0]"))
        result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { _ = Tensor.zeros([2, 0]).min(dim: 1) }
        #expect(stderrText(result).contains("min: cannot reduce empty dimension 1 of shape [2, 0]"))
    }

    // MARK: pow

    @Test("pow with integer exponents is exact for negative bases, with PyTorch's gradients at 0", arguments: devices)
    func powIntegers(_ d: Device) {
        let values: [Float] = [-2, -1, 0, 0.5, 3]
        func grad(_ exponent: Float) -> [Float] {
            let x = Tensor(values, device: d, requiresGrad: true)
            x.pow(exponent).sum().backward()
            return x.grad!.toArray()
        }
        let x = Tensor(values, device: d)
        #expect(x.pow(2).toArray() == [4, 1, 0, 0.25, 9])
        #expect(x.pow(3).toArray() == [-8, -1, 0, 0.125, 27])
        #expect(x.pow(5).toArray() == [-32, -1, 0, 0.03125, 243])
        #expect(x.pow(0).toArray() == [1, 1, 1, 1, 1])
        #expect(x.pow(1).toArray() == values)
        #expect(x.pow(-1).toArray() == [-0.5, -1, .infinity, 2, 1.0 / 3])
        expectClose(x.pow(-2).toArray(), [0.25, 1, .infinity, 4, 1.0 / 9])
        expectClose(x.pow(-3).toArray(), [-0.125, -1, .infinity, 8, 1.0 / 27])
        expectClose(Tensor([0, 0.25, 4], device: d).pow(0.5).toArray(), [0, 0.5, 2])
        expectClose(Tensor([0.25, 4], device: d).pow(-0.5).toArray(), [2, 0.5])
        expectClose(Tensor([0.25, 4], device: d).pow(2.5).toArray(), [0.03125, 32])
        #expect(Tensor([-1], device: d).pow(0.5).item().isNaN)
        #expect(grad(2) == [-4, -2, 0, 1, 6])
        #expect(grad(3) == [12, 3, 0, 0.75, 27])
        #expect(grad(1) == [1, 1, 1, 1, 1])
        #expect(grad(0) == [0, 0, 0, 0, 0])
        expectClose(grad(4), [-32, -4, 0, 0.5, 108])
        // Tensor exponents: d/da is 0 where b == 0, d/db is 0 where a == 0 and b >= 0 (PyTorch).
        let a = Tensor([0, 0, 2], device: d, requiresGrad: true), b = Tensor([0, 2, 3], device: d, requiresGrad: true)
        let p = a.pow(b)
        #expect(p.toArray() == [1, 0, 8])
        p.sum().backward()
        #expect(a.grad!.toArray() == [0, 0, 12])
        expectClose(b.grad!.toArray(), [0, 0, 8 * Float(M_LN2)])
    }

    // MARK: grouped convolution, rectangular pooling

    @Test("grouped and depthwise conv2d match per-group convolutions and hand values", arguments: devices)
    func groupedConv(_ d: Device) {
        let x = Tensor.arange(0, 36, device: d).reshape([1, 4, 3, 3]) / 10
        let w = Tensor.arange(0, 16, device: d).reshape([2, 2, 2, 2]) / 10
        let y = x.conv2d(weight: w, groups: 2)
        #expect(y.shape == [1, 2, 2, 2])
        expectClose(y.toArray(), [2.68, 2.96, 3.52, 3.8, 23.4, 24.32, 26.16, 27.08], rtol: 1e-5, atol: 1e-5)
        // Depthwise, strided, padded, with bias: each channel with its own filter.
        var random = TestRandom(seed: 3)
        let input = Tensor(shape: [2, 3, 5, 4], data: random.floats(120), device: d)
        let filters = Tensor(shape: [6, 1, 3, 2], data: random.floats(36), device: d)
        let bias = Tensor(shape: [6], data: random.floats(6), device: d)
        let depthwise = input.conv2d(weight: filters, bias: bias, stride: (2, 1), padding: (1, 1), groups: 3)
        let perChannel = (0..<3).map { c in
            input[TensorRange.all, c..<(c + 1)].conv2d(weight: filters[(2 * c)..<(2 * c + 2)], bias: bias[(2 * c)..<(2 * c + 2)],
                                                        stride: (2, 1), padding: (1, 1))
        }
        expectClose(depthwise.toArray(), Tensor.cat(perChannel, dim: 1).toArray(), atol: 1e-5)
        let layer = Tensor.withRandomSeed(1) { Conv2d(4, 6, kernelSize: (3, 1), groups: 2) }
        #expect(layer.weight.shape == [6, 2, 3, 1] && layer.groups == 2)
        #expect(layer.weight.toArray().allSatisfy { Swift.abs($0) <= 1 / Float(6).squareRoot() })
        #expect(layer.to(d)(Tensor.zeros([1, 4, 5, 5], device: d)).shape == [1, 6, 3, 5])
        #expect(Conv2d(3, 3, kernelSize: 3, groups: 3).weight.shape == [3, 1, 3, 3])
    }

    @Test("conv2d and Conv2d check groups with PyTorch's messages")
    func groupChecks() async {
        var result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([1, 4, 5, 5]).conv2d(weight: Tensor.zeros([3, 2, 3, 3]), groups: 2)
        }
        #expect(stderrText(result).contains(
            "conv2d: given groups=2, expected weight to be divisible by 2 at dimension 0, but got weight of size [3, 2, 3, 3] instead"))
        result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([1, 3, 5, 5]).conv2d(weight: Tensor.zeros([4, 2, 3, 3]), groups: 2)
        }
        #expect(stderrText(result).contains(
            "conv2d: given groups=2, weight of size [4, 2, 3, 3], expected input [1, 3, 5, 5] to have 4 channels, but got 3 channels instead"))
        result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { _ = Conv2d(3, 4, kernelSize: 3, groups: 2) }
        #expect(stderrText(result).contains("Conv2d: in_channels must be divisible by groups, got 3 and groups=2"))
        result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { _ = Conv2d(4, 3, kernelSize: 3, groups: 2) }
        #expect(stderrText(result).contains("Conv2d: out_channels must be divisible by groups, got 3 and groups=2"))
    }

    @Test("pooling with (height, width) kernel, stride and padding", arguments: devices)
    func rectangularPooling(_ d: Device) {
        let x = Tensor.arange(1, 21, device: d).reshape([1, 1, 4, 5])
        let m = x.maxPool2d(kernel: (2, 3), stride: (1, 2), padding: (0, 1))
        #expect(m.shape == [1, 1, 3, 3] && m.toArray() == [7, 9, 10, 12, 14, 15, 17, 19, 20])
        let a = x.avgPool2d(kernel: (2, 3), stride: (1, 2), padding: (0, 1))
        expectClose(a.toArray(), [8.0 / 3, 5.5, 14.0 / 3, 6, 10.5, 8, 28.0 / 3, 15.5, 34.0 / 3])
        expectClose(x.avgPool2d(kernel: (2, 3), stride: (1, 2), padding: (0, 1), countIncludePad: false).toArray(),
                    [4, 5.5, 7, 9, 10.5, 12, 14, 15.5, 17])
        #expect(MaxPool2d((2, 3), stride: (1, 2), padding: (0, 1))(x).toArray() == m.toArray())
        expectClose(AvgPool2d((2, 3), stride: (1, 2), padding: (0, 1))(x).toArray(), a.toArray())
        #expect(x.maxPool2d(kernel: (2, 1)).shape == [1, 1, 2, 5] && MaxPool2d(2)(x).shape == [1, 1, 2, 2])
        #expect(AvgPool2d((1, 5))(x).toArray() == [3, 8, 13, 18])
    }

    // MARK: slicing

    @Test("slices clamp their bounds as Python does; integer indices stay checked", arguments: devices)
    func sliceClamping(_ d: Device) {
        let x = Tensor([0, 1, 2, 3, 4], device: d)
        #expect(x[1..<100].toArray() == [1, 2, 3, 4])
        #expect(x[(-100)..<2].toArray() == [0, 1])
        #expect(x[(-3)...].toArray() == [2, 3, 4] && x[..<(-1)].toArray() == [0, 1, 2, 3])
        #expect(x[(-4)...(-2)].toArray() == [1, 2, 3])
        #expect(x[7...].shape == [0] && x[TensorRange(4, 2)].shape == [0])
        #expect(x.slice(dim: 0, start: 3, end: 1).shape == [0] && x.slice(dim: 0, start: -2, end: 10).toArray() == [3, 4])
        #expect(x[TensorRange(1, 100, step: 3)].toArray() == [1, 4])
        let m = Tensor.arange(0, 12, device: d).reshape([3, 4])
        #expect(m[TensorRange.all, 2..<50].toArray() == [2, 3, 6, 7, 10, 11])
        #expect(m[5...].shape == [0, 4] && m[-1].toArray() == [8, 9, 10, 11])
        // Gradients of a clamped and of an empty slice.
        let g = Tensor([0, 1, 2, 3, 4], device: d, requiresGrad: true)
        (g[2..<9].sum() * 2 + g[TensorRange(4, 1)].sum()).backward()
        #expect(g.grad!.toArray() == [0, 0, 2, 2, 2])
    }

    @Test("an integer index outside the dim still stops with a message")
    func indexStillChecked() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([5])[-6]
        }
        #expect(stderrText(result).contains("index -6 is out of bounds for dimension 0 with size 5"))
    }

    @Test("x[specs] takes a list built at run time: index, range, all, ellipsis, newAxis", arguments: devices)
    func sliceSpecs(_ d: Device) {
        let x = Tensor.arange(0, 60, device: d).reshape([3, 4, 5])
        // x[None, ..., 1:100:2, -1] in PyTorch: shape [1, 3, 2].
        var specs: [SliceSpec] = [.newAxis, .ellipsis]
        specs.append(.range(1, 100, step: 2))
        specs.append(.index(-1))
        let y = x[specs]
        #expect(y.shape == [1, 3, 2] && y.toArray() == [9, 19, 29, 39, 49, 59])
        #expect(x[[.all, .index(1)]].toArray() == x[TensorRange.all, 1].toArray())
        #expect(x[[.ellipsis, .index(0)]].shape == [3, 4] && x[[.ellipsis, .index(0)]].toArray() == x.select(dim: 2, index: 0).toArray())
        #expect(x[[.index(2), .ellipsis]].toArray() == x[2].toArray())
        #expect(x[[.newAxis, .index(0), .newAxis]].shape == [1, 1, 4, 5])
        #expect(x[[]].shape == [3, 4, 5] && x[[.ellipsis]].shape == [3, 4, 5])
        #expect(x[SliceSpec.ellipsis, 1..<3].shape == [3, 4, 2] && x[SliceSpec.newAxis, 0].shape == [1, 4, 5])
        #expect(x[[.range(lower: nil, upper: -2, step: 1), .range(-1)]].shape == [1, 1, 5])
        #expect(Tensor(3.0, device: d)[[.ellipsis]].shape == [] && Tensor(3.0, device: d)[[.newAxis]].shape == [1])
    }

    @Test("two ellipses and too many specs stop with a message")
    func sliceSpecChecks() async {
        var result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 2])[[.ellipsis, .index(0), .ellipsis]]
        }
        #expect(stderrText(result).contains("index: an index can only have a single ellipsis"))
        result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 2])[[.all, .newAxis, .all, .index(0)]]
        }
        #expect(stderrText(result).contains("index: too many indices (3) for a tensor of rank 2"))
    }
}
