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

    /// Sum of `n` contiguous elements stored as `S` (Float32 or a 16-bit type, whose sum is one
    /// pass of C, `ember_half_sum`).
    @inline(__always)
    static func contiguousSum<S: FloatStorage>(_ p: UnsafePointer<S.Bits>, _ n: Int, _: S.Type) -> Float {
        let raw = UnsafeRawPointer(p)
        if let format = S.halfFormat { return ember_half_sum(format, raw.assumingMemoryBound(to: UInt16.self), n) }
        return contiguousSum(raw.assumingMemoryBound(to: Float.self), n)
    }

    /// Σ a[i]·b[i] over `n` contiguous floats with sixteen-lane partial sums.
    @inline(__always)
    static func contiguousDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>()
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var i = 0
        while i + 16 <= n {
            acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        var total = acc.sum()
        while i < n { total += a[i] * b[i]; i += 1 }
        return total
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
        case .sum: accumulate(src, outer, size, inner, d, S.self, Elementwise.Add())
        case .max: accumulate(src, outer, size, inner, d, S.self, Elementwise.Maximum())
        case .min: accumulate(src, outer, size, inner, d, S.self, Elementwise.Minimum())
        case .argmax: argReduce(src, outer, size, inner, ints(destination), S.self, better: { x, best in x > best || (x.isNaN && !best.isNaN) })
        case .argmin: argReduce(src, outer, size, inner, ints(destination), S.self, better: { x, best in x < best || (x.isNaN && !best.isNaN) })
        }
    }

    /// `dst[o, i] = combine(... combine(src[o, 0, i], src[o, 1, i]) ..., src[o, size-1, i])` over
    /// the widened elements, walking rows of length `inner` so the inner loop is contiguous.
    /// `combine` is a type, not a closure, so that each loop is specialised and vectorised (a
    /// closure stayed a call per element: a [128, 512] column sum took 70 µs).
    @inline(__always)
    private func accumulate<S: FloatStorage, F: BinaryFunction>(_ src: UnsafePointer<S.Bits>, _ outer: Int, _ size: Int, _ inner: Int,
                                                                _ d: UnsafeMutablePointer<Float>, _: S.Type, _ combine: F) {
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
                    for i in i0..<i1 { out[i] = combine.apply(out[i], S.widen(row[i])) }
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

    func layerNorm(_ source: DeviceBuffer, offset: Int, rows: Int, cols: Int, weight: DeviceBuffer?, bias: DeviceBuffer?, eps: Float,
                   destination: DeviceBuffer, mean: DeviceBuffer, rstd: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.elements(2 * rows * cols + 2 * rows))
        let x = UnsafePointer(floats(source) + offset), y = floats(destination), means = floats(mean), rstds = floats(rstd)
        let w = weight.map { UnsafePointer(floats($0)) }, b = bias.map { UnsafePointer(floats($0)) }
        let n = Float(cols)
        parallelFor(rows, grain: Swift.max(1, CPUBackend.parallelThreshold / Swift.max(cols, 1))) { s, e in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { scratch in
                let centered = scratch.baseAddress!
                for row in s..<e {
                    let xr = x + row * cols, yr = y + row * cols
                    // Two passes (mean, then the centred squares), as PyTorch's, for accuracy.
                    let mu = CPUBackend.contiguousSum(xr, cols) / n
                    for k in 0..<cols { centered[k] = xr[k] - mu }
                    let r = 1 / (CPUBackend.contiguousDot(centered, centered, cols) / n + eps).squareRoot()
                    means[row] = mu
                    rstds[row] = r
                    switch (w, b) {
                    case let (w?, b?): for k in 0..<cols { yr[k] = centered[k] * r * w[k] + b[k] }
                    case let (w?, nil): for k in 0..<cols { yr[k] = centered[k] * r * w[k] }
                    case let (nil, b?): for k in 0..<cols { yr[k] = centered[k] * r + b[k] }
                    case (nil, nil): for k in 0..<cols { yr[k] = centered[k] * r }
                    }
                }
            }
        }
    }

    func layerNormBackward(_ gradient: DeviceBuffer, source: DeviceBuffer, offset: Int, rows: Int, cols: Int, mean: DeviceBuffer,
                           rstd: DeviceBuffer, weight: DeviceBuffer?, inputGradient: DeviceBuffer, weightGradient: DeviceBuffer?,
                           biasGradient: DeviceBuffer?) {
        pool.noteKernels(1, bytes: Traffic.elements(3 * rows * cols + 2 * rows))
        let g = UnsafePointer(floats(gradient)), x = UnsafePointer(floats(source) + offset), dx = floats(inputGradient)
        let means = UnsafePointer(floats(mean)), rstds = UnsafePointer(floats(rstd)), w = weight.map { UnsafePointer(floats($0)) }
        let n = Float(cols)
        let grain = Swift.max(1, CPUBackend.parallelThreshold / Swift.max(cols, 1))
        parallelFor(rows, grain: grain) { s, e in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * cols) { scratch in
                let xhat = scratch.baseAddress!, gw = xhat + cols
                for row in s..<e {
                    let gr = g + row * cols, xr = x + row * cols, dr = dx + row * cols
                    let mu = means[row], r = rstds[row]
                    for k in 0..<cols { xhat[k] = (xr[k] - mu) * r }
                    if let w { for k in 0..<cols { gw[k] = gr[k] * w[k] } } else { for k in 0..<cols { gw[k] = gr[k] } }
                    let meanG = CPUBackend.contiguousSum(gw, cols) / n, meanGX = CPUBackend.contiguousDot(gw, xhat, cols) / n
                    for k in 0..<cols { dr[k] = r * (gw[k] - meanG - xhat[k] * meanGX) }
                }
            }
        }
        guard weightGradient != nil || biasGradient != nil else { return }
        // The parameter gradients sum over rows: each chunk of rows into its own partial row,
        // then the partials in order (the same chunks on every run).
        let chunks = Swift.max(1, Swift.min(threads * 4, (rows + grain - 1) / grain))
        let per = (rows + chunks - 1) / chunks
        var partials = [Float](repeating: 0, count: 2 * chunks * cols)
        partials.withUnsafeMutableBufferPointer { buffer in
            let shared = UncheckedSendable((partials: buffer.baseAddress!, g: g, x: x, means: means, rstds: rstds))
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let (partials, g, x, means, rstds) = shared.value
                let dw = partials + c * 2 * cols, db = dw + cols
                for row in (c * per)..<Swift.min(rows, (c + 1) * per) {
                    let gr = g + row * cols, xr = x + row * cols
                    let mu = means[row], r = rstds[row]
                    for k in 0..<cols {
                        dw[k] += gr[k] * ((xr[k] - mu) * r)
                        db[k] += gr[k]
                    }
                }
            }
            for (target, part) in [(weightGradient, 0), (biasGradient, 1)] {
                guard let target else { continue }
                let out = floats(target)
                for k in 0..<cols { out[k] = 0 }
                for c in 0..<chunks {
                    let row = buffer.baseAddress! + (2 * c + part) * cols
                    for k in 0..<cols { out[k] += row[k] }
                }
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
