import Foundation

/// Elementwise primitives of the CPU backend: copies, constants, random fills, unary,
/// binary and select. Each op's loop is specialised by inlining its closure, with fast
/// paths for contiguous operands and scalar operands.
extension CPUBackend {
    // MARK: Generic strided loops

    /// `dst[i] = f(source[i])` over a strided view. `f` is a generic function object, so each
    /// op gets its own specialised, vectorisable loop.
    @inline(__always)
    private func map<F: ElementFunction>(_ source: StridedView, _ src: UnsafeMutablePointer<F.Input>, _ dst: UnsafeMutablePointer<F.Output>, _ f: F) {
        let n = source.count
        let c = Shape.collapse(source.shape, [source.strides])
        let base = src + source.offset
        if c.shape.count == 1 && c.strides[0][0] == 1 {
            parallelFor(n) { s, e in for i in s..<e { dst[i] = f.apply(base[i]) } }
            return
        }
        parallelFor(n) { s, e in
            forEachRow(shape: c.shape, strides: c.strides, offsets: [0], range: s..<e) { out, count, pos, inner in
                let p = base + pos[0], st = inner[0]
                if st == 1 {
                    for j in 0..<count { dst[out + j] = f.apply(p[j]) }
                } else {
                    for j in 0..<count { dst[out + j] = f.apply(p[j * st]) }
                }
            }
        }
    }

    /// `dst[i] = f(a[i], b[i])` over `shape`, each operand a broadcast view or a scalar.
    @inline(__always)
    private func zip2<F: BinaryFunction>(_ a: Operand, _ b: Operand, shape: [Int], _ dst: UnsafeMutablePointer<Float>, _ f: F) {
        let n = Shape.count(shape)
        switch (a, b) {
        case let (.scalar(x), .scalar(y)):
            let v = f.apply(x, y)
            parallelFor(n) { s, e in for i in s..<e { dst[i] = v } }
        case let (.view(va), .scalar(y)):
            map(va, floats(va.buffer), dst, Elementwise.BoundRight(f: f, right: y))
        case let (.scalar(x), .view(vb)):
            map(vb, floats(vb.buffer), dst, Elementwise.BoundLeft(f: f, left: x))
        case let (.view(va), .view(vb)):
            let c = Shape.collapse(shape, [va.strides, vb.strides])
            let pa = floats(va.buffer) + va.offset, pb = floats(vb.buffer) + vb.offset
            if c.shape.count == 1 && c.strides[0][0] == 1 && c.strides[1][0] == 1 {
                parallelFor(n) { s, e in for i in s..<e { dst[i] = f.apply(pa[i], pb[i]) } }
                return
            }
            parallelFor(n) { s, e in
                forEachRow(shape: c.shape, strides: c.strides, offsets: [0, 0], range: s..<e) { out, count, pos, inner in
                    let ra = pa + pos[0], rb = pb + pos[1]
                    switch (inner[0], inner[1]) {
                    case (1, 1): for j in 0..<count { dst[out + j] = f.apply(ra[j], rb[j]) }
                    case (1, 0): let y = rb[0]; for j in 0..<count { dst[out + j] = f.apply(ra[j], y) }
                    case (0, 1): let x = ra[0]; for j in 0..<count { dst[out + j] = f.apply(x, rb[j]) }
                    case let (sa, sb): for j in 0..<count { dst[out + j] = f.apply(ra[j * sa], rb[j * sb]) }
                    }
                }
            }
        }
    }

    // MARK: Copies and constants

    func copy(_ source: StridedView, to destination: DeviceBuffer) {
        let src = UnsafeMutableRawPointer(source.buffer.handle).assumingMemoryBound(to: UInt32.self)
        let dst = UnsafeMutableRawPointer(destination.handle).assumingMemoryBound(to: UInt32.self)
        map(source, src, dst, Elementwise.Identity())
    }

    func cast(_ source: StridedView, from: DType, to: DType, destination: DeviceBuffer) {
        switch (from.isFloatStorage, to.isFloatStorage) {
        case (true, false):
            map(source, floats(source.buffer), ints(destination), Elementwise.FloatToInt())
        case (false, true):
            map(source, ints(source.buffer), floats(destination), Elementwise.IntToFloat())
        default:
            copy(source, to: destination)
        }
    }

    func fill(_ destination: DeviceBuffer, count: Int, value: Double, dtype: DType) {
        if dtype.isFloatStorage {
            let d = floats(destination), v = Float(value)
            parallelFor(count) { s, e in for i in s..<e { d[i] = v } }
        } else {
            let d = ints(destination), v = Int32(value)
            parallelFor(count) { s, e in for i in s..<e { d[i] = v } }
        }
    }

    func arange(_ destination: DeviceBuffer, count: Int, start: Double, step: Double, dtype: DType) {
        if dtype.isFloatStorage {
            let d = floats(destination)
            parallelFor(count) { s, e in for i in s..<e { d[i] = Float(start + Double(i) * step) } }
        } else {
            let d = ints(destination)
            parallelFor(count) { s, e in for i in s..<e { d[i] = Int32(start + Double(i) * step) } }
        }
    }

    /// splitmix64 of the counter, as in `Kernels/random.cl`.
    @inline(__always)
    static func randomBits(seed: UInt64, counter: UInt64) -> UInt64 {
        var z = seed &+ counter &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal sample from two random words by the Box-Muller transform
    /// `sqrt(-2 ln u1) cos(2 pi u2)`, computed with the same float additions, multiplications
    /// and bit operations, in the same order, as `standard_normal` in `Kernels/random.cl`:
    /// every step is correctly rounded in IEEE and in OpenCL C (contraction off there), so
    /// the samples are bit-identical on every device. `log`, `sqrt` and `cos` are polynomial
    /// and Newton approximations accurate to about 1e-6 relative, not the libm functions,
    /// whose results differ between devices.
    static func standardNormal(_ bits1: UInt64, _ bits2: UInt64) -> Float {
        let u1 = (Float(bits1 >> 40) + 0.5) * 0x1p-24, u2 = Float(bits2 >> 40) * 0x1p-24
        // ln(u1) = e ln 2 + ln(m), m in [sqrt(1/2), sqrt(2)), ln(1 + t) = t q(t) (minimax q).
        var e = Int32((u1.bitPattern >> 23) & 0xff) - 127
        var m = Float(bitPattern: (u1.bitPattern & 0x7f_ffff) | 0x3f80_0000)
        if m > 1.41421356 { m = m * 0.5; e += 1 }
        let t = m - 1
        var q: Float = 0.0874394551
        q = q * t - 0.143773302; q = q * t + 0.149490952; q = q * t - 0.165606961
        q = q * t + 0.199569777; q = q * t - 0.250021547; q = q * t + 0.333341837
        q = q * t - 0.499999881; q = q * t + 1
        let r = -2 * (Float(e) * 0.693147182 + t * q)
        // sqrt(r) = r / sqrt(r): an initial reciprocal square root from the bits, three Newton steps.
        var y = Float(bitPattern: 0x5f37_59df &- (r.bitPattern >> 1))
        let half = 0.5 * r
        y = y * (1.5 - half * y * y); y = y * (1.5 - half * y * y); y = y * (1.5 - half * y * y)
        let radius = r * y
        // cos(2 pi u2) from the quadrant of u2 and sin/cos Taylor polynomials on [0, pi/2).
        let quarter = u2 * 4, quadrant = Int32(quarter)
        let x = (quarter - Float(quadrant)) * 1.57079637, x2 = x * x
        var s: Float = -2.50521084e-08
        s = s * x2 + 2.75573192e-06; s = s * x2 - 1.98412698e-04; s = s * x2 + 8.33333333e-03
        s = s * x2 - 1.66666667e-01; s = s * x2 + 1; s = s * x
        var c: Float = 2.08767570e-09
        c = c * x2 - 2.75573192e-07; c = c * x2 + 2.48015873e-05; c = c * x2 - 1.38888889e-03
        c = c * x2 + 4.16666667e-02; c = c * x2 - 0.5; c = c * x2 + 1
        let angle = quadrant == 0 ? c : quadrant == 1 ? -s : quadrant == 2 ? -c : s
        return radius * angle
    }

    func random(_ destination: DeviceBuffer, count: Int, distribution: RandomDistribution, seed: UInt64, offset: UInt64) {
        switch distribution {
        case let .uniform(low, high):
            let d = floats(destination)
            parallelFor(count) { s, e in
                for i in s..<e {
                    let u = Float(CPUBackend.randomBits(seed: seed, counter: offset &+ UInt64(i)) >> 40) * 0x1p-24
                    d[i] = low.addingProduct(high - low, u)
                }
            }
        case let .normal(mean, std):
            let d = floats(destination)
            parallelFor(count) { s, e in
                for i in s..<e {
                    let c = offset &+ 2 &* UInt64(i)
                    let z = CPUBackend.standardNormal(CPUBackend.randomBits(seed: seed, counter: c),
                                                      CPUBackend.randomBits(seed: seed, counter: c &+ 1))
                    d[i] = mean + std * z
                }
            }
        case let .integer(low, high):
            let d = ints(destination)
            let range = UInt64(Int64(high) - Int64(low))
            parallelFor(count) { s, e in
                for i in s..<e {
                    let h = CPUBackend.randomBits(seed: seed, counter: offset &+ UInt64(i))
                    d[i] = low &+ Int32(truncatingIfNeeded: ((h >> 32) &* range) >> 32)
                }
            }
        }
    }

    // MARK: Math

    func unary(_ op: UnaryOp, _ source: StridedView, destination: DeviceBuffer) {
        let s = floats(source.buffer), d = floats(destination)
        typealias E = Elementwise
        switch op {
        case .neg: map(source, s, d, E.Neg())
        case .abs: map(source, s, d, E.Abs())
        case .sign: map(source, s, d, E.Sign())
        case .exp: map(source, s, d, E.Exp())
        case .log: map(source, s, d, E.Log())
        case .sqrt: map(source, s, d, E.Sqrt())
        case .rsqrt: map(source, s, d, E.Rsqrt())
        case .square: map(source, s, d, E.Square())
        case .reciprocal: map(source, s, d, E.Reciprocal())
        case .sin: map(source, s, d, E.Sin())
        case .cos: map(source, s, d, E.Cos())
        case .tanh: map(source, s, d, E.Tanh())
        case .sigmoid: map(source, s, d, E.Sigmoid())
        case .relu: map(source, s, d, E.Relu())
        case .gelu: map(source, s, d, E.Gelu())
        case .geluTanh: map(source, s, d, E.GeluTanh())
        case .erf: map(source, s, d, E.Erf())
        case .leakyRelu(let slope): map(source, s, d, E.LeakyRelu(slope: slope))
        case let .clamp(lo, hi): map(source, s, d, E.Clamp(lower: lo, upper: hi))
        case .powScalar(let p): map(source, s, d, E.BoundRight(f: E.Pow(), right: p))
        }
    }

    func binary(_ op: BinaryOp, _ a: Operand, _ b: Operand, shape: [Int], destination: DeviceBuffer) {
        let d = floats(destination)
        typealias E = Elementwise
        switch op {
        case .add: zip2(a, b, shape: shape, d, E.Add())
        case .sub: zip2(a, b, shape: shape, d, E.Sub())
        case .mul: zip2(a, b, shape: shape, d, E.Mul())
        case .div: zip2(a, b, shape: shape, d, E.Div())
        case .pow: zip2(a, b, shape: shape, d, E.Pow())
        case .maximum: zip2(a, b, shape: shape, d, E.Maximum())
        case .minimum: zip2(a, b, shape: shape, d, E.Minimum())
        case .eq: zip2(a, b, shape: shape, d, E.Equal())
        case .ne: zip2(a, b, shape: shape, d, E.NotEqual())
        case .lt: zip2(a, b, shape: shape, d, E.Less())
        case .le: zip2(a, b, shape: shape, d, E.LessEqual())
        case .gt: zip2(a, b, shape: shape, d, E.Greater())
        case .ge: zip2(a, b, shape: shape, d, E.GreaterEqual())
        }
    }

    func select(_ condition: StridedView, _ a: Operand, _ b: Operand, shape: [Int], destination: DeviceBuffer) {
        let n = Shape.count(shape)
        // Scalars become stride-0 reads of a local constant, so one strided loop serves all cases.
        var constants: [Float] = [0, 0]
        var bases: [UnsafeMutablePointer<Float>] = []
        var strides: [[Int]] = [condition.strides]
        constants.withUnsafeMutableBufferPointer { local in
            bases.append(floats(condition.buffer) + condition.offset)
            for (k, operand) in [a, b].enumerated() {
                switch operand {
                case .scalar(let v):
                    local[k] = v
                    bases.append(local.baseAddress! + k)
                    strides.append([Int](repeating: 0, count: shape.count))
                case .view(let v):
                    bases.append(floats(v.buffer) + v.offset)
                    strides.append(v.strides)
                }
            }
            let c = Shape.collapse(shape, strides)
            let d = floats(destination)
            let (pc, pa, pb) = (bases[0], bases[1], bases[2])
            parallelFor(n) { s, e in
                forEachRow(shape: c.shape, strides: c.strides, offsets: [0, 0, 0], range: s..<e) { out, count, pos, inner in
                    let rc = pc + pos[0], ra = pa + pos[1], rb = pb + pos[2]
                    let (sc, sa, sb) = (inner[0], inner[1], inner[2])
                    for j in 0..<count { d[out + j] = rc[j * sc] != 0 ? ra[j * sa] : rb[j * sb] }
                }
            }
        }
    }
}

/// A per-element function the CPU loops are specialised on.
protocol ElementFunction {
    associatedtype Input
    associatedtype Output
    func apply(_ x: Input) -> Output
}

/// A two-operand per-element function.
protocol BinaryFunction {
    func apply(_ a: Float, _ b: Float) -> Float
}

/// Function objects for the CPU loops: one type per op, so each generic loop is specialised
/// for its op and the op's body is inlined (and vectorised) into the loop.
enum Elementwise {
    struct Neg: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { -x } }
    struct Abs: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { Swift.abs(x) } }
    struct Sign: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : x) } }
    struct Exp: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.exp(x) } }
    struct Log: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.log(x) } }
    struct Sqrt: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { x.squareRoot() } }
    struct Rsqrt: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { 1 / x.squareRoot() } }
    struct Square: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { x * x } }
    struct Reciprocal: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { 1 / x } }
    struct Sin: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.sin(x) } }
    struct Cos: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.cos(x) } }
    struct Tanh: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.tanh(x) } }
    struct Sigmoid: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) } }
    struct Relu: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { x > 0 ? x : 0 } }
    struct Gelu: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { 0.5 * x * (1 + Foundation.erf(x * 0.707_106_781_186_547_5)) } }
    /// GELU's tanh form as x·sigmoid(2u), u = √(2/π)·(x + 0.044715·x³), which equals
    /// 0.5·x·(1 + tanh(u)): libm's `exp` costs a third of its `tanh` here (measured).
    struct GeluTanh: ElementFunction {
        @inline(__always) func apply(_ x: Float) -> Float {
            x / (1 + Foundation.exp(-1.595_769_121_605_731 * (x + 0.044_715 * x * x * x)))
        }
    }
    struct Erf: ElementFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.erf(x) } }
    struct Add: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a + b } }
    struct Sub: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a - b } }
    struct Mul: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a * b } }
    struct Div: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a / b } }
    struct Pow: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { Foundation.pow(a, b) } }
    struct Maximum: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a.isNaN || b.isNaN ? .nan : Swift.max(a, b) } }
    struct Minimum: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a.isNaN || b.isNaN ? .nan : Swift.min(a, b) } }
    struct Equal: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a == b ? 1 : 0 } }
    struct NotEqual: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a != b ? 1 : 0 } }
    struct Less: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a < b ? 1 : 0 } }
    struct LessEqual: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a <= b ? 1 : 0 } }
    struct Greater: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a > b ? 1 : 0 } }
    struct GreaterEqual: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a >= b ? 1 : 0 } }
    struct LeakyRelu: ElementFunction {
        let slope: Float
        @inline(__always) func apply(_ x: Float) -> Float { x > 0 ? x : slope * x }
    }

    struct BoundRight<F: BinaryFunction>: ElementFunction {
        let f: F, right: Float
        @inline(__always) func apply(_ x: Float) -> Float { f.apply(x, right) }
    }

    struct BoundLeft<F: BinaryFunction>: ElementFunction {
        let f: F, left: Float
        @inline(__always) func apply(_ x: Float) -> Float { f.apply(left, x) }
    }

    struct Clamp: ElementFunction {
        let lower: Float, upper: Float
        @inline(__always) func apply(_ x: Float) -> Float { Swift.min(Swift.max(x, lower), upper) }
    }

    struct Identity: ElementFunction {
        @inline(__always) func apply(_ x: UInt32) -> UInt32 { x }
    }

    /// Truncation toward zero, saturating, NaN to 0 (as OpenCL's convert_int_sat_rtz).
    struct FloatToInt: ElementFunction {
        @inline(__always) func apply(_ x: Float) -> Int32 {
            if x.isNaN { return 0 }
            if x >= 2_147_483_648 { return Int32.max }
            if x <= -2_147_483_648 { return Int32.min }
            return Int32(x.rounded(.towardZero))
        }
    }

    struct IntToFloat: ElementFunction {
        @inline(__always) func apply(_ x: Int32) -> Float { Float(x) }
    }
}
