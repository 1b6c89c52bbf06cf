import Foundation
import Testing
@testable import Ember

/// Hand-worked forward values for every op, on every device.
@Suite("Forward values")
struct ForwardValueTests {
    static let devices = TestDevices.all

    @Test("creation ops", arguments: devices)
    func creation(_ d: Device) {
        #expect(Tensor.zeros([2, 2], device: d).toArray() == [0, 0, 0, 0])
        #expect(Tensor.ones([3], device: d).toArray() == [1, 1, 1])
        #expect(Tensor.full([2], 7.5, device: d).toArray() == [7.5, 7.5])
        #expect(Tensor.arange(0, 5, device: d).toArray() == [0, 1, 2, 3, 4])
        #expect(Tensor.arange(1, 2, step: 0.25, device: d).toArray() == [1, 1.25, 1.5, 1.75])
        #expect(Tensor.arange(4, device: d).dtype == .int64)
        #expect(Tensor.arange(4, device: d).toIntArray() == [0, 1, 2, 3])
        #expect(Tensor.linspace(0, 1, count: 5, device: d).toArray() == [0, 0.25, 0.5, 0.75, 1])
        #expect(Tensor.eye(2, 3, device: d).toArray() == [1, 0, 0, 0, 1, 0])
        let x = Tensor([[1, 2], [3, 4]], device: d)
        #expect(x.shape == [2, 2] && x.dtype == .float32 && x.device == d)
        #expect(x.toArray() == [1, 2, 3, 4])
        #expect(Tensor(3.5, device: d).item() == 3.5)
        #expect(Tensor([1, 0, 2], dtype: .int32, device: d).toIntArray() == [1, 0, 2])
        #expect(Tensor([true, false], dtype: .bool, device: d).toBoolArray() == [true, false])
        #expect(Tensor.zeros([0, 3], device: d).toArray().isEmpty)
    }

    @Test("random ops are seeded, in range, and identical across devices", arguments: devices)
    func random(_ d: Device) {
        let a = Tensor.withRandomSeed(42) { Tensor.rand([1000], device: d).toArray() }
        let b = Tensor.withRandomSeed(42) { Tensor.rand([1000], device: .cpu).toArray() }
        #expect(a == b)
        #expect(a.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(Tensor.withRandomSeed(43) { Tensor.rand([1000], device: d).toArray() } != a)
        let n = Tensor.withRandomSeed(1) { Tensor.randn([20000], device: d).toArray() }
        let mean = n.reduce(0, +) / Float(n.count)
        let variance = n.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(n.count)
        #expect(Swift.abs(mean) < 0.03 && Swift.abs(variance - 1) < 0.05)
        let r = Tensor.randint(3, 7, [1000], device: d)
        #expect(r.dtype == .int64)
        #expect(Set(r.toInt64Array()) == [3, 4, 5, 6])
    }

    @Test("manualSeed restarts the global stream")
    func manualSeed() async {
        // The global stream is shared by every test running in parallel: check it in a process of its own.
        await #expect(processExitsWith: .success) {
            Tensor.manualSeed(42)
            let a = Tensor.rand([100]).toArray()
            let b = Tensor.rand([100]).toArray()
            Tensor.manualSeed(42)
            precondition(Tensor.rand([100]).toArray() == a && a != b)
        }
    }

    @Test("unary math and activations", arguments: devices)
    func unary(_ d: Device) {
        let x = Tensor([-2, -0.5, 0, 0.5, 2], device: d)
        expectClose((-x).toArray(), [2, 0.5, 0, -0.5, -2])
        expectClose(x.abs().toArray(), [2, 0.5, 0, 0.5, 2])
        expectClose(x.sign().toArray(), [-1, -1, 0, 1, 1])
        expectClose(x.exp().toArray(), [0.135335283, 0.60653066, 1, 1.64872127, 7.3890561])
        expectClose(Tensor([1, Float(M_E), 4], device: d).log().toArray(), [0, 1, 1.38629436])
        expectClose(Tensor([4, 9, 0.25], device: d).sqrt().toArray(), [2, 3, 0.5])
        expectClose(Tensor([4, 0.25], device: d).rsqrt().toArray(), [0.5, 2])
        expectClose(Tensor([4, -0.5], device: d).reciprocal().toArray(), [0.25, -2])
        expectClose(x.square().toArray(), [4, 0.25, 0, 0.25, 4])
        expectClose(x.pow(3).toArray(), [-8, -0.125, 0, 0.125, 8])
        expectClose(Tensor([0, Float.pi / 2], device: d).sin().toArray(), [0, 1], atol: 1e-6)
        expectClose(Tensor([0, Float.pi], device: d).cos().toArray(), [1, -1], atol: 1e-6)
        expectClose(x.tanh().toArray(), [-0.96402758, -0.46211716, 0, 0.46211716, 0.96402758])
        expectClose(x.sigmoid().toArray(), [0.11920292, 0.37754067, 0.5, 0.62245933, 0.88079708])
        expectClose(x.relu().toArray(), [0, 0, 0, 0.5, 2])
        expectClose(x.gelu().toArray(), [-0.04550026, -0.15426877, 0, 0.34573123, 1.95449974], atol: 1e-6)
        expectClose(x.erf().toArray(), [-0.99532227, -0.52049988, 0, 0.52049988, 0.99532227])
        expectClose(x.leakyRelu(slope: 0.1).toArray(), [-0.2, -0.05, 0, 0.5, 2])
        expectClose(x.clamp(min: -1, max: 0.25).toArray(), [-1, -0.5, 0, 0.25, 0.25])
        let nan = Tensor([Float.nan], device: d)
        #expect(nan.exp().toArray()[0].isNaN)
    }

    @Test("binary arithmetic with broadcasting and scalars", arguments: devices)
    func binary(_ d: Device) {
        let a = Tensor([[1, 2, 3], [4, 5, 6]], device: d)
        let b = Tensor([10, 20, 30], device: d)
        let c = Tensor([[2], [4]], device: d)
        #expect((a + b).toArray() == [11, 22, 33, 14, 25, 36])
        #expect((a - c).toArray() == [-1, 0, 1, 0, 1, 2])
        #expect((a * c).toArray() == [2, 4, 6, 16, 20, 24])
        #expect((b / Tensor([2], device: d)).toArray() == [5, 10, 15])
        #expect((c + b).shape == [2, 3])
        #expect((a + 1).toArray() == [2, 3, 4, 5, 6, 7])
        #expect((10 - a).toArray() == [9, 8, 7, 6, 5, 4])
        #expect((a * 0.5).toArray() == [0.5, 1, 1.5, 2, 2.5, 3])
        #expect((2 * a).toArray() == [2, 4, 6, 8, 10, 12])
        #expect((a / 2).toArray() == [0.5, 1, 1.5, 2, 2.5, 3])
        #expect((12 / a).toArray() == [12, 6, 4, 3, 2.4, 2])
        expectClose(Tensor([2, 3], device: d).pow(Tensor([3, 0.5], device: d)).toArray(), [8, 1.7320508])
        #expect(a.maximum(Tensor([3], device: d)).toArray() == [3, 3, 3, 4, 5, 6])
        #expect(a.minimum(Tensor([3], device: d)).toArray() == [1, 2, 3, 3, 3, 3])
        let nan = Tensor([Float.nan, 1], device: d)
        #expect(nan.maximum(Tensor([0, 2], device: d)).toArray()[0].isNaN)
        let i = Tensor([1, 2, 3], dtype: .int32, device: d)
        #expect((i + i).dtype == .int32 && (i + i).toIntArray() == [2, 4, 6])
        #expect((i * 2).dtype == .int32)
        #expect((i / 2).dtype == .float32 && (i / 2).toArray() == [0.5, 1, 1.5])
        #expect((i + 0.5).dtype == .float32)
    }

    @Test("comparisons, where and dtype conversion", arguments: devices)
    func comparisons(_ d: Device) {
        let a = Tensor([1, 2, 3], device: d)
        let b = Tensor([3, 2, 1], device: d)
        #expect((a == b).dtype == .bool)
        #expect((a == b).toBoolArray() == [false, true, false])
        #expect((a != b).toBoolArray() == [true, false, true])
        #expect((a < b).toBoolArray() == [true, false, false])
        #expect((a <= b).toBoolArray() == [true, true, false])
        #expect((a > b).toBoolArray() == [false, false, true])
        #expect((a >= 2).toBoolArray() == [false, true, true])
        #expect((a > 1).float().toArray() == [0, 1, 1])
        #expect(Tensor.where(a > 1, a, b).toArray() == [3, 2, 3])
        #expect(Tensor.where(a > 1, a, -1).toArray() == [-1, 2, 3])
        #expect(Tensor.where(Tensor([[1], [0]], device: d) > 0, a, Tensor([0], device: d)).toArray() == [1, 2, 3, 0, 0, 0])
        #expect(Tensor([1.7, -1.7], device: d).int().toIntArray() == [1, -1])
        #expect(Tensor([0, 2], device: d).bool().toBoolArray() == [false, true])
        let labels = Tensor([1, 0, 2], dtype: .int32, device: d)
        #expect((labels == Tensor([1, 1, 2], dtype: .int32, device: d)).float().mean().item() == Float(2) / 3)
    }

    @Test("reductions", arguments: devices)
    func reductions(_ d: Device) {
        let x = Tensor([[1, 5, 3], [4, 2, 6]], device: d)
        #expect(x.sum().item() == 21)
        #expect(x.sum().shape == [])
        #expect(x.sum(dim: 0).toArray() == [5, 7, 9])
        #expect(x.sum(dim: 1, keepDim: true).shape == [2, 1])
        #expect(x.sum(dim: -1).toArray() == [9, 12])
        #expect(x.mean().item() == 3.5)
        #expect(x.mean(dim: 0).toArray() == [2.5, 3.5, 4.5])
        #expect(x.max().item() == 6)
        #expect(x.min().item() == 1)
        #expect(x.max(dim: 1).values.toArray() == [5, 6])
        #expect(x.min(dim: 0).values.toArray() == [1, 2, 3])
        #expect(x.argmax(dim: 1).toIntArray() == [1, 2])
        #expect(x.argmin(dim: 1).toIntArray() == [0, 1])
        #expect(x.argmax().toIntArray() == [5])
        #expect(Tensor([3, 1, 3], device: d).argmax().toIntArray() == [0])
        expectClose(x.variance(dim: 1).toArray(), [4, 4])
        expectClose(x.variance(dim: 1, correction: 0).toArray(), [8.0 / 3, 8.0 / 3])
        expectClose(x.variance().toArray(), [3.5])
        let y = Tensor.arange(0, 24, device: d).reshape([2, 3, 4])
        #expect(y.sum(dims: [0, 2]).toArray() == [60, 92, 124])
        #expect(y.sum(dims: [0, 2], keepDim: true).shape == [1, 3, 1])
        #expect(y.permute([2, 0, 1]).sum(dim: 0).toArray() == y.sum(dim: 2).toArray())
        expectClose(Tensor([[0, Float(M_LN2)]], device: d).logSumExp(dim: 1).toArray(), [Float(Foundation.log(3.0))])
        expectClose(Tensor([[10000, 10000]], device: d).logSumExp(dim: 1).toArray(), [10000 + Float(M_LN2)])
        #expect(Tensor.zeros([0, 3], device: d).sum(dim: 0).toArray() == [0, 0, 0])
        #expect(Tensor([Float.nan, 1], device: d).max().item().isNaN)
    }

    @Test("softmax and log-softmax", arguments: devices)
    func softmax(_ d: Device) {
        let x = Tensor([[1, 2, 3], [1, 1, 1]], device: d)
        expectClose(x.softmax(dim: 1).toArray(), [0.09003057, 0.24472847, 0.66524096, 1.0 / 3, 1.0 / 3, 1.0 / 3])
        expectClose(x.logSoftmax(dim: 1).toArray(), [-2.40760596, -1.40760596, -0.40760596, -1.09861229, -1.09861229, -1.09861229])
        expectClose(x.softmax(dim: 0).toArray(), [0.5, 0.73105858, 0.88079708, 0.5, 0.26894142, 0.11920292])
        expectClose(Tensor([[1e4, 0, -1e4]], device: d).softmax(dim: 1).toArray(), [1, 0, 0])
        expectClose(Tensor([[1e4, 0]], device: d).logSoftmax(dim: 1).toArray(), [0, -1e4])
    }

    @Test("matmul in 1-D, 2-D and batched forms", arguments: devices)
    func matmul(_ d: Device) {
        let a = Tensor([[1, 2], [3, 4], [5, 6]], device: d)
        let b = Tensor([[1, 0, 2], [0, 1, 3]], device: d)
        #expect(a.matmul(b).toArray() == [1, 2, 8, 3, 4, 18, 5, 6, 28])
        #expect(a.T.matmul(a).toArray() == [35, 44, 44, 56])
        #expect(Tensor([1, 2], device: d).matmul(b).toArray() == [1, 2, 8])
        #expect(a.matmul(Tensor([1, 1], device: d)).toArray() == [3, 7, 11])
        #expect(Tensor([1, 2, 3], device: d).matmul(Tensor([4, 5, 6], device: d)).item() == 32)
        let batch = Tensor.stack([a, a * 2])
        let r = batch.matmul(b)
        #expect(r.shape == [2, 3, 3])
        #expect(r[1].toArray() == [2, 4, 16, 6, 8, 36, 10, 12, 56])
        #expect(Tensor.ones([4, 1, 2, 3], device: d).matmul(Tensor.ones([5, 3, 2], device: d)).shape == [4, 5, 2, 2])
        #expect(Tensor.zeros([2, 0], device: d).matmul(Tensor.zeros([0, 3], device: d)).toArray() == [0, 0, 0, 0, 0, 0])
    }

    @Test("large products, split across threads by rows, batch entries or OpenBLAS's threads, match Double sums", arguments: devices)
    func largeMatmul(_ d: Device) {
        var random = TestRandom(seed: 31)
        // Rows above and below the CPU's row-block threshold, a transposed operand, and a batch.
        for (m, n, k, batch, transposed) in [(600, 70, 64, 1, false), (300, 90, 80, 1, true), (40, 50, 600, 4, false)] {
            let av = random.floats(batch * m * k, -1...1), bv = random.floats(k * n, -1...1)
            let a = Tensor(shape: [batch, m, k], data: av, device: d)
            let b = transposed ? Tensor(shape: [n, k], data: bv, device: d).T : Tensor(shape: [k, n], data: bv, device: d)
            let got = a.matmul(b).toArray()
            var worst = 0.0
            for e in 0..<batch {
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0
                        for p in 0..<k { sum += Double(av[(e * m + i) * k + p]) * Double(transposed ? bv[j * k + p] : bv[p * n + j]) }
                        worst = Swift.max(worst, Swift.abs(Double(got[(e * m + i) * n + j]) - sum))
                    }
                }
            }
            #expect(worst <= 1e-4, "\(batch) x \(m)x\(n)x\(k) on \(d): off by \(worst)")
        }
    }

    @Test("conv2d and pooling", arguments: devices)
    func convolutionAndPooling(_ d: Device) {
        let x = Tensor.arange(1, 17, device: d).reshape([1, 1, 4, 4])
        let w = Tensor([[[[1, 0], [0, -1]]]], device: d)
        // Each output is x[i][j] - x[i+1][j+1] = -5.
        #expect(x.conv2d(weight: w).toArray() == [Float](repeating: -5, count: 9))
        #expect(x.conv2d(weight: w, bias: Tensor([1], device: d), stride: 2).toArray() == [-4, -4, -4, -4])
        let padded = x.conv2d(weight: Tensor.ones([1, 1, 3, 3], device: d), padding: 1)
        #expect(padded.toArray()[0] == 14)  // 1+2+5+6
        #expect(padded.toArray()[5] == 54)  // 1+2+3+5+6+7+9+10+11
        #expect(x.maxPool2d(kernel: 2).toArray() == [6, 8, 14, 16])
        #expect(x.maxPool2d(kernel: 3, stride: 1).toArray() == [11, 12, 15, 16])
        #expect(x.avgPool2d(kernel: 2).toArray() == [3.5, 5.5, 11.5, 13.5])
        let windowSums: [Float] = [14, 22, 46, 54]
        expectClose(x.avgPool2d(kernel: 3, stride: 3, padding: 1).toArray(), windowSums.map { $0 / 9 })
        expectClose(x.avgPool2d(kernel: 3, stride: 3, padding: 1, countIncludePad: false).toArray(), windowSums.map { $0 / 4 })
        let dilated = x.conv2d(weight: Tensor.ones([1, 1, 2, 2], device: d), dilation: 2)
        let dilatedSums: [Float] = [24, 28, 40, 44]  // 1+3+9+11, 2+4+10+12, 5+7+13+15, 6+8+14+16
        #expect(dilated.toArray() == dilatedSums)
    }

    @Test("max pooling's backward over windows that tile the plane writes every input pixel", arguments: devices)
    func maxPoolTilingBackward(_ d: Device) {
        // A freed buffer of NaNs in the size class the input gradient takes next: the backward
        // must overwrite every pixel of it, the ones no window picked included.
        do { _ = Tensor.full([1, 2, 4, 6], .nan, device: d) + 0 }
        let x = Tensor.arange(0, 48, device: d).reshape([1, 2, 4, 6]).requiresGrad(true)
        x.maxPool2d(kernel: (2, 3)).backward(gradient: Tensor([1, 2, 3, 4, 5, 6, 7, 8], device: d).reshape([1, 2, 2, 2]))
        // Each window's maximum is its bottom-right pixel.
        var expected = [Float](repeating: 0, count: 48)
        for (k, pixel) in [8, 11, 20, 23, 32, 35, 44, 47].enumerated() { expected[pixel] = Float(k + 1) }
        #expect(x.grad?.toArray() == expected)
    }

    /// Direct loops over an NCHW array: max-pool values and the flat input index each
    /// window picks (first in scan order on ties), and a cross-correlation.
    static func referenceMaxPool(_ x: [Float], _ shape: [Int], kernel: Int, stride: Int, padding: Int, dilation: Int) -> (values: [Float], picks: [Int]) {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let oh = (h + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1, ow = (w + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1
        var values: [Float] = [], picks: [Int] = []
        for plane in 0..<n * c {
            for y in 0..<oh {
                for xo in 0..<ow {
                    var best = -Float.infinity, at = -1
                    for ki in 0..<kernel {
                        for kj in 0..<kernel {
                            let ih = y * stride - padding + ki * dilation, iw = xo * stride - padding + kj * dilation
                            guard ih >= 0 && ih < h && iw >= 0 && iw < w else { continue }
                            let i = plane * h * w + ih * w + iw
                            if at < 0 || x[i] > best { (best, at) = (x[i], i) }
                        }
                    }
                    values.append(best)
                    picks.append(at)
                }
            }
        }
        return (values, picks)
    }

    static func referenceConv(_ x: [Float], _ shape: [Int], _ weight: [Float], _ wShape: [Int],
                              stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)) -> [Float] {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (o, kh, kw) = (wShape[0], wShape[2], wShape[3])
        let oh = (h + 2 * padding.0 - dilation.0 * (kh - 1) - 1) / stride.0 + 1
        let ow = (w + 2 * padding.1 - dilation.1 * (kw - 1) - 1) / stride.1 + 1
        var out: [Float] = []
        for b in 0..<n {
            for oc in 0..<o {
                for y in 0..<oh {
                    for xo in 0..<ow {
                        var total = 0.0
                        for ic in 0..<c {
                            for ki in 0..<kh {
                                for kj in 0..<kw {
                                    let ih = y * stride.0 - padding.0 + ki * dilation.0, iw = xo * stride.1 - padding.1 + kj * dilation.1
                                    guard ih >= 0 && ih < h && iw >= 0 && iw < w else { continue }
                                    total += Double(x[((b * c + ic) * h + ih) * w + iw]) * Double(weight[((oc * c + ic) * kh + ki) * kw + kj])
                                }
                            }
                        }
                        out.append(Float(total))
                    }
                }
            }
        }
        return out
    }

    @Test("pooling and convolution on rows wide enough for the vector paths match direct loops", arguments: devices)
    func wideWindows(_ d: Device) {
        // Small integers with many zeros, as after a ReLU, so windows are full of ties.
        let shape = [2, 3, 9, 23]
        let values = Tensor.withRandomSeed(7) { Tensor.randint(-3, 4, shape).toIntArray() }.map { Float(Swift.max($0, 0)) }
        let x = Tensor(shape: shape, data: values, device: d)
        for (kernel, stride, padding, dilation) in [(2, 2, 0, 1), (3, 1, 1, 1), (3, 2, 1, 2), (2, 3, 1, 1)] {
            let context = "kernel \(kernel) stride \(stride) padding \(padding) dilation \(dilation)"
            let expected = Self.referenceMaxPool(values, shape, kernel: kernel, stride: stride, padding: padding, dilation: dilation)
            let input = x.detach().requiresGrad(true)
            let pooled = input.maxPool2d(kernel: kernel, stride: stride, padding: padding, dilation: dilation)
            #expect(pooled.toArray() == expected.values, "\(context)")
            // The gradient of a sum lands on each window's pick: the first maximum.
            pooled.sum().backward()
            var counts = [Float](repeating: 0, count: values.count)
            for pick in expected.picks { counts[pick] += 1 }
            #expect(input.grad!.toArray() == counts, "\(context)")
        }
        let nan = Tensor(shape: [1, 1, 1, 8], data: [1, .nan, 3, 2, 5, 4, 0, 0], device: d).maxPool2d(kernel: 2).toArray()
        #expect(nan[0].isNaN && nan[1] == 3 && nan[2] == 5 && nan[3] == 0)
        let weight = Tensor.withRandomSeed(8) { Tensor.randn([4, 3, 3, 2]) }
        for (stride, padding, dilation) in [((1, 1), (1, 1), (1, 1)), ((2, 3), (2, 1), (1, 2)), ((1, 2), (0, 3), (2, 1))] {
            let expected = Self.referenceConv(values, shape, weight.toArray(), weight.shape, stride: stride, padding: padding, dilation: dilation)
            let got = x.conv2d(weight: weight.to(d), stride: stride, padding: padding, dilation: dilation)
            expectClose(got.toArray(), expected, rtol: 1e-5, atol: 1e-5, "conv2d stride \(stride) padding \(padding) dilation \(dilation)")
        }
    }

    @Test("dropout keeps the expected fraction and scales survivors", arguments: devices)
    func dropout(_ d: Device) {
        let y = Tensor.ones([10000], device: d).dropout(p: 0.25).toArray()
        let kept = y.filter { $0 != 0 }
        #expect(kept.allSatisfy { Swift.abs($0 - 4.0 / 3) < 1e-6 })
        #expect(Swift.abs(Float(kept.count) / 10000 - 0.75) < 0.02)
        #expect(Tensor.ones([3], device: d).dropout(p: 0.5, training: false).toArray() == [1, 1, 1])
        #expect(Tensor.ones([3], device: d).dropout(p: 1).toArray() == [0, 0, 0])
    }

    @Test("views share storage and reshape copies only when needed", arguments: devices)
    func views(_ d: Device) {
        let x = Tensor.arange(0, 6, device: d).reshape([2, 3])
        #expect(x.reshape([3, 2]).storage === x.storage)
        #expect(x.T.storage === x.storage)
        #expect(x.T.toArray() == [0, 3, 1, 4, 2, 5])
        #expect(!x.T.isContiguous)
        #expect(x.T.contiguous().isContiguous && x.T.contiguous().toArray() == [0, 3, 1, 4, 2, 5])
        #expect(x.T.reshape([6]).toArray() == [0, 3, 1, 4, 2, 5])
        #expect(x.permute([1, 0]).shape == [3, 2])
        #expect(x.unsqueeze(0).shape == [1, 2, 3] && x.unsqueeze(-1).shape == [2, 3, 1])
        #expect(x.unsqueeze(1).squeeze(1).shape == [2, 3])
        #expect(Tensor.zeros([1, 2, 1], device: d).squeeze().shape == [2])
        #expect(Tensor([[1], [2]], device: d).expand([2, 3]).toArray() == [1, 1, 1, 2, 2, 2])
        #expect(Tensor([1, 2], device: d).expand([2, -1]).toArray() == [1, 2, 1, 2])
        #expect(Tensor.zeros([2, 3, 4], device: d).flatten().shape == [24])
        #expect(Tensor.zeros([2, 3, 4], device: d).flatten(start: 1).shape == [2, 12])
        #expect(x.view([-1]).toArray() == [0, 1, 2, 3, 4, 5])
    }

    @Test("slicing, gather, indexSelect, cat and stack", arguments: devices)
    func indexing(_ d: Device) {
        let x = Tensor.arange(0, 12, device: d).reshape([3, 4])
        #expect(x[0].toArray() == [0, 1, 2, 3])
        #expect(x[-1].toArray() == [8, 9, 10, 11])
        #expect(x[0..<2].shape == [2, 4])
        #expect(x[1, 1..<3].toArray() == [5, 6])
        #expect(x[TensorRange.all, 2].toArray() == [2, 6, 10])
        #expect(x[1...].shape == [2, 4])
        #expect(x[..<1].shape == [1, 4])
        #expect(x[TensorRange(0, 3, step: 2), 0].toArray() == [0, 8])
        #expect(x[1][2].item() == 6)
        #expect(x.slice(dim: 1, start: 1, end: 4, step: 2).toArray() == [1, 3, 5, 7, 9, 11])
        let idx = Tensor([[3, 0], [1, 1], [2, 3]], dtype: .int32, device: d)
        #expect(x.gather(dim: 1, index: idx).toArray() == [3, 0, 5, 5, 10, 11])
        let rows = Tensor([2, 0], dtype: .int32, device: d)
        #expect(x.indexSelect(dim: 0, index: rows).toArray() == [8, 9, 10, 11, 0, 1, 2, 3])
        #expect(x.indexSelect(dim: 1, index: rows).toArray() == [2, 0, 6, 4, 10, 8])
        let s = Tensor.zeros([2, 3], device: d).scatterAdd(dim: 1, index: Tensor([[0, 0], [2, 1]], dtype: .int32, device: d),
                                                        source: Tensor([[1, 2], [3, 4]], device: d))
        #expect(s.toArray() == [3, 0, 0, 0, 4, 3])
        #expect(Tensor.cat([x[0..<1], x[2...]]).toArray() == [0, 1, 2, 3, 8, 9, 10, 11])
        #expect(Tensor.cat([x[TensorRange.all, 0..<1], x[TensorRange.all, 3...]], dim: 1).toArray() == [0, 3, 4, 7, 8, 11])
        #expect(Tensor.stack([Tensor([1, 2], device: d), Tensor([3, 4], device: d)], dim: 1).toArray() == [1, 3, 2, 4])
        #expect(Tensor.cat([Tensor([1], dtype: .int32, device: d), Tensor([7], dtype: .int32, device: d)]).toIntArray() == [1, 7])
    }

    @Test("in-place updates bump the storage version", arguments: devices)
    func inPlace(_ d: Device) {
        let x = Tensor([1, 2, 3], device: d)
        let version = x.storage.version
        x += Tensor([1, 1, 1], device: d)
        x *= 2
        x -= 1
        x /= Tensor([1], device: d)
        #expect(x.toArray() == [3, 5, 7])
        x.copy(from: Tensor([9], device: d))
        #expect(x.toArray() == [9, 9, 9])
        x.fill(0)
        #expect(x.toArray() == [0, 0, 0])
        #expect(x.storage.version == version + 6)
    }

    @Test("full writes every element's bytes in every dtype", arguments: devices)
    func fullEveryDType(_ d: Device) {
        // Values whose bytes differ, so a pattern of the wrong width or byte order shows.
        let cases: [(DType, Float)] = [(.float32, -2.5), (.float16, 1.5), (.bfloat16, -3), (.int32, -7), (.uint8, 200), (.bool, 1)]
        for (dtype, value) in cases {
            let t = Tensor.full([7, 143], value, dtype: dtype, device: d)
            #expect(t.dtype == dtype)
            #expect(t.toArray() == [Float](repeating: value, count: 1001), "full \(dtype) on \(d)")
        }
        let wide = Tensor.full([1001], 8_589_934_592, dtype: .int64, device: d)
        #expect(wide.toInt64Array() == [Int64](repeating: 8_589_934_592, count: 1001), "full int64 on \(d)")
    }

    @Test("to(device) round-trips values and dtype")
    func transfers() {
        for d in TestDevices.all {
            let x = Tensor([[1, 2], [3, 4]], device: .cpu).T
            let y = x.to(d).to(.cpu)
            #expect(y.toArray() == [1, 3, 2, 4])
            #expect(Tensor([5, 6], dtype: .int32).to(d).toIntArray() == [5, 6])
        }
    }

    @Test("printing shows values, shape, device and gradFn")
    func printing() {
        let x = Tensor([[1, 2], [3, 4]])
        #expect(x.description == "tensor([[1., 2.],\n        [3., 4.]], shape: [2, 2], device: cpu)")
        let w = Tensor([0.5, 0.25], requiresGrad: true)
        #expect(w.description == "tensor([0.5000, 0.2500], shape: [2], device: cpu, requiresGrad: true)")
        #expect((w * 2).description.hasSuffix("gradFn: MulBackward)"))
        #expect(Tensor([1, 2], dtype: .int32).description == "tensor([1, 2], shape: [2], dtype: int32, device: cpu)")
        #expect(Tensor.zeros([2000]).description.contains("..."))
        #expect(Tensor(3).description == "tensor(3., shape: [], device: cpu)")
    }
}

extension ForwardValueTests {
    @Test("selections keep integer and bool dtypes", arguments: devices)
    func selectionDTypes(_ d: Device) {
        let labels = Tensor([7, 3, 9], dtype: .int32, device: d)
        let picked = labels.indexSelect(dim: 0, index: Tensor([2, 0], dtype: .int32, device: d))
        #expect(picked.dtype == .int32 && picked.toIntArray() == [9, 7])
        let mask = Tensor([true, false, true], dtype: .bool, device: d)
        #expect(mask.gather(dim: 0, index: Tensor([1, 2], dtype: .int32, device: d)).dtype == .bool)
    }
}
