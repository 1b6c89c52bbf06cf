import Foundation

/// Elementwise primitives of the CPU backend: copies, constants, random fills, unary,
/// binary and select. Each op's loop is specialised by inlining its closure, with fast
/// paths for contiguous operands and scalar operands.
extension CPUBackend {
    // MARK: Generic strided loops

    /// `dst[i] = f(source[i])` over a strided view.
    @inline(__always)
    private func map<T, U>(_ source: StridedView, _ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<U>, _ f: (T) -> U) {
        let n = source.count
        let c = Shape.collapse(source.shape, [source.strides])
        let base = src + source.offset
        if c.shape.count == 1 && c.strides[0][0] == 1 {
            parallelFor(n) { s, e in for i in s..<e { dst[i] = f(base[i]) } }
            return
        }
        parallelFor(n) { s, e in
            forEachRow(shape: c.shape, strides: c.strides, offsets: [0], range: s..<e) { out, count, pos, inner in
                let p = base + pos[0], st = inner[0]
                if st == 1 {
                    for j in 0..<count { dst[out + j] = f(p[j]) }
                } else {
                    for j in 0..<count { dst[out + j] = f(p[j * st]) }
                }
            }
        }
    }

    /// `dst[i] = f(a[i], b[i])` over `shape`, each operand a broadcast view or a scalar.
    @inline(__always)
    private func zip2(_ a: Operand, _ b: Operand, shape: [Int], _ dst: UnsafeMutablePointer<Float>, _ f: (Float, Float) -> Float) {
        let n = Shape.count(shape)
        switch (a, b) {
        case let (.scalar(x), .scalar(y)):
            let v = f(x, y)
            parallelFor(n) { s, e in for i in s..<e { dst[i] = v } }
        case let (.view(va), .scalar(y)):
            map(va, floats(va.buffer), dst) { f($0, y) }
        case let (.scalar(x), .view(vb)):
            map(vb, floats(vb.buffer), dst) { f(x, $0) }
        case let (.view(va), .view(vb)):
            let c = Shape.collapse(shape, [va.strides, vb.strides])
            let pa = floats(va.buffer) + va.offset, pb = floats(vb.buffer) + vb.offset
            if c.shape.count == 1 && c.strides[0][0] == 1 && c.strides[1][0] == 1 {
                parallelFor(n) { s, e in for i in s..<e { dst[i] = f(pa[i], pb[i]) } }
                return
            }
            parallelFor(n) { s, e in
                forEachRow(shape: c.shape, strides: c.strides, offsets: [0, 0], range: s..<e) { out, count, pos, inner in
                    let ra = pa + pos[0], rb = pb + pos[1]
                    switch (inner[0], inner[1]) {
                    case (1, 1): for j in 0..<count { dst[out + j] = f(ra[j], rb[j]) }
                    case (1, 0): let y = rb[0]; for j in 0..<count { dst[out + j] = f(ra[j], y) }
                    case (0, 1): let x = ra[0]; for j in 0..<count { dst[out + j] = f(x, rb[j]) }
                    case let (sa, sb): for j in 0..<count { dst[out + j] = f(ra[j * sa], rb[j * sb]) }
                    }
                }
            }
        }
    }

    // MARK: Copies and constants

    func copy(_ source: StridedView, to destination: DeviceBuffer) {
        let src = UnsafeMutableRawPointer(source.buffer.handle).assumingMemoryBound(to: UInt32.self)
        let dst = UnsafeMutableRawPointer(destination.handle).assumingMemoryBound(to: UInt32.self)
        map(source, src, dst) { $0 }
    }

    func cast(_ source: StridedView, from: DType, to: DType, destination: DeviceBuffer) {
        switch (from.isFloatStorage, to.isFloatStorage) {
        case (true, false):
            map(source, floats(source.buffer), ints(destination)) { x in
                if x.isNaN { return 0 }
                if x >= 2_147_483_648 { return Int32.max }
                if x <= -2147483648 { return Int32.min }
                return Int32(x.rounded(.towardZero))
            }
        case (false, true):
            map(source, ints(source.buffer), floats(destination)) { Float($0) }
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
                    let u1 = (Float(CPUBackend.randomBits(seed: seed, counter: c) >> 40) + 0.5) * 0x1p-24
                    let u2 = Float(CPUBackend.randomBits(seed: seed, counter: c &+ 1) >> 40) * 0x1p-24
                    d[i] = mean + std * (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Float.pi * u2)
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
        switch op {
        case .neg: map(source, s, d) { -$0 }
        case .abs: map(source, s, d) { Swift.abs($0) }
        case .sign: map(source, s, d) { $0 > 0 ? 1 : ($0 < 0 ? -1 : $0) }
        case .exp: map(source, s, d) { Foundation.exp($0) }
        case .log: map(source, s, d) { Foundation.log($0) }
        case .sqrt: map(source, s, d) { $0.squareRoot() }
        case .rsqrt: map(source, s, d) { 1 / $0.squareRoot() }
        case .square: map(source, s, d) { $0 * $0 }
        case .reciprocal: map(source, s, d) { 1 / $0 }
        case .sin: map(source, s, d) { Foundation.sin($0) }
        case .cos: map(source, s, d) { Foundation.cos($0) }
        case .tanh: map(source, s, d) { Foundation.tanh($0) }
        case .sigmoid: map(source, s, d) { 1 / (1 + Foundation.exp(-$0)) }
        case .relu: map(source, s, d) { $0 > 0 ? $0 : 0 }
        case .gelu: map(source, s, d) { 0.5 * $0 * (1 + Foundation.erf($0 * 0.707_106_781_186_547_5)) }
        case .erf: map(source, s, d) { Foundation.erf($0) }
        case .leakyRelu(let slope): map(source, s, d) { $0 > 0 ? $0 : slope * $0 }
        case let .clamp(lo, hi): map(source, s, d) { Swift.min(Swift.max($0, lo), hi) }
        case .powScalar(let p):
            if p == 2 { map(source, s, d) { $0 * $0 } } else { map(source, s, d) { Foundation.pow($0, p) } }
        }
    }

    func binary(_ op: BinaryOp, _ a: Operand, _ b: Operand, shape: [Int], destination: DeviceBuffer) {
        let d = floats(destination)
        switch op {
        case .add: zip2(a, b, shape: shape, d) { $0 + $1 }
        case .sub: zip2(a, b, shape: shape, d) { $0 - $1 }
        case .mul: zip2(a, b, shape: shape, d) { $0 * $1 }
        case .div: zip2(a, b, shape: shape, d) { $0 / $1 }
        case .pow: zip2(a, b, shape: shape, d) { Foundation.pow($0, $1) }
        case .maximum: zip2(a, b, shape: shape, d) { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }
        case .minimum: zip2(a, b, shape: shape, d) { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) }
        case .eq: zip2(a, b, shape: shape, d) { $0 == $1 ? 1 : 0 }
        case .ne: zip2(a, b, shape: shape, d) { $0 != $1 ? 1 : 0 }
        case .lt: zip2(a, b, shape: shape, d) { $0 < $1 ? 1 : 0 }
        case .le: zip2(a, b, shape: shape, d) { $0 <= $1 ? 1 : 0 }
        case .gt: zip2(a, b, shape: shape, d) { $0 > $1 ? 1 : 0 }
        case .ge: zip2(a, b, shape: shape, d) { $0 >= $1 ? 1 : 0 }
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
