import Foundation
import Testing
@testable import Ember

/// Optimizers against PyTorch's documented update rules, worked out in Double.
@Suite("Optimizers and schedulers")
struct OptimTests {
    static let start: [Double] = [1, -2, 0.5]
    static let curvature: [Double] = [1, 2, 3]

    /// Three steps of `optimizer` on loss = sum(c * p^2) / 2 (gradient c * p); p after each step.
    static func run(_ device: Device, _ make: ([Tensor]) -> Optimizer) -> [[Float]] {
        let p = Tensor(shape: [3], data: start.map(Float.init), device: device, requiresGrad: true)
        let c = Tensor(shape: [3], data: curvature.map(Float.init), device: device)
        let opt = make([p])
        var out: [[Float]] = []
        for _ in 0..<3 {
            opt.zeroGrad()
            ((c * p * p).sum() * 0.5).backward()
            opt.step()
            out.append(p.toArray())
        }
        return out
    }

    /// The same three steps with `update(p, g, t)` applied in Double.
    static func reference(_ update: (inout [Double], [Double], Int) -> Void) -> [[Float]] {
        var p = start
        var out: [[Float]] = []
        for t in 1...3 {
            let g = zip(curvature, p).map { $0 * $1 }
            update(&p, g, t)
            out.append(p.map(Float.init))
        }
        return out
    }

    static func expectSteps(_ actual: [[Float]], _ expected: [[Float]], _ name: String) {
        for (step, (a, e)) in zip(actual, expected).enumerated() {
            expectClose(a, e, rtol: 1e-5, atol: 1e-6, "\(name) step \(step + 1)")
        }
    }

    @Test("SGD: plain, momentum with dampening, Nesterov, weight decay", arguments: TestDevices.all)
    func sgd(_ d: Device) {
        OptimTests.expectSteps(OptimTests.run(d) { SGD($0, lr: 0.1) }, OptimTests.reference { p, g, _ in
            for i in p.indices { p[i] -= 0.1 * g[i] }
        }, "SGD")
        var buffer: [Double] = []
        OptimTests.expectSteps(OptimTests.run(d) { SGD($0, lr: 0.1, momentum: 0.9, dampening: 0.2, weightDecay: 0.01) }, OptimTests.reference { p, g0, t in
            let g = zip(g0, p).map { $0 + 0.01 * $1 }
            buffer = t == 1 ? g : zip(buffer, g).map { 0.9 * $0 + 0.8 * $1 }
            for i in p.indices { p[i] -= 0.1 * buffer[i] }
        }, "SGD momentum")
        buffer = []
        OptimTests.expectSteps(OptimTests.run(d) { SGD($0, lr: 0.05, momentum: 0.9, nesterov: true) }, OptimTests.reference { p, g, t in
            buffer = t == 1 ? g : zip(buffer, g).map { 0.9 * $0 + $1 }
            for i in p.indices { p[i] -= 0.05 * (g[i] + 0.9 * buffer[i]) }
        }, "SGD nesterov")
    }

    @Test("Adam and AdamW", arguments: TestDevices.all)
    func adam(_ d: Device) {
        for decoupled in [false, true] {
            var m = [Double](repeating: 0, count: 3), v = m
            let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.1)
            let actual = OptimTests.run(d) {
                decoupled ? AdamW($0, lr: Float(lr), weightDecay: Float(wd)) : Adam($0, lr: Float(lr), weightDecay: Float(wd))
            }
            let expected = OptimTests.reference { p, g0, t in
                var g = g0
                if decoupled { p = p.map { $0 * (1 - lr * wd) } } else { g = zip(g0, p).map { $0 + wd * $1 } }
                for i in p.indices {
                    m[i] = b1 * m[i] + (1 - b1) * g[i]
                    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                    let mHat = m[i] / (1 - Foundation.pow(b1, Double(t))), vHat = v[i] / (1 - Foundation.pow(b2, Double(t)))
                    p[i] -= lr * mHat / (vHat.squareRoot() + eps)
                }
            }
            OptimTests.expectSteps(actual, expected, decoupled ? "AdamW" : "Adam")
        }
    }

    @Test("RMSprop plain and centered with momentum", arguments: TestDevices.all)
    func rmsprop(_ d: Device) {
        for centered in [false, true] {
            var square = [Double](repeating: 0, count: 3), average = square, buffer = square
            let (lr, alpha, eps, momentum) = (0.01, 0.99, 1e-8, centered ? 0.5 : 0.0)
            let actual = OptimTests.run(d) { RMSprop($0, lr: Float(lr), alpha: Float(alpha), momentum: Float(momentum), centered: centered) }
            let expected = OptimTests.reference { p, g, _ in
                for i in p.indices {
                    square[i] = alpha * square[i] + (1 - alpha) * g[i] * g[i]
                    var denominator = square[i]
                    if centered {
                        average[i] = alpha * average[i] + (1 - alpha) * g[i]
                        denominator -= average[i] * average[i]
                    }
                    let step = g[i] / (denominator.squareRoot() + eps)
                    if momentum > 0 {
                        buffer[i] = momentum * buffer[i] + step
                        p[i] -= lr * buffer[i]
                    } else {
                        p[i] -= lr * step
                    }
                }
            }
            OptimTests.expectSteps(actual, expected, centered ? "RMSprop centered" : "RMSprop")
        }
    }

    @Test("Adagrad with lr decay, weight decay and an initial accumulator, against a Double reference and PyTorch", arguments: TestDevices.all)
    func adagrad(_ d: Device) throws {
        let (lr, decay, weightDecay, initial, eps) = (0.1, 0.05, 0.01, 0.1, 1e-10)
        var sum = [Double](repeating: initial, count: 3)
        let actual = OptimTests.run(d) { Adagrad($0, lr: Float(lr), lrDecay: Float(decay), weightDecay: Float(weightDecay), initialAccumulatorValue: Float(initial)) }
        let expected = OptimTests.reference { p, g, t in
            let rate = lr / (1 + Double(t - 1) * decay)
            for i in p.indices {
                let gi = g[i] + weightDecay * p[i]
                sum[i] += gi * gi
                p[i] -= rate * gi / (sum[i].squareRoot() + eps)
            }
        }
        OptimTests.expectSteps(actual, expected, "Adagrad")
        // torch.optim.Adagrad([p], lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1), p = [1, -2, 3],
        // three steps on sum(p^2 * [1, 0.5, 2]): p and state['sum'].
        let p = Tensor([1, -2, 3], device: d, requiresGrad: true)
        let opt = Adagrad([p], lr: 0.1, lrDecay: 0.05, weightDecay: 0.01, initialAccumulatorValue: 0.1)
        for _ in 0..<3 {
            opt.zeroGrad()
            (p * p * Tensor([1, 0.5, 2], device: d)).sum().backward()
            opt.step()
        }
        expectClose(p.toArray(), [0.79008394, -1.7858695, 2.7827833])
        expectClose(try #require(opt.stateDict()["state.0.sum"]).toArray(), [10.257798, 11.306294, 409.1926], rtol: 1e-5)
    }

    @Test("Adam and AdamW with amsgrad divide by the largest second moment, as PyTorch's", arguments: TestDevices.all)
    func amsgrad(_ d: Device) throws {
        // torch.optim.Adam([p], lr=0.1, amsgrad=True), p = [1, -2, 3], three steps on sum(p^2 * c) with c changing each
        // step, so the second moment falls and its maximum is kept: p and state['max_exp_avg_sq'].
        let p = Tensor([1, -2, 3], device: d, requiresGrad: true)
        let opt = Adam([p], lr: 0.1, amsgrad: true)
        for c: [Float] in [[1, 0.5, 2], [0.1, 0.1, 0.1], [0.01, 3, 0.01]] {
            opt.zeroGrad()
            (p * p * Tensor(c, device: d)).sum().backward()
            opt.step()
        }
        expectClose(p.toArray(), [0.76934719, -1.7461925, 2.7746909])
        expectClose(try #require(opt.stateDict()["state.0.max_exp_avg_sq"]).toArray(), [0.0040284, 0.12341885, 0.14419238], rtol: 1e-5)
        // AdamW's amsgrad is the same update after its decoupled decay.
        let q = Tensor([1, -2, 3], device: d, requiresGrad: true), r = Tensor([1, -2, 3], device: d, requiresGrad: true)
        let decoupled = AdamW([q], lr: 0.1, weightDecay: 0, amsgrad: true), plain = Adam([r], lr: 0.1, amsgrad: true)
        for (t, o) in [(q, decoupled as Optimizer), (r, plain)] {
            (t * t).sum().backward()
            o.step()
        }
        #expect(q.toArray() == r.toArray())
    }

    @Test("optimizer state lives on the parameter's device and steps allocate nothing new", arguments: TestDevices.all)
    func stateDevice(_ d: Device) {
        let p = Tensor.randn([64], device: d, requiresGrad: true)
        let opt = Adam([p])
        for _ in 0..<2 {
            opt.zeroGrad()
            (p * p).sum().backward()
            opt.step()
        }
        #expect(opt.stateDict().filter { $0.name.hasPrefix("state.") && !$0.name.hasSuffix(".step") }.allSatisfy { $0.tensor.device == d })
        #expect(opt.stateDict().map(\.name).contains("state.0.exp_avg_sq"))
    }

    @Test("learning-rate schedules follow PyTorch's closed forms")
    func schedulers() {
        func rates(_ make: (Optimizer) -> LRScheduler, steps: Int = 6) -> [Float] {
            let opt = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 1)
            let s = make(opt)
            var out = [s.lastLR]
            for _ in 0..<steps { s.step(); out.append(s.lastLR) }
            return out
        }
        expectClose(rates { StepLR($0, stepSize: 2, gamma: 0.5) }, [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125])
        expectClose(rates { ExponentialLR($0, gamma: 0.9) }, (0...6).map { Float(Foundation.pow(0.9, Double($0))) })
        expectClose(rates { CosineAnnealingLR($0, tMax: 4, etaMin: 0.1) },
                    (0...6).map { t in Float(0.1 + 0.9 * (1 + Foundation.cos(Double.pi * Double(t) / 4)) / 2) })
        expectClose(rates { LinearLR($0, startFactor: 0.25, totalIters: 3) }, [0.25, 0.5, 0.75, 1, 1, 1, 1])
    }

    @Test("clipGradNorm scales gradients to the maximum norm", arguments: TestDevices.all)
    func clipping(_ d: Device) {
        let a = Tensor([3, 0], device: d, requiresGrad: true), b = Tensor([0, 4], device: d, requiresGrad: true)
        (a * Tensor([1, 0], device: d) * 3 + b * Tensor([0, 1], device: d) * 4).sum().backward()
        let total = clipGradNorm([a, b], maxNorm: 1)
        expectClose([total], [5], rtol: 1e-5)
        expectClose(a.grad!.toArray() + b.grad!.toArray(), [0.6, 0, 0, 0.8], rtol: 1e-4)
        #expect(clipGradNorm([a, b], maxNorm: 10) < 1.0001)
        expectClose([clipGradNorm([a, b], maxNorm: 10, normType: .infinity)], [0.8], rtol: 1e-4)
    }

    @Test("Adam counts steps per parameter: a parameter first updated at step 2 gets step 1's bias correction", arguments: TestDevices.all)
    func perParameterSteps(_ d: Device) {
        let a = Tensor([1, -2], device: d, requiresGrad: true), b = Tensor([1, -2], device: d, requiresGrad: true)
        let opt = Adam([a, b], lr: 0.1)
        (a * a).sum().backward()
        opt.step()
        #expect(b.toArray() == [1, -2] && opt.steps == [1, 0])
        opt.zeroGrad()
        ((a * a).sum() + (b * b).sum()).backward()
        opt.step()
        #expect(opt.steps == [2, 1])
        // First Adam step: m̂ = g and v̂ = g², so the update is lr * g / (|g| + eps).
        expectClose(b.toArray(), [1 - 0.1 * 2 / (2 + 1e-8), -2 + 0.1 * 4 / (4 + 1e-8)])
    }

    @Test("optimizer state dicts use PyTorch's names, resume exactly, and reject bad entries unchanged")
    func stateRoundTrip() throws {
        func step(_ p: Tensor, _ opt: Optimizer) {
            opt.zeroGrad()
            (p * p * p).sum().backward()
            opt.step()
        }
        for make in [{ Adam([$0], lr: 0.05) }, { SGD([$0], lr: 0.05, momentum: 0.9) },
                     { RMSprop([$0], lr: 0.05, momentum: 0.5, centered: true) }] as [(Tensor) -> Optimizer] {
            let p = Tensor([1, -2, 0.5], requiresGrad: true)
            let opt = make(p)
            step(p, opt)
            step(p, opt)
            let saved = StateDict(opt.stateDict().map { ($0.name, $0.tensor.clone()) })
            #expect(opt.stateDict().map(\.name) == ["param_groups.0.lr", "state.0.step"] + opt.stateNames.sorted().map { "state.0.\($0)" })
            let q = Tensor(shape: [3], data: p.toArray(), requiresGrad: true)
            let resumed = make(q)
            resumed.lr = 1
            try resumed.loadStateDict(saved)
            #expect(resumed.lr == 0.05 && resumed.steps == [2])
            step(p, opt)
            step(q, resumed)
            #expect(p.toArray() == q.toArray(), "\(type(of: opt)) resumed from its state dict")
        }
        let opt = Adam([Tensor.zeros([3], requiresGrad: true)], lr: 0.5)
        #expect(throws: EmberError.stateDictMismatch(missing: [], unexpected: ["state.0.momentum_buffer", "state.3.exp_avg"],
                                                     shapeMismatches: ["state.0.exp_avg: expected [3], got [2]"])) {
            try opt.loadStateDict(["param_groups.0.lr": Tensor(Float(0.1)), "state.0.exp_avg": Tensor.zeros([2]),
                                   "state.0.momentum_buffer": Tensor.zeros([3]), "state.3.exp_avg": Tensor.zeros([3])])
        }
        #expect(opt.lr == 0.5 && opt.stateDict().count == 1)
    }

    @Test("after the first steps, optimizer steps allocate no new device buffers")
    func noAllocationsAfterFirstStep() async {
        await #expect(processExitsWith: .success) {
            for d in TestDevices.all {
                let makers: [(Tensor) -> Optimizer] = [
                    { SGD([$0], lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 0.1) },
                    { AdamW([$0], lr: 0.01) },
                    { RMSprop([$0], lr: 0.01, momentum: 0.5, centered: true) },
                ]
                for make in makers {
                    let p = Tensor.randn([32, 8], device: d, requiresGrad: true)
                    let x = Tensor.randn([4, 32], device: d)
                    let opt = make(p)
                    func step() {
                        opt.zeroGrad()
                        x.matmul(p).square().mean().backward()
                        opt.step()
                    }
                    for _ in 0..<3 { step() }
                    _ = p.sum().item()
                    let before = d.stats
                    for _ in 0..<20 { step() }
                    _ = p.sum().item()
                    let after = d.stats
                    precondition(after.liveBuffers == before.liveBuffers && after.allocations == before.allocations,
                                 "\(type(of: opt)) on \(d): live \(before.liveBuffers) -> \(after.liveBuffers), allocations \(before.allocations) -> \(after.allocations)")
                }
            }
        }
    }

    @Test("invalid hyper-parameters stop with a message naming the optimizer, the argument and the value")
    func invalidHyperParameters() async {
        let negative = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = SGD([Tensor.zeros([1], requiresGrad: true)], lr: -1)
        }
        let negativeMessage = String(decoding: negative?.standardErrorContent ?? [], as: UTF8.self)
        #expect(negativeMessage.contains("SGD: lr must be a finite number >= 0, got -1.0"))
        let nan = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let opt = Adam([Tensor.zeros([1], requiresGrad: true)])
            opt.lr = .nan
        }
        let nanMessage = String(decoding: nan?.standardErrorContent ?? [], as: UTF8.self)
        #expect(nanMessage.contains("Adam: lr must be a finite number >= 0, got nan"))
    }

    @Test("clipGradNorm: 1-norm, infinity norm, parameters without gradients")
    func clippingNorms() {
        func grads() -> (Tensor, Tensor, Tensor) {
            let a = Tensor([1, 1], requiresGrad: true), b = Tensor([1, 1], requiresGrad: true)
            (a * Tensor([3, 0]) + b * Tensor([0, -4])).sum().backward()
            return (a, b, Tensor.zeros([2], requiresGrad: true))
        }
        var (a, b, unused) = grads()
        expectClose([clipGradNorm([a, b, unused], maxNorm: 3.5, normType: 1)], [7])
        expectClose(a.grad!.toArray() + b.grad!.toArray(), [1.5, 0, 0, -2], rtol: 1e-5)
        (a, b, unused) = grads()
        expectClose([clipGradNorm([a, unused, b], maxNorm: 2, normType: .infinity)], [4])
        expectClose(a.grad!.toArray() + b.grad!.toArray(), [1.5, 0, 0, -2], rtol: 1e-5)
        #expect(unused.grad == nil && clipGradNorm([unused], maxNorm: 1) == 0)
    }

    @Test("LinearLR towards an end factor below one, and StepLR on Adam")
    func moreSchedules() {
        let opt = Adam([Tensor.zeros([1], requiresGrad: true)], lr: 0.2)
        let warm = LinearLR(opt, startFactor: 1, endFactor: 0.5, totalIters: 2)
        var rates = [warm.lastLR]
        for _ in 0..<3 { warm.step(); rates.append(warm.lastLR) }
        expectClose(rates, [0.2, 0.15, 0.1, 0.1])
        let decay = StepLR(Adam([Tensor.zeros([1], requiresGrad: true)], lr: 0.2), stepSize: 1, gamma: 0.5)
        decay.step()
        expectClose([decay.lastLR, decay.optimizer.lr], [0.1, 0.1])
    }
}
