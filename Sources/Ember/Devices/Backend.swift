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

    init(handle: OpaquePointer, capacity: Int, backend: Backend) {
        self.handle = handle
        self.capacity = capacity
        self.backend = backend
    }

    deinit { backend.recycle(handle: handle, capacity: capacity) }
}

/// A strided window onto a buffer: what a kernel reads. Offsets and strides are in
/// elements (4 bytes each). Strides may be 0 (broadcast) but never negative.
struct StridedView {
    var buffer: DeviceBuffer
    var offset: Int
    var shape: [Int]
    var strides: [Int]

    var count: Int { Shape.count(shape) }
}

/// One input of an elementwise primitive: a strided view or a Float constant.
enum Operand {
    case view(StridedView)
    case scalar(Float)
}

/// Elementwise maps `Float -> Float`, with their parameters.
enum UnaryOp: Equatable {
    case neg, abs, sign, exp, log, sqrt, rsqrt, square, reciprocal
    case sin, cos, tanh, sigmoid, relu, gelu, geluTanh, erf
    case leakyRelu(slope: Float)
    case clamp(min: Float, max: Float)
    case powScalar(Float)

    /// The op's name in `Kernels/elementwise.cl` (kernels `unary_<name>` and `unary_<name>_strided`).
    var kernelName: String {
        switch self {
        case .neg: "neg"
        case .abs: "abs"
        case .sign: "sign"
        case .exp: "exp"
        case .log: "log"
        case .sqrt: "sqrt"
        case .rsqrt: "rsqrt"
        case .square: "square"
        case .reciprocal: "reciprocal"
        case .sin: "sin"
        case .cos: "cos"
        case .tanh: "tanh"
        case .sigmoid: "sigmoid"
        case .relu: "relu"
        case .gelu: "gelu"
        case .geluTanh: "gelu_tanh"
        case .erf: "erf"
        case .leakyRelu: "leaky_relu"
        case .clamp: "clamp"
        case .powScalar: "pow_scalar"
        }
    }

    /// The op's two Float parameters (unused ones are 0).
    var params: (Float, Float) {
        switch self {
        case .leakyRelu(let s): (s, 0)
        case .clamp(let lo, let hi): (lo, hi)
        case .powScalar(let p): (p, 0)
        default: (0, 0)
        }
    }
}

/// Elementwise `(Float, Float) -> Float`. Comparisons give 1 or 0. The case name is the op's
/// name in `Kernels/elementwise.cl` (kernels `binary_<name>_tt`, `_ts`, `_st`, `_strided`).
enum BinaryOp: String {
    case add, sub, mul, div, pow, maximum, minimum
    case eq, ne, lt, le, gt, ge

    /// True for the comparisons, which produce masks.
    var isComparison: Bool {
        switch self {
        case .eq, .ne, .lt, .le, .gt, .ge: true
        default: false
        }
    }
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
/// it is read transposed, and the element stride between batch entries (0 = shared).
struct GemmOperand {
    var buffer: DeviceBuffer
    var offset: Int
    var ld: Int
    var transposed: Bool
    var batchStride: Int
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
}

/// The device abstraction: the only layer that knows about memory and kernels.
///
/// Every primitive writes a fresh, contiguous destination buffer that the caller
/// allocated with `allocate` (except `scatterAdd` and `col2im`'s accumulate, which
/// document their own contract). Float primitives read and write Float32; the tensor
/// layer converts Int32 operands before calling them. Primitives are enqueued
/// asynchronously where the device allows it; only `download` waits.
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
    /// Copies `byteCount` bytes starting at element `offset` of `buffer` to host memory;
    /// waits for every enqueued command that writes it.
    func download(_ buffer: DeviceBuffer, offset: Int, into destination: UnsafeMutableRawBufferPointer) throws
    /// Waits until every enqueued command has finished.
    func synchronize() throws

    /// Gathers a strided view into a contiguous buffer (bitwise, any dtype).
    func copy(_ source: StridedView, to destination: DeviceBuffer)
    /// Converts a strided view between Float32 and Int32 (truncating toward zero).
    func cast(_ source: StridedView, from: DType, to: DType, destination: DeviceBuffer)
    /// Writes `count` copies of `value` (stored as `dtype`).
    func fill(_ destination: DeviceBuffer, count: Int, value: Double, dtype: DType)
    /// Writes `start + i * step` for i in 0..<count (stored as `dtype`).
    func arange(_ destination: DeviceBuffer, count: Int, start: Double, step: Double, dtype: DType)
    /// Random fill of `count` elements from counters `offset ..< offset + count * countersPerElement`.
    func random(_ destination: DeviceBuffer, count: Int, distribution: RandomDistribution, seed: UInt64, offset: UInt64)

    /// `destination[i] = op(source[i])`, the output shaped like `source`.
    func unary(_ op: UnaryOp, _ source: StridedView, destination: DeviceBuffer)
    /// `destination[i] = op(a[i], b[i])` over `shape`; operand views are already broadcast to `shape`.
    func binary(_ op: BinaryOp, _ a: Operand, _ b: Operand, shape: [Int], destination: DeviceBuffer)
    /// `destination[i] = condition[i] != 0 ? a[i] : b[i]` over `shape` (views broadcast to it).
    func select(_ condition: StridedView, _ a: Operand, _ b: Operand, shape: [Int], destination: DeviceBuffer)

    /// Reduces axis 1 of the contiguous block `[outer, size, inner]` starting at element
    /// `offset` of `source`, writing `[outer, inner]`. `size` is at least 1.
    func reduce(_ op: ReduceOp, _ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int, destination: DeviceBuffer)
    /// Softmax (or log-softmax) of each row of the contiguous `[rows, cols]` block.
    func softmax(_ source: DeviceBuffer, offset: Int, rows: Int, cols: Int, log: Bool, destination: DeviceBuffer)

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

    /// Row-major `C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b]` for b in 0..<batch,
    /// with C of shape `[m, n]` and leading dimension `n` at `cOffset + b * m * n`.
    func gemm(m: Int, n: Int, k: Int, batch: Int, alpha: Float, a: GemmOperand, b: GemmOperand,
              beta: Float, c: DeviceBuffer, cOffset: Int)

    /// Unfolds a contiguous NCHW input into columns `[N, C*kH*kW, outH*outW]`.
    func im2col(_ source: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, destination: DeviceBuffer)
    /// The adjoint of `im2col`: sums columns `[N, C*kH*kW, outH*outW]` back into a fresh NCHW tensor.
    func col2im(_ columns: DeviceBuffer, geometry: Conv2dGeometry, destination: DeviceBuffer)
    /// Max pooling of contiguous NCHW input: values `[N, C, outH, outW]` and, per output,
    /// the Int32 index of the chosen input inside its `H*W` plane.
    func maxPool2d(_ source: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, destination: DeviceBuffer, indices: DeviceBuffer)
    /// The backward of `maxPool2d`: each output's gradient `[N, C, outH, outW]` goes to the input
    /// position its index names, summed into a fresh NCHW tensor (no atomics: each input
    /// position gathers from the windows that cover it).
    func maxPool2dBackward(_ gradient: DeviceBuffer, indices: DeviceBuffer, geometry: Conv2dGeometry, destination: DeviceBuffer)
    /// Average pooling of contiguous NCHW input (padding counted in the divisor when `countPadding`).
    func avgPool2d(_ source: DeviceBuffer, offset: Int, geometry: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer)
    /// The adjoint of `avgPool2d`: spreads `[N, C, outH, outW]` gradients into a fresh NCHW tensor.
    func avgPool2dBackward(_ gradient: DeviceBuffer, geometry: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer)

    /// `destination[o, j, i] = source[o, index[o, j, i], i]` with `source` the contiguous block
    /// `[outer, size, inner]` at `offset` and `index` an Int32 view shaped `[outer, j, inner]`.
    /// The tensor layer validates indices; a kernel still never reads outside `0..<size`
    /// (it writes 0 for an index out of range).
    func gather(_ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int,
                index: StridedView, destination: DeviceBuffer)
    /// `destination[o, index[o, j, i], i] += values[o, j, i]`, `destination` being a contiguous
    /// `[outer, size, inner]` buffer the caller initialised; duplicates accumulate; an index
    /// outside `0..<size` is skipped.
    func scatterAdd(_ values: StridedView, index: StridedView, outer: Int, size: Int, inner: Int,
                    destination: DeviceBuffer)
}

extension Backend {
    /// Copies host bytes into the start of `buffer`.
    func upload(_ source: UnsafeRawBufferPointer, to buffer: DeviceBuffer) {
        upload(source, to: buffer, byteOffset: 0)
    }
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
