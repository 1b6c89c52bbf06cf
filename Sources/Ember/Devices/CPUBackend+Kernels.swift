import CPUKernels
import CBLAS
import Foundation

/// GEMM (OpenBLAS), convolution and pooling building blocks, gather and scatter-add on the CPU.
extension CPUBackend {
    /// GEMM through OpenBLAS. A batch of at least one product per core runs on Ember's
    /// threads, one single-threaded OpenBLAS call per entry; a large product of many rows one
    /// block of rows per core, each packing its own panels; another large product on
    /// OpenBLAS's own threads, which share the packed panels. A bias is copied into C first
    /// and the product accumulated into it, as PyTorch's `addmm` does.
    func gemm(m: Int, n: Int, k: Int, batch: Int, alpha: Float, a: GemmOperand, b: GemmOperand,
              beta: Float, bias: GemmBias?, c: DeviceBuffer, cOffset: Int) {
        pool.noteKernels(1, bytes: Traffic.gemm(m: m, n: n, k: k, batch: batch, a: a, b: b, beta: beta, bias: bias))
        var beta = beta
        if let bias {
            check(beta == 0, "gemm: a bias with beta \(beta)")
            copy(bias.broadcast(batch: batch, m: m, n: n, dtype: a.productType(b)), to: c, at: cOffset)
            beta = 1
        }
        if a.dtype.isReducedFloat && a.dtype == b.dtype {
            // 16-bit operands: Ember's GEMM (AMX tiles or AVX-512 BF16 dot products where the CPU has them),
            // Float32 accumulation rounded once into the 16-bit C, on Ember's threads: batch
            // entries side by side, or the parts (blocks of rows or columns) of one product.
            let shared = UncheckedSendable((a: elements(a.buffer, as: UInt16.self), b: elements(b.buffer, as: UInt16.self),
                                            c: elements(c, as: UInt16.self)))
            let format = a.dtype == .bfloat16 ? EMBER_BFLOAT16 : EMBER_FLOAT16
            let parts = batch >= threads ? 1 : ember_gemm16_parts(format, Int32(threads), m, n, k)
            func run(_ jobs: Range<Int>) {
                let (pa, pb, pc) = shared.value
                for job in jobs {
                    let i = job / parts
                    ember_gemm16_part(format, job % parts, parts, a.transposed ? 1 : 0, b.transposed ? 1 : 0, m, n, k, alpha,
                                      pa + a.offset + i * a.batchStride, a.ld, pb + b.offset + i * b.batchStride, b.ld,
                                      beta, pc + cOffset + i * m * n, 1, n)
                }
            }
            if parts > 1 || (batch > 1 && batch * m * n * k >= CPUBackend.threadedGEMMWork) {
                parallelFor(batch * parts, grain: 1) { s, e in run(s..<e) }
            } else {
                run(0..<batch)
            }
            return
        }
        guard let a = widened(a, rows: m, cols: k, batch: batch), let b = widened(b, rows: k, cols: n, batch: batch) else {
            fatalError("gemm: out of memory for a float32 copy of a narrow operand")
        }
        let pa = floats(a.buffer), pb = floats(b.buffer), pc = floats(c)
        /// Rows `rows` and columns `cols` of the product of batch entry `i`.
        func call(_ i: Int, rows: Range<Int>, cols: Range<Int>) {
            let aStart = a.offset + i * a.batchStride + rows.lowerBound * (a.transposed ? 1 : a.ld)
            let bStart = b.offset + i * b.batchStride + cols.lowerBound * (b.transposed ? b.ld : 1)
            cblas_sgemm(CblasRowMajor, a.transposed ? CblasTrans : CblasNoTrans, b.transposed ? CblasTrans : CblasNoTrans,
                        Int32(rows.count), Int32(cols.count), Int32(k), alpha, pa + aStart, Int32(a.ld), pb + bStart, Int32(b.ld),
                        beta, pc + cOffset + i * m * n + rows.lowerBound * n + cols.lowerBound, Int32(n))
        }
        // OpenBLAS's idle threads spin (sched_yield) after each threaded call, taking the cores
        // from Ember's loops (in a GPT step 15% of the samples were in the scheduler), so
        // Ember's threads share the work where that costs the GEMM nothing: batch entries, or
        // blocks of 16-row panels of a product with many rows (measured from C on 2 cores: as
        // fast as OpenBLAS's threads at 768 rows, 10-25% slower at 128 and nearly 2x at 256,
        // where OpenBLAS's threads share the packed panels and run the large products of fewer rows).
        let work = m * n * k
        if batch >= threads && threads > 1 && batch * work >= CPUBackend.parallelThreshold {
            CPUBackend.setBLASThreads(1)
            parallelFor(batch, grain: 1) { s, e in
                for i in s..<e { call(i, rows: 0..<m, cols: 0..<n) }
            }
        } else if threads > 1 && work >= CPUBackend.threadedGEMMWork && m >= CPUBackend.splitGEMMRows {
            CPUBackend.setBLASThreads(1)
            let per = (m / threads + 15) / 16 * 16
            for i in 0..<batch {
                parallelFor((m + per - 1) / per, grain: 1) { s, e in
                    for block in s..<e { call(i, rows: (block * per)..<Swift.min(m, (block + 1) * per), cols: 0..<n) }
                }
            }
        } else {
            CPUBackend.setBLASThreads(work >= CPUBackend.threadedGEMMWork ? threads : 1)
            for i in 0..<batch { call(i, rows: 0..<m, cols: 0..<n) }
        }
    }

    /// The indices `i` in `0..<count` whose input position `start + i * stride` lies in
    /// `0..<size`: the taps of a window, or the outputs a tap reaches, that are not padding.
    @inline(__always)
    private func inside(count: Int, start: Int, stride: Int, size: Int) -> Range<Int> {
        let low = start >= 0 ? 0 : (stride - 1 - start) / stride
        let high = start >= size ? 0 : Swift.min(count, (size - 1 - start) / stride + 1)
        return low..<Swift.max(low, high)
    }

    /// Walks the kernel taps of one plane for im2col and col2im: `body(tap, rows, columns,
    /// lineOffset)` gets the tap's index in `0..<kH * kW`, the output rows and columns whose
    /// input lies inside the image, and for an output row y the plane offset of its column 0
    /// moved by the tap (column x reads `lineOffset(y) + x * strideW`).
    @inline(__always)
    private func forEachTap(_ g: Conv2dGeometry, _ body: (Int, Range<Int>, Range<Int>, (Int) -> Int) -> Void) {
        for ki in 0..<g.kernelH {
            let rows = inside(count: g.outHeight, start: ki * g.dilationH - g.padH, stride: g.strideH, size: g.height)
            for kj in 0..<g.kernelW {
                let shift = kj * g.dilationW - g.padW
                let columns = inside(count: g.outWidth, start: shift, stride: g.strideW, size: g.width)
                body(ki * g.kernelW + kj, rows, columns) { y in (y * g.strideH + ki * g.dilationH - g.padH) * g.width + shift }
            }
        }
    }

    func im2col(_ source: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, dtype: DType, destination: DeviceBuffer) {
        check(dtype.isFloatingPoint, "im2col: \(dtype) columns")
        pool.noteKernels(1, bytes: Traffic.columns(g, dtype))
        // A copy of elements: 16-bit types move their bit patterns (+0 for padding), exactly.
        if dtype.byteSize == 2 {
            im2col(elements(source, as: UInt16.self) + offset, g, elements(destination, as: UInt16.self), zero: 0)
        } else {
            im2col(floats(source) + offset, g, floats(destination), zero: 0)
        }
    }

    /// Copies each tap's valid rows of every input plane into its row of the columns and
    /// writes `zero` for padding.
    @inline(__always)
    private func im2col<T>(_ src: UnsafeMutablePointer<T>, _ g: Conv2dGeometry, _ dst: UnsafeMutablePointer<T>, zero: T) {
        let (oh, ow) = (g.outHeight, g.outWidth)
        let plane = g.height * g.width, cols = oh * ow, taps = g.kernelH * g.kernelW
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let input = src + nc * plane
                forEachTap(g) { tap, rows, xs, lineOffset in
                    let row = dst + (nc * taps + tap) * cols
                    row.initialize(repeating: zero, count: rows.lowerBound * ow)
                    for y in rows {
                        let out = row + y * ow, line = input + lineOffset(y)
                        out.initialize(repeating: zero, count: xs.lowerBound)
                        if g.strideW == 1 {
                            (out + xs.lowerBound).initialize(from: line + xs.lowerBound, count: xs.count)
                        } else {
                            for x in xs { out[x] = line[x * g.strideW] }
                        }
                        (out + xs.upperBound).initialize(repeating: zero, count: ow - xs.upperBound)
                    }
                    (row + rows.upperBound * ow).initialize(repeating: zero, count: (oh - rows.upperBound) * ow)
                }
            }
        }
    }

    func col2im(_ columns: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, dtype: DType, destination: DeviceBuffer) {
        check(dtype.isFloatingPoint, "col2im: \(dtype) columns")
        pool.noteKernels(1, bytes: Traffic.columns(g, dtype))
        switch dtype {
        case .float16: col2im(elements(columns, as: UInt16.self) + offset, g, elements(destination, as: UInt16.self), Elementwise.Half.self)
        case .bfloat16: col2im(elements(columns, as: UInt16.self) + offset, g, elements(destination, as: UInt16.self), Elementwise.BFloat16.self)
        default: col2im(floats(columns) + offset, g, floats(destination))
        }
    }

    /// Adds the columns of plane `nc` into `output` (Float32, zeroed by the caller); `row(tap)`
    /// gives the Float32 values of the tap's row of the columns.
    @inline(__always)
    private func accumulatePlane(_ g: Conv2dGeometry, into output: UnsafeMutablePointer<Float>,
                                 _ row: (Int) -> UnsafePointer<Float>) {
        forEachTap(g) { tap, rows, xs, lineOffset in
            let base = row(tap)
            for y in rows {
                let values = base + y * g.outWidth, line = output + lineOffset(y)
                if g.strideW == 1 {
                    for x in xs { line[x] += values[x] }
                } else {
                    for x in xs { line[x * g.strideW] += values[x] }
                }
            }
        }
    }

    /// Float32 col2im: sums straight into the destination planes.
    private func col2im(_ src: UnsafeMutablePointer<Float>, _ g: Conv2dGeometry, _ dst: UnsafeMutablePointer<Float>) {
        let plane = g.height * g.width, cols = g.outHeight * g.outWidth, taps = g.kernelH * g.kernelW
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let output = dst + nc * plane
                output.initialize(repeating: 0, count: plane)
                accumulatePlane(g, into: output) { tap in UnsafePointer(src + (nc * taps + tap) * cols) }
            }
        }
    }

    /// col2im of a 16-bit storage type `S`: each thread widens one row of the columns at a time
    /// into Float32 scratch (vectorised C), sums a plane in Float32 scratch and rounds it into the
    /// destination once, so every pixel is rounded once however many taps cover it.
    private func col2im<S: FloatStorage>(_ src: UnsafeMutablePointer<S.Bits>, _ g: Conv2dGeometry,
                                         _ dst: UnsafeMutablePointer<S.Bits>, _: S.Type) {
        let plane = g.height * g.width, cols = g.outHeight * g.outWidth, taps = g.kernelH * g.kernelW
        let shared = UncheckedSendable((src: src, dst: dst))
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: plane + cols) { scratch in
                let (src, dst) = shared.value
                let output = scratch.baseAddress!, values = output + plane
                for nc in s..<e {
                    output.initialize(repeating: 0, count: plane)
                    accumulatePlane(g, into: output) { tap in
                        S.widen(src + (nc * taps + tap) * cols, into: values, count: cols)
                        return UnsafePointer(values)
                    }
                    S.narrow(output, into: dst + nc * plane, count: plane)
                }
            }
        }
    }

    func maxPool2d(_ source: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, dtype: DType, destination: DeviceBuffer,
                   indices: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.pool(g, indices: true, dtype))
        switch dtype {
        case .float16: maxPool2d(source, offset, g, Elementwise.Half.self, destination, indices)
        case .bfloat16: maxPool2d(source, offset, g, Elementwise.BFloat16.self, destination, indices)
        default: maxPool2d(source, offset, g, Float.self, destination, indices)
        }
    }

    /// Max pooling of planes stored as `S`. A 16-bit plane is widened into Float32 scratch and
    /// its outputs rounded back, which is exact: each output is one of the plane's values.
    private func maxPool2d<S: FloatStorage>(_ source: DeviceBuffer, _ offset: Int, _ g: Conv2dGeometry, _: S.Type,
                                            _ destination: DeviceBuffer, _ indices: DeviceBuffer) {
        let src = elements(source, as: S.Bits.self) + offset, dst = elements(destination, as: S.Bits.self), idx = ints(indices)
        let plane = g.height * g.width, outputs = g.outHeight * g.outWidth
        let narrow = S.self != Float.self
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: narrow ? plane + outputs : 0) { scratch in
                for nc in s..<e {
                    let input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
                    if narrow {
                        S.widen(src + nc * plane, into: scratch.baseAddress!, count: plane)
                        (input, output) = (UnsafePointer(scratch.baseAddress!), scratch.baseAddress! + plane)
                    } else {
                        input = UnsafePointer(UnsafeMutableRawPointer(src + nc * plane).assumingMemoryBound(to: Float.self))
                        output = UnsafeMutableRawPointer(dst + nc * outputs).assumingMemoryBound(to: Float.self)
                    }
                    maxPoolPlane(input, output, idx + nc * outputs, g)
                    if narrow { S.narrow(output, into: dst + nc * outputs, count: outputs) }
                }
            }
        }
    }

    /// The first maximum of each window of one Float32 plane, and its index in the plane.
    private func maxPoolPlane(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
                              _ outputIndex: UnsafeMutablePointer<Int32>, _ g: Conv2dGeometry) {
        let (oh, ow) = (g.outHeight, g.outWidth)
        // Outputs whose window lies inside the row, which four at a time take SIMD lanes.
        let full = inside(count: ow, start: -g.padW, stride: g.strideW, size: g.width - (g.kernelW - 1) * g.dilationW)
        let lanes = SIMD4<Int32>(0, 1, 2, 3) &* Int32(g.strideW)
        for y in 0..<oh {
            let top = y * g.strideH - g.padH
            let kis = inside(count: g.kernelH, start: top, stride: g.dilationH, size: g.height)
            // The first tap in scan order wins ties; the first NaN wins over numbers.
            // Selections are lane masks, not branches: on data after a ReLU the
            // comparison is a coin toss that a branch predictor loses.
            func single(_ x: Int) {
                let left = x * g.strideW - g.padW
                let kjs = inside(count: g.kernelW, start: left, stride: g.dilationW, size: g.width)
                var at = 0, best = -Float.infinity
                if !kis.isEmpty && !kjs.isEmpty {
                    at = (top + kis.lowerBound * g.dilationH) * g.width + left + kjs.lowerBound * g.dilationW
                    best = input[at]
                    for ki in kis {
                        let line = (top + ki * g.dilationH) * g.width + left
                        for kj in kjs {
                            let i = line + kj * g.dilationW, v = input[i]
                            if v > best || (v != v && best == best) { (best, at) = (v, i) }
                        }
                    }
                }
                output[y * ow + x] = best
                outputIndex[y * ow + x] = Int32(at)
            }
            var x = 0
            while x < full.lowerBound { single(x); x += 1 }
            while x < full.upperBound && full.count >= 4 && !kis.isEmpty {
                // The last group of four is moved back to end at the row's edge; the
                // outputs it covers twice get the same values twice.
                x = Swift.min(x, full.upperBound - 4)
                var best = SIMD4<Float>(repeating: 0), at = SIMD4<Int32>(repeating: 0), first = true
                for ki in kis {
                    for kj in 0..<g.kernelW {
                        let base = (top + ki * g.dilationH) * g.width + x * g.strideW - g.padW + kj * g.dilationW
                        let v = SIMD4<Float>(input[base], input[base + g.strideW], input[base + 2 * g.strideW], input[base + 3 * g.strideW])
                        let i = SIMD4<Int32>(repeating: Int32(base)) &+ lanes
                        if first {
                            (best, at, first) = (v, i, false)
                            continue
                        }
                        let take = (v .> best) .| ((v .!= v) .& (best .== best))
                        best.replace(with: v, where: take)
                        at.replace(with: i, where: take)
                    }
                }
                for lane in 0..<4 {
                    output[y * ow + x + lane] = best[lane]
                    outputIndex[y * ow + x + lane] = at[lane]
                }
                x += 4
            }
            while x < ow { single(x); x += 1 }
        }
    }

    func maxPool2dBackward(_ gradient: DeviceBuffer, indices: DeviceBuffer, geometry g: Conv2dGeometry, dtype: DType,
                           destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.pool(g, indices: true, dtype))
        switch dtype {
        case .float16: maxPool2dBackward(gradient, indices, g, Elementwise.Half.self, destination)
        case .bfloat16: maxPool2dBackward(gradient, indices, g, Elementwise.BFloat16.self, destination)
        default: maxPool2dBackward(gradient, indices, g, Float.self, destination)
        }
    }

    /// `maxPool2dBackward` of gradients stored as `S`: each plane's sums in Float32 (scratch
    /// for a 16-bit plane, rounded once), in output order.
    private func maxPool2dBackward<S: FloatStorage>(_ gradient: DeviceBuffer, _ indices: DeviceBuffer, _ g: Conv2dGeometry,
                                                    _: S.Type, _ destination: DeviceBuffer) {
        let grad = elements(gradient, as: S.Bits.self), idx = ints(indices), dst = elements(destination, as: S.Bits.self)
        let plane = g.height * g.width, outputs = g.outHeight * g.outWidth
        let narrow = S.self != Float.self
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: narrow ? plane : 0) { scratch in
                for nc in s..<e {
                    let output = narrow ? scratch.baseAddress! : UnsafeMutableRawPointer(dst + nc * plane).assumingMemoryBound(to: Float.self)
                    output.initialize(repeating: 0, count: plane)
                    for o in 0..<outputs { output[Int(idx[nc * outputs + o])] += S.widen(grad[nc * outputs + o]) }
                    if narrow { S.narrow(output, into: dst + nc * plane, count: plane) }
                }
            }
        }
    }

    /// Window bounds and divisor of average-pooling output (y, x).
    @inline(__always)
    private func avgWindow(_ g: Conv2dGeometry, _ y: Int, _ x: Int, _ countPadding: Bool) -> (Range<Int>, Range<Int>, Float) {
        let h0 = y * g.strideH - g.padH, w0 = x * g.strideW - g.padW
        let rows = Swift.max(h0, 0)..<Swift.min(h0 + g.kernelH, g.height)
        let cols = Swift.max(w0, 0)..<Swift.min(w0 + g.kernelW, g.width)
        let divisor = countPadding ? Float(g.kernelH * g.kernelW) : Float(rows.count * cols.count)
        return (rows, cols, divisor)
    }

    func avgPool2d(_ source: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.pool(g, indices: false))
        let src = floats(source) + offset, dst = floats(destination)
        let (oh, ow) = (g.outHeight, g.outWidth)
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let input = src + nc * g.height * g.width
                for y in 0..<oh {
                    for x in 0..<ow {
                        let (rows, cols, divisor) = avgWindow(g, y, x, countPadding)
                        var total: Float = 0
                        for ih in rows { for iw in cols { total += input[ih * g.width + iw] } }
                        dst[nc * oh * ow + y * ow + x] = total / divisor
                    }
                }
            }
        }
    }

    func avgPool2dBackward(_ gradient: DeviceBuffer, geometry g: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.pool(g, indices: false))
        let grad = floats(gradient), dst = floats(destination)
        let (oh, ow) = (g.outHeight, g.outWidth)
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let output = dst + nc * g.height * g.width
                output.initialize(repeating: 0, count: g.height * g.width)
                for y in 0..<oh {
                    for x in 0..<ow {
                        let (rows, cols, divisor) = avgWindow(g, y, x, countPadding)
                        let share = grad[nc * oh * ow + y * ow + x] / divisor
                        for ih in rows { for iw in cols { output[ih * g.width + iw] += share } }
                    }
                }
            }
        }
    }

    func gather(_ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int, dtype: DType,
                index: StridedView, indices: IndexRule, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.gather(index, dtype))
        func run<I: FixedWidthInteger>(_: I.Type) {
            switch dtype.byteSize {
            case 1: gather(source, offset, outer, size, inner, UInt8.self, index, I.self, indices, destination)
            case 2: gather(source, offset, outer, size, inner, UInt16.self, index, I.self, indices, destination)
            case 4: gather(source, offset, outer, size, inner, UInt32.self, index, I.self, indices, destination)
            default: gather(source, offset, outer, size, inner, UInt64.self, index, I.self, indices, destination)
            }
        }
        if index.dtype == .int64 { run(Int64.self) } else { run(Int32.self) }
    }

    /// `gather` of elements of `T`'s width, copied bit for bit (the ignored index writes 0 bits,
    /// which are 0 in every dtype), with indices of type `I`.
    private func gather<T: FixedWidthInteger, I: FixedWidthInteger>(
        _ source: DeviceBuffer, _ offset: Int, _ outer: Int, _ size: Int, _ inner: Int, _: T.Type,
        _ index: StridedView, _: I.Type, _ indices: IndexRule, _ destination: DeviceBuffer
    ) {
        let src = elements(source, as: T.self) + offset, dst = elements(destination, as: T.self)
        let idx = elements(index.buffer, as: I.self) + index.offset
        let j = index.shape[1]
        let (s0, s1, s2) = (index.strides[0], index.strides[1], index.strides[2])
        let ignored = indices.ignored ?? Int.min  // no index a kernel is given equals Int.min
        parallelFor(outer * j * inner) { s, e in
            for t in s..<e {
                let o = t / (j * inner), r = t % (j * inner), jj = r / inner, i = r % inner
                let k = Int(idx[o * s0 + jj * s1 + i * s2])
                if k == ignored {
                    dst[t] = 0
                } else {
                    check(k >= 0 && k < size, indices.outOfBounds(k, size: size))
                    dst[t] = src[(o * size + k) * inner + i]
                }
            }
        }
    }

    func scatterAdd(_ values: StridedView, index: StridedView, outer: Int, size: Int, inner: Int,
                    indices: IndexRule, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.scatterAdd(values, index))
        if index.dtype == .int64 {
            scatterAdd(values, index, Int64.self, outer, size, inner, indices, destination)
        } else {
            scatterAdd(values, index, Int32.self, outer, size, inner, indices, destination)
        }
    }

    /// `scatterAdd` with indices of type `I`.
    private func scatterAdd<I: FixedWidthInteger>(_ values: StridedView, _ index: StridedView, _: I.Type, _ outer: Int, _ size: Int,
                                                  _ inner: Int, _ indices: IndexRule, _ destination: DeviceBuffer) {
        let val = floats(values.buffer) + values.offset, idx = elements(index.buffer, as: I.self) + index.offset, dst = floats(destination)
        let j = index.shape[1]
        let ignored = indices.ignored ?? Int.min  // no index a kernel is given equals Int.min
        // Different `o` write disjoint rows, so the outer dimension can run in parallel.
        parallelFor(outer, grain: Swift.max(1, CPUBackend.parallelThreshold / Swift.max(j * inner, 1))) { s, e in
            for o in s..<e {
                for jj in 0..<j {
                    for i in 0..<inner {
                        let k = Int(idx[o * index.strides[0] + jj * index.strides[1] + i * index.strides[2]])
                        if k == ignored { continue }
                        check(k >= 0 && k < size, indices.outOfBounds(k, size: size))
                        dst[(o * size + k) * inner + i] += val[o * values.strides[0] + jj * values.strides[1] + i * values.strides[2]]
                    }
                }
            }
        }
    }
}
