import CPUKernels
import Foundation

/// The fused optimizer update and the many-tensor norm reduction of the CPU backend. Each
/// update is one pass over the elements, split across cores, that performs the composed
/// update's Float32 operations (`Optim/Optimizer.swift`) in the same order: Swift never
/// contracts `a * b + c` into a fused multiply-add, so every rounding is the same and the
/// result is bit for bit the composed one for float32 parameters. Float32 SGD, Adam and
/// RMSprop run the same loops in C (`CPUKernels/optim.c`, AVX-512/AVX2 where present): Swift's
/// `squareRoot()` calls libm's `sqrtf`, which keeps a Swift loop scalar (measured: an AdamW
/// step over 1M parameters took 3.4 ms in Swift, about the eager ops' 7 ms halved), and the
/// SGD loop stayed scalar because its pointers may alias (0.55 ms for the MLP 784's 669K
/// parameters).
extension CPUBackend {
    /// One loop over each tensor's elements, split across cores.
    func optimizerStep(_ rule: OptimizerRule, _ updates: [OptimizerUpdate], dtype: DType) {
        for u in updates {
            check(u.states.count == rule.stateCount, "optimizerStep: the rule takes \(rule.stateCount) state buffers, got \(u.states.count)")
            pool.noteKernels(1, bytes: Traffic.optimizerStep(u, dtype))
            switch dtype {
            case .float16: optimizerStep(rule, u.parameter, u.gradient, u.gradientOffset, u.states, u.count, Elementwise.Half.self)
            case .bfloat16: optimizerStep(rule, u.parameter, u.gradient, u.gradientOffset, u.states, u.count, Elementwise.BFloat16.self)
            default: optimizerStep(rule, u.parameter, u.gradient, u.gradientOffset, u.states, u.count, Float.self)
            }
        }
    }

    /// `optimizerStep` over elements stored as `S`.
    private func optimizerStep<S: FloatStorage>(_ rule: OptimizerRule, _ parameter: DeviceBuffer, _ gradient: DeviceBuffer,
                                                _ gradientOffset: Int, _ states: [DeviceBuffer], _ n: Int, _: S.Type) {
        let p = elements(parameter, as: S.Bits.self), g = elements(gradient, as: S.Bits.self) + gradientOffset
        let state = states.map { elements($0, as: S.Bits.self) }
        // Each loop reads its scalars from locals, not from the captured rule: stores through
        // the Float pointers could alias a captured value, which would keep LLVM from
        // vectorising. Options are selects, not branches, so the loops stay straight-line.
        switch rule {
        case .sgd(let r) where S.self == Float.self:
            let (pf, gf) = (floats(parameter), floats(gradient) + gradientOffset), buffer = states.first.map(floats)
            var step = ember_sgd_step(lr: r.lr, weight_decay: r.weightDecay, momentum: r.momentum, dampening_keep: r.keep,
                                      dampened: r.dampened ? 1 : 0, nesterov: r.nesterov ? 1 : 0, first_step: r.firstStep ? 1 : 0)
            withUnsafePointer(to: &step) { step in
                parallelFor(n) { s, e in ember_sgd_f32(pf + s, gf + s, buffer.map { $0 + s }, e - s, step) }
            }
        case .sgd(let r):
            let b = state.first ?? p, hasMomentum = !state.isEmpty
            parallelFor(n) { s, e in
                let (lr, decay, beta, keep) = (r.lr, r.weightDecay, r.momentum, r.keep)
                let (decays, dampened, nesterov, first) = (r.weightDecay != 0, r.dampened, r.nesterov, r.firstStep)
                if !hasMomentum {
                    for i in s..<e {
                        let x = S.widen(p[i]), g0 = S.widen(g[i])
                        let d = decays ? g0 + x * decay : g0
                        p[i] = S.narrow(x - d * lr)
                    }
                    return
                }
                for i in s..<e {
                    let x = S.widen(p[i]), g0 = S.widen(g[i])
                    let d = decays ? g0 + x * decay : g0
                    let m = first ? d : S.widen(b[i]) * beta + (dampened ? d * keep : d)
                    b[i] = S.narrow(m)
                    let step = nesterov ? d + m * beta : m
                    p[i] = S.narrow(x - step * lr)
                }
            }
        case .adam(let r) where S.self == Float.self:
            let (m, v) = (floats(states[0]), floats(states[1])), (pf, gf) = (floats(parameter), floats(gradient) + gradientOffset)
            var step = ember_adam_step(weight_decay: r.weightDecay, decoupled: r.decoupled ? 1 : 0, decay_factor: r.decayFactor,
                                       beta1: r.beta1, one_minus_beta1: r.oneMinusBeta1, beta2: r.beta2, one_minus_beta2: r.oneMinusBeta2,
                                       step_size: r.stepSize, correction2: r.correction2, eps: r.eps)
            withUnsafePointer(to: &step) { step in
                parallelFor(n) { s, e in ember_adam_f32(pf + s, gf + s, m + s, v + s, e - s, step) }
            }
        case .rmsprop(let r) where S.self == Float.self:
            let (pf, gf, squares) = (floats(parameter), floats(gradient) + gradientOffset, floats(states[0]))
            let averages = r.centered ? floats(states[1]) : nil, buffer = r.momentum > 0 ? floats(states[states.count - 1]) : nil
            var step = ember_rmsprop_step(lr: r.lr, weight_decay: r.weightDecay, alpha: r.alpha, one_minus_alpha: r.oneMinusAlpha,
                                          eps: r.eps, momentum: r.momentum)
            withUnsafePointer(to: &step) { step in
                parallelFor(n) { s, e in ember_rmsprop_f32(pf + s, gf + s, squares + s, averages.map { $0 + s }, buffer.map { $0 + s }, e - s, step) }
            }
        case .adam(let r):
            let (m, v) = (state[0], state[1])
            parallelFor(n) { s, e in
                let (p, g, m, v) = (p, g, m, v)
                let (beta1, keep1, beta2, keep2) = (r.beta1, r.oneMinusBeta1, r.beta2, r.oneMinusBeta2)
                let (decay, factor, stepSize, correction2, eps) = (r.weightDecay, r.decayFactor, r.stepSize, r.correction2, r.eps)
                let scales = r.weightDecay != 0 && r.decoupled, adds = r.weightDecay != 0 && !r.decoupled
                for i in s..<e {
                    let x0 = S.widen(p[i]), g0 = S.widen(g[i])
                    let x = scales ? x0 * factor : x0
                    let d = adds ? g0 + x0 * decay : g0
                    let mean = S.widen(m[i]) * beta1 + d * keep1
                    let square = S.widen(v[i]) * beta2 + d * d * keep2
                    m[i] = S.narrow(mean)
                    v[i] = S.narrow(square)
                    let denominator = (square / correction2).squareRoot() + eps
                    p[i] = S.narrow(x - mean * stepSize / denominator)
                }
            }
        case .rmsprop(let r):
            let squares = state[0]
            let averages = r.centered ? state[1] : p, buffer = r.momentum > 0 ? state[state.count - 1] : p
            parallelFor(n) { s, e in
                let (lr, decay, alpha, keep, eps, beta) = (r.lr, r.weightDecay, r.alpha, r.oneMinusAlpha, r.eps, r.momentum)
                let (decays, centered, hasMomentum) = (r.weightDecay != 0, r.centered, r.momentum > 0)
                for i in s..<e {
                    let x = S.widen(p[i]), g0 = S.widen(g[i])
                    let d = decays ? g0 + x * decay : g0
                    let square = S.widen(squares[i]) * alpha + d * d * keep
                    squares[i] = S.narrow(square)
                    let average: Float
                    if centered {
                        let mean = S.widen(averages[i]) * alpha + d * keep
                        averages[i] = S.narrow(mean)
                        average = (square - mean * mean).squareRoot() + eps
                    } else {
                        average = square.squareRoot() + eps
                    }
                    if hasMomentum {
                        let b = S.widen(buffer[i]) * beta + d / average
                        buffer[i] = S.narrow(b)
                        p[i] = S.narrow(x - b * lr)
                    } else {
                        p[i] = S.narrow(x - d / average * lr)
                    }
                }
            }
        }
    }

    func powerSum(_ power: NormPower, _ sources: [StridedView], dtype: DType, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: sources.reduce(0) { $0 + $1.count } * dtype.byteSize + 4)
        switch dtype {
        case .float16: powerSum(power, sources, Elementwise.Half.self, destination)
        case .bfloat16: powerSum(power, sources, Elementwise.BFloat16.self, destination)
        default: powerSum(power, sources, Float.self, destination)
        }
    }

    /// `powerSum` over elements stored as `S`: every source is cut into chunks of at most
    /// `parallelThreshold` elements, the chunks of all sources are reduced in one parallel
    /// loop (sixteen Float32 lanes each), and their partial results are combined in order.
    private func powerSum<S: FloatStorage>(_ power: NormPower, _ sources: [StridedView], _: S.Type, _ destination: DeviceBuffer) {
        let grain = CPUBackend.parallelThreshold
        var chunks: [(base: UnsafeMutablePointer<S.Bits>, count: Int)] = []
        for v in sources {
            let base = elements(v.buffer, as: S.Bits.self) + v.offset
            for start in stride(from: 0, to: v.count, by: grain) { chunks.append((base + start, Swift.min(grain, v.count - start))) }
        }
        var partials = [Float](repeating: 0, count: chunks.count)
        partials.withUnsafeMutableBufferPointer { out in
            let shared = UncheckedSendable((out: out, chunks: chunks))
            parallelFor(chunks.count, grain: 1) { s, e in
                for c in s..<e {
                    let (base, n) = shared.value.chunks[c]
                    shared.value.out[c] = switch power {
                    case .square: CPUBackend.chunkSum(base, n, S.self) { $0 * $0 }
                    case .power(let q): CPUBackend.chunkSum(base, n, S.self) { Foundation.pow(Swift.abs($0), q) }
                    case .maxAbs: CPUBackend.chunkMaxAbs(base, n, S.self)
                    }
                }
            }
        }
        let total = power == .maxAbs ? partials.reduce(0) { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) } : partials.reduce(0, +)
        floats(destination)[0] = total
    }

    /// The sum of `term(x)` over `n` elements stored as `S`, in sixteen Float32 lanes.
    @inline(__always)
    private static func chunkSum<S: FloatStorage>(_ p: UnsafeMutablePointer<S.Bits>, _ n: Int, _: S.Type,
                                                  _ term: (Float) -> Float) -> Float {
        var lanes = SIMD16<Float>()
        var i = 0
        while i + 16 <= n {
            var v = SIMD16<Float>()
            for j in 0..<16 { v[j] = term(S.widen(p[i + j])) }
            lanes += v
            i += 16
        }
        var total = lanes.sum()
        while i < n { total += term(S.widen(p[i])); i += 1 }
        return total
    }

    /// The largest `|x|` of `n` elements stored as `S` (NaN when one is NaN).
    @inline(__always)
    private static func chunkMaxAbs<S: FloatStorage>(_ p: UnsafeMutablePointer<S.Bits>, _ n: Int, _: S.Type) -> Float {
        var best: Float = 0
        for i in 0..<n {
            let x = Swift.abs(S.widen(p[i]))
            best = best.isNaN || x.isNaN ? .nan : Swift.max(best, x)
        }
        return best
    }
}
