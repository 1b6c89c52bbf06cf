import CPUKernels
import Foundation

/// Reductions of the CPU backend, vectorised with SIMD16 accumulators, and softmax (C with
/// AVX2/AVX-512 paths, `Sources/CPUKernels`).
extension CPUBackend {
    /// Sum of `n` contiguous floats with sixteen-lane partial sums.
    @inline(__always)
    static func contiguousSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        let raw = UnsafeRawPointer(p)
        var i = 0
        while i + 32 <= n {
            acc0 += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            acc1 += raw.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self)
            i += 32
        }
        var total = (acc0 + acc1).sum()
        while i < n { total += p[i]; i += 1 }
        return total
    }

    /// Sum of `n` contiguous elements stored as `S`, widened a `tile` at a time into Float32
    /// scratch (vectorised C for the 16-bit types) and summed there.
    @inline(__always)
    static func contiguousSum<S: FloatStorage>(_ p: UnsafePointer<S.Bits>, _ n: Int, _: S.Type) -> Float {
        if S.self == Float.self { return contiguousSum(UnsafeRawPointer(p).assumingMemoryBound(to: Float.self), n) }
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: tile) { scratch in
            var total: Float = 0, i = 0
            while i < n {
                let m = Swift.min(tile, n - i)
                S.widen(p + i, into: scratch.baseAddress!, count: m)
                total += contiguousSum(scratch.baseAddress!, m)
                i += m
            }
            return total
        }
    }

    func reduce(_ op: ReduceOp, _ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int, dtype: DType,
                destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.reduce(outer: outer, size: size, inner: inner, dtype: dtype))
        switch dtype {
        case .float16: reduce(op, source, offset, outer, size, inner, Elementwise.Half.self, destination)
        case .bfloat16: reduce(op, source, offset, outer, size, inner, Elementwise.BFloat16.self, destination)
        default: reduce(op, source, offset, outer, size, inner, Float.self, destination)
        }
    }

    /// `reduce` over elements stored as `S`.
    private func reduce<S: FloatStorage>(_ op: ReduceOp, _ source: DeviceBuffer, _ offset: Int, _ outer: Int, _ size: Int, _ inner: Int,
                                         _: S.Type, _ destination: DeviceBuffer) {
        let src = UnsafePointer(elements(source, as: S.Bits.self) + offset)
        if inner == 1 && op == .sum {
            let d = floats(destination)
            if outer < threads && size >= 2 * CPUBackend.parallelThreshold {
                // Few long rows: split each row across cores and combine the partial sums.
                for o in 0..<outer {
                    let chunks = threads * 4
                    let size0 = (size + chunks - 1) / chunks
                    var partial = [Float](repeating: 0, count: chunks)
                    partial.withUnsafeMutableBufferPointer { part in
                        let shared = UncheckedSendable((part: part, row: src + o * size))
                        DispatchQueue.concurrentPerform(iterations: chunks) { c in
                            let s = c * size0, e = Swift.min(size, s + size0)
                            shared.value.part[c] = s < e ? CPUBackend.contiguousSum(shared.value.row + s, e - s, S.self) : 0
                        }
                    }
                    d[o] = partial.reduce(0, +)
                }
            } else {
                parallelFor(outer, grain: Swift.max(1, CPUBackend.parallelThreshold / Swift.max(size, 1))) { s, e in
                    for o in s..<e { d[o] = CPUBackend.contiguousSum(src + o * size, size, S.self) }
                }
            }
            return
        }
        let d = floats(destination)
        switch op {
        case .sum: accumulate(src, outer, size, inner, d, S.self, combine: { $0 + $1 })
        case .max: accumulate(src, outer, size, inner, d, S.self, combine: { a, x in a.isNaN || x.isNaN ? .nan : Swift.max(a, x) })
        case .min: accumulate(src, outer, size, inner, d, S.self, combine: { a, x in a.isNaN || x.isNaN ? .nan : Swift.min(a, x) })
        case .argmax: argReduce(src, outer, size, inner, ints(destination), S.self, better: { x, best in x > best || (x.isNaN && !best.isNaN) })
        case .argmin: argReduce(src, outer, size, inner, ints(destination), S.self, better: { x, best in x < best || (x.isNaN && !best.isNaN) })
        }
    }

    /// `dst[o, i] = combine(... combine(src[o, 0, i], src[o, 1, i]) ..., src[o, size-1, i])` over
    /// the widened elements, walking rows of length `inner` so the inner loop is contiguous.
    @inline(__always)
    private func accumulate<S: FloatStorage>(_ src: UnsafePointer<S.Bits>, _ outer: Int, _ size: Int, _ inner: Int,
                                             _ d: UnsafeMutablePointer<Float>, _: S.Type, combine: (Float, Float) -> Float) {
        let work = outer * inner
        parallelFor(work, grain: Swift.max(1, CPUBackend.parallelThreshold / Swift.max(size, 1))) { s, e in
            var index = s
            while index < e {
                let o = index / inner, i0 = index % inner
                let i1 = Swift.min(inner, i0 + (e - index))
                let base = src + o * size * inner
                let out = d + o * inner
                for i in i0..<i1 { out[i] = S.widen(base[i]) }
                for k in 1..<Swift.max(size, 1) {
                    let row = base + k * inner
                    for i in i0..<i1 { out[i] = combine(out[i], S.widen(row[i])) }
                }
                index += i1 - i0
            }
        }
    }

    /// Index of the first element along axis 1 for which `better` holds against the best so far.
    @inline(__always)
    private func argReduce<S: FloatStorage>(_ src: UnsafePointer<S.Bits>, _ outer: Int, _ size: Int, _ inner: Int,
                                            _ d: UnsafeMutablePointer<Int32>, _: S.Type, better: (Float, Float) -> Bool) {
        parallelFor(outer * inner, grain: Swift.max(1, CPUBackend.parallelThreshold / Swift.max(size, 1))) { s, e in
            for index in s..<e {
                let o = index / inner, i = index % inner
                let base = src + o * size * inner + i
                var best = S.widen(base[0]), at = 0
                for k in 1..<Swift.max(size, 1) where better(S.widen(base[k * inner]), best) {
                    best = S.widen(base[k * inner])
                    at = k
                }
                d[index] = Int32(at)
            }
        }
    }

    func softmax(_ source: DeviceBuffer, offset: Int, rows: Int, cols: Int, log: Bool, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.elements(2 * rows * cols))
        let src = UnsafePointer(floats(source) + offset)
        let dst = floats(destination)
        parallelFor(rows, grain: Swift.max(1, 8192 / Swift.max(cols, 1))) { s, e in
            ember_softmax_rows(src + s * cols, dst + s * cols, e - s, cols, log ? 1 : 0)
        }
    }
}
