import Foundation
import Testing
@testable import Ember

/// A model with a nested module, an array of modules and a buffer, to check discovery and names.
final class TinyNet: Module, Layer {
    let stem = Linear(3, 4)
    let blocks = [Linear(4, 4), Linear(4, 2, bias: false)]
    let norm = BatchNorm1d(2)
    @Parameter var scale = Tensor.ones([2])

    func callAsFunction(_ x: Tensor) -> Tensor {
        norm(blocks.reduce(stem(x).relu()) { $1($0) }) * scale
    }
}

/// A model with arrays of Sequentials, batch norm inside them, and optional children, named
/// as the equivalent PyTorch model (`nn.ModuleList` of `nn.Sequential`).
final class StagedNet: Module, Layer {
    let stages = [Sequential(Linear(2, 3), BatchNorm1d(3)), Sequential(Linear(3, 2, bias: false))]
    let head: Linear? = Linear(2, 1)
    let absent: Linear? = nil

    func callAsFunction(_ x: Tensor) -> Tensor {
        head!(stages.reduce(x) { $1($0) })
    }
}

@Suite("nn layers and losses")
struct NNTests {
    static let devices = TestDevices.all

    @Test("parameter and buffer names follow PyTorch")
    func names() {
        let net = TinyNet()
        #expect(net.namedParameters().map(\.name) == ["scale", "stem.weight", "stem.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "norm.weight", "norm.bias"])
        #expect(net.namedBuffers().map(\.name) == ["norm.running_mean", "norm.running_var", "norm.num_batches_tracked"])
        let seq = Sequential(Linear(4, 3), ReLU(), Linear(3, 2))
        #expect(seq.stateDict().map(\.name) == ["0.weight", "0.bias", "2.weight", "2.bias"])
        #expect(seq.parameterCount == 4 * 3 + 3 + 3 * 2 + 2)
        #expect(net.parameters().allSatisfy { $0.requiresGrad && $0.isLeaf })
    }

    @Test("Linear and Conv2d use PyTorch layouts and default initialisation bounds")
    func initialisation() {
        let linear = Tensor.withRandomSeed(1) { Linear(100, 30) }
        #expect(linear.weight.shape == [30, 100] && linear.bias?.shape == [30])
        #expect(linear.weight.toArray().allSatisfy { Swift.abs($0) <= 0.1 })
        #expect(linear.weight.toArray().contains { Swift.abs($0) > 0.09 })
        let conv = Conv2d(2, 5, kernelSize: 3)
        #expect(conv.weight.shape == [5, 2, 3, 3])
        let bound = 1 / Float(18).squareRoot()
        #expect(conv.weight.toArray().allSatisfy { Swift.abs($0) <= bound })
        #expect(Tensor.withRandomSeed(1) { Linear(100, 30) }.weight.toArray() == linear.weight.toArray())
    }

    @Test("Linear forward and gradients", arguments: devices)
    func linear(_ d: Device) {
        let layer = Linear(2, 2).to(d)
        Tensor.noGrad {
            layer.weight.copy(from: Tensor([[1, 2], [3, 4]], device: d))
            layer.bias!.copy(from: Tensor([0.5, -1], device: d))
        }
        #expect(layer(Tensor([[1, 1], [2, 0]], device: d)).toArray() == [3.5, 6, 2.5, 5])
        var random = TestRandom(seed: 21)
        gradCheck("Linear", device: d, inputs: [random.floats(6), random.floats(8), random.floats(4)], shapes: [[3, 2], [4, 2], [4]]) { x in
            let l = Linear(2, 4)
            l.weight = x[1]
            l.bias = x[2]
            return l(x[0])
        }
    }

    @Test("Conv2d, pooling, Flatten and Sequential compose", arguments: devices)
    func convolutional(_ d: Device) {
        let net = Sequential(Conv2d(1, 2, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2), AvgPool2d(2), Flatten(), Linear(2, 3)).to(d)
        let y = net(Tensor.randn([4, 1, 4, 4], device: d))
        #expect(y.shape == [4, 3])
        crossEntropy(y, Tensor([0, 1, 2, 0], dtype: .int32, device: d)).backward()
        #expect(net.parameters().allSatisfy { $0.grad != nil && $0.grad!.device == d })
    }

    @Test("BatchNorm uses batch statistics in training and updates running stats like PyTorch", arguments: devices)
    func batchNorm(_ d: Device) {
        let bn = BatchNorm1d(2).to(d)
        let x = Tensor([[1, 10], [3, 20], [5, 60]], device: d)
        let y = bn(x)
        // Channel 0: mean 3, biased var 8/3; channel 1: mean 30, biased var 1400/3.
        let v0 = Float(8.0 / 3), v1 = Float(1400.0 / 3)
        expectClose(y.toArray(), [-2 / (v0 + 1e-5).squareRoot(), -20 / (v1 + 1e-5).squareRoot(), 0, -10 / (v1 + 1e-5).squareRoot(),
                                  2 / (v0 + 1e-5).squareRoot(), 30 / (v1 + 1e-5).squareRoot()], rtol: 1e-4)
        expectClose(bn.runningMean!.toArray(), [0.3, 3])
        expectClose(bn.runningVar!.toArray(), [0.9 + 0.1 * 4, 0.9 + 0.1 * 700], rtol: 1e-5)
        #expect(bn.numBatchesTracked!.item() == 1)
        bn.eval()
        expectClose(bn(x).toArray()[0...1].map { $0 }, [(1 - 0.3) / (1.3 + 1e-5).squareRoot(), (10 - 3) / (70.9 + 1e-5).squareRoot()], rtol: 1e-4)
        var random = TestRandom(seed: 8)
        gradCheck("BatchNorm2d", device: d, inputs: [random.floats(2 * 3 * 2 * 2)], shapes: [[2, 3, 2, 2]]) { x in BatchNorm2d(3).to(x[0].device)(x[0]) }
    }

    @Test("LayerNorm normalises the trailing dims", arguments: devices)
    func layerNorm(_ d: Device) {
        let ln = LayerNorm([3]).to(d)
        expectClose(ln(Tensor([[1, 2, 3]], device: d)).toArray(), [-1.2247357, 0, 1.2247357], rtol: 1e-4)
        var random = TestRandom(seed: 9)
        gradCheck("LayerNorm", device: d, inputs: [random.floats(8), random.floats(4), random.floats(4)], shapes: [[2, 4], [4], [4]]) { x in
            let l = LayerNorm([4])
            l.weight = x[1]
            l.bias = x[2]
            return l(x[0])
        }
    }

    @Test("Embedding looks up rows and scatters gradients back", arguments: devices)
    func embedding(_ d: Device) {
        let e = Embedding(4, 2).to(d)
        Tensor.noGrad { e.weight.copy(from: Tensor([[0, 1], [2, 3], [4, 5], [6, 7]], device: d)) }
        let idx = Tensor([[3, 0], [3, 1]], dtype: .int32, device: d)
        #expect(e(idx).shape == [2, 2, 2])
        #expect(e(idx).toArray() == [6, 7, 0, 1, 6, 7, 2, 3])
        e(idx).sum().backward()
        #expect(e.weight.grad!.toArray() == [1, 1, 1, 1, 0, 0, 2, 2])
    }

    @Test("Dropout is active only in training mode")
    func dropoutModes() {
        let net = Sequential(Dropout(0.5))
        let x = Tensor.ones([1000])
        #expect(net(x).toArray().contains(0))
        net.eval()
        #expect(net(x).toArray() == x.toArray())
        #expect(!net.isTraining && !(net.layers[0] as Module).isTraining)
    }

    @Test("to(device) moves parameters and buffers")
    func moving() throws {
        guard let gpu = TestDevices.openCL else { return }
        let net = TinyNet().to(gpu)
        #expect(net.stateDict().allSatisfy { $0.tensor.device == gpu })
        #expect(net.parameters().allSatisfy { $0.requiresGrad })
        #expect(net(Tensor.randn([5, 3], device: gpu)).shape == [5, 2])
    }

    @Test("cross-entropy, NLL, MSE, L1 and binary cross-entropy values", arguments: devices)
    func losses(_ d: Device) {
        let logits = Tensor([[1, 2, 3], [1, 1, 1]], device: d)
        let labels = Tensor([2, 0], dtype: .int32, device: d)
        let expected: [Float] = [0.40760596, 1.09861229]
        expectClose(crossEntropy(logits, labels, reduction: .none).toArray(), expected)
        expectClose([crossEntropy(logits, labels).item()], [(expected[0] + expected[1]) / 2])
        expectClose([crossEntropy(logits, labels, reduction: .sum).item()], [expected[0] + expected[1]])
        // Label smoothing 0.1: 0.9 * nll + 0.1 * mean over classes of -log p.
        let smooth0 = 0.9 * 0.40760596 + 0.1 * (2.40760596 + 1.40760596 + 0.40760596) / 3
        expectClose(crossEntropy(logits, labels, reduction: .none, labelSmoothing: 0.1).toArray(), [Float(smooth0), 1.09861229])
        expectClose(nllLoss(logits.logSoftmax(dim: 1), labels, reduction: .none).toArray(), expected)
        let extreme = crossEntropy(Tensor([[1e4, -1e4], [-1e4, 1e4]], device: d), Tensor([1, 1], dtype: .int32, device: d), reduction: .none)
        expectClose(extreme.toArray(), [2e4, 0])
        let p = Tensor([0.5, 2], device: d), t = Tensor([1, 0], device: d)
        #expect(mseLoss(p, t).item() == (0.25 + 4) / 2)
        #expect(l1Loss(p, t).item() == (0.5 + 2) / 2)
        expectClose([binaryCrossEntropy(Tensor([0.8, 0.1], device: d), t).item()], [Float(-(Foundation.log(0.8) + Foundation.log(0.9)) / 2)])
        let bce = binaryCrossEntropyWithLogits(Tensor([100, -100, 0], device: d), Tensor([1, 1, 0], device: d), reduction: .none)
        expectClose(bce.toArray(), [0, 100, Float(M_LN2)], atol: 1e-5)
        var random = TestRandom(seed: 12)
        gradCheck("crossEntropy", device: d, inputs: [random.floats(12, -3...3)], shapes: [[4, 3]]) { x in
            crossEntropy(x[0], Tensor([0, 2, 1, 2], dtype: .int32, device: x[0].device), labelSmoothing: 0.2)
        }
        gradCheck("bce with logits", device: d, inputs: [random.floats(4, -3...3)], shapes: [[4]]) { x in
            binaryCrossEntropyWithLogits(x[0], Tensor([1, 0, 0.5, 1], device: x[0].device))
        }
    }

    @Test("nested Sequentials, module arrays and optionals give PyTorch's names and state-dict order")
    func nestedNames() {
        let net = StagedNet()
        #expect(net.namedParameters().map(\.name) == ["stages.0.0.weight", "stages.0.0.bias", "stages.0.1.weight", "stages.0.1.bias",
                                                      "stages.1.0.weight", "head.weight", "head.bias"])
        #expect(net.stateDict().map(\.name) == ["stages.0.0.weight", "stages.0.0.bias", "stages.0.1.weight", "stages.0.1.bias",
                                                "stages.0.1.running_mean", "stages.0.1.running_var", "stages.0.1.num_batches_tracked",
                                                "stages.1.0.weight", "head.weight", "head.bias"])
        let seq = Sequential(Sequential(Linear(2, 2), ReLU()), Dropout(0.1), Sequential(Linear(2, 2)))
        #expect(seq.stateDict().map(\.name) == ["0.0.weight", "0.0.bias", "2.0.weight", "2.0.bias"])
        #expect(TinyNet().stateDict().map(\.name) == ["scale", "stem.weight", "stem.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                                                      "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked"])
        #expect(BatchNorm2d(3, affine: false, trackRunningStats: false).stateDict().isEmpty)
        #expect(BatchNorm2d(3, affine: false).stateDict().map(\.name) == ["running_mean", "running_var", "num_batches_tracked"])
        #expect(LayerNorm([2, 3], elementwiseAffine: false).stateDict().isEmpty)
        #expect(Embedding(5, 2).stateDict().map(\.name) == ["weight"])
    }

    @Test("Conv2d forward with stride, padding and dilation, and its gradients", arguments: devices)
    func conv2d(_ d: Device) {
        let x = Tensor(shape: [1, 1, 3, 3], data: (1...9).map(Float.init), device: d)
        func layer(stride: Int = 1, padding: Int = 0, dilation: Int = 1) -> Conv2d {
            let conv = Conv2d(1, 1, kernelSize: 2, stride: stride, padding: padding, dilation: dilation).to(d)
            Tensor.noGrad {
                conv.weight.copy(from: Tensor(shape: [1, 1, 2, 2], data: [1, 2, 3, 4], device: d))
                conv.bias!.fill(0.5)
            }
            return conv
        }
        #expect(layer()(x).toArray() == [37.5, 47.5, 67.5, 77.5])
        #expect(layer(stride: 2, padding: 1)(x).toArray() == [4.5, 18.5, 36.5, 77.5])
        #expect(layer(dilation: 2)(x).toArray() == [64.5])
        var random = TestRandom(seed: 31)
        gradCheck("Conv2d", device: d, inputs: [random.floats(32), random.floats(54), random.floats(3)], shapes: [[1, 2, 4, 4], [3, 2, 3, 3], [3]]) { t in
            let conv = Conv2d(2, 3, kernelSize: 3, stride: 2, padding: 1)
            conv.weight = t[1]
            conv.bias = t[2]
            return conv(t[0])
        }
    }

    @Test("pooling layers, Flatten and activation layers give hand-worked values", arguments: devices)
    func poolingAndActivations(_ d: Device) {
        let grid = Tensor(shape: [1, 1, 4, 4], data: (1...16).map(Float.init), device: d)
        #expect(MaxPool2d(2)(grid).toArray() == [6, 8, 14, 16])
        #expect(AvgPool2d(2)(grid).toArray() == [3.5, 5.5, 11.5, 13.5])
        let small = Tensor(shape: [1, 1, 3, 3], data: (1...9).map(Float.init), device: d)
        #expect(MaxPool2d(3, stride: 1, padding: 1)(small).toArray() == [5, 6, 6, 8, 9, 9, 8, 9, 9])
        expectClose(Array(AvgPool2d(3, stride: 1, padding: 1)(small).toArray().prefix(2)), [12.0 / 9, 21.0 / 9])
        expectClose(Array(AvgPool2d(3, stride: 1, padding: 1, countIncludePad: false)(small).toArray().prefix(2)), [12.0 / 4, 21.0 / 6])
        #expect(Flatten()(Tensor.zeros([2, 3, 4, 5], device: d)).shape == [2, 60])
        #expect(Flatten(startDim: 0, endDim: 1)(Tensor.zeros([2, 3, 4], device: d)).shape == [6, 4])
        let x = Tensor([-1, 0, 2], device: d)
        #expect(ReLU()(x).toArray() == [0, 0, 2])
        expectClose(LeakyReLU(negativeSlope: 0.1)(x).toArray(), [-0.1, 0, 2])
        expectClose(Tanh()(x).toArray(), [-0.7615942, 0, 0.9640276])
        expectClose(Sigmoid()(x).toArray(), [0.26894142, 0.5, 0.880797])
        expectClose(GELU()(x).toArray(), [-0.15865526, 0, 1.9544997], rtol: 1e-5, atol: 1e-6)
        expectClose(Softmax(dim: 1)(Tensor([[1, 2, 3], [0, 0, 0]], device: d)).toArray(),
                    [0.09003057, 0.24472847, 0.66524096, 1.0 / 3, 1.0 / 3, 1.0 / 3])
    }

    @Test("BatchNorm running statistics over several batches and without tracking", arguments: devices)
    func batchNormRunningStats(_ d: Device) {
        let bn = BatchNorm1d(2).to(d)
        _ = bn(Tensor([[1, 10], [3, 20], [5, 60]], device: d))
        _ = bn(Tensor([[0, 0], [2, 4]], device: d))
        // Second batch: mean [1, 2], unbiased variance [2, 8].
        expectClose(bn.runningMean!.toArray(), [0.9 * 0.3 + 0.1 * 1, 0.9 * 3 + 0.1 * 2])
        expectClose(bn.runningVar!.toArray(), [0.9 * 1.3 + 0.1 * 2, 0.9 * 70.9 + 0.1 * 8], rtol: 1e-5)
        #expect(bn.numBatchesTracked!.item() == 2)
        bn.eval()
        _ = bn(Tensor([[100, 100], [-100, 7]], device: d))
        #expect(bn.numBatchesTracked!.item() == 2)
        // [N, C, H, W]: the unbiased correction counts N * H * W values per channel.
        let bn2 = BatchNorm2d(1, momentum: 0.5).to(d)
        _ = bn2(Tensor(shape: [2, 1, 1, 2], data: [1, 2, 3, 4], device: d))
        expectClose(bn2.runningMean!.toArray() + bn2.runningVar!.toArray(), [1.25, 0.5 + 0.5 * 5 / 3])
        // [N, C, L] input to BatchNorm1d normalises over N and L.
        let bn3 = BatchNorm1d(2, affine: false).to(d)
        expectClose(bn3(Tensor(shape: [1, 2, 2], data: [1, 3, 2, 6], device: d)).toArray(), [-1, 1, -1, 1], rtol: 1e-4, atol: 1e-4)
        // Without running statistics, eval mode keeps using the batch's own statistics.
        let free = BatchNorm1d(2, trackRunningStats: false).to(d)
        let x = Tensor([[1, 2], [3, 6]], device: d)
        let training = free(x).toArray()
        free.eval()
        #expect(free(x).toArray() == training)
        #expect(free.runningMean == nil && free.namedBuffers().isEmpty)
    }

    @Test("Dropout scales kept elements by 1/(1-p) and is reproducible under a seed")
    func dropoutScaling() {
        let x = Tensor.ones([1000])
        let y = Tensor.withRandomSeed(3) { Dropout(0.25)(x).toArray() }
        #expect(y.allSatisfy { $0 == 0 || Swift.abs($0 - 4.0 / 3) < 1e-6 })
        let dropped = y.filter { $0 == 0 }.count
        #expect(dropped > 180 && dropped < 320)
        #expect(Tensor.withRandomSeed(3) { Dropout(0.25)(x).toArray() } == y)
        #expect(Dropout(1)(x).toArray().allSatisfy { $0 == 0 })
        #expect(Dropout(0)(x).toArray() == x.toArray())
    }

    @Test("Embedding keeps any index shape and initialises from N(0, 1)")
    func embeddingShapes() {
        let e = Tensor.withRandomSeed(4) { Embedding(1000, 8) }
        let values = e.weight.toArray()
        let mean = values.reduce(0, +) / Float(values.count)
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(values.count)
        #expect(Swift.abs(mean) < 0.05 && Swift.abs(variance - 1) < 0.05)
        #expect(e(Tensor([[[1], [2]]], dtype: .int32)).shape == [1, 2, 1, 8])
        #expect(e(Tensor(shape: [], data: [Int32(7)])).shape == [8])
    }

    @Test("losses stay finite and exact for logits of ±1e4, with label smoothing", arguments: devices)
    func extremeLosses(_ d: Device) {
        let logits = Tensor([[1e4, -1e4, 0], [-1e4, 1e4, 1e4]], device: d)
        let labels = Tensor([0, 0], dtype: .int32, device: d)
        // Row 0: log p = [0, -2e4, -1e4]; row 1: log p = [-2e4 - ln 2, -ln 2, -ln 2].
        let ln2 = Float(M_LN2)
        expectClose(crossEntropy(logits, labels, reduction: .none).toArray(), [0, 2e4 + ln2])
        let smoothed = crossEntropy(logits, labels, reduction: .none, labelSmoothing: 0.3).toArray()
        expectClose(smoothed, [0.3 * 3e4 / 3, 0.7 * (2e4 + ln2) + 0.3 * (2e4 + 3 * ln2) / 3], rtol: 1e-5)
        expectClose([crossEntropy(logits, labels, labelSmoothing: 0.3).item()], [(smoothed[0] + smoothed[1]) / 2], rtol: 1e-5)
        let bce = binaryCrossEntropyWithLogits(Tensor([1e4, -1e4], device: d), Tensor([0, 0], device: d), reduction: .sum)
        expectClose([bce.item()], [1e4])
        let logitsWithGrad = Tensor([[1e4, -1e4, 0]], device: d, requiresGrad: true)
        crossEntropy(logitsWithGrad, Tensor([2], dtype: .int32, device: d)).backward()
        expectClose(logitsWithGrad.grad!.toArray(), [1, 0, -1])
    }

    @Test("binaryCrossEntropy of probabilities 0 and 1: PyTorch's clamped values, finite gradients", arguments: devices)
    func saturatedBinaryCrossEntropy(_ d: Device) {
        let p = Tensor([1, 0, 1, 0, 0.5], device: d, requiresGrad: true)
        let loss = binaryCrossEntropy(p, Tensor([1, 0, 0, 1, 1], device: d), reduction: .none)
        expectClose(loss.toArray(), [0, 0, 100, 100, Float(M_LN2)])
        loss.sum().backward()
        let grad = p.grad!.toArray()
        #expect(grad.allSatisfy { $0.isFinite })
        expectClose([grad[4]], [-2])
        var random = TestRandom(seed: 13)
        gradCheck("binaryCrossEntropy", device: d, inputs: [random.floats(4, 0.2...0.8)], shapes: [[4]]) { x in
            binaryCrossEntropy(x[0], Tensor([1, 0, 0.3, 1], device: x[0].device))
        }
    }
}
