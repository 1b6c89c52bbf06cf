import Foundation
import Testing
@testable import Ember

/// Linear and convolution layers with a bias run one GEMM that adds it (PyTorch's addmm)
/// instead of a product and an addition: the same values and gradients as the composed ops,
/// on each device, and one launch fewer on OpenCL.
@Suite("GEMM with a bias")
struct AddmmTests {
    /// The output and the input, weight and bias gradients of `layer` (the same inputs on every
    /// device), fused or composed.
    static func run(on device: Device, fused: Bool, conv: Bool) -> (name: String?, values: [[Float]]) {
        var random = TestRandom(seed: 41)
        let (xShape, wShape, outs) = conv ? ([3, 4, 6, 5], [5, 4, 3, 3], 5) : ([3, 9, 20], [33, 20], 33)
        let x = Tensor(shape: xShape, data: random.floats(Shape.count(xShape)), device: device, requiresGrad: true)
        let w = Tensor(shape: wShape, data: random.floats(Shape.count(wShape)), device: device, requiresGrad: true)
        let b = Tensor(shape: [outs], data: random.floats(outs), device: device, requiresGrad: true)
        let y: Tensor
        switch (conv, fused) {
        case (true, true): y = x.conv2d(weight: w, bias: b, padding: 1)
        case (true, false): y = x.conv2d(weight: w, padding: 1) + b.reshape([outs, 1, 1])
        case (false, true): y = linear(x, weight: w, bias: b)
        case (false, false): y = x.matmul(w.T) + b
        }
        let upstream = Tensor(shape: y.shape, data: random.floats(y.count), device: device)
        // Both outputs are the product reshaped (to NCHW, or back to the batched input's shape).
        guard case .node(let product, _)? = y.gradFn?.edges.first else { return (nil, []) }
        let name = y.gradFn?.name == "ViewBackward" ? product.name : y.gradFn?.name
        y.backward(gradient: upstream)
        return (name, [y.toArray(), x.grad!.toArray(), w.grad!.toArray(), b.grad!.toArray()])
    }

    @Test("linear and conv2d with a bias record one GEMM with the bias and match the product plus the bias", arguments: [false, true])
    func matchesComposed(_ conv: Bool) {
        let reference = Self.run(on: .cpu, fused: false, conv: conv)
        for device in TestDevices.all {
            let fused = Self.run(on: device, fused: true, conv: conv)
            #expect(fused.name == (Fusion.enabled ? "AddmmBackward" : "AddBackward"), "\(device)")
            for (k, (a, e)) in zip(fused.values, reference.values).enumerated() {
                expectClose(a, e, rtol: 1e-4, atol: 1e-5, "\(conv ? "conv2d" : "linear") on \(device): array \(k)")
            }
        }
    }

    @Test("a Linear layer's forward is one launch on OpenCL (with Ember's GEMM kernels), its product and bias two composed")
    func launches() async {
        // Backend counters are process-wide: count in a process of its own.
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            guard let gpu = TestDevices.openCL, let backend = gpu.backend as? OpenCLBackend else { return }
            let x = Tensor.randn([32, 64], device: gpu), w = Tensor.randn([48, 64], device: gpu), b = Tensor.randn([48], device: gpu)
            func count(_ body: () -> Tensor) -> Int {
                try! gpu.synchronize()
                let before = gpu.stats.kernelLaunches
                _ = body().toArray()
                return gpu.stats.kernelLaunches - before
            }
            _ = (count { linear(x, weight: w, bias: b) }, count { x.matmul(w.T) + b })  // first uses build what they need
            let (fused, composed) = (count { linear(x, weight: w, bias: b) }, count { x.matmul(w.T) + b })
            // CLBlast cannot add the bias: it is copied into C first.
            let saved = backend.gemmChoice().implementation == .ember ? 1 : 0
            precondition(fused == composed - saved, "fused \(fused) launches, composed \(composed)")
        }
        #expect(result?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(result))")
    }

    @Test("a product's backward computes only the gradients its inputs require: one GEMM for a first layer's weight, none for its input")
    func onlyRequiredGradients() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            for device in TestDevices.all {
                func launches(inputRequiresGrad: Bool) -> Int {
                    let x = Tensor.randn([16, 24], device: device).requiresGrad(inputRequiresGrad)
                    let w = Tensor.randn([8, 24], device: device).requiresGrad(true)
                    let y = x.matmul(w.T)
                    try! device.synchronize()
                    let before = device.stats.kernelLaunches
                    y.backward(gradient: Tensor.ones([16, 8], device: device))
                    _ = w.grad!.toArray()
                    precondition((x.grad != nil) == inputRequiresGrad, "input gradient on \(device)")
                    return device.stats.kernelLaunches - before
                }
                _ = (launches(inputRequiresGrad: true), launches(inputRequiresGrad: false))  // first uses build what they need
                let (both, weightOnly) = (launches(inputRequiresGrad: true), launches(inputRequiresGrad: false))
                precondition(both == weightOnly + 1, "\(device): \(both) launches with the input's gradient, \(weightOnly) without")
            }
        }
        #expect(result?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(result))")
    }
}
