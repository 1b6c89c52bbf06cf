import Foundation
import Testing
@testable import Ember

/// Lazy elementwise fusion on OpenCL: results equal with fusion on and off, kernels launched,
/// memory over many steps, and the places a pending graph must run.
@Suite("Lazy elementwise fusion")
struct FusionTests {
    /// Outputs and input gradients of `function` on `device` (backward from fixed output gradients).
    static func run(_ device: Device, inputs: [[Float]], shapes: [[Int]], _ function: ([Tensor]) -> Tensor) -> [[Float]] {
        let tensors = zip(inputs, shapes).map { Tensor(shape: $1, data: $0, device: device, requiresGrad: true) }
        let y = function(tensors)
        var values = [y.toArray()]
        if y.requiresGrad {
            var random = TestRandom(seed: 5)
            y.backward(gradient: Tensor(shape: y.shape, data: random.floats(y.count), device: device))
            values += tensors.map { $0.grad?.toArray() ?? [] }
        }
        return values
    }

    /// One function of `FusionTests.mismatches`: its name, inputs and their shapes.
    typealias Case = (name: String, inputs: [[Float]], shapes: [[Int]], function: ([Tensor]) -> Tensor)

    /// Runs every case eagerly, then fused: twice (a pattern is queued once it repeats), builds
    /// the queued kernels (many to a program: a program each would cost three times as much)
    /// and once more with the built kernels; returns the mismatches of every fused round.
    static func mismatches(_ cases: [Case], on gpu: Device) -> [String] {
        let eager = Fusion.withElementwiseFusion(false) { cases.map { run(gpu, inputs: $0.inputs, shapes: $0.shapes, $0.function) } }
        var problems: [String] = []
        for round in 0..<3 {
            if round == 2 { (gpu.backend as! OpenCLBackend).waitForFusedBuilds() }
            LazyFusion.$queuesBuilds.withValue(true) {
                Fusion.withElementwiseFusion(true) {
                    for (c, expected) in zip(cases, eager) {
                        let fused = run(gpu, inputs: c.inputs, shapes: c.shapes, c.function)
                        problems += zip(fused, expected).enumerated().compactMap { i, pair in
                            mismatch(pair.0, pair.1, rtol: 1e-6, atol: 1e-7,
                                     "\(c.name): \(i == 0 ? "output" : "gradient of input \(i - 1)") fused (round \(round)) vs eager")
                        }
                    }
                }
            }
        }
        return problems
    }

    @Test("every op case gives the same values and gradients with fusion on and off")
    func opCases() throws {
        LazyFusion.buildFailuresThrow = true
        for gpu in TestDevices.accelerators {
            let cases = OpCase.all.map { op -> Case in (op.name, op.inputs(), op.shapes, op.function) }
            for message in Self.mismatches(cases, on: gpu) { Issue.record(Comment(rawValue: message)) }
            try gpu.synchronize()
        }
    }

    @Test("random chains of elementwise ops with broadcasting, views, casts and in-place updates agree with the eager result")
    func randomChains() throws {
        LazyFusion.buildFailuresThrow = true
        for gpu in TestDevices.accelerators {
            let cases = (0..<10).map { seed -> Case in
                var random = TestRandom(seed: UInt64(seed))
                let inputs = [random.floats(4 * 6), random.floats(6), random.floats(4 * 6, 0.5...2)]
                return ("chain \(seed)", inputs, [[4, 6], [6], [4, 6]], FusionTests.chain(seed: UInt64(seed)))
            }
            for message in Self.mismatches(cases, on: gpu) { Issue.record(Comment(rawValue: message)) }
            try gpu.synchronize()
        }
    }

    /// A random differentiable chain over `[4, 6]`, `[6]` and positive `[4, 6]` inputs.
    static func chain(seed: UInt64) -> ([Tensor]) -> Tensor {
        { x in
            var random = TestRandom(seed: seed &* 7 &+ 3)
            var values = [x[0], x[1], x[2]]
            for _ in 0..<10 {
                let a = values[Int(random.next() % UInt64(values.count))]
                let b = values[Int(random.next() % UInt64(values.count))]
                let next: Tensor
                switch random.next() % 14 {
                case 0: next = a + b
                case 1: next = a * b
                case 2: next = (a - b).tanh()
                case 3: next = a.sigmoid() * 2
                case 4: next = a.relu() + 0.5
                case 5: next = a.gelu()
                case 6: next = Tensor.where(a > b, a, b * 0.25)
                case 7: next = a.bfloat16().float() + a.half().float()
                case 8: next = (a.shape == [4, 6] ? a.T.contiguous().T : a) * 1.5
                case 9: next = a.shape == [4, 6] ? a[1..<3].exp().sum(dim: 0) + b : a.square()
                case 10: next = a.shape == [4, 6] ? a.reshape([6, 4]).T.abs() : (a + 1).abs()
                case 11: next = a.clamp(min: -0.5, max: 0.75) - b
                case 12:
                    // An in-place update of a fresh tensor that a pending graph reads.
                    let c = a * 1
                    let before = c + b
                    Tensor.noGrad { c += Tensor.ones(like: c) }
                    next = before + c.detach()
                default: next = (a.abs() + 1).log() / (b.abs() + 1).sqrt()
                }
                values.append(next)
            }
            return values.suffix(4).reduce(values[0].sum() * 0) { $0 + $1.mean() * 0.5 + $1.sum(dim: -1).square().sum() * 0.01 }
        }
    }

    @Test("composed optimizer updates (in-place chains over parameters and state) equal their eager result")
    func composedOptimizers() {
        LazyFusion.buildFailuresThrow = true
        for gpu in TestDevices.accelerators {
            let makers: [(String, ([Tensor]) -> Optimizer)] = [
                ("SGD momentum", { SGD($0, lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01) }),
                ("SGD nesterov", { SGD($0, lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0) }),
                ("Adam", { Adam($0, lr: 0.01, weightDecay: 0.01) }),
                ("AdamW", { AdamW($0, lr: 0.01) }),
                ("RMSprop", { RMSprop($0, lr: 0.01, momentum: 0.5, centered: true) }),
            ]
            for (name, make) in makers {
                func train(_ lazy: Bool) -> [Float] {
                    Fusion.withElementwiseFusion(lazy) {
                        let p = Tensor(shape: [2, 3], data: [1, -2, 3, -4, 5, -6], device: gpu).requiresGrad(true)
                        let optimizer = make([p])
                        optimizer.fused = false
                        for s in 0..<4 {
                            optimizer.zeroGrad()
                            (p * p * Float(s + 1)).tanh().sum().backward()
                            optimizer.step()
                        }
                        return p.toArray()
                    }
                }
                let eager = train(false)
                for round in 0..<3 {
                    if round == 2 { (gpu.backend as! OpenCLBackend).waitForFusedBuilds() }
                    let fused = LazyFusion.$queuesBuilds.withValue(true) { train(true) }
                    #expect(fused == eager, "\(name) on \(gpu), round \(round)")
                }
            }
        }
    }

    @Test("a chain of elementwise ops read by the host is one kernel launch once built; in-place writes and limits run pending graphs first")
    func launchCounts() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            guard let gpu = TestDevices.openCL else { return }
            let backend = gpu.backend as! OpenCLBackend
            LazyFusion.queuesRepeatedPatterns = true
            let x = Tensor.randn([1000]).to(gpu), y = Tensor.randn([1000]).to(gpu)
            func chain(_ k: Int) -> Tensor {
                var t = x
                for i in 0..<k { t = i % 2 == 0 ? (t * y).tanh() : t + 0.5 }
                return t
            }
            for k in [1, 5, 12] {
                for _ in 0..<2 { _ = chain(k).toArray() }
                backend.waitForFusedBuilds()
                let before = gpu.stats.kernelLaunches
                let values = chain(k).toArray()
                let launches = gpu.stats.kernelLaunches - before
                precondition(launches == 1, "a chain of \(k) ops launched \(launches) kernels")
                let eager = Fusion.withElementwiseFusion(false) { chain(k).toArray() }
                precondition(values == eager, "chain of \(k): fused and eager values differ")
            }
            // Writing a leaf of a pending graph runs the graph first.
            let a = Tensor.ones([8]).to(gpu)
            let b = a * 2
            Tensor.noGrad { a += Tensor.ones([8]).to(gpu) }
            precondition(b.toArray() == [Float](repeating: 2, count: 8), "a pending graph read its leaf after it was overwritten: \(b.toArray())")
            precondition(a.toArray() == [Float](repeating: 2, count: 8), "in-place add: \(a.toArray())")
            // Graphs past the size limit split into several kernels and stay correct.
            var t = x
            for i in 0..<200 { t = t * 0.999 + Float(i) * 1e-4 }
            let eager = Fusion.withElementwiseFusion(false) { () -> [Float] in
                var e = x
                for i in 0..<200 { e = e * 0.999 + Float(i) * 1e-4 }
                return e.toArray()
            }
            precondition(t.toArray() == eager, "a 400-op chain differs from the eager result")
        }
        #expect(result?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(result))")
    }

    @Test("CPU OpenCL devices record lazily only when asked; GPU-type devices by default")
    func deviceDefault() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            // Not TestDevices, which turns the lazy graphs on for PoCL.
            guard let gpu = Device.available.first(where: { $0.kind == .opencl }) else { return }
            let backend = gpu.backend as! OpenCLBackend
            let x = Tensor.ones([8]).to(gpu)
            func pending(_ body: () -> Tensor) -> Bool { body().storage.buffer.lazy != nil }
            precondition(backend.isCPU, "the suite's OpenCL device is PoCL")
            precondition(!pending { x * 2 }, "PoCL recorded lazily without EMBER_FUSION=1")
            precondition(Fusion.withElementwiseFusion(true) { pending { x * 2 } }, "withElementwiseFusion(true) did not record")
            Fusion.elementwiseOnCPUDevices = true
            precondition(pending { x * 2 }, "EMBER_FUSION=1 did not record on PoCL")
            precondition(!Fusion.withElementwiseFusion(false) { pending { x * 2 } }, "withElementwiseFusion(false) recorded")
        }
        #expect(result?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(result))")
        let gpuType = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            guard let gpu = gpuKernelVariantDevice() else { return }
            Fusion.elementwiseOnCPUDevices = false
            let x = Tensor.ones([8]).to(gpu)
            precondition((x * 2).storage.buffer.lazy != nil, "a GPU-type device did not record lazily by default")
        }
        #expect(gpuType?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(gpuType))")
    }

    @Test("a saved tensor modified in place after a fused op still stops backward")
    func versionCounters() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            guard let gpu = TestDevices.openCL else { preconditionFailure("a tensor saved for backward was modified by an in-place operation") }
            let w = Tensor.randn([4]).to(gpu).requiresGrad(true)
            let u = w * 3
            let v = u.sin()
            Tensor.noGrad { u += Tensor.ones([4]).to(gpu) }
            v.sum().backward()
        }
        #expect(stderrText(result).contains("a tensor saved for backward was modified by an in-place operation"), "\(stderrText(result))")
    }

    @Test("memory stays flat over 1,000 fused training steps")
    func memoryFlat() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            guard let gpu = TestDevices.openCL else { return }
            // As in production: repeated patterns are built one program per host wait.
            LazyFusion.queuesRepeatedPatterns = true
            LazyFusion.maxBatch = 1
            Tensor.manualSeed(3)
            let model = Sequential(Linear(16, 32), GELU(), LayerNorm(32), Linear(32, 4)).to(gpu)
            let optimizer = AdamW(model.parameters(), lr: 1e-3)
            let x = Tensor.randn([8, 16]).to(gpu), target = Tensor.randn([8, 4]).to(gpu)
            var live: [Int] = [], launches: [Int] = []
            for step in 0..<1000 {
                let before = gpu.stats.kernelLaunches
                optimizer.zeroGrad()
                let loss = mseLoss(model(x), target)
                loss.backward()
                optimizer.step()
                if step % 50 == 49 {
                    try! gpu.synchronize()
                    live.append(gpu.stats.liveBuffers)
                }
                launches.append(gpu.stats.kernelLaunches - before)
            }
            precondition(Set(live.dropFirst()).count == 1, "live buffers grew over the steps: \(live)")
            precondition(launches.last! < launches[1], "a step launched \(launches[1]) kernels at first and \(launches.last!) at the end: the host waits built no fused kernels")
        }
        #expect(result?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(result))")
    }
}
