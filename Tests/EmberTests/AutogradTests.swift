import Testing
@testable import Ember

/// Autograd semantics: accumulation, graph lifetime, grad modes, higher order, memory.
@Suite("Autograd")
struct AutogradTests {
    static let devices = TestDevices.all

    @Test("leaf gradients accumulate until zeroGrad", arguments: devices)
    func accumulation(_ d: Device) {
        let w = Tensor([1, 2, 3], device: d, requiresGrad: true)
        (w * w).sum().backward()
        #expect(w.grad?.toArray() == [2, 4, 6])
        (w * 3).sum().backward()
        #expect(w.grad?.toArray() == [5, 7, 9])
        w.zeroGrad()
        #expect(w.grad == nil)
        (w.sum() * 2).backward()
        #expect(w.grad?.toArray() == [2, 2, 2])
    }

    @Test("broadcast inputs receive gradients summed to their shape", arguments: devices)
    func broadcastGradients(_ d: Device) {
        let a = Tensor.ones([2, 3], device: d, requiresGrad: true)
        let b = Tensor([1, 2, 3], device: d, requiresGrad: true)
        let c = Tensor(2, device: d, requiresGrad: true)
        ((a * b) * c).sum().backward()
        #expect(a.grad?.toArray() == [2, 4, 6, 2, 4, 6])
        #expect(b.grad?.shape == [3] && b.grad?.toArray() == [4, 4, 4])
        #expect(c.grad?.shape == [] && c.grad?.item() == 12)
    }

    @Test("backward with an explicit gradient on a non-scalar", arguments: devices)
    func explicitGradient(_ d: Device) {
        let x = Tensor([1, 2], device: d, requiresGrad: true)
        (x * x).backward(gradient: Tensor([1, 10], device: d))
        #expect(x.grad?.toArray() == [2, 40])
    }

    @Test("non-leaf gradients only with retainGrad", arguments: devices)
    func retainGrad(_ d: Device) {
        let x = Tensor([1, 2], device: d, requiresGrad: true)
        let y = x * 3
        let z = x * 4
        y.retainGrad()
        (y * z).sum().backward()
        #expect(y.grad?.toArray() == [4, 8])
        #expect(z.grad == nil)
        #expect(x.grad?.toArray() == [24, 48])
    }

    @Test("a leaf's first fresh, unshared gradient becomes .grad without a copy")
    func gradientKept() async {
        // Backend counters are process-wide: count in a process of its own.
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            for d in TestDevices.all {
                // A product's gradient, handed back as a transposed view through the view's
                // backward: backward launches what `Tensor.grad(of:wrt:)`, which copies nothing, does.
                let w = Tensor.randn([4, 3], device: d, requiresGrad: true)
                let x = Tensor.randn([2, 3], device: d)
                func launches(_ body: () -> Void) -> Int {
                    try! d.synchronize()
                    let before = d.stats.kernelLaunches
                    body()
                    try! d.synchronize()
                    return d.stats.kernelLaunches - before
                }
                var captured: [Tensor?] = []
                _ = launches { captured = Tensor.grad(of: x.matmul(w.T).sum(), wrt: [w]) }  // builds what a first use builds
                let returned = launches { captured = Tensor.grad(of: x.matmul(w.T).sum(), wrt: [w]) }
                let accumulated = launches { x.matmul(w.T).sum().backward() }
                precondition(accumulated == returned, "\(d): backward launched \(accumulated), Tensor.grad \(returned)")
                precondition(w.grad!.toArray() == captured[0]!.toArray(), "\(d): the gradients differ")
            }
        }
        #expect(result?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(result))")
    }

    @Test("a leaf's first gradient is copied when anything else holds it", arguments: devices)
    func gradientShared(_ d: Device) throws {
        // One gradient handed to two leaves: each leaf gets its own memory.
        let a = Tensor([1, 2], device: d, requiresGrad: true), b = Tensor([3, 4], device: d, requiresGrad: true)
        ((a + b) * Tensor([2, 3], device: d)).sum().backward()
        a.grad! *= 10
        #expect(a.grad?.toArray() == [20, 30] && b.grad?.toArray() == [2, 3])

        // The caller's gradient passed through an identity rule, and a retained output's
        // gradient: neither is shared with the leaf's `.grad`.
        let p = Tensor([1, 2], device: d, requiresGrad: true)
        let g = Tensor([5, 6], device: d)
        p.clone().backward(gradient: g)
        g *= 0
        #expect(p.grad?.toArray() == [5, 6])
        let q = Tensor([1, 2], device: d, requiresGrad: true)
        let r = q.clone()
        r.retainGrad()
        r.clone().backward(gradient: Tensor([7, 8], device: d))
        r.grad! *= 0
        #expect(q.grad?.toArray() == [7, 8])
        // A leaf that is its own root gets a copy of the caller's gradient.
        let s = Tensor([1, 2], device: d, requiresGrad: true)
        let h = Tensor([1, 1], device: d)
        s.backward(gradient: h)
        h *= 3
        #expect(s.grad?.toArray() == [1, 1])
    }

    @Test("retainGraph allows a second backward", arguments: devices)
    func retainGraph(_ d: Device) {
        let x = Tensor([3], device: d, requiresGrad: true)
        let y = (x * x).sum()
        y.backward(retainGraph: true)
        y.backward()
        #expect(x.grad?.toArray() == [12])
    }

    @Test("noGrad and enableGrad, detach, requiresGrad toggling", arguments: devices)
    func gradModes(_ d: Device) {
        let x = Tensor([1, 2], device: d, requiresGrad: true)
        let y = Tensor.noGrad { x * 2 }
        #expect(!y.requiresGrad && y.gradFnName == nil)
        let z = Tensor.noGrad { Tensor.enableGrad { x * 2 } }
        #expect(z.requiresGrad && z.gradFnName == "MulBackward")
        #expect(!Tensor.noGrad { Tensor.isGradEnabled })
        let detached = (x * 2).detach()
        #expect(!detached.requiresGrad && detached.isLeaf)
        ((x * 2).detach() * x).sum().backward()
        #expect(x.grad?.toArray() == [2, 4])
        let leaf = Tensor([1], device: d)
        leaf.requiresGrad = true
        #expect(leaf.requiresGrad)
        leaf.requiresGrad(false)
        #expect(!(leaf * 2).requiresGrad)
    }

    @Test("gradient names follow PyTorch", arguments: devices)
    func names(_ d: Device) {
        let a = Tensor.ones([2, 2], device: d, requiresGrad: true)
        #expect((a + a).gradFnName == "AddBackward")
        #expect((a * a).gradFnName == "MulBackward")
        #expect(a.matmul(a).gradFnName == "MatmulBackward")
        #expect(a.sum().gradFnName == "SumBackward")
        #expect(a.relu().gradFnName == "ReluBackward")
        #expect(a.T.gradFnName == "PermuteBackward")
        #expect(a.reshape([4]).gradFnName == "ViewBackward")
        #expect(a.gradFnName == nil)
    }

    @Test("gradients flow only through the selected element", arguments: devices)
    func selections(_ d: Device) {
        let x = Tensor([[1, 7, 3], [9, 2, 9]], device: d, requiresGrad: true)
        x.max(dim: 1).values.sum().backward()
        #expect(x.grad?.toArray() == [0, 1, 0, 1, 0, 0])
        x.zeroGrad()
        x.max().backward()
        #expect(x.grad?.toArray() == [0, 0, 0, 1, 0, 0])
        x.zeroGrad()
        x[1, 1..<3].sum().backward()
        #expect(x.grad?.toArray() == [0, 0, 0, 0, 1, 1])
        x.zeroGrad()
        x.gather(dim: 1, index: Tensor([[2, 2], [0, 1]], dtype: .int32, device: d)).sum().backward()
        #expect(x.grad?.toArray() == [0, 0, 2, 1, 1, 0])
        x.zeroGrad()
        x.indexSelect(dim: 0, index: Tensor([1, 1, 0], dtype: .int32, device: d)).sum().backward()
        #expect(x.grad?.toArray() == [1, 1, 1, 2, 2, 2])
    }

    @Test("gradients flow back across devices through to(_:)")
    func crossDevice() {
        guard let gpu = TestDevices.openCL else { return }
        let x = Tensor([1, 2, 3], requiresGrad: true)
        let y = x.to(gpu) * Tensor([2, 3, 4], device: gpu)
        #expect(y.gradFnName == "MulBackward")
        y.sum().backward()
        #expect(x.grad?.device == .cpu && x.grad?.toArray() == [2, 3, 4])
    }

    @Test("detectAnomaly names the first op that produced NaN in forward")
    func anomalyForward() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let x = Tensor([1, -1], requiresGrad: true)
            Tensor.detectAnomaly { _ = (x * 2).sqrt().sum() }
        }.map { result in
            let text = stderrText(result)
            #expect(text.contains("detectAnomaly: SqrtBackward produced a non-finite value in forward"))
        }
    }

    @Test("detectAnomaly names the op whose backward produced NaN")
    func anomalyBackward() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let x = Tensor([0, 1], requiresGrad: true)
            Tensor.detectAnomaly { x.sqrt().sum().backward() }
        }.map { result in
            let text = stderrText(result)
            #expect(text.contains("SqrtBackward produced a non-finite value in backward"))
        }
    }

    @Test("second derivatives of x^3, tanh and through a created graph", arguments: devices)
    func higherOrder(_ d: Device) {
        let x = Tensor([0.5, -1, 2], device: d, requiresGrad: true)
        let y = (x * x * x).sum()
        let g = Tensor.grad(of: y, wrt: [x], createGraph: true)[0]!
        expectClose(g.toArray(), [0.75, 3, 12])
        let g2 = Tensor.grad(of: g.sum(), wrt: [x])[0]!
        expectClose(g2.toArray(), [3, -6, 12])
        #expect(x.grad == nil)

        let t = Tensor([0.3, -0.7], device: d, requiresGrad: true)
        let dt = Tensor.grad(of: t.tanh().sum(), wrt: [t], createGraph: true)[0]!
        let d2t = Tensor.grad(of: dt.sum(), wrt: [t])[0]!
        let expected = [Float(0.3), -0.7].map { v -> Float in
            let th = Foundation.tanh(v)
            return -2 * th * (1 - th * th)
        }
        expectClose(d2t.toArray(), expected, rtol: 1e-4)

        // backward(createGraph:) then differentiate the leaf's gradient again.
        let z = Tensor([2], device: d, requiresGrad: true)
        (z.pow(4)).sum().backward(createGraph: true)
        let dz = z.grad!
        #expect(dz.requiresGrad)
        z.zeroGrad()
        dz.sum().backward()
        expectClose(z.grad!.toArray(), [48])
    }

    @Test("second derivatives of both GELUs and of layerNorm match finite differences", arguments: devices)
    func fusedBackwardsDifferentiate(_ d: Device) {
        var random = TestRandom(seed: 8)
        // |df/dx|^2 at x differentiates each one-pass backward (gelu_backward, layerNormBackward);
        // the gradient is taken at x + 0 so that it also flows back to the checked input x.
        func penalty(_ f: (Tensor) -> Tensor, _ x: Tensor) -> Tensor {
            let zero = Tensor.zeros(x.shape, device: d, requiresGrad: true)
            let g = Tensor.grad(of: f(x + zero), wrt: [zero], createGraph: true)[0]!
            return (g * g).sum()
        }
        for approximate in [GELUApproximation.none, .tanh] {
            gradCheck("gelu \(approximate) second derivative", device: d, inputs: [random.floats(6, -2...2)], shapes: [[6]]) {
                penalty({ ($0.gelu(approximate: approximate) * Tensor.arange(1, 7, device: d)).sum() }, $0[0])
            }
        }
        let scale = random.floats(8)
        gradCheck("layerNorm second derivative", device: d, inputs: [random.floats(8), random.floats(4, 0.5...1.5), random.floats(4)],
                  shapes: [[2, 4], [4], [4]]) { t in
            penalty({ (layerNorm($0, normalizedShape: [4], weight: t[1], bias: t[2]) * Tensor(shape: [2, 4], data: scale, device: d)).sum() }, t[0])
                + penalty({ (layerNorm(t[0], normalizedShape: [4], weight: $0) * Tensor(shape: [2, 4], data: scale, device: d)).square().sum() }, t[1])
        }
    }

    @Test("gradient-norm penalty of a small MLP matches finite differences", arguments: devices)
    func gradientPenalty(_ d: Device) {
        var random = TestRandom(seed: 3)
        let xValues = random.floats(8)
        let w1Values = random.floats(12)
        let w2Values = random.floats(3)
        // penalty(w1) = |d/dx sum(tanh(x W1) W2)|^2 over a batch of 4 two-feature inputs.
        func penalty(_ w1: Tensor, createGraph: Bool) -> Tensor {
            let x = Tensor(shape: [4, 2], data: xValues, device: d, requiresGrad: true)
            let w2 = Tensor(shape: [6, 1], data: w2Values + w2Values, device: d)
            let out = x.matmul(w1.reshape([2, 6])).tanh().matmul(w2).sum()
            let gx = Tensor.grad(of: out, wrt: [x], createGraph: createGraph)[0]!
            return (gx * gx).sum()
        }
        gradCheck("MLP gradient penalty", device: d, inputs: [w1Values], shapes: [[12]]) { penalty($0[0], createGraph: true) }
    }

    // Backend counters are process-wide and the suite runs tests in parallel, so the
    // counter checks below run in a child process of their own (an exit test).

    @Test("memory stays flat over 1000 training steps on each device")
    func memoryFlat() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            for d in TestDevices.all {
                let w1 = Tensor.randn([16, 32], device: d, requiresGrad: true)
                let w2 = Tensor.randn([32, 4], device: d, requiresGrad: true)
                let x = Tensor.randn([8, 16], device: d)
                func step() {
                    let loss = x.matmul(w1).relu().matmul(w2).logSoftmax(dim: 1).mean()
                    loss.backward()
                    Tensor.noGrad {
                        w1 -= w1.grad! * 0.01
                        w2 -= w2.grad! * 0.01
                    }
                    w1.zeroGrad(); w2.zeroGrad()
                }
                for _ in 0..<5 { step() }
                // Pending updates (lazy graphs on OpenCL) hold their leaves until they run.
                _ = w1.sum().item()
                let before = d.stats
                for _ in 0..<1000 { step() }
                _ = w1.sum().item()
                let after = d.stats
                precondition(after.liveBuffers == before.liveBuffers, "\(d): live buffers \(before.liveBuffers) -> \(after.liveBuffers)")
                precondition(after.allocations == before.allocations, "\(d): allocations \(before.allocations) -> \(after.allocations)")
            }
        }
        #expect(result?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(result))")
    }

    @Test("backward of an MLP on OpenCL makes no host transfers")
    func noTransfersInBackward() async {
        await #expect(processExitsWith: .success) {
            guard let gpu = TestDevices.openCL else { return }
            let w1 = Tensor.randn([64, 128], device: gpu, requiresGrad: true)
            let b1 = Tensor.zeros([128], device: gpu, requiresGrad: true)
            let w2 = Tensor.randn([128, 10], device: gpu, requiresGrad: true)
            let x = Tensor.randn([32, 64], device: gpu)
            let labels = Tensor.randint(0, 10, [32, 1], device: gpu)
            let loss = -(x.matmul(w1) + b1).relu().matmul(w2).logSoftmax(dim: 1).gather(dim: 1, index: labels).mean()
            let before = gpu.stats
            loss.backward()
            try! gpu.synchronize()
            let after = gpu.stats
            precondition(after.hostToDevice == before.hostToDevice, "uploads during backward: \(after.hostToDevice - before.hostToDevice)")
            precondition(after.deviceToHost == before.deviceToHost, "downloads during backward: \(after.deviceToHost - before.deviceToHost)")
            precondition(w1.grad != nil && b1.grad != nil && w2.grad != nil)
        }
    }

    @Test("saved tensors are released once their node has run", arguments: devices)
    func savedTensorsReleased(_ d: Device) {
        let x = Tensor.randn([100], device: d, requiresGrad: true)
        weak var saved: Storage?
        let y: Tensor = {
            let e = x.exp()
            saved = e.storage
            return (e * x.sin()).sum()
        }()
        #expect(saved != nil)
        y.backward()
        #expect(saved == nil)
    }

    @Test("a second backward through a freed graph stops with a message")
    func secondBackward() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let x = Tensor([1], requiresGrad: true)
            let y = (x * x).sum()
            y.backward()
            y.backward()
        }.map { result in
            let text = stderrText(result)
            #expect(text.contains("backward through"))
            #expect(text.contains("retainGraph: true"))
        }
    }

    @Test("modifying a saved tensor in place stops backward with a message")
    func versionCounter() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let w = Tensor([1, 2], requiresGrad: true)
            let h = w * 2
            let buffer = Tensor([3, 4])
            let y = (h * buffer).sum()
            buffer += 1
            y.backward()
        }.map { result in
            let text = stderrText(result)
            #expect(text.contains("MulBackward"))
            #expect(text.contains("modified by an in-place operation"))
        }
    }
}

import Foundation
