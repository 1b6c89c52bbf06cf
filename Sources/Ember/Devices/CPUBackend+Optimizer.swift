import Foundation

/// The fused optimizer update and the many-tensor norm reduction of the CPU backend. Each
/// update is one pass over the elements, split across cores, that performs the composed
/// update's Float32 operations (`Optim/Optimizer.swift`) in the same order: Swift never
/// contracts `a * b + c` into a fused multiply-add, so every rounding is the same and the
/// result is bit for bit the composed one for float32 parameters.
extension CPUBackend {
    func optimizerStep(_ rule: OptimizerRule, parameter: DeviceBuffer, gradient: DeviceBuffer, gradientOffset: Int,
                       states: [DeviceBuffer], count: Int, dtype: DType) {
        check(states.count == rule.stateCount, "optimizerStep: the rule takes \(rule.stateCount) state buffers, got \(states.count)")
        let width = dtype.byteSize
        pool.noteKernels(1, bytes: count * width * (3 + 2 * states.count))
        switch dtype {
        case .float16: optimizerStep(rule, parameter, gradient, gradientOffset, states, count, Elementwise.Half.self)
        case .bfloat16: optimizerStep(rule, parameter, gradient, gradientOffset, states, count, Elementwise.BFloat16.self)
        default: optimizerStep(rule, parameter, gradient, gradientOffset, states, count, Float.self)
        }
    }

    /// `optimizerStep` over elements stored as `S`.
    private func optimizerStep<S: FloatStorage>(_ rule: OptimizerRule, _ parameter: DeviceBuffer, _ gradient: DeviceBuffer,
                                                _ gradientOffset: Int, _ states: [DeviceBuffer], _ n: Int, _: S.Type) {
        let p = elements(parameter, as: S.Bits.self), g = elements(gradient, as: S.Bits.self) + gradientOffset
        let state = states.map { elements($0, as: S.Bits.self) }
        switch rule {
        case .sgd(let r):
            let b = state.first
            parallelFor(n) { s, e in
                for i in s..<e {
                    let x = S.widen(p[i])
                    var d = S.widen(g[i])
                    if r.weightDecay != 0 { d = d + x * r.weightDecay }
                    if let b {
                        var m: Float
                        if r.firstStep {
                            m = d
                        } else {
                            m = S.widen(b[i]) * r.momentum
                            m = m + (r.dampened ? d * r.keep : d)
                        }
                        b[i] = S.narrow(m)
                        d = r.nesterov ? d + m * r.momentum : m
                    }
                    p[i] = S.narrow(x - d * r.lr)
                }
            }
        case .adam(let r):
            let (m, v) = (state[0], state[1])
            parallelFor(n) { s, e in
                for i in s..<e {
                    var x = S.widen(p[i])
                    var d = S.widen(g[i])
                    if r.weightDecay != 0 {
                        if r.decoupled { x = x * r.decayFactor } else { d = d + x * r.weightDecay }
                    }
                    var mean = S.widen(m[i]) * r.beta1
                    mean = mean + d * r.oneMinusBeta1
                    var square = S.widen(v[i]) * r.beta2
                    square = square + d * d * r.oneMinusBeta2
                    m[i] = S.narrow(mean)
                    v[i] = S.narrow(square)
                    let denominator = (square / r.correction2).squareRoot() + r.eps
                    p[i] = S.narrow(x - mean * r.stepSize / denominator)
                }
            }
        case .rmsprop(let r):
            let squares = state[0]
            let averages: UnsafeMutablePointer<S.Bits>? = r.centered ? state[1] : nil
            let buffer: UnsafeMutablePointer<S.Bits>? = r.momentum > 0 ? state[state.count - 1] : nil
            parallelFor(n) { s, e in
                for i in s..<e {
                    let x = S.widen(p[i])
                    var d = S.widen(g[i])
                    if r.weightDecay != 0 { d = d + x * r.weightDecay }
                    var square = S.widen(squares[i]) * r.alpha
                    square = square + d * d * r.oneMinusAlpha
                    squares[i] = S.narrow(square)
                    let average: Float
                    if let averages {
                        var mean = S.widen(averages[i]) * r.alpha
                        mean = mean + d * r.oneMinusAlpha
                        averages[i] = S.narrow(mean)
                        average = (square - mean * mean).squareRoot() + r.eps
                    } else {
                        average = square.squareRoot() + r.eps
                    }
                    if let buffer {
                        var b = S.widen(buffer[i]) * r.momentum
                        b = b + d / average
                        buffer[i] = S.narrow(b)
                        p[i] = S.narrow(x - b * r.lr)
                    } else {
                        p[i] = S.narrow(x - d / average * r.lr)
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
