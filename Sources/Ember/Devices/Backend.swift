import Foundation

/// A block of memory owned by a backend. `handle` is the backend's own reference
/// (host pointer for the CPU, `cl_mem` for OpenCL). When the last tensor using it goes
/// away, the block returns to its backend's pool.
final class DeviceBuffer: @unchecked Sendable {
    /// The backend's raw handle (a host address or a `cl_mem`).
    let handle: OpaquePointer
    /// Capacity in bytes (the pool's size class; at least the requested size).
    let capacity: Int
    /// The backend that owns the memory.
    let backend: Backend
    /// Contents not computed yet: an OpenCL device's lazy elementwise graph, run when a kernel,
    /// a transfer or a limit needs the buffer (guarded by that device's `LazyFusion.lock`).
    var lazy: LazyResult?

    init(handle: OpaquePointer, capacity: Int, backend: Backend) {
        self.handle = handle
        self.capacity = capacity
        self.backend = backend
    }

    deinit { backend.recycle(handle: handle, capacity: capacity) }
}

/// A strided window onto a buffer: what a kernel reads. Offsets and strides are in
/// elements of `dtype`. Strides may be 0 (broadcast) but never negative.
struct StridedView {
    var buffer: DeviceBuffer
    var offset: Int
    var shape: [Int]
    var strides: [Int]
    /// The element type stored in `buffer`.
    var dtype: DType

    var count: Int { Shape.count(shape) }
    /// True when the elements are dense and in row-major order.
    var isContiguous: Bool { Shape.isContiguous(shape, strides) || count <= 1 }
}

/// One input of an elementwise primitive: a strided view or a Float constant.
enum Operand {
    case view(StridedView)
    case scalar(Float)
}

/// One input of an integer elementwise primitive: a dense run of Int64 elements starting at
/// element `offset` of a buffer, or an Int64 constant.
enum IntegerOperand {
    case dense(DeviceBuffer, offset: Int)
    case scalar(Int64)
}

/// Reductions along one axis of a contiguous `[outer, size, inner]` block.
enum ReduceOp: Int32 {
    case sum = 0, max, min, argmax, argmin

    /// Arg-reductions write Int32 indices; the others write Float32.
    var producesIndices: Bool { self == .argmax || self == .argmin }
}

/// What a random fill draws. All draws come from a counter-based generator,
/// `splitmix64(seed &+ (offset &+ i) &* 0x9E3779B97F4A7C15)`, so the CPU and every
/// OpenCL device produce the same bits for the same seed and offset.
enum RandomDistribution: Equatable {
    /// Float32 uniform in `[low, high)`.
    case uniform(low: Float, high: Float)
    /// Float32 normal (Box–Muller over counters 2i and 2i+1).
    case normal(mean: Float, std: Float)
    /// Int32 uniform in `[low, high)`.
    case integer(low: Int32, high: Int32)

    /// Counters consumed per element.
    var countersPerElement: UInt64 {
        if case .normal = self { return 2 }
        return 1
    }
}

/// Geometry of a 2-D convolution or pooling window over an NCHW tensor.
struct Conv2dGeometry: Equatable {
    var batch: Int, channels: Int, height: Int, width: Int
    var kernelH: Int, kernelW: Int
    var strideH: Int, strideW: Int
    var padH: Int, padW: Int
    var dilationH: Int, dilationW: Int

    var outHeight: Int { (height + 2 * padH - dilationH * (kernelH - 1) - 1) / strideH + 1 }
    var outWidth: Int { (width + 2 * padW - dilationW * (kernelW - 1) - 1) / strideW + 1 }
}

/// One side of a GEMM: a buffer, an element offset, a leading dimension, whether
/// it is read transposed, the element stride between batch entries (0 = shared), and the
/// element type (`float32`, or `float16` / `bfloat16` for both operands at once).
struct GemmOperand {
    var buffer: DeviceBuffer
    var offset: Int
    var ld: Int
    var transposed: Bool
    var batchStride: Int
    var dtype: DType = .float32

    /// The dtype of C in `Backend.gemm` of this operand by `other`.
    func productType(_ other: GemmOperand) -> DType {
        dtype == other.dtype && dtype.isReducedFloat ? dtype : .float32
    }
}

/// A vector `Backend.gemm` adds to its product (PyTorch's `addmm`): element `offset + i` is
/// added to row `i` of each C (`perRow`, a convolution's channel bias) or to column `i` (a
/// Linear layer's bias). It is of C's dtype.
struct GemmBias {
    var buffer: DeviceBuffer
    var offset: Int
    var perRow: Bool

    /// The bias broadcast over `batch` C matrices `[m, n]`.
    func broadcast(batch: Int, m: Int, n: Int, dtype: DType) -> StridedView {
        StridedView(buffer: buffer, offset: offset, shape: [batch, m, n], strides: perRow ? [0, 1, 0] : [0, 0, 1], dtype: dtype)
    }
}

/// One tensor's buffers in `Backend.optimizerStep`: it reads `gradient` (contiguous from
/// element `gradientOffset`) and reads and overwrites `parameter` and `states` (contiguous from
/// element 0, distinct buffers, in the rule's order), `count` elements each.
struct OptimizerUpdate {
    var parameter: DeviceBuffer, gradient: DeviceBuffer, gradientOffset: Int
    var states: [DeviceBuffer]
    var count: Int
}

/// One optimizer update rule of `Backend.optimizerStep`, with this step's hyper-parameters
/// folded on the host exactly as the composed updates of `Optim/Optimizer.swift` fold them
/// (`1 - beta1`, `lr / (1 - beta1^t)`, ...), so the fused loop does the same Float32 operations.
enum OptimizerRule: Equatable {
    /// `torch.optim.SGD`: states `[momentum_buffer]` when `momentum != 0`, none otherwise.
    case sgd(SGDStep)
    /// `torch.optim.Adam` and `AdamW`: states `[exp_avg, exp_avg_sq]`.
    case adam(AdamStep)
    /// `torch.optim.RMSprop`: states `[square_avg]`, then `grad_avg` when centered, then
    /// `momentum_buffer` when `momentum > 0`.
    case rmsprop(RMSpropStep)

    /// SGD's scalars for one step.
    struct SGDStep: Equatable {
        var lr: Float, weightDecay: Float, momentum: Float
        /// `1 - dampening`, applied to the gradient only when `dampened`.
        var keep: Float, dampened: Bool
        var nesterov: Bool
        /// The first step: the momentum buffer is set to the gradient instead of updated.
        var firstStep: Bool
    }

    /// Adam's scalars for one step.
    struct AdamStep: Equatable {
        var weightDecay: Float
        /// Decoupled (AdamW) decay multiplies the parameter by `decayFactor = 1 - lr * weightDecay`.
        var decoupled: Bool, decayFactor: Float
        var beta1: Float, oneMinusBeta1: Float, beta2: Float, oneMinusBeta2: Float
        /// `lr / (1 - beta1^t)` and `1 - beta2^t`.
        var stepSize: Float, correction2: Float
        var eps: Float
    }

    /// RMSprop's scalars for one step.
    struct RMSpropStep: Equatable {
        var lr: Float, weightDecay: Float, alpha: Float, oneMinusAlpha: Float, eps: Float, momentum: Float
        var centered: Bool
    }

    /// How many state buffers the rule reads and writes.
    var stateCount: Int {
        switch self {
        case .sgd(let s): s.momentum != 0 ? 1 : 0
        case .adam: 2
        case .rmsprop(let r): 1 + (r.centered ? 1 : 0) + (r.momentum > 0 ? 1 : 0)
        }
    }
}

/// What `Backend.powerSum` accumulates over every element `x`.
enum NormPower: Equatable {
    /// `x * x`, summed.
    case square
    /// `pow(|x|, p)`, summed.
    case power(Float)
    /// `|x|`, the maximum (NaN when any element is NaN).
    case maxAbs
}

/// Counters a backend keeps for tests and benchmarks.
public struct BackendStats: Sendable, Equatable {
    /// Buffers currently owned by tensors.
    public var liveBuffers = 0
    /// Bytes currently owned by tensors (pool size classes).
    public var liveBytes = 0
    /// Buffers parked in the pool for reuse.
    public var pooledBuffers = 0
    /// Bytes parked in the pool.
    public var pooledBytes = 0
    /// Raw allocations made from the system or driver since start.
    public var allocations = 0
    /// Host-to-device copies (uploads) since start.
    public var hostToDevice = 0
    /// Device-to-host copies (downloads) since start.
    public var deviceToHost = 0
    /// Peak of `liveBytes` since start (or since `resetPeak()`).
    public var peakLiveBytes = 0
    /// Kernels launched since start: on OpenCL every `clEnqueueNDRangeKernel` and every CLBlast
    /// call; on the CPU every primitive call that runs a compute loop (transfers are counted
    /// in `hostToDevice` and `deviceToHost` instead).
    public var kernelLaunches = 0
    /// Bytes the launched kernels read and wrote since start, counted from each primitive's
    /// operands: every input view's elements (a broadcast operand counts once per element it
    /// feeds), every output element, and a GEMM's operands and result once each; an
    /// approximation of device-memory traffic that ignores caches and re-reads.
    public var bytesMoved = 0
}

/// The bytes each primitive's kernels read and write, as `BackendStats.bytesMoved` counts them
/// on every backend: each input view's elements (a broadcast operand once per element it
/// feeds, a scalar operand none), each output element, an accumulated output twice.
enum Traffic {
    /// A view's elements.
    static func of(_ view: StridedView) -> Int { view.count * view.dtype.byteSize }
    /// A view operand's elements over `count` outputs; a scalar reads no memory.
    static func of(_ operand: Operand, dtype: DType, count: Int) -> Int {
        if case .view = operand { return count * dtype.byteSize }
        return 0
    }
    /// `count` elements of `dtype`.
    static func elements(_ count: Int, _ dtype: DType = .float32) -> Int { count * dtype.byteSize }
    /// `binary`: both operands and the result (a mask of bytes for comparisons).
    static func binary(_ op: BinaryOp, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType) -> Int {
        let n = Shape.count(shape)
        return of(a, dtype: dtype, count: n) + of(b, dtype: dtype, count: n) + n * (op.isComparison ? 1 : dtype.byteSize)
    }
    /// `integerBinary`: each dense operand's Int64 elements and the result (a mask for comparisons).
    static func integerBinary(_ op: BinaryKernel, _ a: IntegerOperand, _ b: IntegerOperand, count: Int) -> Int {
        func read(_ x: IntegerOperand) -> Int { if case .dense = x { return count * 8 } else { return 0 } }
        return read(a) + read(b) + count * (op.producesMask ? 1 : 8)
    }
    /// `select`: the mask, both operands and the result.
    static func select(_ a: Operand, _ b: Operand, shape: [Int], dtype: DType) -> Int {
        let n = Shape.count(shape)
        return n + of(a, dtype: dtype, count: n) + of(b, dtype: dtype, count: n) + n * dtype.byteSize
    }
    /// `gemm`: each operand's matrices once (a shared one once in all), C written (and read
    /// when `beta != 0`), and a bias vector once.
    static func gemm(m: Int, n: Int, k: Int, batch: Int, a: GemmOperand, b: GemmOperand, beta: Float, bias: GemmBias?) -> Int {
        let c = a.productType(b).byteSize
        return (a.batchStride == 0 ? 1 : batch) * m * k * a.dtype.byteSize + (b.batchStride == 0 ? 1 : batch) * k * n * b.dtype.byteSize
            + batch * m * n * c * (beta == 0 ? 1 : 2) + (bias.map { ($0.perRow ? m : n) * c } ?? 0)
    }
    /// `reduce`: the block read and its `[outer, inner]` results.
    static func reduce(outer: Int, size: Int, inner: Int, dtype: DType) -> Int {
        elements(outer * size * inner, dtype) + elements(outer * inner)
    }
    /// `gather`: each index, the value it picks and the value written.
    static func gather(_ index: StridedView, _ dtype: DType) -> Int { of(index) + 2 * index.count * dtype.byteSize }
    /// `scatterAdd`: each value and index read, and its destination element read and written.
    static func scatterAdd(_ values: StridedView, _ index: StridedView) -> Int { of(values) + of(index) + 2 * elements(values.count) }
    /// `im2col` and `col2im`: the image and its columns, both of the float type `dtype`.
    static func columns(_ g: Conv2dGeometry, _ dtype: DType) -> Int {
        dtype.byteSize * (g.batch * g.channels * g.height * g.width + g.batch * g.channels * g.kernelH * g.kernelW * g.outHeight * g.outWidth)
    }
    /// `optimizerStep` of one tensor: the parameter, gradient and states read, the parameter
    /// and states written.
    static func optimizerStep(_ update: OptimizerUpdate, _ dtype: DType) -> Int {
        elements(update.count * (3 + 2 * update.states.count), dtype)
    }
    /// `crossEntropy`: the scores and targets read, each row's term and kept weight written.
    static func crossEntropy(_ logits: StridedView, _ target: StridedView) -> Int {
        of(logits) + of(target) + elements(2 * logits.shape[0])
    }
    /// `crossEntropyBackward`: the scores, targets and row gradients read, the scores' gradient written.
    static func crossEntropyBackward(_ logits: StridedView, _ target: StridedView, _ gradient: StridedView) -> Int {
        2 * of(logits) + of(target) + of(gradient)
    }
    /// Pooling forward or backward: the input plane and the pooled outputs (of `dtype`; with
    /// `indices`, an Int32 index per output too).
    static func pool(_ g: Conv2dGeometry, indices: Bool, _ dtype: DType = .float32) -> Int {
        let outputs = g.batch * g.channels * g.outHeight * g.outWidth
        return dtype.byteSize * (g.batch * g.channels * g.height * g.width + outputs) + (indices ? 4 * outputs : 0)
    }
}

/// The device abstraction: the only layer that knows about memory and kernels.
///
/// Every primitive writes a contiguous destination buffer that the caller allocated with
/// `allocate`, overwriting it (except `scatterAdd`, which accumulates into a buffer the
/// caller initialised). `copy`, `cast`, `fill` and `arange` take every dtype; `unary`,
/// `binary`, `select`, `im2col`, `col2im` and max pooling read and write any float dtype
/// (computing in Float32), `reduce` reads any; the other primitives read and write Float32 (`gemm` also
/// reads narrow operands) and the tensor layer converts other dtypes before calling them. Primitives are enqueued asynchronously where the
/// device allows it; `download` and `synchronize` wait for them, and `upload` returns once
/// its host bytes are copied (on OpenCL a blocking write, which waits for the commands
/// before it).
///
/// Aliasing: `copy`, `unary`, `binary` and `select` compute each output element from the
/// input elements at the same index only, so their destination may be the buffer an input
/// view reads when that view has the destination's own layout (offset 0, contiguous, the
/// destination's shape): in-place updates (`+=`, `copy(from:)`) rely on this. An input that
/// reads the destination through any other layout (a transpose, a broadcast, an offset)
/// would race the writes: the caller copies it first. No other primitive may alias.
protocol Backend: AnyObject, Sendable {
    /// Allocates room for `bytes` bytes, from the pool when a block of the same size
    /// class is free. Throws `EmberError.outOfMemory` when the device cannot.
    func allocate(bytes: Int) throws -> DeviceBuffer
    /// Returns a block to the pool (called by `DeviceBuffer.deinit`).
    func recycle(handle: OpaquePointer, capacity: Int)
    /// Drops every pooled (unused) block.
    func emptyPool()
    /// Counters for tests and benchmarks.
    var stats: BackendStats { get }
    /// Resets `peakLiveBytes` to the current live bytes.
    func resetPeak()

    /// Copies host bytes into `buffer` from byte `byteOffset` on. Returns once `source` may
    /// be reused (OpenCL: a blocking write, so it waits for the commands before it).
    func upload(_ source: UnsafeRawBufferPointer, to buffer: DeviceBuffer, byteOffset: Int)
    /// Copies `destination.count` bytes, starting at byte `byteOffset` of `buffer`, to host
    /// memory; waits for every enqueued command first.
    func download(_ buffer: DeviceBuffer, byteOffset: Int, into destination: UnsafeMutableRawBufferPointer) throws
    /// Waits until every enqueued command has finished.
    func synchronize() throws
    /// Starts every computation the backend has deferred (OpenCL's pending elementwise graphs;
    /// nothing on the CPU), without waiting for it: the end of `backward()` and of an optimizer
    /// step call it.
    func flush()

    /// Whether the kernels of `family` for `dtype` can run now. A device that compiles them in
    /// the background (OpenCL, from device open) answers false until they are built, starting
    /// the build; callers then take their composed path, so a cold start never waits for them.
    func kernelsReady(_ family: KernelFamily, dtype: DType) -> Bool

    /// Gathers a strided view into contiguous elements of `destination` from element
    /// `destinationOffset` on (bitwise, any dtype).
    func copy(_ source: StridedView, to destination: DeviceBuffer, at destinationOffset: Int)
    /// Copies `source` bit for bit into the strided view `destination` of the same shape and
    /// element size (a region of a larger tensor: `cat` writes each input into its place).
    func copy(_ source: StridedView, into destination: StridedView)
    /// Converts a strided view to `dtype` into a contiguous buffer, with `DType.convert`'s rules.
    func cast(_ source: StridedView, to dtype: DType, destination: DeviceBuffer)
    /// Writes `count` copies of `value` (stored as `dtype`).
    func fill(_ destination: DeviceBuffer, count: Int, value: Double, dtype: DType)
    /// Writes `start + i * step` for i in 0..<count (stored as `dtype`).
    func arange(_ destination: DeviceBuffer, count: Int, start: Double, step: Double, dtype: DType)
    /// Random fill of `count` elements from counters `offset ..< offset + count * countersPerElement`.
    func random(_ destination: DeviceBuffer, count: Int, distribution: RandomDistribution, seed: UInt64, offset: UInt64)

    /// `destination[i] = op(source[i])`, the output shaped like `source` and of its float dtype.
    func unary(_ op: UnaryOp, _ source: StridedView, destination: DeviceBuffer)
    /// `destination[i] = op(a[i], b[i])` over `shape`; operand views are already broadcast to
    /// `shape` and are of the float type `dtype`, as the destination is (`.bool` for comparisons).
    func binary(_ op: BinaryOp, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer)
    /// `destination[i] = condition[i] ? a[i] : b[i]` over `shape` (views broadcast to it): a
    /// `.bool` condition, operands and destination of the float type `dtype`.
    func select(_ condition: StridedView, _ a: Operand, _ b: Operand, shape: [Int], dtype: DType, destination: DeviceBuffer)

    /// `destination[i] = op(source[offset + i])` for `count` Int64 elements, by the op's exact
    /// integer form (`UnaryKernel.integer`, wrapping on overflow), into Int64 elements.
    func integerUnary(_ op: UnaryKernel, _ source: DeviceBuffer, offset: Int, count: Int, destination: DeviceBuffer)
    /// `destination[i] = op(a[i], b[i])` for `count` elements of two Int64 operands (dense runs
    /// of the result's shape, or constants), by the op's exact integer form: Int64 elements, or
    /// a `.bool` mask for the comparisons.
    func integerBinary(_ op: BinaryKernel, _ a: IntegerOperand, _ b: IntegerOperand, count: Int, destination: DeviceBuffer)
    /// Reduces axis 1 of the contiguous block `[outer, size, inner]` of Int64 elements starting
    /// at element `offset` of `source` exactly, writing `[outer, inner]` Int64 values (sums
    /// wrap on overflow; indices for the arg-reductions, the first on ties). `size` is at least 1.
    func integerReduce(_ op: ReduceOp, _ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int,
                       destination: DeviceBuffer)
    /// Reduces axis 1 of the contiguous block `[outer, size, inner]` of float elements of
    /// `dtype` starting at element `offset` of `source`, writing `[outer, inner]` Float32
    /// values (Int32 indices for the arg-reductions). `size` is at least 1.
    func reduce(_ op: ReduceOp, _ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int, dtype: DType,
                destination: DeviceBuffer)
    /// Softmax (or log-softmax) of each row of the contiguous `[rows, cols]` block.
    func softmax(_ source: DeviceBuffer, offset: Int, rows: Int, cols: Int, log: Bool, destination: DeviceBuffer)
    /// Layer normalisation of each row of the contiguous Float32 `[rows, cols]` block at element
    /// `offset` of `source`: `destination = x̂·weight + bias` with x̂ = (x - mean)·rstd, the weight
    /// and bias (`[cols]`) each optional; writes every row's `mean` and rstd = 1/√(biased
    /// variance + eps) (`[rows]`) for the backward.
    func layerNorm(_ source: DeviceBuffer, offset: Int, rows: Int, cols: Int, weight: DeviceBuffer?, bias: DeviceBuffer?, eps: Float,
                   destination: DeviceBuffer, mean: DeviceBuffer, rstd: DeviceBuffer)
    /// `layerNorm`'s backward from the contiguous output gradient `gradient` (`[rows, cols]`),
    /// the input and the saved `mean` and `rstd`: per row, with ĝ = gradient·weight,
    /// `inputGradient = rstd·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂))`; when given, `weightGradient` gets
    /// Σ over rows of gradient·x̂ and `biasGradient` Σ over rows of gradient (`[cols]`).
    func layerNormBackward(_ gradient: DeviceBuffer, source: DeviceBuffer, offset: Int, rows: Int, cols: Int, mean: DeviceBuffer,
                           rstd: DeviceBuffer, weight: DeviceBuffer?, inputGradient: DeviceBuffer, weightGradient: DeviceBuffer?,
                           biasGradient: DeviceBuffer?)

    /// Cross-entropy of each row `i` of `logits` (a Float32 `[rows, classes]` view whose rows are
    /// dense) against class `y = target[i]` (a 1-D Int32 or Int64 view): writes the row's term
    /// `destination[i] = (1 - smoothing) * w[y] * (lse - x[y]) + smoothing / classes * Σ_c w[c] * (lse - x[c])`
    /// (`lse` the row's log-sum-exp) and its kept weight `destination[rows + i] = w[y]`, both 0 where
    /// `y` is `indices.ignored`; `w` is `weight` (Float32 `[classes]`) or 1. A target outside
    /// `0..<classes` stops as in `gather`.
    func crossEntropy(_ logits: StridedView, target: StridedView, weight: DeviceBuffer?, smoothing: Float,
                      indices: IndexRule, destination: DeviceBuffer)
    /// The gradient of `crossEntropy`'s terms with respect to `logits`, row `i` scaled by
    /// `gradient[i]` (a 1-D Float32 view) over `divisor[0]` when given (a one-element view): `g *
    /// (p[c] * ((1 - smoothing) * w[y] + smoothing / classes * Σ_c w[c]) - smoothing / classes * w[c]
    /// - (c == y) * (1 - smoothing) * w[y])` with `p` the row's softmax, 0 in rows whose target is
    /// ignored, into the contiguous `[rows, classes]` `destination`.
    func crossEntropyBackward(_ logits: StridedView, target: StridedView, weight: DeviceBuffer?, smoothing: Float,
                              indices: IndexRule, gradient: StridedView, divisor: StridedView?, destination: DeviceBuffer)

    /// Attention weights from raw scores: for each row `i` of the `batch` contiguous `[rows, cols]`
    /// blocks of `scores`, the softmax over keys `j` (only `j <= i` when `causal`) of
    /// `scale * s[i, j] + mask[i, j]`, and 0 for the other keys and for rows whose keys are all
    /// masked (-infinity). `mask`, when given, is an additive Float32 view shaped
    /// `[b0, b1, rows, cols]` with `b0 * b1 == batch` (strides may be 0: it is read broadcast).
    func attentionSoftmax(_ scores: DeviceBuffer, batch: Int, rows: Int, cols: Int, scale: Float, causal: Bool,
                          mask: StridedView?, destination: DeviceBuffer)
    /// The backward of `attentionSoftmax` from its output `probs` and the weights' gradient:
    /// `scale * p * (g - sum_j p * g)` per row (0 past the causal prefix), the scores' gradient.
    func attentionSoftmaxBackward(_ probs: DeviceBuffer, gradient: DeviceBuffer, batch: Int, rows: Int, cols: Int,
                                  scale: Float, causal: Bool, destination: DeviceBuffer)

    /// Row-major `C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] (+ bias)` for b in 0..<batch,
    /// with C of shape `[m, n]` and leading dimension `n` at element `cOffset + b * m * n`.
    /// C has the operands' dtype when they share a 16-bit one (the Float32 accumulation
    /// rounded once, no Float32 copy of C), else Float32 (16-bit operands of different types
    /// are widened first). A `bias` (only with `beta == 0`) is added in the same pass where
    /// the kernels can, else written to C first and accumulated into.
    func gemm(m: Int, n: Int, k: Int, batch: Int, alpha: Float, a: GemmOperand, b: GemmOperand,
              beta: Float, bias: GemmBias?, c: DeviceBuffer, cOffset: Int)

    /// Unfolds a contiguous NCHW input, starting at element `offset` of `source`, into columns
    /// `[N, C*kH*kW, outH*outW]`; input and columns are of the float type `dtype` (a copy of
    /// elements, bit for bit, zero for padding).
    func im2col(_ source: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, dtype: DType, destination: DeviceBuffer)
    /// The adjoint of `im2col`: sums the columns `[N, C*kH*kW, outH*outW]` (contiguous from
    /// element `offset`) that cover each pixel into `destination`, a contiguous NCHW buffer it
    /// overwrites. Both are of the float type `dtype`; sums accumulate in Float32 and round
    /// once per pixel.
    func col2im(_ columns: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, dtype: DType, destination: DeviceBuffer)
    /// Max pooling of contiguous NCHW input of a float `dtype`: values `[N, C, outH, outW]` in
    /// that dtype and, per output, the Int32 index of the chosen input inside its `H*W` plane.
    func maxPool2d(_ source: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, dtype: DType, destination: DeviceBuffer,
                   indices: DeviceBuffer)
    /// The backward of `maxPool2d`: each output's gradient `[N, C, outH, outW]` (of a float
    /// `dtype`) goes to the input position its index names, summed in Float32 and rounded once
    /// into a fresh NCHW tensor of that dtype (no atomics: each input position gathers from the
    /// windows that cover it, in output order).
    func maxPool2dBackward(_ gradient: DeviceBuffer, indices: DeviceBuffer, geometry: Conv2dGeometry, dtype: DType,
                           destination: DeviceBuffer)
    /// Average pooling of contiguous NCHW input (padding counted in the divisor when `countPadding`).
    func avgPool2d(_ source: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer)
    /// The adjoint of `avgPool2d`: spreads `[N, C, outH, outW]` gradients into a fresh NCHW tensor.
    func avgPool2dBackward(_ gradient: DeviceBuffer, geometry: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer)

    /// The optimizer update `rule` of every tensor in `updates` (elements of the float type
    /// `dtype`), each in place and in one pass, several tensors per kernel where the device
    /// can: computes in Float32 with the composed update's operations in its order (bit for
    /// bit on the CPU for float32).
    func optimizerStep(_ rule: OptimizerRule, _ updates: [OptimizerUpdate], dtype: DType)
    /// Writes to `destination[0]` (Float32) the sum over every element `x` of every contiguous
    /// 1-D view of `sources` (all of the float type `dtype`) of `power`'s term, or for
    /// `.maxAbs` their largest `|x|` (0 when there are no elements): a norm's reduction over
    /// many tensors at once.
    func powerSum(_ power: NormPower, _ sources: [StridedView], dtype: DType, destination: DeviceBuffer)

    /// `destination[o, j, i] = source[o, index[o, j, i], i]` with `source` the contiguous block
    /// `[outer, size, inner]` of `dtype` elements at `offset` (copied bit for bit, any width) and
    /// `index` an Int32 or Int64 view shaped `[outer, j, inner]`.
    /// An index outside `0..<size` stops the program with `indices.outOfBounds` (at once on the
    /// CPU, at the next synchronisation on a queued device; a kernel never reads outside the
    /// block); the ignored index of `indices` reads 0.
    func gather(_ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int, dtype: DType,
                index: StridedView, indices: IndexRule, destination: DeviceBuffer)
    /// `destination[o, index[o, j, i], i] += values[o, j, i]`, `destination` being a contiguous
    /// `[outer, size, inner]` buffer the caller initialised; duplicates accumulate. Indices are
    /// checked as in `gather`; the ignored index adds nothing.
    func scatterAdd(_ values: StridedView, index: StridedView, outer: Int, size: Int, inner: Int,
                    indices: IndexRule, destination: DeviceBuffer)
}

/// How `gather` and `scatterAdd` treat their indices: the op a message names when an index is
/// out of range, and an index value that is skipped instead (a loss's `ignoreIndex`).
struct IndexRule {
    /// The op named in the message (`gather`, `indexSelect`, `embedding`, `crossEntropy`, ...).
    var op: String
    /// An index that reads 0 (gather) or adds nothing (scatter-add) instead of stopping.
    var ignored: Int? = nil

    /// The message for an out-of-range `index`, the same on every backend.
    func outOfBounds(_ index: Int, size: Int) -> String {
        "\(op): index \(index) is out of bounds for dimension of size \(size)"
    }
}

extension Backend {
    /// Gathers a strided view into the start of a contiguous buffer (bitwise, any dtype).
    func copy(_ source: StridedView, to destination: DeviceBuffer) {
        copy(source, to: destination, at: 0)
    }

    /// A GEMM `operand` (the `[rows, cols]` matrix of each of `batch` entries) as Float32:
    /// itself, or a converted copy of the elements it spans with the same leading dimension
    /// and batch stride (for backends whose GEMM reads Float32 only); nil when no memory is left.
    func widened(_ operand: GemmOperand, rows: Int, cols: Int, batch: Int) -> GemmOperand? {
        guard operand.dtype != .float32 else { return operand }
        let (r, c) = operand.transposed ? (cols, rows) : (rows, cols)
        let extent = (operand.batchStride == 0 ? 0 : (batch - 1) * operand.batchStride) + (r - 1) * operand.ld + c
        guard let copy = try? allocate(bytes: extent * DType.float32.byteSize) else { return nil }
        cast(StridedView(buffer: operand.buffer, offset: operand.offset, shape: [extent], strides: [1], dtype: operand.dtype),
             to: .float32, destination: copy)
        var wide = operand
        wide.buffer = copy
        wide.offset = 0
        wide.dtype = .float32
        return wide
    }

    /// Copies host bytes into the start of `buffer`.
    func upload(_ source: UnsafeRawBufferPointer, to buffer: DeviceBuffer) {
        upload(source, to: buffer, byteOffset: 0)
    }
}

/// Fused kernels with a composed equivalent above the backend, which a device may still be
/// compiling (`Backend.kernelsReady`).
enum KernelFamily: Hashable, Sendable {
    /// `optimizerStep` and `powerSum` (the composed optimizer updates and norms).
    case optimizer
    /// The fused attention row kernels and flash attention (`composedAttention`).
    case attention
    /// The fused cross-entropy rows (`crossEntropy`'s composed log-softmax and picks).
    case loss
}

/// A backend with flash-style attention kernels: each query row streams over its keys with an
/// online softmax, so no `[L, S]` block of scores or weights is stored; the backward
/// recomputes the weights from the saved log-sum-exp. Inputs and outputs are contiguous
/// `[batch, rows or cols, dim]` buffers; the value dim equals `dim`; there is no mask other
/// than `causal` and no dropout.
protocol FlashAttentionBackend: Backend {
    /// Whether the flash kernels run for this head dim on this device.
    func flashAttentionApplies(dim: Int) -> Bool
    /// Whether they are this device's better path for this shape, given they apply
    /// (`EMBER_ATTENTION=flash` or `matmul` forces one).
    func prefersFlashAttention(batch: Int, rows: Int, cols: Int, dim: Int) -> Bool
    /// `output = softmax(scale * q k^T (causal)) v` and each query row's log-sum-exp `lse` `[batch, rows]`.
    func flashAttentionForward(query: DeviceBuffer, key: DeviceBuffer, value: DeviceBuffer, batch: Int, rows: Int, cols: Int,
                               dim: Int, scale: Float, causal: Bool, output: DeviceBuffer, lse: DeviceBuffer)
    /// The gradients of query, key and value from the forward's inputs, `output`, `lse` and the
    /// output's gradient; `delta` `[batch, rows]` is scratch for `sum(gradient * output)` per row.
    func flashAttentionBackward(query: DeviceBuffer, key: DeviceBuffer, value: DeviceBuffer, output: DeviceBuffer,
                                gradient: DeviceBuffer, lse: DeviceBuffer, batch: Int, rows: Int, cols: Int, dim: Int,
                                scale: Float, causal: Bool, delta: DeviceBuffer,
                                queryGradient: DeviceBuffer, keyGradient: DeviceBuffer, valueGradient: DeviceBuffer)
}
