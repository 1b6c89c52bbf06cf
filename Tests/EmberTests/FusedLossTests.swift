import Foundation
import Testing
@testable import Ember

/// The fused cross-entropy rows (`Tensor.fusedCrossEntropy`) against the composed log-softmax,
/// gather and sums they replace (`crossEntropy(..., fused: false)`, what `EMBER_FUSION=0`
/// runs): values and gradients for every option, on each device, in both OpenCL kernel
/// variants, through a created graph, and the launches they save.
@Suite("Fused cross-entropy")
struct FusedCrossEntropyTests {
    /// One loss configuration.
    struct Config: Sendable, CustomTestStringConvertible {
        var rows: Int, classes: Int
        var weighted = false, ignoring = false, smoothing: Float = 0
        var reduction: Reduction = .mean
        var labelType: DType = .int64

        var testDescription: String {
            "\(rows)x\(classes) weighted \(weighted) ignoring \(ignoring) smoothing \(smoothing) \(reduction) \(labelType)"
        }
    }

    static let configs: [Config] = {
        var all: [Config] = []
        for reduction in [Reduction.mean, .sum, .none] {
            for (weighted, ignoring, smoothing) in [(false, false, Float(0)), (true, false, 0), (false, true, 0.1), (true, true, 0.2)] {
                all.append(Config(rows: 6, classes: 5, weighted: weighted, ignoring: ignoring, smoothing: smoothing, reduction: reduction))
            }
        }
        all.append(Config(rows: 3, classes: 300, weighted: true, ignoring: true, smoothing: 0.1, labelType: .int32))
        // Two whole runs of 16 classes and a tail (CPU devices' vector loops), with targets in
        // both (row 5's is class 35), weighted and not.
        for weighted in [false, true] {
            all.append(Config(rows: 6, classes: 37, weighted: weighted, smoothing: 0.1))
        }
        all.append(Config(rows: 4, classes: 1, ignoring: true, labelType: .int32))
        return all
    }()

    /// The loss values and the logits' gradient of `config` on `device` (the same inputs on every
    /// device and path).
    static func run(_ config: Config, on device: Device, fused: Bool) -> (loss: [Float], gradient: [Float]) {
        var random = TestRandom(seed: 21)
        let x = Tensor(shape: [config.rows, config.classes], data: random.floats(config.rows * config.classes, -3...3),
                       device: device, requiresGrad: true)
        let labels = (0..<config.rows).map { i in config.ignoring && i % 3 == 1 ? -100 : Float((i * 7) % config.classes) }
        let target = Tensor(labels, device: device).to(config.labelType)
        let weight = config.weighted ? Tensor(random.floats(config.classes, 0.5...2), device: device) : nil
        let loss = crossEntropy(x, target, weight: weight, ignoreIndex: -100, reduction: config.reduction,
                                labelSmoothing: config.smoothing, fused: fused)
        let upstream = Tensor(shape: loss.shape, data: random.floats(loss.count, 0.5...1.5), device: device)
        loss.backward(gradient: upstream)
        return (loss.toArray(), x.grad!.toArray())
    }

    @Test("fused values and gradients match the composed ones on each device", arguments: configs)
    func matchesComposed(_ config: Config) {
        let reference = Self.run(config, on: .cpu, fused: false)
        for device in TestDevices.all {
            let fused = Self.run(config, on: device, fused: true)
            expectClose(fused.loss, reference.loss, rtol: 1e-5, atol: 1e-6, "\(config) on \(device): loss")
            expectClose(fused.gradient, reference.gradient, rtol: 1e-5, atol: 1e-6, "\(config) on \(device): gradient")
        }
    }

    @Test("the GPU variant of loss.cl (a work-group per row) agrees with the composed loss")
    func gpuVariant() async {
        await #expect(processExitsWith: .success) {
            guard let gpu = gpuKernelVariantDevice() else { return }
            for config in FusedCrossEntropyTests.configs {
                let reference = FusedCrossEntropyTests.run(config, on: .cpu, fused: false)
                let fused = FusedCrossEntropyTests.run(config, on: gpu, fused: true)
                precondition(isClose(fused.loss, reference.loss) && isClose(fused.gradient, reference.gradient),
                             "\(config.testDescription) differs with the GPU kernels")
            }
        }
    }

    @Test("a gradient-norm penalty through the fused loss equals the composed one's", arguments: TestDevices.all)
    func createdGraph(_ d: Device) {
        func penaltyGradient(fused: Bool) -> [Float] {
            var random = TestRandom(seed: 4)
            let x = Tensor(shape: [4, 6], data: random.floats(24, -2...2), device: d, requiresGrad: true)
            let target = Tensor([0, 5, -100, 2], device: d).to(.int64)
            let weight = Tensor(random.floats(6, 0.5...2), device: d)
            let loss = crossEntropy(x, target, weight: weight, ignoreIndex: -100, reduction: .mean, labelSmoothing: 0.1, fused: fused)
            let g = Tensor.grad(of: loss, wrt: [x], createGraph: true)[0]!
            (g * g).sum().backward()
            return x.grad!.toArray()
        }
        let fused = penaltyGradient(fused: true), composed = penaltyGradient(fused: false)
        #expect(composed.contains { $0 != 0 })
        expectClose(fused, composed, rtol: 1e-4, atol: 1e-6, "\(d)")
    }

    @Test("forward and backward of a mean loss launch a handful of kernels instead of a dozen")
    func launches() async {
        // Backend counters are process-wide: count in a process of its own.
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            guard let gpu = TestDevices.openCL else { return }
            func count(fused: Bool) -> Int {
                let x = Tensor.randn([32, 10], device: gpu).requiresGrad(true)
                let target = Tensor.randint(0, 10, [32], device: gpu)
                try! gpu.synchronize()
                let before = gpu.stats.kernelLaunches
                crossEntropy(x, target, weight: nil, ignoreIndex: -100, reduction: .mean, labelSmoothing: 0, fused: fused).backward()
                try! gpu.synchronize()
                return gpu.stats.kernelLaunches - before
            }
            _ = (count(fused: true), count(fused: false))  // first uses build what they need
            let (fused, composed) = (count(fused: true), count(fused: false))
            // Fused: the rows, one reduction of the terms and weights, the mean's division, the
            // seed's fill and the rows' backward.
            precondition(fused <= 5 && composed >= 3 * fused, "fused \(fused) launches, composed \(composed)")
        }
        #expect(result?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(result))")
    }

    @Test("a label outside the classes stops with crossEntropy's message in the fused kernels")
    func outOfRange() async {
        let cpu = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = crossEntropy(Tensor.zeros([2, 3]), Tensor([1, 3], dtype: .int64)).item()
        }
        #expect(stderrText(cpu).contains("crossEntropy: index 3 is out of bounds for dimension of size 3"))
        guard TestDevices.openCL != nil else { return }
        let gpu = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = TestDevices.openCL!
            precondition(gpu.backend.kernelsReady(.loss, dtype: .float32))
            _ = crossEntropy(Tensor.zeros([2, 3], device: gpu), Tensor([1, 3], dtype: .int64, device: gpu)).item()
        }
        #expect(stderrText(gpu).contains("crossEntropy: index 3 is out of bounds for dimension of size 3"))
    }
}
