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
}
