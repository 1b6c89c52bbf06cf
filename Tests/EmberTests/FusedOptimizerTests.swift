import CPUKernels
import Foundation
import Testing
@testable import Ember

/// Fused optimizer steps and the fused gradient-norm reduction against the composed ops they
/// replace (`Optimizer.fused = false`, what `EMBER_FUSION=0` runs): bit for bit on the CPU for
/// float32, within Float32 rounding on OpenCL and within the narrow type's rounding for
/// float16 and bfloat16; and the kernel launches they save, counted by `Device.stats`.
@Suite("Fused optimizer steps")
struct FusedOptimizerTests {
    /// Parameter shapes: a matrix, a short vector, and one above the CPU's parallel threshold
    /// (so the fused loop is split across cores).
    static let shapes = [[3, 5], [7], [70_001]]
    /// Smaller shapes for the slower comparisons (several OpenCL runs of 64 elements).
    static let smallShapes = [[3, 5], [7], [1_000]]

    /// Makes an optimizer over parameter groups.
    typealias Make = @Sendable ([ParamGroup]) -> Optimizer

    /// Every optimizer and option combination, by name.
    static let optimizers: [(String, Make)] = {
        var all: [(String, Make)] = []
        for momentum: Float in [0, 0.9] {
            for dampening: Float in momentum == 0 ? [0] : [0, 0.3] {
                for nesterov in momentum > 0 && dampening == 0 ? [false, true] : [false] {
                    for decay: Float in [0, 0.01] {
                        all.append(("SGD momentum \(momentum) dampening \(dampening) nesterov \(nesterov) decay \(decay)", {
                            SGD($0, lr: 0.1, momentum: momentum, dampening: dampening, nesterov: nesterov, weightDecay: decay)
                        }))
                    }
                }
            }
        }
        for decay: Float in [0, 0.1] {
            for betas: (Float, Float) in [(0.9, 0.999), (0.8, 0.95)] {
                all.append(("Adam betas \(betas) decay \(decay)", { Adam($0, lr: 0.01, betas: betas, eps: 1e-6, weightDecay: decay) }))
                all.append(("AdamW betas \(betas) decay \(decay)", { AdamW($0, lr: 0.01, betas: betas, eps: 1e-6, weightDecay: decay) }))
            }
        }
        for centered in [false, true] {
            for momentum: Float in [0, 0.9] {
                for decay: Float in [0, 0.1] {
                    all.append(("RMSprop centered \(centered) momentum \(momentum) decay \(decay)", {
                        RMSprop($0, lr: 0.01, alpha: 0.9, eps: 1e-6, weightDecay: decay, momentum: momentum, centered: centered)
                    }))
                }
            }
        }
        return all
    }()

    /// Gradients with magnitudes in [0.25, 1] and random signs: a weight decay of 0.1 cannot
    /// cancel them, so RMSprop's `g / sqrt(mean g^2)` stays well conditioned in narrow types.
    static func gradient(_ count: Int, _ random: inout TestRandom) -> [Float] {
        (0..<count).map { _ in random.float(0.25...1) * (random.next() & 1 == 0 ? 1 : -1) }
    }

    /// The parameters and every state tensor after each of four steps of `make`'s optimizer,
    /// with the same random gradients whatever the device, dtype or path; the parameters are
    /// in two groups with their own learning rates.
    static func trajectory(_ make: Make, device: Device, dtype: DType = .float32, fused: Bool,
                           steps: Int = 4, shapes: [[Int]] = shapes) -> [[Float]] {
        var random = TestRandom(seed: 13)
        let params = shapes.map { shape in
            Tensor(shape: shape, data: random.floats(Shape.count(shape)), dtype: dtype, device: device, requiresGrad: true)
        }
        let optimizer = make([ParamGroup(params: Array(params.prefix(2))), ParamGroup(params: [params[2]], lr: 0.003)])
        optimizer.fused = fused
        var out: [[Float]] = []
        for _ in 0..<steps {
            for p in params { p.grad = Tensor(shape: p.shape, data: gradient(p.count, &random), dtype: dtype, device: device) }
            optimizer.step()
            out += params.map { $0.toArray() }
            out += optimizer.stateDict().map { $0.1.toArray() }
        }
        return out
    }

    @Test("on the CPU every fused update is bit for bit the composed one", arguments: 0..<optimizers.count)
    func bitwiseOnCPU(_ which: Int) {
        let (name, make) = Self.optimizers[which]
        let fused = Self.trajectory(make, device: .cpu, fused: true)
        let composed = Self.trajectory(make, device: .cpu, fused: false)
        #expect(fused.count == composed.count, "\(name)")
        for (k, (a, b)) in zip(fused, composed).enumerated() {
            let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(a.count == b.count && differing == 0, "\(name): tensor \(k) differs in \(differing) of \(a.count) elements")
        }
    }

    @Test("the C loops of float32 SGD, Adam and RMSprop give the same bits with every instruction set the CPU has")
    func everyInstructionSet() {
        var random = TestRandom(seed: 5)
        let n = 1_003
        // Parameters, gradients, first moments, a momentum buffer, second moments (>= 0).
        let inputs = (0..<5).map { k in random.floats(n).map { k == 4 ? abs($0) : $0 } }
        let adam = ember_adam_step(weight_decay: 0.1, decoupled: 0, decay_factor: 1, beta1: 0.9, one_minus_beta1: 0.1,
                                   beta2: 0.999, one_minus_beta2: 0.001, step_size: 0.01, correction2: 0.002, eps: 1e-8)
        let rmsprop = ember_rmsprop_step(lr: 0.01, weight_decay: 0.1, alpha: 0.99, one_minus_alpha: 0.01, eps: 1e-8, momentum: 0.9)
        func run(_ isa: ember_isa) -> [[Float]] {
            let g = inputs[1]
            var (p, m, v) = (inputs[0], inputs[2], inputs[4])
            var step = adam
            ember_adam_f32_isa(isa, &p, g, &m, &v, n, &step)
            var (q, square, average, buffer) = (inputs[0], inputs[4], inputs[2].map { $0 * 0.1 }, inputs[3])
            var rule = rmsprop
            ember_rmsprop_f32_isa(isa, &q, g, &square, &average, &buffer, n, &rule)
            // SGD with every option on (momentum after the first step, dampening, Nesterov,
            // weight decay), and without momentum.
            var (r, momentum, plain) = (inputs[0], inputs[3], inputs[0])
            var sgd = ember_sgd_step(lr: 0.01, weight_decay: 0.1, momentum: 0.9, dampening_keep: 0.7, dampened: 1, nesterov: 1, first_step: 0)
            ember_sgd_f32_isa(isa, &r, g, &momentum, n, &sgd)
            ember_sgd_f32_isa(isa, &plain, g, nil, n, &sgd)
            return [p, m, v, q, square, average, buffer, r, momentum, plain]
        }
        let scalar = run(EMBER_ISA_SCALAR)
        for raw in 0...ember_cpu_isa().rawValue {
            for (k, (a, e)) in zip(run(ember_isa(rawValue: raw)), scalar).enumerated() {
                #expect(zip(a, e).allSatisfy { $0.bitPattern == $1.bitPattern }, "instruction set \(raw), array \(k)")
            }
        }
    }

    @Test("on OpenCL every fused update is within Float32 rounding of the CPU's composed one", arguments: 0..<optimizers.count)
    func closeOnOpenCL(_ which: Int) {
        let (name, make) = Self.optimizers[which]
        let reference = Self.trajectory(make, device: .cpu, fused: false, shapes: Self.smallShapes)
        for gpu in TestDevices.accelerators {
            let actual = Self.trajectory(make, device: gpu, fused: true, shapes: Self.smallShapes)
            #expect(actual.count == reference.count, "\(name)")
            for (k, (a, e)) in zip(actual, reference).enumerated() {
                expectClose(a, e, rtol: 1e-4, atol: 1e-6, "\(name) on \(gpu), tensor \(k)")
            }
        }
    }

    @Test("on OpenCL an update of more tensors than one launch takes (8) is within Float32 rounding of the composed one",
          arguments: 0..<optimizers.count)
    func manyTensorsOnOpenCL(_ which: Int) {
        let (name, make) = Self.optimizers[which]
        // The second group's 10 tensors take two launches; sizes around the CPU devices' runs of 64.
        let shapes = Self.smallShapes.prefix(2) + [[1], [63], [64], [65], [129], [2, 100], [1_000], [5], [300], [17]]
        let reference = Self.trajectory(make, device: .cpu, fused: false, steps: 2, shapes: Array(shapes))
        for gpu in TestDevices.accelerators {
            let actual = Self.trajectory(make, device: gpu, fused: true, steps: 2, shapes: Array(shapes))
            #expect(actual.count == reference.count, "\(name)")
            for (k, (a, e)) in zip(actual, reference).enumerated() {
                expectClose(a, e, rtol: 1e-4, atol: 1e-6, "\(name) on \(gpu), tensor \(k)")
            }
        }
    }

    @Test("the GPU variants of optim.cl (a work-item per element, interleaved norm partials) agree with the CPU")
    func gpuKernelVariants() async {
        await #expect(processExitsWith: .success) {
            guard let gpu = gpuKernelVariantDevice() else { return }
            for (name, make) in FusedOptimizerTests.optimizers {
                let reference = FusedOptimizerTests.trajectory(make, device: .cpu, fused: false, shapes: FusedOptimizerTests.smallShapes)
                let actual = FusedOptimizerTests.trajectory(make, device: gpu, fused: true, shapes: FusedOptimizerTests.smallShapes)
                precondition(actual.count == reference.count && zip(actual, reference).allSatisfy { isClose($0, $1, rtol: 1e-4, atol: 1e-6) },
                             "\(name) differs with the GPU kernels")
            }
            for normType: Float in [2, 3, .infinity] {
                let a = FusedOptimizerTests.gradients(20, device: gpu), b = FusedOptimizerTests.gradients(20, device: .cpu)
                let fused = clipGradNorm(a, maxNorm: 0.5, normType: normType, fused: true)
                let composed = clipGradNorm(b, maxNorm: 0.5, normType: normType, fused: false)
                precondition(abs(fused - composed) <= 1e-4 * composed, "norm \(normType): \(fused) vs \(composed)")
            }
        }
    }

    @Test("float16 and bfloat16 parameters: the fused update is within the type's rounding of the composed one",
          arguments: [DType.float16, .bfloat16])
    func narrowTypes(_ dtype: DType) {
        for (name, make) in Self.optimizers {
            let reference = Self.trajectory(make, device: .cpu, fused: false, steps: 3, shapes: Self.smallShapes)
            for device in TestDevices.all {
                let actual = Self.trajectory(make, device: device, dtype: dtype, fused: true, steps: 3, shapes: Self.smallShapes)
                #expect(actual.count == reference.count, "\(name)")
                // A narrow composed update rounds after every op and the fused one once per
                // stored value; both stay within a few of the type's rounding steps of float32.
                let tolerance: Float = dtype == .float16 ? 4e-3 : 3e-2
                for (k, (a, e)) in zip(actual, reference).enumerated() {
                    expectClose(a, e, rtol: tolerance, atol: tolerance, "\(name) \(dtype) on \(device), tensor \(k)")
                }
            }
        }
    }

    @Test("a state dict saved from a fused optimizer has the composed one's entries and resumes bit for bit")
    func stateDictRoundTrip() throws {
        for (name, make) in Self.optimizers {
            let uninterrupted = Self.trajectory(make, device: .cpu, fused: false)
            // Two fused steps, then a new optimizer loads the state and takes two more.
            var random = TestRandom(seed: 13)
            let params = Self.shapes.map { Tensor(shape: $0, data: random.floats(Shape.count($0)), requiresGrad: true) }
            let groups = [ParamGroup(params: Array(params.prefix(2))), ParamGroup(params: [params[2]], lr: 0.003)]
            var optimizer = make(groups)
            optimizer.fused = true
            var resumed: [[Float]] = []
            for step in 0..<4 {
                if step == 2 {
                    let saved = optimizer.stateDict()
                    optimizer = make(groups)
                    optimizer.fused = true
                    try optimizer.loadStateDict(saved)
                    #expect(optimizer.stateDict().map(\.0) == saved.map(\.0), "\(name): keys after loading")
                }
                for p in params { p.grad = Tensor(shape: p.shape, data: Self.gradient(p.count, &random)) }
                optimizer.step()
                resumed += params.map { $0.toArray() }
                resumed += optimizer.stateDict().map { $0.1.toArray() }
            }
            #expect(resumed.count == uninterrupted.count, "\(name): the fused optimizer's state dict has other entries")
            for (k, (a, b)) in zip(resumed, uninterrupted).enumerated() {
                #expect(a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(name): tensor \(k) after resuming")
            }
        }
    }

    @Test("a 16-bit parameter's state loads in the parameter's dtype and resumes bit for bit", arguments: [DType.bfloat16, .float16])
    func narrowStateDictRoundTrip(_ dtype: DType) throws {
        for (name, make) in Self.optimizers {
            // The same four steps twice: uninterrupted, and with the state saved after two
            // steps, written to a file and loaded into a new optimizer.
            func run(resuming: Bool) throws -> [[Float]] {
                var random = TestRandom(seed: 17)
                let params = Self.smallShapes.map { shape in
                    let p = Tensor(shape: shape, data: random.floats(Shape.count(shape))).to(dtype)
                    p.requiresGrad = true
                    return p
                }
                var optimizer = make([ParamGroup(params: params)])
                var out: [[Float]] = []
                for step in 0..<4 {
                    if resuming && step == 2 {
                        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ember-optim-\(dtype)-\(name).safetensors")
                        defer { try? FileManager.default.removeItem(at: url) }
                        try SafeTensors.write(optimizer.stateDict(), to: url)
                        optimizer = make([ParamGroup(params: params)])
                        try optimizer.loadStateDict(SafeTensors.read(from: url))
                        for (key, t) in optimizer.stateDict() where !key.hasPrefix("param_groups") && !key.hasSuffix(".step") {
                            #expect(t.dtype == dtype, "\(name): \(key) loaded as \(t.dtype)")
                        }
                    }
                    for p in params { p.grad = Tensor(shape: p.shape, data: Self.gradient(p.count, &random)).to(dtype) }
                    optimizer.step()
                    out += params.map { $0.toArray() }
                }
                return out
            }
            let (uninterrupted, resumed) = (try run(resuming: false), try run(resuming: true))
            for (k, (a, b)) in zip(resumed, uninterrupted).enumerated() {
                #expect(zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(name) \(dtype): tensor \(k) after resuming")
            }
        }
    }

    /// Parameters with gradients of `count` sizes (the first above the CPU's parallel
    /// threshold), the second holding `special` values.
    static func gradients(_ count: Int, device: Device, special: [Float] = []) -> [Tensor] {
        var random = TestRandom(seed: 7)
        return (0..<count).map { i in
            var values = random.floats(i == 0 ? 70_001 : i % 3 == 0 ? 2_001 : 12 + i)
            if i == 1 { for (k, s) in special.enumerated() { values[k] = s } }
            let p = Tensor.zeros([values.count], device: device, requiresGrad: true)
            p.grad = Tensor(shape: [values.count], data: values, device: device)
            return p
        }
    }

    @Test("clipGradNorm's fused reduction gives the composed norm and scale for every norm type and nonfinite gradients")
    func clipGradNormMatches() {
        let specials: [[Float]] = [[], [.nan], [.infinity], [-.infinity, 3]]
        for device in TestDevices.all {
            for count in [1, 20] {
                for special in specials {
                    for normType: Float in [2, 1, 3, .infinity] {
                        let context = "\(device), \(count) gradients, \(special), norm \(normType)"
                        let a = Self.gradients(count, device: device, special: special)
                        let b = Self.gradients(count, device: device, special: special)
                        let fused = clipGradNorm(a, maxNorm: 0.5, normType: normType, fused: true)
                        let composed = clipGradNorm(b, maxNorm: 0.5, normType: normType, fused: false)
                        #expect(fused.isNaN == composed.isNaN && (fused.isNaN || abs(fused - composed) <= 1e-4 * abs(composed)
                                                                  || fused == composed), "\(context): \(fused) vs \(composed)")
                        for (x, y) in zip(a, b) {
                            let gx = x.grad!.toArray(), gy = y.grad!.toArray()
                            #expect(zip(gx, gy).allSatisfy { $0.isNaN == $1.isNaN }, "\(context): NaNs differ")
                            expectClose(gx.map { $0.isNaN ? 0 : $0 }, gy.map { $0.isNaN ? 0 : $0 }, rtol: 1e-4, atol: 1e-7, context)
                        }
                    }
                }
            }
        }
    }

    @Test("clipGradNorm over float16 and mixed-dtype gradients")
    func clipGradNormNarrow() {
        for device in TestDevices.all {
            let grads = Self.gradients(4, device: device)
            grads[1].grad = grads[1].grad!.half()
            grads[2].grad = grads[2].grad!.bfloat16()
            let wide = Self.gradients(4, device: device)
            wide[1].grad = wide[1].grad!.half().float()
            wide[2].grad = wide[2].grad!.bfloat16().float()
            for normType: Float in [2, .infinity] {
                let fused = clipGradNorm(grads, maxNorm: 1e9, normType: normType, fused: true)
                let composed = clipGradNorm(wide, maxNorm: 1e9, normType: normType, fused: false)
                expectClose([fused], [composed], rtol: 1e-4, atol: 0, "\(device) norm \(normType)")
            }
        }
    }

    @Test("an AdamW step launches one kernel per parameter on the CPU and one per 8 on OpenCL, and clipGradNorm a fixed number plus one scale per gradient")
    func launchCounts() async {
        // Backend counters are process-wide: count in a process of its own.
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            for device in TestDevices.all {
                let model = Sequential(Linear(8, 16), ReLU(), Linear(16, 16), ReLU(), Linear(16, 4)).to(device)
                let parameters = model.parameters()
                let input = Tensor.randn([5, 8]).to(device)
                model(input).square().mean().backward()
                for fused in [true, false] {
                    let optimizer = AdamW(parameters, lr: 1e-3)
                    optimizer.fused = fused
                    optimizer.step()  // creates the state
                    let before = device.stats
                    optimizer.step()
                    try! device.synchronize()
                    let launches = device.stats.kernelLaunches - before.kernelLaunches
                    let bytes = device.stats.bytesMoved - before.bytesMoved
                    let elements = parameters.reduce(0) { $0 + $1.count }
                    if fused {
                        let expected = device.kind == .opencl ? (parameters.count + 7) / 8 : parameters.count
                        precondition(launches == expected, "\(device): \(launches) launches for \(parameters.count) parameters")
                        // Parameter, gradient and two states read, parameter and states written.
                        precondition(bytes == elements * 4 * 7, "\(device): \(bytes) bytes moved for \(elements) elements")
                    } else {
                        precondition(launches >= 8 * parameters.count, "\(device): composed step launched only \(launches)")
                    }
                }
                // The norm's kernels do not grow with the number of gradients (up to 16 per launch on OpenCL).
                var extra: [Int] = []
                for count in [3, 12] {
                    let grads = FusedOptimizerTests.gradients(count, device: device)
                    let before = device.stats.kernelLaunches
                    clipGradNorm(grads, maxNorm: 1e-3, fused: true)
                    try! device.synchronize()
                    extra.append(device.stats.kernelLaunches - before - count)
                }
                precondition(extra[0] == extra[1] && extra[0] <= 2, "\(device): clipGradNorm launched \(extra) beyond the scales")
            }
        }
        #expect(result?.exitStatus == ExitStatus.exitCode(0), "\(stderrText(result))")
    }

    @Test("OpenCL compiles the fused kernels in the background: steps compose the update meanwhile and fuse it once they are built")
    func backgroundBuilds() async {
        await #expect(processExitsWith: .success) {
            guard let gpu = try? Device.opencl() else { return }
            // Narrow builds start at their first query, so this one cannot be ready yet.
            precondition(!gpu.backend.kernelsReady(.optimizer, dtype: .bfloat16), "the bfloat16 build was ready before it was asked for")
            let p = Tensor(shape: [4], data: [1, -2, 3, 0.5], dtype: .bfloat16, device: gpu, requiresGrad: true)
            let reference = Tensor(shape: [4], data: [1, -2, 3, 0.5], dtype: .bfloat16, requiresGrad: true)
            let optimizer = AdamW([p], lr: 0.1), expected = AdamW([reference], lr: 0.1)
            expected.fused = false
            func step() -> Int {
                p.grad = Tensor(shape: [4], data: [0.5, 1, -1, 2], dtype: .bfloat16, device: gpu)
                reference.grad = Tensor(shape: [4], data: [0.5, 1, -1, 2], dtype: .bfloat16)
                let before = gpu.stats.kernelLaunches
                optimizer.step()
                expected.step()
                try! gpu.synchronize()
                return gpu.stats.kernelLaunches - before
            }
            precondition(step() > 1, "the first step was fused before its kernels were built")
            var waited = 0
            while !gpu.backend.kernelsReady(.optimizer, dtype: .bfloat16) {
                usleep(20_000)
                waited += 1
                precondition(waited < 6_000, "the background build did not finish in two minutes")
            }
            precondition(step() == 1, "a step after the build was not one launch")
            precondition(isClose(p.toArray(), reference.toArray(), rtol: 1e-2, atol: 1e-2), "\(p.toArray()) vs \(reference.toArray())")
        }
    }

}
