/// The backend a profiled task sees (`Storage.backend` while its task is profiled): every
/// primitive and transfer runs inside a range of the task's profile, then goes to the real
/// backend unchanged. This is the one place host op times are taken; kernels and copies get
/// their device times where they are enqueued (`OpenCLBackend`).
final class ProfilingBackend: Backend, @unchecked Sendable {
    let inner: Backend
    let collector: ProfileCollector
    let device: String

    init(_ inner: Backend, device: Device, collector: ProfileCollector) {
        self.inner = inner
        self.device = device.description
        self.collector = collector
    }

    private func op<T>(_ name: String, _ destination: DeviceBuffer?, _ shapes: @autoclosure () -> [[Int]], _ body: () throws -> T) rethrows -> T {
        try collector.primitive(name, destination: destination, device: device, shapes: shapes(), body)
    }

    private static func shapes(_ operands: Operand...) -> [[Int]] {
        operands.map { if case .view(let v) = $0 { v.shape } else { [] } }
    }

    func allocate(bytes: Int) throws -> DeviceBuffer { try inner.allocate(bytes: bytes) }
    func recycle(handle: OpaquePointer, capacity: Int) { inner.recycle(handle: handle, capacity: capacity) }
    func emptyPool() { inner.emptyPool() }
    var stats: BackendStats { inner.stats }
    func resetPeak() { inner.resetPeak() }

    func upload(_ source: UnsafeRawBufferPointer, to buffer: DeviceBuffer, byteOffset: Int) {
        collector.transfer("upload", into: buffer, device: device, bytes: source.count) {
            inner.upload(source, to: buffer, byteOffset: byteOffset)
        }
    }

    func download(_ buffer: DeviceBuffer, byteOffset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        try collector.transfer("download", into: nil, device: device, bytes: destination.count) {
            try inner.download(buffer, byteOffset: byteOffset, into: destination)
        }
    }

    func kernelsReady(_ family: KernelFamily, dtype: DType) -> Bool { inner.kernelsReady(family, dtype: dtype) }

    /// The pending fused graphs (end of `backward()`, of an optimizer step) run in a `flush`
    /// range, so their kernels' device time lands in a row of `keyAverages`, not in the
    /// profile's own range, which has none.
    func flush() { collector.scope("flush", kind: .scope, device: device) { inner.flush() } }

    func synchronize() throws {
        try collector.scope("synchronize", kind: .scope, device: device) { try inner.synchronize() }
    }

    func copy(_ source: StridedView, to destination: DeviceBuffer, at destinationOffset: Int) {
        op("copy", destination, [source.shape]) { inner.copy(source, to: destination, at: destinationOffset) }
    }

    func cast(_ source: StridedView, to dtype: DType, destination: DeviceBuffer) {
        op("cast", destination, [source.shape]) { inner.cast(source, to: dtype, destination: destination) }
    }

    func fill(_ destination: DeviceBuffer, count: Int, value: Double, dtype: DType) {
        op("fill", destination, []) { inner.fill(destination, count: count, value: value, dtype: dtype) }
    }

    func arange(_ destination: DeviceBuffer, count: Int, start: Double, step: Double, dtype: DType) {
        op("arange", destination, []) { inner.arange(destination, count: count, start: start, step: step, dtype: dtype) }
    }

    func random(_ destination: DeviceBuffer, count: Int, distribution: RandomDistribution, seed: UInt64, offset: UInt64) {
        op("random", destination, []) { inner.random(destination, count: count, distribution: distribution, seed: seed, offset: offset) }
    }

    func unary(_ unaryOp: UnaryOp, _ source: StridedView, destination: DeviceBuffer) {
        op(unaryOp.kernel.name, destination, [source.shape]) { inner.unary(unaryOp, source, destination: destination) }
    }

    func binary(_ binaryOp: BinaryOp, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer) {
        op(binaryOp.kernel.name, destination, Self.shapes(a, b)) { inner.binary(binaryOp, a, b, shape: shape, dtype: dtype, destination: destination) }
    }

    func select(_ condition: StridedView, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer) {
        op("where", destination, [condition.shape] + Self.shapes(a, b)) {
            inner.select(condition, a, b, shape: shape, dtype: dtype, destination: destination)
        }
    }

    func optimizerStep(_ rule: OptimizerRule, _ updates: [OptimizerUpdate], dtype: DType) {
        op("optimizerStep", updates[0].parameter, updates.map { [$0.count] }) {
            inner.optimizerStep(rule, updates, dtype: dtype)
        }
    }

    func powerSum(_ power: NormPower, _ sources: [StridedView], dtype: DType, destination: DeviceBuffer) {
        op("powerSum", destination, sources.map(\.shape)) { inner.powerSum(power, sources, dtype: dtype, destination: destination) }
    }

    func integerUnary(_ unaryOp: UnaryKernel, _ source: DeviceBuffer, offset: Int, count: Int, destination: DeviceBuffer) {
        op(unaryOp.name, destination, [[count]]) { inner.integerUnary(unaryOp, source, offset: offset, count: count, destination: destination) }
    }

    func integerBinary(_ binaryOp: BinaryKernel, _ a: IntegerOperand, _ b: IntegerOperand, count: Int, destination: DeviceBuffer) {
        op(binaryOp.name, destination, [[count]]) { inner.integerBinary(binaryOp, a, b, count: count, destination: destination) }
    }

    func integerReduce(_ reduceOp: ReduceOp, _ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner count: Int,
                       destination: DeviceBuffer) {
        op("\(reduceOp)", destination, [[outer, size, count]]) {
            inner.integerReduce(reduceOp, source, offset: offset, outer: outer, size: size, inner: count, destination: destination)
        }
    }

    func copy(_ source: StridedView, into destination: StridedView) {
        op("copy", destination.buffer, [source.shape]) { inner.copy(source, into: destination) }
    }

    func reduce(_ reduceOp: ReduceOp, _ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner count: Int, dtype: DType,
                destination: DeviceBuffer) {
        op("\(reduceOp)", destination, [[outer, size, count]]) {
            inner.reduce(reduceOp, source, offset: offset, outer: outer, size: size, inner: count, dtype: dtype, destination: destination)
        }
    }

    func softmax(_ source: DeviceBuffer, offset: Int, rows: Int, cols: Int, log: Bool, destination: DeviceBuffer) {
        op(log ? "logSoftmax" : "softmax", destination, [[rows, cols]]) {
            inner.softmax(source, offset: offset, rows: rows, cols: cols, log: log, destination: destination)
        }
    }

    func layerNorm(_ source: DeviceBuffer, offset: Int, rows: Int, cols: Int, weight: DeviceBuffer?, bias: DeviceBuffer?, eps: Float,
                   destination: DeviceBuffer, mean: DeviceBuffer, rstd: DeviceBuffer) {
        op("layerNorm", destination, [[rows, cols]]) {
            inner.layerNorm(source, offset: offset, rows: rows, cols: cols, weight: weight, bias: bias, eps: eps,
                            destination: destination, mean: mean, rstd: rstd)
        }
    }

    func layerNormBackward(_ gradient: DeviceBuffer, source: DeviceBuffer, offset: Int, rows: Int, cols: Int, mean: DeviceBuffer,
                           rstd: DeviceBuffer, weight: DeviceBuffer?, inputGradient: DeviceBuffer, weightGradient: DeviceBuffer?,
                           biasGradient: DeviceBuffer?) {
        op("layerNormBackward", inputGradient, [[rows, cols]]) {
            inner.layerNormBackward(gradient, source: source, offset: offset, rows: rows, cols: cols, mean: mean, rstd: rstd,
                                    weight: weight, inputGradient: inputGradient, weightGradient: weightGradient, biasGradient: biasGradient)
        }
    }

    func gemm(m: Int, n: Int, k: Int, batch: Int, alpha: Float, a: GemmOperand, b: GemmOperand, beta: Float, bias: GemmBias?,
              c: DeviceBuffer, cOffset: Int) {
        op("gemm", c, [[batch, m, k], [batch, k, n]]) {
            inner.gemm(m: m, n: n, k: k, batch: batch, alpha: alpha, a: a, b: b, beta: beta, bias: bias, c: c, cOffset: cOffset)
        }
    }

    private static func input(_ g: Conv2dGeometry) -> [Int] { [g.batch, g.channels, g.height, g.width] }

    func im2col(_ source: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, dtype: DType, destination: DeviceBuffer) {
        op("im2col", destination, [Self.input(geometry)]) {
            inner.im2col(source, offset: offset, geometry: geometry, dtype: dtype, destination: destination)
        }
    }

    func col2im(_ columns: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, dtype: DType, destination: DeviceBuffer) {
        op("col2im", destination, [Self.input(geometry)]) {
            inner.col2im(columns, offset: offset, geometry: geometry, dtype: dtype, destination: destination)
        }
    }

    func maxPool2d(_ source: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, dtype: DType, destination: DeviceBuffer,
                   indices: DeviceBuffer) {
        op("maxPool2d", destination, [Self.input(geometry)]) {
            inner.maxPool2d(source, offset: offset, geometry: geometry, dtype: dtype, destination: destination, indices: indices)
        }
    }

    func maxPool2dBackward(_ gradient: DeviceBuffer, indices: DeviceBuffer, geometry: Conv2dGeometry, dtype: DType,
                           destination: DeviceBuffer) {
        op("maxPool2dBackward", destination, [Self.input(geometry)]) {
            inner.maxPool2dBackward(gradient, indices: indices, geometry: geometry, dtype: dtype, destination: destination)
        }
    }

    func avgPool2d(_ source: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer) {
        op("avgPool2d", destination, [Self.input(geometry)]) {
            inner.avgPool2d(source, offset: offset, geometry: geometry, countPadding: countPadding, destination: destination)
        }
    }

    func avgPool2dBackward(_ gradient: DeviceBuffer, geometry: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer) {
        op("avgPool2dBackward", destination, [Self.input(geometry)]) {
            inner.avgPool2dBackward(gradient, geometry: geometry, countPadding: countPadding, destination: destination)
        }
    }

    func gather(_ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner count: Int, dtype: DType,
                index: StridedView, indices: IndexRule, destination: DeviceBuffer) {
        op("gather", destination, [[outer, size, count], index.shape]) {
            inner.gather(source, offset: offset, outer: outer, size: size, inner: count, dtype: dtype, index: index, indices: indices,
                         destination: destination)
        }
    }

    func scatterAdd(_ values: StridedView, index: StridedView, outer: Int, size: Int, inner count: Int,
                    indices: IndexRule, destination: DeviceBuffer) {
        op("scatterAdd", destination, [values.shape, index.shape]) {
            inner.scatterAdd(values, index: index, outer: outer, size: size, inner: count, indices: indices, destination: destination)
        }
    }

    func crossEntropy(_ logits: StridedView, target: StridedView, weight: DeviceBuffer?, smoothing: Float,
                      indices: IndexRule, destination: DeviceBuffer) {
        op("crossEntropy", destination, [logits.shape, target.shape]) {
            inner.crossEntropy(logits, target: target, weight: weight, smoothing: smoothing, indices: indices, destination: destination)
        }
    }

    func crossEntropyBackward(_ logits: StridedView, target: StridedView, weight: DeviceBuffer?, smoothing: Float,
                              indices: IndexRule, gradient: StridedView, divisor: StridedView?, destination: DeviceBuffer) {
        op("crossEntropyBackward", destination, [logits.shape, target.shape]) {
            inner.crossEntropyBackward(logits, target: target, weight: weight, smoothing: smoothing, indices: indices,
                                       gradient: gradient, divisor: divisor, destination: destination)
        }
    }

    func attentionSoftmax(_ scores: DeviceBuffer, batch: Int, rows: Int, cols: Int, scale: Float, causal: Bool,
                          mask: StridedView?, destination: DeviceBuffer) {
        op("attentionSoftmax", destination, [[batch, rows, cols]] + (mask.map { [$0.shape] } ?? [])) {
            inner.attentionSoftmax(scores, batch: batch, rows: rows, cols: cols, scale: scale, causal: causal, mask: mask, destination: destination)
        }
    }

    func attentionSoftmaxBackward(_ probs: DeviceBuffer, gradient: DeviceBuffer, batch: Int, rows: Int, cols: Int,
                                  scale: Float, causal: Bool, destination: DeviceBuffer) {
        op("attentionSoftmaxBackward", destination, [[batch, rows, cols]]) {
            inner.attentionSoftmaxBackward(probs, gradient: gradient, batch: batch, rows: rows, cols: cols, scale: scale,
                                           causal: causal, destination: destination)
        }
    }
}

/// The flash-attention kernels of the wrapped backend, when it has them, timed like every
/// other primitive (so a profile runs the same attention path as a normal run).
extension ProfilingBackend: FlashAttentionBackend {
    private var flash: FlashAttentionBackend? { inner as? FlashAttentionBackend }

    func flashAttentionApplies(dim: Int) -> Bool { flash?.flashAttentionApplies(dim: dim) ?? false }

    func prefersFlashAttention(batch: Int, rows: Int, cols: Int, dim: Int) -> Bool {
        flash?.prefersFlashAttention(batch: batch, rows: rows, cols: cols, dim: dim) ?? false
    }

    func flashAttentionForward(query: DeviceBuffer, key: DeviceBuffer, value: DeviceBuffer, batch: Int, rows: Int, cols: Int,
                               dim: Int, scale: Float, causal: Bool, output: DeviceBuffer, lse: DeviceBuffer) {
        op("flashAttentionForward", output, [[batch, rows, dim], [batch, cols, dim]]) {
            flash!.flashAttentionForward(query: query, key: key, value: value, batch: batch, rows: rows, cols: cols, dim: dim,
                                         scale: scale, causal: causal, output: output, lse: lse)
        }
    }

    func flashAttentionBackward(query: DeviceBuffer, key: DeviceBuffer, value: DeviceBuffer, output: DeviceBuffer,
                                gradient: DeviceBuffer, lse: DeviceBuffer, batch: Int, rows: Int, cols: Int, dim: Int,
                                scale: Float, causal: Bool, delta: DeviceBuffer,
                                queryGradient: DeviceBuffer, keyGradient: DeviceBuffer, valueGradient: DeviceBuffer) {
        op("flashAttentionBackward", queryGradient, [[batch, rows, dim], [batch, cols, dim]]) {
            flash!.flashAttentionBackward(query: query, key: key, value: value, output: output, gradient: gradient, lse: lse,
                                          batch: batch, rows: rows, cols: cols, dim: dim, scale: scale, causal: causal, delta: delta,
                                          queryGradient: queryGradient, keyGradient: keyGradient, valueGradient: valueGradient)
        }
    }
}
