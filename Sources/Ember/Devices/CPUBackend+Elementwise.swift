import CPUKernels
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
        let base = src + source.offset
        if source.isContiguous {
            parallelFor(n) { s, e in for i in s..<e { dst[i] = f.apply(base[i]) } }
            return
        }
        let c = Shape.collapse(source.shape, [source.strides])
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

    /// Elements per block of the tiled loops: the two Float32 blocks (8 KiB) stay in L1.
    static let tile = 1024

    /// `dst[i] = narrow(f(widen(a[i]), widen(b[i])))` for `n` contiguous elements of storage that
    /// `convertsInBlocks`, a nil operand being the scalar beside it: each thread widens a block
    /// of each operand into Float32 scratch (vectorised C), computes there and narrows it back,
    /// one pass over memory and no per-element conversions. An op's Float32 C kernel (`dense`),
    /// when it has one, computes each block in place of `f`.
    @inline(__always)
    private func tiled<S: FloatStorage, O: FloatStorage, F: PairFunction>(_ n: Int, _ a: UnsafePointer<S.Bits>?, _ x: Float,
                                                                             _ b: UnsafePointer<S.Bits>?, _ y: Float,
                                                                             _ dst: UnsafeMutablePointer<O.Bits>, _ f: F,
                                                                             _: S.Type, _: O.Type, dense: DenseKernel? = nil) {
        let shared = UncheckedSendable((a: a, b: b, dst: dst))
        parallelFor(n) { s, e in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * CPUBackend.tile) { scratch in
                let (a, b, dst) = shared.value
                let ba = scratch.baseAddress!, bb = ba + CPUBackend.tile
                var i = s
                while i < e {
                    let m = Swift.min(CPUBackend.tile, e - i)
                    if let a { S.widen(a + i, into: ba, count: m) }
                    if let b { S.widen(b + i, into: bb, count: m) }
                    switch (a, b, dense) {
                    case (_?, _?, .binary(let kernel)?): kernel(ba, bb, ba, m)
                    case (_?, nil, .unary(let kernel)?): kernel(ba, ba, m)
                    case (_?, _?, _): for j in 0..<m { ba[j] = f.apply(ba[j], bb[j]) }
                    case (_?, nil, _): for j in 0..<m { ba[j] = f.apply(ba[j], y) }
                    default: for j in 0..<m { ba[j] = f.apply(x, bb[j]) }
                    }
                    O.narrow(ba, into: dst + i, count: m)
                    i += m
                }
            }
        }
    }

    /// `dst[i] = f(a[i], b[i])` over `shape`, each operand a broadcast view or a scalar, the
    /// views' elements stored as `S`, the destination's as `O`.
    @inline(__always)
    private func zip2<S: FloatStorage, O: FloatStorage, F: BinaryFunction>(_ a: Operand, _ b: Operand, shape: [Int],
                                                                            _ dst: UnsafeMutablePointer<O.Bits>, _ f: F,
                                                                            _: S.Type, _: O.Type, dense: DenseBinaryKernel? = nil) {
        let n = Shape.count(shape)
        switch (a, b) {
        case let (.scalar(x), .scalar(y)):
            let v = O.narrow(f.apply(x, y))
            parallelFor(n) { s, e in for i in s..<e { dst[i] = v } }
        case let (.view(va), .scalar(y)) where S.convertsInBlocks && va.isContiguous:
            tiled(n, elements(va.buffer, as: S.Bits.self) + va.offset, 0, nil, y, dst, f, S.self, O.self)
        case let (.scalar(x), .view(vb)) where S.convertsInBlocks && vb.isContiguous:
            tiled(n, nil, x, elements(vb.buffer, as: S.Bits.self) + vb.offset, 0, dst, f, S.self, O.self)
        case let (.view(va), .scalar(y)):
            map(va, elements(va.buffer, as: S.Bits.self), dst, Elementwise.Stored<S, O, Elementwise.BoundRight<F>>(Elementwise.BoundRight(f: f, right: y)))
        case let (.scalar(x), .view(vb)):
            map(vb, elements(vb.buffer, as: S.Bits.self), dst, Elementwise.Stored<S, O, Elementwise.BoundLeft<F>>(Elementwise.BoundLeft(f: f, left: x)))
        case let (.view(va), .view(vb)):
            let pa = elements(va.buffer, as: S.Bits.self) + va.offset, pb = elements(vb.buffer, as: S.Bits.self) + vb.offset
            @inline(__always) func apply(_ x: S.Bits, _ y: S.Bits) -> O.Bits { O.narrow(f.apply(S.widen(x), S.widen(y))) }
            if va.isContiguous && vb.isContiguous {
                if S.convertsInBlocks { return tiled(n, pa, 0, pb, 0, dst, f, S.self, O.self, dense: dense.map(DenseKernel.binary)) }
                parallelFor(n) { s, e in for i in s..<e { dst[i] = apply(pa[i], pb[i]) } }
                return
            }
            let c = Shape.collapse(shape, [va.strides, vb.strides])
            parallelFor(n) { s, e in
                forEachRow(shape: c.shape, strides: c.strides, offsets: [0, 0], range: s..<e) { out, count, pos, inner in
                    let ra = pa + pos[0], rb = pb + pos[1]
                    switch (inner[0], inner[1]) {
                    case (1, 1): for j in 0..<count { dst[out + j] = apply(ra[j], rb[j]) }
                    case (1, 0): let y = rb[0]; for j in 0..<count { dst[out + j] = apply(ra[j], y) }
                    case (0, 1): let x = ra[0]; for j in 0..<count { dst[out + j] = apply(x, rb[j]) }
                    case let (sa, sb): for j in 0..<count { dst[out + j] = apply(ra[j * sa], rb[j * sb]) }
                    }
                }
            }
        }
    }

    // MARK: Copies and constants

    func copy(_ source: StridedView, to destination: DeviceBuffer, at destinationOffset: Int) {
        copy(source, into: StridedView(buffer: destination, offset: destinationOffset, shape: source.shape,
                                       strides: Shape.contiguousStrides(source.shape), dtype: source.dtype))
    }

    func copy(_ source: StridedView, into destination: StridedView) {
        pool.noteKernels(1, bytes: 2 * Traffic.of(source))
        let c = Shape.collapse(source.shape, [source.strides, destination.strides])
        func run<T>(_: T.Type) {
            let src = UnsafePointer(elements(source.buffer, as: T.self) + source.offset)
            let dst = elements(destination.buffer, as: T.self) + destination.offset
            parallelFor(source.count) { s, e in
                forEachRow(shape: c.shape, strides: c.strides, offsets: [0, 0], range: s..<e) { _, count, pos, inner in
                    let p = src + pos[0], q = dst + pos[1], a = inner[0], b = inner[1]
                    if a == 1 && b == 1 {
                        q.update(from: p, count: count)
                    } else {
                        for j in 0..<count { q[j * b] = p[j * a] }
                    }
                }
            }
        }
        switch source.dtype.byteSize {
        case 1: run(UInt8.self)
        case 2: run(UInt16.self)
        case 4: run(UInt32.self)
        default: run(UInt64.self)
        }
    }

    func cast(_ source: StridedView, to dtype: DType, destination: DeviceBuffer) {
        if source.dtype == dtype { return copy(source, to: destination) }
        pool.noteKernels(1, bytes: Traffic.of(source) + Traffic.elements(source.count, dtype))
        if source.isContiguous, source.dtype.isFloatingPoint, dtype.isFloatingPoint {
            func run<From: FloatStorage>(_: From.Type) {
                switch dtype {
                case .float16: convert(source, From.self, Elementwise.Half.self, destination)
                case .bfloat16: convert(source, From.self, Elementwise.BFloat16.self, destination)
                default: convert(source, From.self, Float.self, destination)
                }
            }
            switch source.dtype {
            case .float16: return run(Elementwise.Half.self)
            case .bfloat16: return run(Elementwise.BFloat16.self)
            default: return run(Float.self)
            }
        }
        switch source.dtype {
        case .float32: cast(source, from: Float.self, to: dtype, destination)
        case .float16: cast(source, from: Elementwise.Half.self, to: dtype, destination)
        case .bfloat16: cast(source, from: Elementwise.BFloat16.self, to: dtype, destination)
        case .int32: cast(source, from: Int32.self, to: dtype, destination)
        case .int64: cast(source, from: Int64.self, to: dtype, destination)
        case .uint8: cast(source, from: UInt8.self, to: dtype, destination)
        case .bool: cast(source, from: Elementwise.Mask.self, to: dtype, destination)
        }
    }

    /// A cast of contiguous elements between float types with the vectorised C conversions of
    /// the 16-bit types, which give the bits of the per-element path below (widening is exact,
    /// rounding is to nearest even): straight from or into Float32, else a block at a time
    /// through Float32 scratch.
    private func convert<From: FloatStorage, To: FloatStorage>(_ source: StridedView, _: From.Type, _: To.Type,
                                                                _ destination: DeviceBuffer) {
        let shared = UncheckedSendable((src: UnsafePointer(elements(source.buffer, as: From.Bits.self) + source.offset),
                                        dst: elements(destination, as: To.Bits.self)))
        if From.self == Float.self || To.self == Float.self {
            return parallelFor(source.count) { s, e in
                let (src, dst) = shared.value
                if From.self == Float.self {
                    To.narrow(UnsafeRawPointer(src + s).assumingMemoryBound(to: Float.self), into: dst + s, count: e - s)
                } else {
                    From.widen(src + s, into: UnsafeMutableRawPointer(dst + s).assumingMemoryBound(to: Float.self), count: e - s)
                }
            }
        }
        parallelFor(source.count) { s, e in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: CPUBackend.tile) { scratch in
                let (src, dst) = shared.value, block = scratch.baseAddress!
                var i = s
                while i < e {
                    let m = Swift.min(CPUBackend.tile, e - i)
                    From.widen(src + i, into: block, count: m)
                    To.narrow(block, into: dst + i, count: m)
                    i += m
                }
            }
        }
    }

    /// A cast from elements stored as `From` to `dtype`, through `CastElement`'s Double.
    private func cast<From: CastElement>(_ source: StridedView, from: From.Type, to dtype: DType, _ destination: DeviceBuffer) {
        let src = elements(source.buffer, as: From.Bits.self)
        func run<To: CastElement>(_: To.Type) {
            map(source, src, elements(destination, as: To.Bits.self), Elementwise.Convert<From, To>())
        }
        switch dtype {
        case .float32: run(Float.self)
        case .float16: run(Elementwise.Half.self)
        case .bfloat16: run(Elementwise.BFloat16.self)
        case .int32: run(Int32.self)
        case .int64: run(Int64.self)
        case .uint8: run(UInt8.self)
        case .bool: run(Elementwise.Mask.self)
        }
    }

    func fill(_ destination: DeviceBuffer, count: Int, value: Double, dtype: DType) {
        pool.noteKernels(1, bytes: Traffic.elements(count, dtype))
        let bits = dtype.bits(of: value)
        func run<T: FixedWidthInteger>(_: T.Type) {
            let d = elements(destination, as: T.self), v = T(truncatingIfNeeded: bits)
            parallelFor(count) { s, e in for i in s..<e { d[i] = v } }
        }
        switch dtype.byteSize {
        case 1: run(UInt8.self)
        case 2: run(UInt16.self)
        case 4: run(UInt32.self)
        default: run(UInt64.self)
        }
    }

    func arange(_ destination: DeviceBuffer, count: Int, start: Double, step: Double, dtype: DType) {
        pool.noteKernels(1, bytes: Traffic.elements(count, dtype))
        check(dtype == .float32 || dtype == .int32, "arange: the backend writes float32 or int32, not \(dtype)")
        if dtype == .float32 {
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
        pool.noteKernels(1, bytes: Traffic.elements(count))
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
        pool.noteKernels(1, bytes: 2 * Traffic.of(source))
        op.kernel.cpu(self, source, destination, op.p0, op.p1)
    }

    /// The loop of one unary op (`UnaryKernel.cpu`), specialised on its function object and on
    /// the float storage type of the source (the destination's too).
    @inline(__always)
    func unaryLoop<F: UnaryFunction>(_ source: StridedView, _ destination: DeviceBuffer, _ f: F, dense: DenseUnaryKernel?,
                                     half: ember_half_unary_op?) {
        if let dense, source.dtype == .float32, source.isContiguous {
            let x = UnsafePointer(floats(source.buffer) + source.offset), y = floats(destination)
            return parallelFor(source.count) { s, e in dense(x + s, y + s, e - s) }
        }
        func run<S: FloatStorage>(_: S.Type) {
            if let half, let format = S.halfFormat, source.isContiguous {
                let x = UnsafePointer(elements(source.buffer, as: UInt16.self) + source.offset), y = elements(destination, as: UInt16.self)
                return parallelFor(source.count) { s, e in ember_half_unary(half, format, x + s, y + s, e - s) }
            }
            if S.convertsInBlocks && source.isContiguous {
                return tiled(source.count, elements(source.buffer, as: S.Bits.self) + source.offset, 0, nil, 0,
                             elements(destination, as: S.Bits.self), Elementwise.Unary(f), S.self, S.self,
                             dense: dense.map(DenseKernel.unary))
            }
            map(source, elements(source.buffer, as: S.Bits.self), elements(destination, as: S.Bits.self), Elementwise.Stored<S, S, F>(f))
        }
        switch source.dtype {
        case .float16: run(Elementwise.Half.self)
        case .bfloat16: run(Elementwise.BFloat16.self)
        default: run(Float.self)
        }
    }

    func binary(_ op: BinaryOp, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.binary(op, a, b, shape: shape, dtype: dtype))
        op.kernel.cpu(self, a, b, shape, dtype, destination)
    }

    /// The loop of one binary op (`BinaryKernel.cpu`), specialised on its function object, the
    /// operands' float storage type and whether it writes a mask.
    @inline(__always)
    func binaryLoop<F: BinaryFunction>(_ a: Operand, _ b: Operand, shape: [Int], dtype: DType, _ destination: DeviceBuffer,
                                       _ f: F, mask: Bool, dense: DenseBinaryKernel?, half: ember_half_binary_op?) {
        if let dense, dtype == .float32, !mask, case .view(let va) = a, case .view(let vb) = b,
           va.dtype == .float32, vb.dtype == .float32, va.shape == shape, vb.shape == shape, va.isContiguous, vb.isContiguous {
            let pa = UnsafePointer(floats(va.buffer) + va.offset), pb = UnsafePointer(floats(vb.buffer) + vb.offset), y = floats(destination)
            return parallelFor(Shape.count(shape)) { s, e in dense(pa + s, pb + s, y + s, e - s) }
        }
        func run<S: FloatStorage>(_: S.Type) {
            if let half, let format = S.halfFormat, !mask {
                let y = elements(destination, as: UInt16.self)
                if let (pa, sa, pb, sb) = halfOperands(a, b, shape: shape) {
                    return parallelFor(Shape.count(shape)) { s, e in
                        ember_half_binary(half, format, pa.map { $0 + s }, sa, pb.map { $0 + s }, sb, y + s, e - s)
                    }
                }
                if halfRows(half, format, a, b, shape: shape, y, S.self) { return }
            }
            if mask {
                zip2(a, b, shape: shape, elements(destination, as: UInt8.self), f, S.self, Elementwise.Mask.self)
            } else {
                zip2(a, b, shape: shape, elements(destination, as: S.Bits.self), f, S.self, S.self, dense: dense)
            }
        }
        switch dtype {
        case .float16: run(Elementwise.Half.self)
        case .bfloat16: run(Elementwise.BFloat16.self)
        default: run(Float.self)
        }
    }

    /// `ember_half_binary` one output row at a time over two broadcast 16-bit views whose rows
    /// are each dense or one repeated element (a bias beside each row of channels, a row beside
    /// a matrix), the repeated side passed as a scalar; false (nothing done) for other layouts
    /// and for rows too short to pay for a call.
    private func halfRows<S: FloatStorage>(_ op: ember_half_binary_op, _ format: ember_half_format, _ a: Operand, _ b: Operand,
                                           shape: [Int], _ y: UnsafeMutablePointer<UInt16>, _: S.Type) -> Bool {
        guard case .view(let va) = a, case .view(let vb) = b else { return false }
        let c = Shape.collapse(shape, [va.strides, vb.strides])
        guard let last = c.shape.last, last >= 16 else { return false }
        let inner = c.strides.map { $0[$0.count - 1] }
        guard inner.allSatisfy({ $0 == 0 || $0 == 1 }), inner.contains(1) else { return false }
        let pa = elements(va.buffer, as: S.Bits.self) + va.offset, pb = elements(vb.buffer, as: S.Bits.self) + vb.offset
        let shared = UncheckedSendable((a: pa, b: pb))
        parallelFor(Shape.count(shape)) { s, e in
            let (pa, pb) = shared.value
            forEachRow(shape: c.shape, strides: c.strides, offsets: [0, 0], range: s..<e) { out, count, pos, inner in
                let ra = pa + pos[0], rb = pb + pos[1]
                /// A row's pointer, or nil and its repeated element widened.
                func side(_ row: UnsafeMutablePointer<S.Bits>, _ stride: Int) -> (UnsafePointer<UInt16>?, Float) {
                    stride == 0 ? (nil, S.widen(row[0])) : (UnsafeRawPointer(row).assumingMemoryBound(to: UInt16.self), 0)
                }
                let (xa, sa) = side(ra, inner[0]), (xb, sb) = side(rb, inner[1])
                ember_half_binary(op, format, xa, sa, xb, sb, y + out, count)
            }
        }
        return true
    }

    /// The operands of `ember_half_binary` (a pointer, or nil and the scalar), when each is a
    /// contiguous 16-bit view of the result's shape or a scalar, not both scalars.
    private func halfOperands(_ a: Operand, _ b: Operand, shape: [Int])
        -> (UnsafePointer<UInt16>?, Float, UnsafePointer<UInt16>?, Float)? {
        func side(_ operand: Operand) -> (UnsafePointer<UInt16>?, Float)? {
            switch operand {
            case .scalar(let x): return (nil, x)
            case .view(let v) where v.shape == shape && v.isContiguous:
                return (UnsafePointer(elements(v.buffer, as: UInt16.self) + v.offset), 0)
            case .view: return nil
            }
        }
        guard let (pa, sa) = side(a), let (pb, sb) = side(b), pa != nil || pb != nil else { return nil }
        return (pa, sa, pb, sb)
    }

    func select(_ condition: StridedView, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.select(a, b, shape: shape, dtype: dtype))
        switch dtype {
        case .float16: select(condition, a, b, shape: shape, Elementwise.Half.self, destination)
        case .bfloat16: select(condition, a, b, shape: shape, Elementwise.BFloat16.self, destination)
        default: select(condition, a, b, shape: shape, Float.self, destination)
        }
    }

    /// `select` over operands stored as `S`.
    private func select<S: FloatStorage>(_ condition: StridedView, _ a: Operand, _ b: Operand, shape: [Int], _: S.Type,
                                         _ destination: DeviceBuffer) {
        let n = Shape.count(shape)
        // Scalars become stride-0 reads of a local constant, so one strided loop serves all cases.
        var constants = [S.narrow(0), S.narrow(0)]
        var bases: [UnsafeMutablePointer<S.Bits>] = []
        var strides: [[Int]] = [condition.strides]
        constants.withUnsafeMutableBufferPointer { local in
            for (k, operand) in [a, b].enumerated() {
                switch operand {
                case .scalar(let v):
                    local[k] = S.narrow(v)
                    bases.append(local.baseAddress! + k)
                    strides.append([Int](repeating: 0, count: shape.count))
                case .view(let v):
                    bases.append(elements(v.buffer, as: S.Bits.self) + v.offset)
                    strides.append(v.strides)
                }
            }
            let c = Shape.collapse(shape, strides)
            let d = elements(destination, as: S.Bits.self)
            let (pc, pa, pb) = (elements(condition.buffer, as: UInt8.self) + condition.offset, bases[0], bases[1])
            parallelFor(n) { s, e in
                forEachRow(shape: c.shape, strides: c.strides, offsets: [0, 0, 0], range: s..<e) { out, count, pos, inner in
                    let rc = pc + pos[0], ra = pa + pos[1], rb = pb + pos[2]
                    // The common layouts (dense rows, a scalar or broadcast side) get loops the
                    // compiler vectorises; the rest the strided one.
                    switch (inner[0], inner[1], inner[2]) {
                    case (1, 1, 1): for j in 0..<count { d[out + j] = rc[j] != 0 ? ra[j] : rb[j] }
                    case (1, 1, 0): let y = rb[0]; for j in 0..<count { d[out + j] = rc[j] != 0 ? ra[j] : y }
                    case (1, 0, 1): let x = ra[0]; for j in 0..<count { d[out + j] = rc[j] != 0 ? x : rb[j] }
                    case let (sc, sa, sb): for j in 0..<count { d[out + j] = rc[j * sc] != 0 ? ra[j * sa] : rb[j * sb] }
                    }
                }
            }
        }
    }
}

/// A per-element map the CPU loops are specialised on (stored bits to stored bits).
protocol ElementFunction {
    associatedtype Input
    associatedtype Output
    func apply(_ x: Input) -> Output
}

/// A unary op's math on Float32, made from the op's two parameters (see `UnaryKernel`).
protocol UnaryFunction {
    init(_ p0: Float, _ p1: Float)
    func apply(_ x: Float) -> Float
}

/// A unary op without parameters.
protocol PlainUnaryFunction: UnaryFunction {
    init()
}

extension PlainUnaryFunction {
    /// Ignores the parameters.
    init(_ p0: Float, _ p1: Float) { self.init() }
}

/// A two-operand op's math on Float32.
protocol BinaryFunction: PairFunction {
    init()
}

/// Float32 math of two values: what the tiled loops compute (a binary op, or a unary one of
/// its left operand).
protocol PairFunction {
    func apply(_ a: Float, _ b: Float) -> Float
}

/// How a float storage type's elements widen to Float32 and round back.
protocol FloatStorage {
    associatedtype Bits
    static func widen(_ bits: Bits) -> Float
    static func narrow(_ x: Float) -> Bits
    /// True when contiguous loops should convert `tile` elements at a time with `widen(_:into:count:)`
    /// and `narrow(_:into:count:)` (vectorised C for the 16-bit types) instead of per element.
    static var convertsInBlocks: Bool { get }
    /// The format of the C 16-bit kernels (`ember_half_binary`, ...) for this storage, nil for
    /// the others.
    static var halfFormat: ember_half_format? { get }
    /// Widens `count` contiguous elements into Float32.
    static func widen(_ source: UnsafePointer<Bits>, into destination: UnsafeMutablePointer<Float>, count: Int)
    /// Rounds `count` contiguous Float32 values into this storage type.
    static func narrow(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Bits>, count: Int)
}

extension FloatStorage {
    static var convertsInBlocks: Bool { false }
    static var halfFormat: ember_half_format? { nil }
    @inline(__always)
    static func widen(_ source: UnsafePointer<Bits>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { destination[i] = widen(source[i]) }
    }
    @inline(__always)
    static func narrow(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Bits>, count: Int) {
        for i in 0..<count { destination[i] = narrow(source[i]) }
    }
}

extension Float: FloatStorage {
    @inline(__always) static func widen(_ bits: Float) -> Float { bits }
    @inline(__always) static func narrow(_ x: Float) -> Float { x }
}

/// An element type of casts. Float sources convert through Double (exact for them); integer
/// and bool sources through Int64, so integer-to-integer casts wrap (two's complement, as
/// PyTorch's) and integer-to-float casts round once.
protocol CastElement {
    associatedtype Bits
    /// True for the integer and bool types.
    static var isInteger: Bool { get }
    static func toDouble(_ bits: Bits) -> Double
    /// Rounds (float types) or truncates toward zero, saturating (integer types).
    static func fromDouble(_ x: Double) -> Bits
    /// An integer element's value (only called when `isInteger`).
    static func toInt64(_ bits: Bits) -> Int64
    /// `x` wrapped into this integer type (bool: `x != 0`; float types round).
    static func fromInt64(_ x: Int64) -> Bits
}

extension CastElement {
    static var isInteger: Bool { false }
    static func toInt64(_ bits: Bits) -> Int64 { saturated(toDouble(bits), Int64.self) }
    /// Float types: one rounding, through Float32 (exact for 16-bit targets' Float input).
    static func fromInt64(_ x: Int64) -> Bits { fromDouble(Double(Float(x))) }
}

/// The integer element types: values through Int64, wrapping.
protocol IntegerCastElement: CastElement where Bits: FixedWidthInteger {}

extension IntegerCastElement {
    static var isInteger: Bool { true }
    @inline(__always) static func toInt64(_ bits: Bits) -> Int64 { Int64(truncatingIfNeeded: bits) }
    @inline(__always) static func fromInt64(_ x: Int64) -> Bits { Bits(truncatingIfNeeded: x) }
}

extension Float: CastElement {
    @inline(__always) static func toDouble(_ bits: Float) -> Double { Double(bits) }
    @inline(__always) static func fromDouble(_ x: Double) -> Float { Float(x) }
}

/// Saturating truncation toward zero of `x` into `T` (NaN gives 0), as OpenCL's `convert_*_sat_rtz`.
@inline(__always)
private func saturated<T: FixedWidthInteger>(_ x: Double, _: T.Type) -> T {
    if x.isNaN { return 0 }
    if x >= Double(T.max) { return T.max }
    if x <= Double(T.min) { return T.min }
    return T(x.rounded(.towardZero))
}

extension Int32: IntegerCastElement {
    @inline(__always) static func toDouble(_ bits: Int32) -> Double { Double(bits) }
    @inline(__always) static func fromDouble(_ x: Double) -> Int32 { saturated(x, Int32.self) }
}

extension Int64: IntegerCastElement {
    @inline(__always) static func toDouble(_ bits: Int64) -> Double { Double(bits) }
    @inline(__always) static func fromDouble(_ x: Double) -> Int64 { saturated(x, Int64.self) }
}

extension UInt8: IntegerCastElement {
    @inline(__always) static func toDouble(_ bits: UInt8) -> Double { Double(bits) }
    /// Wraps modulo 256 after truncation to Int64 (as PyTorch's float-to-uint8 conversion does).
    @inline(__always) static func fromDouble(_ x: Double) -> UInt8 { UInt8(truncatingIfNeeded: saturated(x, Int64.self)) }
}

/// Function objects for the CPU loops: storage types, casts and adapters here, one type per op
/// beside its definition (`ElementwiseOps.swift`), so each generic loop is specialised for its
/// op and the op's body is inlined (and vectorised) into the loop.
enum Elementwise {
    /// IEEE half storage (bit patterns).
    enum Half: FloatStorage, CastElement {
        @inline(__always) static func widen(_ bits: UInt16) -> Float { ElementBits.halfToFloat(bits) }
        @inline(__always) static func narrow(_ x: Float) -> UInt16 { ElementBits.floatToHalf(x) }
        @inline(__always) static func toDouble(_ bits: UInt16) -> Double { Double(widen(bits)) }
        @inline(__always) static func fromDouble(_ x: Double) -> UInt16 { narrow(Float(x)) }
        static var convertsInBlocks: Bool { true }
        static var halfFormat: ember_half_format? { EMBER_FLOAT16 }
        static func widen(_ source: UnsafePointer<UInt16>, into destination: UnsafeMutablePointer<Float>, count: Int) {
            ember_f16_to_f32(source, destination, count)
        }
        static func narrow(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, count: Int) {
            ember_f32_to_f16(source, destination, count)
        }
    }

    /// bfloat16 storage (bit patterns).
    enum BFloat16: FloatStorage, CastElement {
        @inline(__always) static func widen(_ bits: UInt16) -> Float { ElementBits.bfloat16ToFloat(bits) }
        @inline(__always) static func narrow(_ x: Float) -> UInt16 { ElementBits.floatToBfloat16(x) }
        @inline(__always) static func toDouble(_ bits: UInt16) -> Double { Double(widen(bits)) }
        @inline(__always) static func fromDouble(_ x: Double) -> UInt16 { narrow(Float(x)) }
        static var convertsInBlocks: Bool { true }
        static var halfFormat: ember_half_format? { EMBER_BFLOAT16 }
        static func widen(_ source: UnsafePointer<UInt16>, into destination: UnsafeMutablePointer<Float>, count: Int) {
            ember_bf16_to_f32(source, destination, count)
        }
        static func narrow(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, count: Int) {
            ember_f32_to_bf16(source, destination, count)
        }
    }

    /// Bool storage: one byte, 0 or 1 (comparison outputs are masks).
    enum Mask: FloatStorage, CastElement {
        @inline(__always) static func widen(_ bits: UInt8) -> Float { bits != 0 ? 1 : 0 }
        @inline(__always) static func narrow(_ x: Float) -> UInt8 { x != 0 ? 1 : 0 }
        @inline(__always) static func toDouble(_ bits: UInt8) -> Double { bits != 0 ? 1 : 0 }
        @inline(__always) static func fromDouble(_ x: Double) -> UInt8 { x != 0 ? 1 : 0 }
        static var isInteger: Bool { true }
        @inline(__always) static func toInt64(_ bits: UInt8) -> Int64 { bits != 0 ? 1 : 0 }
        @inline(__always) static func fromInt64(_ x: Int64) -> UInt8 { x != 0 ? 1 : 0 }
    }

    /// A unary function applied to elements stored as `S`, the result stored as `O`.
    struct Stored<S: FloatStorage, O: FloatStorage, F: UnaryFunction>: ElementFunction {
        let f: F
        init(_ f: F) { self.f = f }
        @inline(__always) func apply(_ x: S.Bits) -> O.Bits { O.narrow(f.apply(S.widen(x))) }
    }

    /// A unary function as a binary one of its left operand (for the tiled loops).
    struct Unary<F: UnaryFunction>: PairFunction {
        let f: F
        init(_ f: F) { self.f = f }
        @inline(__always) func apply(_ x: Float, _ y: Float) -> Float { f.apply(x) }
    }

    /// A cast between stored types.
    struct Convert<From: CastElement, To: CastElement>: ElementFunction {
        @inline(__always) func apply(_ x: From.Bits) -> To.Bits {
            From.isInteger ? To.fromInt64(From.toInt64(x)) : To.fromDouble(From.toDouble(x))
        }
    }

    struct BoundRight<F: BinaryFunction>: UnaryFunction {
        let f: F, right: Float
        init(f: F, right: Float) { self.f = f; self.right = right }
        init(_ p0: Float, _ p1: Float) { f = F(); right = p0 }
        @inline(__always) func apply(_ x: Float) -> Float { f.apply(x, right) }
    }

    struct BoundLeft<F: BinaryFunction>: UnaryFunction {
        let f: F, left: Float
        init(f: F, left: Float) { self.f = f; self.left = left }
        init(_ p0: Float, _ p1: Float) { f = F(); left = p0 }
        @inline(__always) func apply(_ x: Float) -> Float { f.apply(left, x) }
    }
}
