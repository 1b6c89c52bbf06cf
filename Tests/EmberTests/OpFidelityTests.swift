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

    @Test("silu, mish, softplus, elu, selu, logSigmoid, hardSigmoid and hardSwish match PyTorch, values, gradients and layers", arguments: devices)
    func activations(_ d: Device) {
        // x = torch.tensor([-25, -3.5, -3, -1.25, -0.5, 0, 0.5, 2.5, 3, 3.5, 21.]): each row is
        // F.<op>(x) and torch.autograd.grad(F.<op>(x).sum(), x), from PyTorch 2.13.
        let points: [Float] = [-25, -3.5, -3, -1.25, -0.5, 0, 0.5, 2.5, 3, 3.5, 21]
        let cases: [(String, (Tensor) -> Tensor, Module & Layer, [Float], [Float])] = [
            ("silu", { $0.silu() }, SiLU(),
             [-3.4719858e-10, -0.10259281, -0.14227761, -0.27837518, -0.18877034, 0, 0.31122968, 2.3103545, 2.8577225, 3.3974073, 21],
             [-3.3331063e-10, -0.070273347, -0.088104106, 0.0063191494, 0.26003882, 0.5, 0.73996121, 1.0994011, 1.0881041, 1.0702735, 1]),
            ("mish", { $0.mish() }, Mish(),
             [-3.471986e-10, -0.10409575, -0.14564747, -0.30841392, -0.22074376, 0, 0.37524524, 2.4713924, 2.9865351, 3.4939909, 21],
             [-3.3331063e-10, -0.072760418, -0.093393125, -0.014697595, 0.28951064, 0.6, 0.88642442, 1.0411296, 1.021107, 1.0099392, 1]),
            ("softplus", { $0.softplus() }, Softplus(),
             [1.3887944e-11, 0.029750418, 0.048587352, 0.25192907, 0.47407699, 0.69314718, 0.97407699, 2.5788898, 3.0485873, 3.5297503, 21],
             [1.3887944e-11, 0.029312231, 0.047425874, 0.22270015, 0.37754068, 0.5, 0.62245935, 0.92414182, 0.95257413, 0.97068775, 1]),
            ("softplus beta 2 threshold 5", { $0.softplus(beta: 2, threshold: 5) }, Softplus(beta: 2, threshold: 5),
             [9.6437495e-23, 0.00045573324, 0.0012378426, 0.039444868, 0.15663084, 0.34657359, 0.65663081, 2.5033576, 3, 3.5, 21],
             [1.9287499e-22, 0.00091105123, 0.0024726233, 0.075858176, 0.26894143, 0.5, 0.7310586, 0.99330717, 1, 1, 1]),
            ("elu alpha 0.5", { $0.elu(alpha: 0.5) }, ELU(alpha: 0.5),
             [-0.5, -0.48490131, -0.47510648, -0.3567476, -0.19673467, 0, 0.5, 2.5, 3, 3.5, 21],
             [6.9439719e-12, 0.015098692, 0.024893533, 0.1432524, 0.30326533, 0.5, 1, 1, 1, 1, 1]),
            ("selu", { $0.selu() }, SELU(),
             [-1.7580993, -1.7050093, -1.6705687, -1.2543954, -0.69175816, 0, 0.52535051, 2.6267526, 3.152103, 3.6774535, 22.064722],
             [2.4416384e-11, 0.05309, 0.087530605, 0.50370389, 1.0663412, 1.7580993, 1.050701, 1.050701, 1.050701, 1.050701, 1.050701]),
            ("logSigmoid", { $0.logSigmoid() }, LogSigmoid(),
             [-25, -3.5297503, -3.0485873, -1.501929, -0.97407699, -0.69314718, -0.47407699, -0.078889735, -0.048587352, -0.029750418, -7.5825601e-10],
             [1, 0.97068775, 0.95257413, 0.77729988, 0.62245929, 0.5, 0.37754068, 0.075858176, 0.047425874, 0.029312231, 7.5825601e-10]),
            ("hardSigmoid", { $0.hardSigmoid() }, Hardsigmoid(),
             [0, 0, 0, 0.29166666, 0.41666666, 0.5, 0.58333331, 0.91666669, 1, 1, 1],
             [0, 0, 0, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 0, 0, 0]),
            ("hardSwish", { $0.hardSwish() }, Hardswish(),
             [0, 0, 0, -0.36458334, -0.20833333, 0, 0.29166666, 2.2916667, 3, 3.5, 21],
             [0, 0, 0, 0.083333343, 0.33333331, 0.5, 0.66666669, 1.3333333, 1, 1, 1]),
        ]
        for (name, f, layer, values, gradients) in cases {
            let x = Tensor(points, device: d, requiresGrad: true)
            let y = f(x)
            expectClose(y.toArray(), values, rtol: 1e-5, atol: 1e-7, name)
            y.sum().backward()
            expectClose(x.grad!.toArray(), gradients, rtol: 1e-5, atol: 1e-7, "\(name) gradient")
            #expect(layer(x).toArray() == y.toArray(), "\(name) layer")
        }
        #expect(Tensor(points, device: d, requiresGrad: true).silu().gradFnName == "SiluBackward")
        #expect(Identity()(Tensor(points, device: d)).toArray() == points)
    }

    @Test("floor, ceil, round (halves to even, and to decimals) and trunc match PyTorch; integers keep their type", arguments: devices)
    func rounding(_ d: Device) {
        let x = Tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.7, 1.7, 0], device: d, requiresGrad: true)
        #expect(x.round().toArray() == [-2, -2, -0, 0, 2, 2, -2, 2, 0])
        #expect(x.floor().toArray() == [-3, -2, -1, 0, 1, 2, -2, 1, 0])
        #expect(x.ceil().toArray() == [-2, -1, -0, 1, 2, 3, -1, 2, 0])
        #expect(x.trunc().toArray() == [-2, -1, -0, 0, 1, 2, -1, 1, 0])
        #expect(x.round().toArray()[2].sign == .minus && x.ceil().toArray()[2].sign == .minus)
        // torch.round(torch.tensor([1.2345, -2.675, 0.125]), decimals=2)
        #expect(Tensor([1.2345, -2.675, 0.125], device: d).round(decimals: 2).toArray() == [1.23, -2.68, 0.12])
        (x.floor() + x.ceil() + x.round() + x.trunc()).sum().backward()
        #expect(x.grad!.toArray() == [Float](repeating: 0, count: 9))
        let i = Tensor(shape: [3], data: [Int64(-3), 4, 1 << 40], device: d)
        for y in [i.floor(), i.ceil(), i.round(), i.trunc()] { #expect(y.dtype == .int64 && y.toIntArray() == [-3, 4, 1 << 40]) }
        #expect(Tensor([Float.infinity, -.infinity, .nan], device: d).floor().toArray().prefix(2) == [.infinity, -.infinity])
        // torch.log1p / torch.expm1 of [1e-7, -0.5, 3]: exact near 0 where log(1 + x) is not.
        expectClose(Tensor([1e-7, -0.5, 3], device: d).log1p().toArray(), [9.9999994e-08, -0.69314718, 1.3862944])
        expectClose(Tensor([1e-7, -0.5, 3], device: d).expm1().toArray(), [1.0000001e-07, -0.39346933, 19.085537])
    }

    @Test("any, all, isnan, isinf, isfinite and oneHot as PyTorch's, over dims and for every dtype", arguments: devices)
    func predicates(_ d: Device) {
        let x = Tensor([[0, 2, 0], [0, 0, 0], [1, .nan, -3]], device: d)
        #expect(x.any().dtype == .bool && x.any().shape == [] && x.any().toBoolArray() == [true])
        #expect(x.all().toBoolArray() == [false])
        #expect(x.any(dim: 1).toBoolArray() == [true, false, true] && x.all(dim: 1).toBoolArray() == [false, false, true])
        #expect(x.any(dim: 0, keepDim: true).shape == [1, 3] && x.all(dims: [0, 1]).toBoolArray() == [false])
        // torch.tensor([]).any() is False and .all() is True.
        #expect(Tensor.zeros([0], device: d).any().toBoolArray() == [false] && Tensor.zeros([0], device: d).all().toBoolArray() == [true])
        let i = Tensor(shape: [3], data: [Int64(0), 5, 1 << 40], device: d)
        #expect(i.any().toBoolArray() == [true] && i.all().toBoolArray() == [false] && (i + 1).all().toBoolArray() == [true])
        #expect(Tensor([true, true], device: d).all().toBoolArray() == [true])
        let f = Tensor([1, .nan, .infinity, -.infinity, 0] as [Float], device: d)
        for t in [f, f.to(.float16), f.to(.bfloat16)] {
            #expect(t.isnan().toBoolArray() == [false, true, false, false, false])
            #expect(t.isinf().toBoolArray() == [false, false, true, true, false])
            #expect(t.isfinite().toBoolArray() == [true, false, false, false, true])
        }
        #expect(i.isnan().toBoolArray() == [false, false, false] && i.isinf().toBoolArray() == [false, false, false])
        #expect(i.isfinite().toBoolArray() == [true, true, true] && Tensor([true], device: d).isfinite().toBoolArray() == [true])
        // F.one_hot(torch.tensor([[0, 2], [3, 1]])) and with num_classes=5.
        let labels = Tensor(shape: [2, 2], data: [Int64(0), 2, 3, 1], device: d)
        let hot = oneHot(labels)
        #expect(hot.dtype == .int64 && hot.shape == [2, 2, 4])
        #expect(hot.toIntArray() == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0])
        #expect(oneHot(labels, numClasses: 5).shape == [2, 2, 5] && oneHot(labels, numClasses: 5).sum(dim: -1).toIntArray() == [1, 1, 1, 1])
        #expect(oneHot(Tensor(shape: [0], data: [Int32](), device: d), numClasses: 3).shape == [0, 3])
    }

    @Test("norm for p 2, 1, 3 and infinity, normalize, cosineSimilarity and repeat match PyTorch, gradients at 0 and ties included",
          arguments: devices)
    func normsAndRepeat(_ d: Device) {
        // x.norm(p=p, dim=1) of torch.tensor([[3, -4, 0], [1, 2, -2.]]) and its gradient.
        let expected: [(Float, [Float], [Float])] = [
            (2, [5, 3], [0.6, -0.8, 0, 1 / 3, 2 / 3, -2 / 3]),
            (1, [7, 5], [1, -1, 0, 1, 1, -1]),
            (.infinity, [4, 2], [0, -1, 0, 0, 0.5, -0.5]),
            (3, [4.4979415, 2.5712817], [0.44485134, -0.79084682, 0, 0.15125185, 0.60500741, -0.60500741]),
        ]
        for (p, values, gradient) in expected {
            let x = Tensor([[3, -4, 0], [1, 2, -2]], device: d, requiresGrad: true)
            let y = x.norm(p: p, dim: 1)
            expectClose(y.toArray(), values, "norm p \(p)")
            y.sum().backward()
            expectClose(x.grad!.toArray(), gradient, "norm p \(p) gradient")
        }
        let x = Tensor([[3, -4, 0], [1, 2, -2]], device: d, requiresGrad: true)
        #expect(x.norm().gradFnName == "LinalgVectorNormBackward")
        expectClose([x.norm().item(), x.norm(p: .infinity).item()], [5.8309517, 4])
        #expect(x.norm(dims: [0, 1], keepDim: true).shape == [1, 1] && x.norm(p: .infinity, dims: [0, 1], keepDim: true).shape == [1, 1])
        let zero = Tensor.zeros([3], device: d, requiresGrad: true)
        zero.norm().backward()
        #expect(zero.grad!.toArray() == [0, 0, 0])
        #expect(x.to(.bfloat16).norm().dtype == .bfloat16)
        // F.normalize(x, dim=1), F.normalize(x, p=1, dim=0), F.cosine_similarity(a, b[None], dim=1).
        expectClose(normalize(x, dim: 1).toArray(), [0.6, -0.8, 0, 1 / 3, 2 / 3, -2 / 3])
        expectClose(normalize(x, p: 1, dim: 0).toArray(), [0.75, -2 / 3, 0, 0.25, 1 / 3, -1])
        let a = Tensor([[1, 2, 3], [0, 0, 0], [-1, 0.5, 2]], device: d), b = Tensor([2, -1, 0.5], device: d)
        expectClose(cosineSimilarity(a, b.unsqueeze(0), dim: 1).toArray(), [0.17496353, 0, -0.28571427])
        // torch.tensor([[1, 2], [3, 4]]).repeat(2, 3) and .repeat(2, 1, 2).shape
        let t = Tensor(shape: [2, 2], data: [Int64(1), 2, 3, 4], device: d)
        #expect(t.repeat([2, 3]).toIntArray() == [1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4])
        #expect(t.repeat([2, 1, 2]).shape == [2, 2, 4] && t.repeat([2, 0]).shape == [4, 0] && t.repeat([2, 3]).dtype == .int64)
    }

    @Test("rmsNorm and RMSNorm match PyTorch, with the default and a given eps; narrow input keeps its type", arguments: devices)
    func rmsNormValues(_ d: Device) {
        let a = Tensor.arange(0, 12, device: d).reshape([2, 6]) - 5
        // F.rms_norm(torch.arange(12.).reshape(2, 6) - 5, [6]); the second with
        // weight=torch.linspace(0.5, 1.5, 6), eps=1e-3.
        expectClose(rmsNorm(a, normalizedShape: [6]).toArray(),
                    [-1.6514456, -1.3211565, -0.99086738, -0.66057825, -0.33028913, 0, 0.2567763, 0.51355261, 0.77032888, 1.0271052, 1.2838815, 1.5406578])
        let w = Tensor.linspace(0.5, 1.5, count: 6, device: d)
        let expected: [Float] = [-0.82567775, -0.92475903, -0.89173192, -0.72659642, -0.4293524, 0, 0.12838392, 0.35947496, 0.69327313, 1.1297785, 1.668991, 2.3109105]
        expectClose(rmsNorm(a, normalizedShape: [6], weight: w, eps: 1e-3).toArray(), expected)
        let layer = RMSNorm(6, eps: 1e-3)
        layer.to(d)
        layer.weight = w
        expectClose(layer(a).toArray(), expected)
        #expect(RMSNorm([2, 3], elementwiseAffine: false).parameters().isEmpty && RMSNorm(4).namedParameters().map(\.name) == ["weight"])
        // Narrow input normalises in Float32 and keeps its type.
        let h = rmsNorm(a.to(.bfloat16), normalizedShape: [6])
        #expect(h.dtype == .bfloat16)
        expectClose(h.float().toArray(), rmsNorm(a, normalizedShape: [6]).to(.bfloat16).float().toArray())
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

    @Test("conv1d, 1-D pooling and adaptive average pooling match PyTorch, as functions and layers", arguments: devices)
    func oneDimensionalWindows(_ d: Device) {
        // x = (torch.arange(56.).reshape(2, 4, 7) * 0.37).sin(), w = (torch.arange(36.).reshape(6, 2, 3) * 0.23).cos()
        let x = (Tensor.arange(0, 56, device: d).reshape([2, 4, 7]) * 0.37).sin()
        let w = (Tensor.arange(0, 36, device: d).reshape([6, 2, 3]) * 0.23).cos()
        let b = Tensor([0.1, -0.2, 0.3, 0, 0.5, -0.4], device: d)
        // F.conv1d(x, w, b, stride=2, padding=1, groups=2)
        let y = x.conv1d(weight: w, bias: b, stride: 2, padding: 1, groups: 2)
        #expect(y.shape == [2, 6, 4])
        expectClose(y.toArray(), [0.815274, 1.730126, 1.539587, 0.491117, -0.793195, 0.076055, 1.250825, 1.075257, -0.640262, -1.225423,
                                  -0.589315, 0.392565, 1.238047, 1.146477, -0.189291, -0.874888, 0.965283, 1.936394, 1.979076, 1.042356,
                                  -1.461574, -1.001679, 0.350277, 0.680593, -1.041903, -1.149111, -0.077864, 0.682746, -0.721451, -1.852074,
                                  -2.01046, -0.985444, 1.244127, 0.92251, -0.20881, -0.58065, -0.445132, 0.555737, 1.647464, 1.281856,
                                  -0.515683, -0.851974, 0.03268, 0.905916, -0.340098, -1.468516, -2.22471, -1.5279], atol: 2e-6)
        let layer = Conv1d(4, 6, kernelSize: 3, stride: 2, padding: 1, groups: 2)
        #expect(layer.weight.shape == [6, 2, 3] && layer.namedParameters().map(\.name) == ["weight", "bias"])
        layer.to(d)
        layer.weight = w
        layer.bias = b
        #expect(layer(x).toArray() == y.toArray())
        // F.max_pool1d(x, 3, stride=2, padding=1) and F.avg_pool1d(..., count_include_pad=False): the first 12.
        let maxPooled = MaxPool1d(3, stride: 2, padding: 1)(x)
        #expect(maxPooled.shape == [2, 4, 4] && maxPooled.toArray() == x.maxPool1d(kernel: 3, stride: 2, padding: 1).toArray())
        expectClose(Array(maxPooled.toArray().prefix(12)),
                    [0.361615, 0.895699, 0.995881, 0.961275, 0.524044, 0.180596, -0.529836, -0.963131, -0.66924, 0.006815, 0.679305, 0.898708])
        expectClose(Array(AvgPool1d(3, stride: 2, padding: 1, countIncludePad: false)(x).toArray().prefix(12)),
                    [0.180808, 0.643867, 0.950952, 0.87892, 0.35232, -0.178845, -0.764545, -0.979185, -0.780944, -0.339226, 0.35136, 0.789006])
        // F.adaptive_avg_pool2d(torch.arange(70.).reshape(1, 2, 5, 7) ** 1.5 / 10, (3, 4)) and to 1.
        let image = Tensor.arange(0, 70, device: d).reshape([1, 2, 5, 7]).pow(1.5) / 10
        expectClose(AdaptiveAvgPool2d((3, 4))(image).toArray(),
                    [1.05369, 1.50458, 2.23419, 2.85797, 5.85081, 6.71674, 7.93449, 8.8929, 12.59388, 13.73593, 15.30568, 16.51734,
                     24.43059, 25.8502, 27.78095, 29.257, 35.00201, 36.59654, 38.75648, 40.40152, 46.53633, 48.29127, 50.66197, 52.46283], rtol: 2e-5)
        let pooled = AdaptiveAvgPool2d(1)(image)
        #expect(pooled.shape == [1, 2, 1, 1])
        expectClose(pooled.toArray(), [7.98875, 38.03047], rtol: 2e-5)
        // A size that divides the input is one average pool.
        #expect(image.slice(dim: 2, end: 4).adaptiveAvgPool2d(outputSize: (2, 7)).toArray()
                == image.slice(dim: 2, end: 4).avgPool2d(kernel: (2, 1)).toArray())
    }

    @Test("convTranspose2d, groupNorm, pad in every mode and embedding's paddingIdx match PyTorch, as functions and layers", arguments: devices)
    func decoderOps(_ d: Device) {
        // x = (torch.arange(72.).reshape(2, 4, 3, 3) * 0.31).sin(), w = (torch.arange(72.).reshape(4, 3, 3, 2) * 0.17).cos():
        // F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1), its first 20 values and its sum.
        let x = (Tensor.arange(0, 72, device: d).reshape([2, 4, 3, 3]) * 0.31).sin()
        let w = (Tensor.arange(0, 72, device: d).reshape([4, 3, 3, 2]) * 0.17).cos(), b = Tensor([0.1, -0.2, 0.3], device: d)
        let y = x.convTranspose2d(weight: w, bias: b, stride: 2, padding: 1, outputPadding: 1)
        #expect(y.shape == [2, 3, 6, 5])
        expectClose(Array(y.toArray().prefix(20)), [-1.6608, -0.7045, -0.68601, 0.40307, 0.3637, 0.07243, 1.75769, 1.81799, 3.44516, 3.39976,
                                                   1.38828, 2.4287, 2.29004, 3.15365, 2.98302, 4.66696, 5.73292, 5.49878, 6.11512, 5.81592], atol: 2e-5)
        expectClose([y.sum().item()], [31.0317], atol: 2e-3)
        let layer = ConvTranspose2d(4, 3, kernelSize: (3, 2), stride: (2, 2), padding: (1, 1), outputPadding: (1, 1))
        #expect(layer.weight.shape == [4, 3, 3, 2] && layer.namedParameters().map(\.name) == ["weight", "bias"])
        layer.to(d)
        layer.weight = w
        layer.bias = b
        #expect(layer(x).toArray() == y.toArray())
        // w2 = (torch.arange(48.).reshape(4, 2, 2, 3) * 0.29).sin(): stride=(1, 2), padding=(0, 1), groups=2, dilation=(2, 1).
        let w2 = (Tensor.arange(0, 48, device: d).reshape([4, 2, 2, 3]) * 0.29).sin()
        let y2 = x.convTranspose2d(weight: w2, stride: (1, 2), padding: (0, 1), groups: 2, dilation: (2, 1))
        #expect(y2.shape == [2, 4, 5, 5])
        expectClose(Array(y2.toArray().prefix(20)), [-0.20245, -0.28747, 0.06279, 0.22218, 0.32205, 0.5506, 1.13137, 0.72667, 1.44424, 0.83346,
                                                    0.5173, 1.49823, 1.04427, 2.45896, 1.47169, 1.28019, 2.77813, 1.64113, 3.33179, 1.84563], atol: 2e-5)
        expectClose([y2.sum().item()], [18.3337], atol: 2e-3)
        // F.group_norm((torch.arange(48.).reshape(2, 6, 2, 2) * 0.7).cos() * 3, 3, linspace(0.5, 1.5, 6), linspace(-1, 1, 6)).
        let g = (Tensor.arange(0, 48, device: d).reshape([2, 6, 2, 2]) * 0.7).cos() * 3
        let norm = GroupNorm(numGroups: 3, numChannels: 6)
        norm.to(d)
        norm.weight = Tensor.linspace(0.5, 1.5, count: 6, device: d)
        norm.bias = Tensor.linspace(-1, 1, count: 6, device: d)
        expectClose(Array(norm(g).toArray().prefix(16)), [-0.21021, -0.37997, -0.8094, -1.29654, -1.45719, -1.45137, -1.00042, -0.31644,
                                                        0.76478, 1.03549, 0.73864, 0.01382, -0.53095, -1.16297, -1.13745, -0.46641], atol: 2e-5)
        // F.pad of torch.arange(12.).reshape(1, 3, 4).
        let t = Tensor.arange(0, 12, device: d).reshape([1, 3, 4])
        #expect(pad(t, [1, 2], value: -1).toArray() == [-1, 0, 1, 2, 3, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, 8, 9, 10, 11, -1, -1])
        #expect(pad(t, [-1, 1, 1, 0]).shape == [1, 4, 4] && pad(t, [-1, 1, 1, 0]).toArray() == [0, 0, 0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0])
        #expect(pad(t, [2, 3], mode: .reflect).toArray() == [2, 1, 0, 1, 2, 3, 2, 1, 0, 6, 5, 4, 5, 6, 7, 6, 5, 4, 10, 9, 8, 9, 10, 11, 10, 9, 8])
        #expect(pad(t.unsqueeze(0), [1, 1, 2, 0], mode: .replicate).toArray()
                == [0, 0, 1, 2, 3, 3, 0, 0, 1, 2, 3, 3, 0, 0, 1, 2, 3, 3, 4, 4, 5, 6, 7, 7, 8, 8, 9, 10, 11, 11])
        #expect(pad(t, [1, 2], mode: .circular).toArray() == [3, 0, 1, 2, 3, 0, 1, 7, 4, 5, 6, 7, 4, 5, 11, 8, 9, 10, 11, 8, 9])
        // nn.Embedding(5, 2, padding_idx=1): the padding row starts at zero and gets no gradient.
        let embedding = Embedding(5, 2, paddingIdx: -4)
        embedding.to(d)
        #expect(embedding.paddingIdx == 1 && embedding.weight.toArray()[2..<4] == [0, 0])
        embedding(Tensor(shape: [2, 2], data: [Int64(1), 2, 1, 4], device: d)).sum().backward()
        #expect(embedding.weight.grad!.toArray() == [0, 0, 0, 0, 1, 1, 0, 0, 1, 1])
    }

    @Test("interpolate and Upsample in nearest, linear and bilinear modes match PyTorch, by size and by scale factor", arguments: devices)
    func resampling(_ d: Device) {
        // x = (torch.arange(24.).reshape(1, 2, 3, 4) * 0.7).sin(); F.interpolate(x, ...) as named, the first values.
        let x = (Tensor.arange(0, 24, device: d).reshape([1, 2, 3, 4]) * 0.7).sin()
        func first(_ t: Tensor, _ n: Int) -> [Float] { Array(t.toArray().prefix(n)) }
        expectClose(first(interpolate(x, size: [5, 7]), 14),
                    [0, 0, 0.644218, 0.644218, 0.98545, 0.98545, 0.863209, 0, 0, 0.644218, 0.644218, 0.98545, 0.98545, 0.863209])
        let scaled = Upsample(scaleFactor: [2.5])(x)
        #expect(scaled.shape == [1, 2, 7, 10])
        expectClose(first(scaled, 10), [0, 0, 0, 0.644218, 0.644218, 0.98545, 0.98545, 0.98545, 0.863209, 0.863209])
        expectClose(first(interpolate(x, size: [5, 7], mode: .bilinear), 14),
                    [0, 0.230078, 0.598202, 0.814834, 0.976718, 0.906867, 0.863209, 0.133995, 0.174075, 0.238201, 0.244428, 0.234233, 0.166978, 0.124945])
        expectClose(first(Upsample(size: [5, 7], mode: .bilinear, alignCorners: true)(x), 14),
                    [0, 0.322109, 0.644218, 0.814834, 0.98545, 0.92433, 0.863209, 0.167494, 0.157106, 0.146717, 0.101827, 0.056937, -0.001342, -0.059622])
        expectClose(interpolate(x, size: [2, 3], mode: .bilinear).toArray(),
                    [0.1357, 0.45833, 0.421694, -0.337267, 0.09988, 0.458735, 0.344261, -0.090832, -0.454725, 0.495097, 0.35776, -0.06001])
        // l = (torch.arange(10.).reshape(1, 2, 5) * 0.9).cos(); F.interpolate(l, scale_factor=1.5, mode='linear').
        let l = (Tensor.arange(0, 10, device: d).reshape([1, 2, 5]) * 0.9).cos()
        expectClose(interpolate(l, scaleFactor: [1.5], mode: .linear).toArray(),
                    [1, 0.810805, 0.480141, -0.085733, -0.565637, -0.902853, -0.897977, -0.210796, 0.211948, 0.695554, 0.938998, 0.804105, 0.466369, -0.101561])
        #expect(interpolate(x, size: [3, 4]).toArray() == x.toArray())
    }

    @Test("convTranspose1d, adaptiveAvgPool1d, pixelShuffle/pixelUnshuffle, unflatten, glu and LogSoftmax match PyTorch", arguments: devices)
    func moreLayers(_ d: Device) {
        // x = (torch.arange(40.).reshape(2, 4, 5) * 0.37).sin(), w = (torch.arange(36.).reshape(4, 3, 3) * 0.23).cos().
        let x = (Tensor.arange(0, 40, device: d).reshape([2, 4, 5]) * 0.37).sin()
        let w = (Tensor.arange(0, 36, device: d).reshape([4, 3, 3]) * 0.23).cos()
        let layer = ConvTranspose1d(4, 3, kernelSize: 3, stride: 2, padding: 1, outputPadding: 1)
        layer.to(d)
        layer.weight = w
        layer.bias = Tensor([0.1, -0.2, 0.3], device: d)
        let y = layer(x)
        #expect(y.shape == [2, 3, 10])
        // F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1): the first 12.
        expectClose(Array(y.toArray().prefix(12)), [-1.023616, -1.187749, -0.160719, 0.484524, 0.737464, 2.104754, 1.549371, 3.45365,
                                                   2.165111, 1.874933, -1.774027, -2.609051], atol: 2e-6)
        // F.adaptive_avg_pool1d(x, 3)
        expectClose(AdaptiveAvgPool1d(3)(x).toArray(), [0.180808, 0.643867, 0.94579, 0.87892, 0.500402, -0.003349, -0.665251, -0.919679,
                                                       -0.943944, -0.512247, 0.006507, 0.523633, 0.947592, 0.916092, 0.655328, -0.010047,
                                                       -0.51144, -0.884837, -0.942054, -0.634197, -0.167623, 0.529289, 0.860997, 0.977227])
        // F.pixel_shuffle(torch.arange(48.).reshape(1, 8, 2, 3), 2): the first 12; pixel_unshuffle inverts it.
        let t = Tensor.arange(0, 48, device: d).reshape([1, 8, 2, 3])
        let shuffled = PixelShuffle(2)(t)
        #expect(shuffled.shape == [1, 2, 4, 6] && Array(shuffled.toArray().prefix(12)) == [0, 6, 1, 7, 2, 8, 12, 18, 13, 19, 14, 20])
        #expect(PixelUnshuffle(2)(shuffled).toArray() == t.toArray())
        #expect(Unflatten(dim: 1, sizes: [2, -1])(t).shape == [1, 2, 4, 2, 3] && Flatten()(t.unflatten(dim: 1, sizes: [4, 2])).shape == [1, 48])
        // F.glu(x[0], dim=0)
        expectClose(GLU(dim: 0)(x[0]).toArray(), [0, 0.112058, 0.186273, 0.24173, 0.289367, 0.325552, 0.328272, 0.262915, 0.106726, -0.124286])
        #expect(LogSoftmax(dim: 1)(x).toArray() == x.logSoftmax(dim: 1).toArray())
    }

    @Test("amax and amin share the gradient among ties, median takes the lower middle, diag, trace and outer, as PyTorch's", arguments: devices)
    func extremesAndDiagonals(_ d: Device) {
        let values: [[Float]] = [[3, 1, 3, 0], [2, 5, 5, 5], [4, -1, 2, 2]]
        func input() -> Tensor { Tensor(values, device: d, requiresGrad: true) }
        // x.amax(dim=1), x.amin(dim=(0, 1)) and x.median(dim=1) of the same x, with their gradients.
        var x = input()
        let amax = x.amax(dims: [1])
        #expect(amax.toArray() == [3, 5, 4])
        amax.sum().backward()
        expectClose(x.grad!.toArray(), [0.5, 0, 0.5, 0, 0, 1 / 3, 1 / 3, 1 / 3, 1, 0, 0, 0])
        x = input()
        let amin = x.amin(dims: [0, 1], keepDim: true)
        #expect(amin.shape == [1, 1] && amin.toArray() == [-1])
        amin.sum().backward()
        #expect(x.grad!.toArray() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0])
        x = input()
        let median = x.median(dim: 1)
        #expect(median.values.toArray() == [1, 5, 2] && median.indices.toInt64Array() == [1, 1, 2] && median.indices.dtype == .int64)
        median.values.sum().backward()
        #expect(x.grad!.toArray() == [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
        #expect(x.median().toArray() == [2] && x.median().shape == [] && x.median(dim: 0, keepDim: true).values.shape == [1, 4])
        // x.diag(k) for k = 0, 1, -1, 3, -3; torch.diag(torch.tensor([1., 2.]), 1) and (..., -1); x.trace().
        #expect(x.diag().toArray() == [3, 5, 2] && x.diag(diagonal: 1).toArray() == [1, 5, 2] && x.diag(diagonal: -1).toArray() == [2, -1])
        #expect(x.diag(diagonal: 3).toArray() == [0] && x.diag(diagonal: -3).shape == [0])
        let v = Tensor([1, 2], device: d)
        #expect(v.diag(diagonal: 1).toArray() == [0, 1, 0, 0, 0, 2, 0, 0, 0] && v.diag(diagonal: -1).toArray() == [0, 0, 0, 1, 0, 0, 0, 2, 0])
        #expect(x.trace().toArray() == [10] && v.outer(Tensor([3, 4, 5], device: d)).toArray() == [3, 4, 5, 6, 8, 10])
    }

    @Test("unfold and fold match PyTorch's, fold summing overlaps", arguments: devices)
    func unfoldAndFold(_ d: Device) {
        // x = (torch.arange(40.).reshape(1, 2, 4, 5) * 0.3).sin(); F.unfold(x, (2, 3), padding=(1, 0), stride=(2, 1))
        // and F.fold of that back to (4, 5): the first 10 of each.
        let x = (Tensor.arange(0, 40, device: d).reshape([1, 2, 4, 5]) * 0.3).sin()
        let columns = unfold(x, kernelSize: (2, 3), padding: (1, 0), stride: (2, 1))
        #expect(columns.shape == [1, 12, 9])
        expectClose(Array(columns.toArray().prefix(10)), [0, 0, 0, 0.997495, 0.973848, 0.863209, -0.97753, -0.996165, -0.925815, 0])
        let image = fold(columns, outputSize: (4, 5), kernelSize: (2, 3), padding: (1, 0), stride: (2, 1))
        #expect(image.shape == [1, 2, 4, 5])
        expectClose(Array(image.toArray().prefix(10)), [0, 0.59104, 1.693928, 1.566654, 0.932039, 0.997495, 1.947695, 2.589628, 1.350926, 0.42738])
    }

    @Test("einsum equals the ops it spells: products, transposes, sums, outer and batched products, ellipses and broadcasting",
          arguments: devices)
    func einsumForms(_ d: Device) {
        var random = TestRandom(seed: 31)
        func t(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: random.floats(Shape.count(shape)), device: d) }
        let q = t([2, 3, 4, 5]), k = t([2, 3, 6, 5]), a = t([3, 4]), b = t([4, 2]), v = t([4]), w = t([2])
        expectClose(einsum("bhqd,bhkd->bhqk", q, k).toArray(), q.matmul(k.transpose(-2, -1)).toArray(), atol: 1e-5)
        expectClose(einsum("ij,jk", a, b).toArray(), a.matmul(b).toArray(), atol: 1e-6)
        #expect(einsum("ij->ji", a).toArray() == a.T.contiguous().toArray() && einsum("ji", a).toArray() == a.T.contiguous().toArray())
        expectClose([einsum("ij->", a).item()], [a.sum().item()], atol: 1e-6)
        expectClose(einsum("ij->j", a).toArray(), a.sum(dim: 0).toArray(), atol: 1e-6)
        #expect(einsum("i,j->ij", v, w).toArray() == v.outer(w).toArray())
        expectClose([einsum("i,i->", v, v).item()], [(v * v).sum().item()], atol: 1e-6)
        // Implicit output: letters used once, in alphabetical order ("ba" of "ab" transposes nothing back).
        #expect(einsum("ba", a).toArray() == a.T.contiguous().toArray())
        let lead = q.slice(dim: -1, end: 4)
        expectClose(einsum("...ij,...jk->...ik", lead, a.T.reshape([1, 1, 4, 3])).toArray(), lead.matmul(a.T).toArray(), atol: 1e-6)
        expectClose(einsum("ij,jk,k->i", a, b, w).toArray(), a.matmul(b).matmul(w).toArray(), atol: 1e-6)
        let left = t([1, 3, 4]), right = t([5, 4, 2])
        expectClose(einsum("bij,bjk->bik", left, right).toArray(), left.matmul(right).toArray(), atol: 1e-6)
        #expect(einsum("bij,bjk->bik", left, right).shape == [5, 3, 2])
    }

    @Test("einsum's misuse stops with a message naming the equation")
    func einsumErrors() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = einsum("ij,jk->ik", Tensor.ones([2, 3]), Tensor.ones([4, 5]))
        }.map { #expect(stderrText($0).contains("einsum: subscript 'j' has size 4 in one operand and 3 in another (ij,jk->ik)")) }
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = einsum("ijk->i", Tensor.ones([2, 3]))
        }.map { #expect(stderrText($0).contains("einsum: operand 0 has 2 dims but its subscripts 'ijk' name 3")) }
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = einsum("ij->iz", Tensor.ones([2, 3]))
        }.map { #expect(stderrText($0).contains("einsum: output subscript 'z' does not appear in any operand")) }
    }

    @Test("unbind, clipGradValue and the like-shaped creators follow PyTorch", arguments: devices)
    func smallUtilities(_ d: Device) {
        let x = Tensor.arange(0, 6, device: d).reshape([2, 3])
        #expect(x.unbind(dim: 1).map { $0.toArray() } == [[0, 3], [1, 4], [2, 5]] && x.unbind().map(\.shape) == [[3], [3]])
        let w = Tensor.zeros([4], device: d, requiresGrad: true)
        (w * Tensor([-3, 0.5, 2, -0.1], device: d)).sum().backward()
        clipGradValue([w], clipValue: 1)
        #expect(w.grad!.toArray() == [-1, 0.5, 1, -0.1])
        let h = x.to(.float16)
        #expect(Tensor.full(like: h, 7).dtype == .float16 && Tensor.full(like: h, 7).toArray() == [7, 7, 7, 7, 7, 7])
        #expect(Tensor.randn(like: h).dtype == .float16 && Tensor.rand(like: x).shape == [2, 3] && Tensor.rand(like: x).device == d)
        #expect(Tensor.rand(like: x).toArray().allSatisfy { $0 >= 0 && $0 < 1 })
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
