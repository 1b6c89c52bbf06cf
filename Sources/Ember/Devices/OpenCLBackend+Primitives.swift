import COpenCL
import Foundation

/// The backend primitives on OpenCL: each one sets up arguments and enqueues kernels from
/// `Kernels/*.cl` (or CLBlast for GEMM).
extension OpenCLBackend {
    /// Collapsed shape and strides of views over `shape`, and whether all are dense.
    private func layout(_ shape: [Int], _ strides: [[Int]]) -> (shape: [Int], strides: [[Int]], contiguous: Bool) {
        let c = Shape.collapse(shape, strides)
        let dense = c.shape.count == 1 && c.strides.allSatisfy { $0[0] == 1 }
        return (c.shape, c.strides, dense)
    }

    /// Enqueues a kernel over `rows` rows of `length` elements with one work-item per run of
    /// `stridedRun` elements of a row (strided.cl's STRIDED_RUN), in work-groups of the
    /// fixed elementwise size.
    private func launchRuns(_ file: String, _ name: String, rows: Int, length: Int, _ arguments: [Argument]) {
        guard rows > 0 && length > 0 else { return }
        check(rows * length < Int(Int32.max), "opencl:\(index): \(name) over \(rows * length) elements exceeds the 2^31 limit of Ember's kernels")
        launch(file, name, count: rows * ((length + stridedRun - 1) / stridedRun), arguments)
    }

    /// A dense elementwise kernel over `count` elements, one work-item per run of `stridedRun`
    /// (strided.cl's DENSE_RUN), from the program `file`.
    func launchDense(_ file: String, _ name: String, count: Int, _ arguments: [Argument]) {
        launch(file, name, count: (count + stridedRun - 1) / stridedRun, arguments)
    }

    /// A strided elementwise kernel over a collapsed shape, from the elementwise program of `dtype`.
    private func launchStrided(_ name: String, shape: [Int], dtype: DType = .float32, _ arguments: [Argument]) {
        let last = shape[shape.count - 1]
        launchRuns(Self.elementwiseProgram(dtype), name, rows: last == 0 ? 0 : Shape.count(shape) / last, length: last, arguments)
    }

    func copy(_ source: StridedView, to destination: DeviceBuffer, at destinationOffset: Int) {
        copy(source, into: StridedView(buffer: destination, offset: destinationOffset, shape: source.shape,
                                       strides: Shape.contiguousStrides(source.shape), dtype: source.dtype))
    }

    /// One kernel, `copy_into_<bytes>`, serves every copy (a dense destination is a view with
    /// contiguous strides), so a process compiles one copy kernel per element size.
    func copy(_ source: StridedView, into destination: StridedView) {
        pool.noteKernels(0, bytes: 2 * Traffic.of(source))
        let c = layout(source.shape, [source.strides, destination.strides])
        launchStrided("copy_into_\(source.dtype.byteSize)", shape: c.shape, [
            .buffer(source.buffer), .int(source.offset), .buffer(destination.buffer), .int(destination.offset), .int(source.count),
            .int(c.shape.count), .int8(c.shape), .int8(c.strides[0]), .int8(c.strides[1]),
        ])
    }

    func cast(_ source: StridedView, to dtype: DType, destination: DeviceBuffer) {
        if source.dtype == dtype { return copy(source, to: destination) }
        guard source.dtype.isFloatingPoint || source.dtype == .bool, dtype.isFloatingPoint || dtype == .bool,
              recordLazily(destination, shape: source.shape, inputs: [.view(source)], { b, v in
                  b.add(LazyValue(operation: .cast(v[0]), dtype: dtype))
              }) else { return eagerCast(source, to: dtype, destination: destination) }
    }

    /// `cast` as one kernel now.
    func eagerCast(_ source: StridedView, to dtype: DType, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.of(source) + Traffic.elements(source.count, dtype))
        let c = layout(source.shape, [source.strides])
        launchStrided("cast_\(source.dtype)_\(dtype)", shape: c.shape, [
            .buffer(source.buffer), .int(source.offset), .buffer(destination), .int(source.count),
            .int(c.shape.count), .int8(c.shape), .int8(c.strides[0]),
        ])
    }

    /// A constant through `clEnqueueFillBuffer`, which drivers implement without a kernel of
    /// Ember's to compile.
    func fill(_ destination: DeviceBuffer, count: Int, value: Double, dtype: DType) {
        guard count > 0 else { return }
        pool.noteKernels(0, bytes: Traffic.elements(count, dtype))
        settle(destination)
        // The pattern is the value's dtype.byteSize low-order bytes (every OpenCL host is little-endian).
        var bits = dtype.bits(of: value)
        withQueue({ queue, event in
            withUnsafeBytes(of: &bits) { pattern in
                clEnqueueFillBuffer(queue, destination.handle, pattern.baseAddress, dtype.byteSize, 0, count * dtype.byteSize, 0, nil, event)
            }
        }, call: "clEnqueueFillBuffer")
    }

    func arange(_ destination: DeviceBuffer, count: Int, start: Double, step: Double, dtype: DType) {
        pool.noteKernels(0, bytes: Traffic.elements(count, dtype))
        check(dtype == .float32 || dtype == .int32, "arange: the backend writes float32 or int32, not \(dtype)")
        if dtype == .float32 {
            launch("elementwise.cl", "arange_float", count: count, [.buffer(destination), .int(count), .float(Float(start)), .float(Float(step))])
        } else {
            launch("elementwise.cl", "arange_int", count: count, [.buffer(destination), .int(count), .int(Int(start)), .int(Int(step))])
        }
    }

    func random(_ destination: DeviceBuffer, count: Int, distribution: RandomDistribution, seed: UInt64, offset: UInt64) {
        pool.noteKernels(0, bytes: Traffic.elements(count))
        let head: [Argument] = [.buffer(destination), .int(count), .ulong(seed), .ulong(offset)]
        switch distribution {
        case let .uniform(low, high):
            launch("random.cl", "random_uniform", count: count, head + [.float(low), .float(high)])
        case let .normal(mean, std):
            launch("random.cl", "random_normal", count: count, head + [.float(mean), .float(std)])
        case let .integer(low, high):
            launch("random.cl", "random_integer", count: count, head + [.int(Int(low)), .ulong(UInt64(Int64(high) - Int64(low)))])
        }
    }

    func unary(_ op: UnaryOp, _ source: StridedView, destination: DeviceBuffer) {
        guard recordLazily(destination, shape: source.shape, inputs: [.view(source)], { b, v in
            b.add(LazyValue(operation: .unary(op.kernel, x: v[0], p0: b.scalarSlot(op.p0), p1: b.scalarSlot(op.p1)), dtype: source.dtype))
        }) else { return eagerUnary(op, source, destination: destination) }
    }

    /// `unary` as one kernel now.
    func eagerUnary(_ op: UnaryOp, _ source: StridedView, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: 2 * Traffic.of(source))
        let c = layout(source.shape, [source.strides])
        let name = "unary_\(op.kernel.name)"
        if c.contiguous {
            launchDense(Self.elementwiseProgram(source.dtype), name, count: source.count, [
                .buffer(source.buffer), .int(source.offset), .buffer(destination), .int(source.count), .float(op.p0), .float(op.p1),
            ])
        } else {
            launchStrided(name + "_strided", shape: c.shape, dtype: source.dtype, [
                .buffer(source.buffer), .int(source.offset), .buffer(destination), .int(source.count),
                .int(c.shape.count), .int8(c.shape), .int8(c.strides[0]), .float(op.p0), .float(op.p1),
            ])
        }
    }

    /// The kernel arguments of one operand of a strided kernel (pointer, offset, strides, scalar, is-scalar).
    private func operandArguments(_ operand: Operand, strides: [Int]?, fallback: DeviceBuffer) -> [Argument] {
        switch operand {
        case .scalar(let s): return [.buffer(fallback), .int(0), .int8([]), .float(s), .int(1)]
        case .view(let v): return [.buffer(v.buffer), .int(v.offset), .int8(strides ?? []), .float(0), .int(0)]
        }
    }

    /// Collapses the view operands among `operands` (scalars take no part) over `shape`.
    private func operandLayout(_ shape: [Int], _ operands: [StridedView?]) -> (shape: [Int], strides: [[Int]?], contiguous: Bool) {
        let views = operands.compactMap { $0 }
        let c = layout(shape, views.map(\.strides))
        var next = 0
        let strides: [[Int]?] = operands.map { operand in
            guard operand != nil else { return nil }
            defer { next += 1 }
            return c.strides[next]
        }
        return (c.shape, strides, c.contiguous)
    }

    func binary(_ op: BinaryOp, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer) {
        guard recordLazily(destination, shape: shape, inputs: [a, b], { g, v in
            g.add(LazyValue(operation: .binary(op.kernel, v[0], v[1]), dtype: op.isComparison ? .bool : dtype))
        }) else { return eagerBinary(op, a, b, shape: shape, dtype: dtype, destination: destination) }
    }

    /// `binary` as one kernel now.
    func eagerBinary(_ op: BinaryOp, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.binary(op, a, b, shape: shape, dtype: dtype))
        let n = Shape.count(shape)
        let c = operandLayout(shape, [a.view, b.view])
        let name = "binary_\(op.kernel.name)", program = Self.elementwiseProgram(dtype)
        switch (a, b, c.contiguous) {
        case let (.view(x), .view(y), true):
            launchDense(program, name + "_tt", count: n, [.buffer(x.buffer), .int(x.offset), .buffer(y.buffer), .int(y.offset), .buffer(destination), .int(n)])
        case let (.view(x), .scalar(v), true):
            launchDense(program, name + "_ts", count: n, [.buffer(x.buffer), .int(x.offset), .float(v), .buffer(destination), .int(n)])
        case let (.scalar(v), .view(y), true):
            launchDense(program, name + "_st", count: n, [.float(v), .buffer(y.buffer), .int(y.offset), .buffer(destination), .int(n)])
        default:
            launchStrided(name + "_strided", shape: c.shape, dtype: dtype,
                   operandArguments(a, strides: c.strides[0], fallback: destination)
                       + operandArguments(b, strides: c.strides[1], fallback: destination)
                       + [.buffer(destination), .int(n), .int(c.shape.count), .int8(c.shape)])
        }
    }

    func select(_ condition: StridedView, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer) {
        guard recordLazily(destination, shape: shape, inputs: [.view(condition), a, b], { g, v in
            g.add(LazyValue(operation: .select(v[0], v[1], v[2]), dtype: dtype))
        }) else { return eagerSelect(condition, a, b, shape: shape, dtype: dtype, destination: destination) }
    }

    /// `select` as one kernel now.
    func eagerSelect(_ condition: StridedView, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.select(a, b, shape: shape, dtype: dtype))
        let n = Shape.count(shape)
        let c = operandLayout(shape, [condition, a.view, b.view])
        launchStrided("select_where", shape: c.shape, dtype: dtype,
               [.buffer(condition.buffer), .int(condition.offset), .int8(c.strides[0]!)]
                   + operandArguments(a, strides: c.strides[1], fallback: destination)
                   + operandArguments(b, strides: c.strides[2], fallback: destination)
                   + [.buffer(destination), .int(n), .int(c.shape.count), .int8(c.shape)])
    }

    func reduce(_ op: ReduceOp, _ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int, dtype: DType,
                destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.reduce(outer: outer, size: size, inner: inner, dtype: dtype))
        let code = Int(op.rawValue), program = Self.typedProgram("reduce.cl", dtype)
        // A work-item per output walking its row serially: for strided (inner > 1) blocks, and
        // on CPU devices for many short rows, where a work-group per row spends its time in
        // barriers (bias gradients: [N * C, H * W] rows).
        if inner > 1 || (isCPU && size <= 16 * reductionLocal && outer >= 8 * info.computeUnits) {
            launch(program, "reduce_inner", count: outer * inner, [
                .buffer(source), .int(offset), .int(outer), .int(size), .int(inner), .int(code), .buffer(destination),
            ])
            return
        }
        let ls = reductionLocal
        // Few long rows: split each row into chunks reduced by separate work-groups (on CPU
        // devices, sums take a work-item per chunk: sum_slices).
        let slices = isCPU && op == .sum
        let wanted = max(1, (info.computeUnits * 8 + outer - 1) / outer)
        let chunks = min(wanted, max(1, size / (slices ? 4096 : ls * 16)), 1024)
        func firstPass(chunks: Int, values: DeviceBuffer, indices: DeviceBuffer) {
            let final: Argument = .int(chunks == 1 ? 1 : 0)
            if slices {
                launch(program, "sum_slices", count: outer * chunks, local: 1, [
                    .buffer(source), .int(offset), .int(size), .int(chunks), .buffer(values), .buffer(destination), final,
                ])
            } else {
                launch(program, "reduce_rows", count: outer * chunks * ls, local: ls, [
                    .buffer(source), .int(offset), .int(size), .int(chunks), .int(code),
                    .buffer(values), .buffer(indices), .buffer(destination), final,
                ])
            }
        }
        if chunks == 1 { return firstPass(chunks: 1, values: destination, indices: destination) }
        guard let values = try? allocate(bytes: outer * chunks * 4), let indices = try? allocate(bytes: outer * chunks * 4) else {
            return firstPass(chunks: 1, values: destination, indices: destination)
        }
        firstPass(chunks: chunks, values: values, indices: indices)
        launch("reduce.cl", "reduce_partials", count: outer * ls, local: ls, [
            .buffer(values), .buffer(indices), .int(chunks), .int(code), .buffer(destination),
        ])
    }

    func softmax(_ source: DeviceBuffer, offset: Int, rows: Int, cols: Int, log: Bool, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.elements(2 * rows * cols))
        if isCPU {
            launch("reduce.cl", "softmax_rows_serial", count: rows, local: 1, [
                .buffer(source), .int(offset), .int(rows), .int(cols), .int(log ? 1 : 0), .buffer(destination),
            ])
            return
        }
        launch("reduce.cl", "softmax_rows", count: rows * reductionLocal, local: reductionLocal, [
            .buffer(source), .int(offset), .int(cols), .int(log ? 1 : 0), .buffer(destination),
        ])
    }

    func layerNorm(_ source: DeviceBuffer, offset: Int, rows: Int, cols: Int, weight: DeviceBuffer?, bias: DeviceBuffer?, eps: Float,
                   destination: DeviceBuffer, mean: DeviceBuffer, rstd: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.elements(2 * rows * cols + 2 * rows))
        let affine = (weight == nil ? 0 : 1) | (bias == nil ? 0 : 2)
        launch("reduce.cl", "layer_norm_rows", count: isCPU ? rows : rows * reductionLocal, local: isCPU ? 1 : reductionLocal, [
            .buffer(source), .int(offset), .int(rows), .int(cols), .float(eps), .buffer(weight ?? source), .buffer(bias ?? source),
            .int(affine), .buffer(destination), .buffer(mean), .buffer(rstd),
        ])
    }

    func layerNormBackward(_ gradient: DeviceBuffer, source: DeviceBuffer, offset: Int, rows: Int, cols: Int, mean: DeviceBuffer,
                           rstd: DeviceBuffer, weight: DeviceBuffer?, inputGradient: DeviceBuffer, weightGradient: DeviceBuffer?,
                           biasGradient: DeviceBuffer?) {
        pool.noteKernels(0, bytes: Traffic.elements(3 * rows * cols + 2 * rows))
        launch("reduce.cl", "layer_norm_backward_rows", count: isCPU ? rows : rows * reductionLocal, local: isCPU ? 1 : reductionLocal, [
            .buffer(gradient), .buffer(source), .int(offset), .int(rows), .int(cols), .buffer(mean), .buffer(rstd),
            .buffer(weight ?? gradient), .int(weight == nil ? 0 : 1), .buffer(inputGradient),
        ])
        let wanted = (weightGradient == nil ? 0 : 1) | (biasGradient == nil ? 0 : 2)
        guard wanted != 0 else { return }
        pool.noteKernels(0, bytes: Traffic.elements(2 * rows * cols + 2 * rows))
        // A work-item per column, per sixteen on CPU devices (LN_COLUMNS).
        launch("reduce.cl", "layer_norm_parameter_gradients", count: isCPU ? (cols + 15) / 16 : cols, local: nil, [
            .buffer(gradient), .buffer(source), .int(offset), .int(rows), .int(cols), .buffer(mean), .buffer(rstd), .int(wanted),
            .buffer(weightGradient ?? inputGradient), .buffer(biasGradient ?? inputGradient),
        ])
    }

    func gemm(m: Int, n: Int, k: Int, batch: Int, alpha: Float, a: GemmOperand, b: GemmOperand,
              beta: Float, bias: GemmBias?, c: DeviceBuffer, cOffset: Int) {
        pool.noteKernels(0, bytes: Traffic.gemm(m: m, n: n, k: k, batch: batch, a: a, b: b, beta: beta, bias: bias))
        check(bias == nil || beta == 0, "gemm: a bias with beta \(beta)")
        // Narrow operands of one type go to Ember's kernels built for it, which widen as they
        // load (CLBlast reads Float32 only); mixed types are widened to Float32 copies first.
        if a.dtype == b.dtype && a.dtype.isReducedFloat {
            return gemmBlocks(m: m, n: n, k: k, batch: batch, alpha: alpha, a: a, b: b, beta: beta, bias: bias, c: c, cOffset: cOffset)
        }
        guard let a = widened(a, rows: m, cols: k, batch: batch), let b = widened(b, rows: k, cols: n, batch: batch) else {
            return record(status: -4, "gemm: no memory for a float32 copy of a narrow operand")
        }
        runGEMM(gemmChoice().implementation, m: m, n: n, k: k, batch: batch, alpha: alpha, a: a, b: b, beta: beta, bias: bias,
                c: c, cOffset: cOffset)
    }

    /// Enqueues a GEMM with the given implementation. Ember's kernels add a bias as they store
    /// C; for CLBlast it is copied into C first and the product accumulated into it.
    func runGEMM(_ implementation: GEMMImplementation, m: Int, n: Int, k: Int, batch: Int, alpha: Float, a: GemmOperand, b: GemmOperand,
                 beta: Float, bias: GemmBias? = nil, c: DeviceBuffer, cOffset: Int) {
        if implementation == .ember {
            return gemmBlocks(m: m, n: n, k: k, batch: batch, alpha: alpha, a: a, b: b, beta: beta, bias: bias, c: c, cOffset: cOffset)
        }
        var beta = beta
        if let bias {
            copy(bias.broadcast(batch: batch, m: m, n: n, dtype: .float32), to: c, at: cOffset)
            beta = 1
        }
        for buffer in [a.buffer, b.buffer, c] { settle(buffer) }
        let ta = a.transposed ? CLBlastTransposeYes : CLBlastTransposeNo
        let tb = b.transposed ? CLBlastTransposeYes : CLBlastTransposeNo
        withQueue({ queue, event in
            if batch == 1 {
                return CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha,
                                    a.buffer.handle, a.offset, a.ld, b.buffer.handle, b.offset, b.ld,
                                    beta, c.handle, cOffset, n, &queue, event).rawValue
            }
            return CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha,
                                              a.buffer.handle, a.offset, a.ld, a.batchStride,
                                              b.buffer.handle, b.offset, b.ld, b.batchStride,
                                              beta, c.handle, cOffset, n, m * n, batch, &queue, event).rawValue
        }, call: "CLBlastSgemm")
    }

    /// How Ember's GEMM kernels read B (`gemm.cl`).
    enum GemmBPath: CaseIterable {
        /// `gemm_block` reads B as stored, its rows as panels 16 columns apart.
        case asStored
        /// `gemm_block_nt` reads a B stored transposed, as dot products along K.
        case dotProducts
        /// `gemm_pack` copies B into padded row-major panels for `gemm_block` (GPUs).
        case packedRows
        /// `gemm_pack` copies B panel after panel for `gemm_block` (CPU devices).
        case packedPanels
    }

    /// The path for a product of `m` rows: on CPU devices a B stored transposed is read as
    /// dot products below 64 rows where the device has 16-wide float vectors (where its 4 x 4
    /// sums fit the registers; packing reads and writes all of B, which fewer rows do not
    /// repay), and packed otherwise; B as stored is packed from 64 rows when its rows are 4 KiB
    /// or more apart (their cache sets collide), else read as stored. GPUs pack a transposed B
    /// row-major and read B as stored directly.
    func gemmBPath(m: Int, a: GemmOperand, b: GemmOperand) -> GemmBPath {
        guard isCPU else { return b.transposed ? .packedRows : .asStored }
        if b.transposed { return readsTransposedB && !a.transposed && m < 64 ? .dotProducts : .packedPanels }
        return m >= 64 && b.ld * b.dtype.byteSize >= 4096 ? .packedPanels : .asStored
    }

    /// B copied by `gemm_pack` into panels of 16 columns (the last padded with zeros),
    /// row-major or panel after panel: the buffer, the distance between rows of a panel and
    /// between panels, and between batch entries (nil when no memory is left for it).
    private func packed(_ b: GemmOperand, k: Int, n: Int, batch: Int, panels: Bool) -> (buffer: DeviceBuffer, ld: Int, panelStride: Int, batchStride: Int)? {
        let entries = b.batchStride == 0 ? 1 : batch, width = (n + 15) / 16 * 16
        guard let buffer = try? allocate(bytes: entries * k * width * b.dtype.byteSize) else { return nil }
        let (ld, panelStride) = panels ? (16, 16 * k) : (width, 16)
        pool.noteKernels(0, bytes: Traffic.elements(entries * k * (n + width), b.dtype))
        launch3D(Self.typedProgram("gemm.cl", b.dtype), "gemm_pack", global: ((n + 15) / 16, (k + 15) / 16, entries), local: (1, 1, 1), [
            .int(n), .int(k), .buffer(b.buffer), .int(b.offset), .int(b.transposed ? 1 : b.ld), .int(b.transposed ? b.ld : 1),
            .int(b.batchStride), .buffer(buffer), .int(ld), .int(panelStride), .int(k * width),
        ])
        return (buffer, ld, panelStride, b.batchStride == 0 ? 0 : k * width)
    }

    /// Ember's GEMM kernels (gemm.cl) with B read as `path` chooses (default `gemmBPath`):
    /// `gemm_block` for A as stored or transposed (its element strides are arguments), with
    /// blocks of 16 columns of C per work-item from panels of B, or `gemm_block_nt` for B
    /// stored transposed, with 4 x 4 blocks. On PoCL they beat CLBlast's untuned defaults
    /// several times over.
    func gemmBlocks(m: Int, n: Int, k: Int, batch: Int, alpha: Float, a: GemmOperand, b: GemmOperand,
                    beta: Float, bias: GemmBias? = nil, c: DeviceBuffer, cOffset: Int, path: GemmBPath? = nil) {
        let path = path ?? gemmBPath(m: m, a: a, b: b)
        check(path != .asStored || !b.transposed, "gemm: B stored transposed cannot be read as stored")
        check(path != .dotProducts || (b.transposed && !a.transposed), "gemm: dot products need A as stored and B transposed")
        let program = Self.typedProgram("gemm.cl", a.dtype)
        // Work-groups of 4 blocks along C's columns; blocks of `width` x `height` elements.
        let local = 4
        func grid(width: Int, height: Int) -> (Int, Int, Int) {
            (((n + width - 1) / width + local - 1) / local * local, (m + height - 1) / height, batch)
        }
        let cArguments: [Argument] = [
            .buffer(c), .int(cOffset), .int(n), .int(m * n),
            // The bias as strides over C's rows and columns, none when both are 0.
            .buffer(bias?.buffer ?? c), .int(bias?.offset ?? 0), .int(bias?.perRow == true ? 1 : 0), .int(bias?.perRow == false ? 1 : 0),
        ]
        let head: [Argument] = [.int(m), .int(n), .int(k), .float(alpha), .float(beta)]
        if path == .dotProducts {
            return launch3D(program, "gemm_block_nt", global: grid(width: 4, height: 4), local: (local, 1, 1),
                            head + [.buffer(a.buffer), .int(a.offset), .int(a.ld), .int(a.batchStride),
                                    .buffer(b.buffer), .int(b.offset), .int(b.ld), .int(b.batchStride)] + cArguments)
        }
        let bArguments: [Argument]
        if path == .asStored {
            bArguments = [.buffer(b.buffer), .int(b.offset), .int(b.ld), .int(16), .int(0), .int(b.batchStride)]
        } else {
            guard let p = packed(b, k: k, n: n, batch: batch, panels: path == .packedPanels) else {
                return record(status: -4, "gemm: no memory for a packed copy of B")
            }
            bArguments = [.buffer(p.buffer), .int(0), .int(p.ld), .int(p.panelStride), .int(1), .int(p.batchStride)]
        }
        launch3D(program, "gemm_block", global: grid(width: 16, height: gemmRows(a.dtype)), local: (local, 1, 1),
                 head + [.buffer(a.buffer), .int(a.offset), .int(a.transposed ? 1 : a.ld), .int(a.transposed ? a.ld : 1), .int(a.batchStride)]
                    + bArguments + cArguments)
    }

    /// The 14 geometry arguments of conv.cl kernels.
    private func geometryArguments(_ g: Conv2dGeometry) -> [Argument] {
        [g.batch, g.channels, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW,
         g.padH, g.padW, g.dilationH, g.dilationW, g.outHeight, g.outWidth].map { .int($0) }
    }

    /// im2col, col2im and max pooling run the build of conv.cl for their storage type; average
    /// pooling, Float32 only, runs the float32 build (`conv.cl`).
    func im2col(_ source: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, dtype: DType, destination: DeviceBuffer) {
        check(dtype.isFloatingPoint, "im2col: \(dtype) columns")
        pool.noteKernels(0, bytes: Traffic.columns(g, dtype))
        let count = g.batch * g.channels * g.kernelH * g.kernelW * g.outHeight
        launch(Self.typedProgram("conv.cl", dtype), "im2col", count: count,
               [.buffer(source), .int(offset), .buffer(destination)] + geometryArguments(g))
    }

    func col2im(_ columns: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, dtype: DType, destination: DeviceBuffer) {
        check(dtype.isFloatingPoint, "col2im: \(dtype) columns")
        pool.noteKernels(0, bytes: Traffic.columns(g, dtype))
        launch(Self.typedProgram("conv.cl", dtype), "col2im", count: g.batch * g.channels * g.height,
               [.buffer(columns), .int(offset), .buffer(destination)] + geometryArguments(g))
    }

    func maxPool2d(_ source: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, dtype: DType, destination: DeviceBuffer,
                   indices: DeviceBuffer) {
        check(dtype.isFloatingPoint, "maxPool2d: \(dtype) input")
        pool.noteKernels(0, bytes: Traffic.pool(g, indices: true, dtype))
        launchRuns(Self.typedProgram("conv.cl", dtype), "max_pool2d", rows: g.batch * g.channels * g.outHeight, length: g.outWidth,
                   [.buffer(source), .int(offset), .buffer(destination), .buffer(indices)] + geometryArguments(g))
    }

    func maxPool2dBackward(_ gradient: DeviceBuffer, indices: DeviceBuffer, geometry g: Conv2dGeometry, dtype: DType,
                           destination: DeviceBuffer) {
        check(dtype.isFloatingPoint, "maxPool2dBackward: \(dtype) gradient")
        pool.noteKernels(0, bytes: Traffic.pool(g, indices: true, dtype))
        let program = Self.typedProgram("conv.cl", dtype)
        // Windows that cannot overlap (stride at least the dilated extent) pick disjoint
        // pixels: zero the input gradient and write each window's gradient to its pick.
        if g.strideH >= (g.kernelH - 1) * g.dilationH + 1 && g.strideW >= (g.kernelW - 1) * g.dilationW + 1 {
            fill(destination, count: g.batch * g.channels * g.height * g.width, value: 0, dtype: dtype)
            launch(program, "max_pool2d_backward_disjoint", count: g.batch * g.channels * g.outHeight * g.outWidth,
                   [.buffer(gradient), .buffer(indices), .buffer(destination)] + geometryArguments(g))
            return
        }
        launch(program, "max_pool2d_backward", count: g.batch * g.channels * g.height * g.width,
               [.buffer(gradient), .buffer(indices), .buffer(destination)] + geometryArguments(g))
    }

    func avgPool2d(_ source: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.pool(g, indices: false))
        launch("conv.cl", "avg_pool2d", count: g.batch * g.channels * g.outHeight * g.outWidth,
               [.buffer(source), .int(offset), .buffer(destination), .int(countPadding ? 1 : 0)] + geometryArguments(g))
    }

    func avgPool2dBackward(_ gradient: DeviceBuffer, geometry g: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.pool(g, indices: false))
        launch("conv.cl", "avg_pool2d_backward", count: g.batch * g.channels * g.height * g.width,
               [.buffer(gradient), .buffer(destination), .int(countPadding ? 1 : 0)] + geometryArguments(g))
    }

    func integerUnary(_ op: UnaryKernel, _ source: DeviceBuffer, offset: Int, count: Int, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.elements(2 * count, .int64))
        launch("integer.cl", "integer_\(op.name)", count: count, [.buffer(source), .int(offset), .buffer(destination), .int(count)])
    }

    func integerBinary(_ op: BinaryKernel, _ a: IntegerOperand, _ b: IntegerOperand, count: Int, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.integerBinary(op, a, b, count: count))
        // A constant is passed by value, with the destination as a buffer the kernel never reads.
        func operand(_ x: IntegerOperand) -> [Argument] {
            switch x {
            case .dense(let buffer, let offset): return [.buffer(buffer), .int(offset), .int(1), .ulong(0)]
            case .scalar(let value): return [.buffer(destination), .int(0), .int(0), .ulong(UInt64(bitPattern: value))]
            }
        }
        launch("integer.cl", "integer_\(op.name)", count: count, operand(a) + operand(b) + [.buffer(destination), .int(count)])
    }

    func integerReduce(_ op: ReduceOp, _ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int,
                       destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.elements(outer * (size + 1) * inner, .int64))
        launch("integer.cl", "integer_reduce", count: outer * inner, [
            .buffer(source), .int(offset), .int(outer), .int(size), .int(inner), .int(Int(op.rawValue)), .buffer(destination),
        ])
    }

    func gather(_ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int, dtype: DType,
                index: StridedView, indices: IndexRule, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.gather(index, dtype))
        let j = index.shape[1], n = outer * j * inner
        guard n > 0 else { return }
        launchDense("index.cl", "gather_\(dtype.byteSize)", count: n, [
            .buffer(source), .int(offset), .int(size), .int(inner), .int(j),
            .buffer(index.buffer), .int(index.dtype == .int64 ? 1 : 0), .int(index.offset),
            .int(index.strides[0]), .int(index.strides[1]), .int(index.strides[2]), .buffer(destination), .int(n),
        ] + indexCheckArguments(indices))
    }

    func scatterAdd(_ values: StridedView, index: StridedView, outer: Int, size: Int, inner: Int,
                    indices: IndexRule, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.scatterAdd(values, index))
        let j = index.shape[1], n = outer * j * inner
        guard n > 0 else { return }
        launchDense("index.cl", "scatter_add", count: n, [
            .buffer(values.buffer), .int(values.offset), .int(values.strides[0]), .int(values.strides[1]), .int(values.strides[2]),
            .buffer(index.buffer), .int(index.dtype == .int64 ? 1 : 0), .int(index.offset),
            .int(index.strides[0]), .int(index.strides[1]), .int(index.strides[2]), .int(size), .int(inner), .int(j),
            .buffer(destination), .int(n),
        ] + indexCheckArguments(indices))
    }
}

/// The fused cross-entropy rows (`Kernels/loss.cl`): a row per work-item on CPU devices, a
/// work-group per row on GPUs.
extension OpenCLBackend {
    func crossEntropy(_ logits: StridedView, target: StridedView, weight: DeviceBuffer?, smoothing: Float,
                      indices: IndexRule, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.crossEntropy(logits, target))
        launchRows("cross_entropy_rows", logits, target, weight, smoothing, [.buffer(destination)] + indexCheckArguments(indices))
    }

    func crossEntropyBackward(_ logits: StridedView, target: StridedView, weight: DeviceBuffer?, smoothing: Float,
                              indices: IndexRule, gradient: StridedView, divisor: StridedView?, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.crossEntropyBackward(logits, target, gradient))
        launchRows("cross_entropy_backward_rows", logits, target, weight, smoothing, [
            .buffer(gradient.buffer), .int(gradient.offset), .int(gradient.strides[0]),
            .buffer(divisor?.buffer ?? gradient.buffer), .int(divisor?.offset ?? 0), .int(divisor == nil ? 0 : 1),
            .buffer(destination), .int(indices.ignored ?? 0), .int(indices.ignored == nil ? 0 : 1),
        ])
    }

    /// One of loss.cl's row kernels over `logits`' rows, with the arguments they share first.
    private func launchRows(_ name: String, _ logits: StridedView, _ target: StridedView, _ weight: DeviceBuffer?,
                            _ smoothing: Float, _ rest: [Argument]) {
        let rows = logits.shape[0]
        guard rows > 0 else { return }
        let arguments: [Argument] = [
            .buffer(logits.buffer), .int(logits.offset), .int(logits.strides[0]), .int(rows), .int(logits.shape[1]),
            .buffer(target.buffer), .int(target.dtype == .int64 ? 1 : 0), .int(target.offset), .int(target.strides[0]),
            .buffer(weight ?? logits.buffer), .int(weight == nil ? 0 : 1), .float(smoothing),
        ] + rest
        if isCPU {
            launch("loss.cl", name, count: rows, arguments)
        } else {
            launch("loss.cl", name, count: rows * reductionLocal, local: reductionLocal, arguments)
        }
    }
}

extension Operand {
    /// The view of a view operand, nil for a scalar.
    var view: StridedView? {
        if case .view(let v) = self { return v }
        return nil
    }
}

/// Attention's fused row kernels (`Kernels/attention.cl`): a row per work-item on CPU devices,
/// a work-group per row on GPUs.
extension OpenCLBackend {
    func attentionSoftmax(_ scores: DeviceBuffer, batch: Int, rows: Int, cols: Int, scale: Float, causal: Bool,
                          mask: StridedView?, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.elements(2 * batch * rows * cols) + (mask.map(Traffic.of) ?? 0))
        let total = batch * rows
        let s = mask?.strides ?? [0, 0, 0, 0]
        launch("attention.cl", "attention_softmax", count: isCPU ? total : total * reductionLocal, local: isCPU ? 1 : reductionLocal, [
            .buffer(scores), .int(total), .int(rows), .int(cols), .float(scale), .int(causal ? 1 : 0),
            .int(mask == nil ? 0 : 1), .buffer(mask?.buffer ?? scores), .int(mask?.offset ?? 0), .int(mask?.shape[1] ?? 1),
            .int(s[0]), .int(s[1]), .int(s[2]), .int(s[3]), .buffer(destination),
        ])
    }

    func attentionSoftmaxBackward(_ probs: DeviceBuffer, gradient: DeviceBuffer, batch: Int, rows: Int, cols: Int,
                                  scale: Float, causal: Bool, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.elements(3 * batch * rows * cols))
        let total = batch * rows
        launch("attention.cl", "attention_softmax_backward", count: isCPU ? total : total * reductionLocal, local: isCPU ? 1 : reductionLocal, [
            .buffer(probs), .buffer(gradient), .int(total), .int(rows), .int(cols), .float(scale), .int(causal ? 1 : 0),
            .buffer(destination),
        ])
    }
}

/// Flash-style attention (`Kernels/attention.cl`), built for CPU devices only: a work-item per
/// query row (per key row for the key and value gradients) holding its row in float16 registers.
extension OpenCLBackend: FlashAttentionBackend {
    /// `EMBER_ATTENTION`, read once: `flash` or `matmul` forces a path where both can run.
    private static let forcedAttention = ProcessInfo.processInfo.environment["EMBER_ATTENTION"]?.lowercased()

    /// Measured on PoCL (ember-bench, causal B 12 H 4 head dim 32, forward + backward): the
    /// GEMM + row-kernel path took 10.6 / 147 ms at T = 64 / 256 against 32.7 / 227 ms for the
    /// flash kernels, so flash is taken only where the `[batch, L, S]` blocks of the other path
    /// would pass 256 MiB each; it needs none.
    func flashAttentionApplies(dim: Int) -> Bool {
        isCPU && dim % 16 == 0 && dim <= 128 && dim > 0
    }

    func prefersFlashAttention(batch: Int, rows: Int, cols: Int, dim: Int) -> Bool {
        switch Self.forcedAttention {
        case "flash": return true
        case "matmul": return false
        default: return batch * rows * cols >= 64 << 20
        }
    }

    func flashAttentionForward(query: DeviceBuffer, key: DeviceBuffer, value: DeviceBuffer, batch: Int, rows: Int, cols: Int,
                               dim: Int, scale: Float, causal: Bool, output: DeviceBuffer, lse: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.elements(2 * batch * (rows + cols) * dim + batch * rows))
        launch("attention.cl", "flash_attention_forward", count: batch * rows, local: 1, [
            .buffer(query), .buffer(key), .buffer(value), .int(batch * rows), .int(rows), .int(cols), .int(dim),
            .float(scale), .int(causal ? 1 : 0), .buffer(output), .buffer(lse),
        ])
    }

    func flashAttentionBackward(query: DeviceBuffer, key: DeviceBuffer, value: DeviceBuffer, output: DeviceBuffer,
                                gradient: DeviceBuffer, lse: DeviceBuffer, batch: Int, rows: Int, cols: Int, dim: Int,
                                scale: Float, causal: Bool, delta: DeviceBuffer,
                                queryGradient: DeviceBuffer, keyGradient: DeviceBuffer, valueGradient: DeviceBuffer) {
        pool.noteKernels(0, bytes: Traffic.elements(batch * (5 * rows + 4 * cols) * dim + 2 * batch * rows))
        launch("attention.cl", "flash_attention_backward_query", count: batch * rows, local: 1, [
            .buffer(query), .buffer(key), .buffer(value), .buffer(output), .buffer(gradient), .buffer(lse),
            .int(batch * rows), .int(rows), .int(cols), .int(dim), .float(scale), .int(causal ? 1 : 0),
            .buffer(delta), .buffer(queryGradient),
        ])
        launch("attention.cl", "flash_attention_backward_key", count: batch * cols, local: 1, [
            .buffer(query), .buffer(key), .buffer(value), .buffer(gradient), .buffer(lse), .buffer(delta),
            .int(batch * cols), .int(rows), .int(cols), .int(dim), .float(scale), .int(causal ? 1 : 0),
            .buffer(keyGradient), .buffer(valueGradient),
        ])
    }
}
