/// The element type of a tensor, stored in its own width (`byteSize`).
///
/// Floating-point kernels compute in Float32 whatever the storage type: a `float16` or
/// `bfloat16` element is widened when it is read and rounded to nearest-even when it is
/// written, so narrow types work on every device (no `cl_khr_fp16` needed). Ops the kernels
/// have no narrow form of (GEMM on OpenCL, convolution, softmax, ...) widen their inputs to
/// Float32 and round the result back, so every op accepts every float type.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    /// 32-bit IEEE float: data, activations, parameters.
    case float32
    /// 16-bit IEEE half (1 sign, 5 exponent, 10 mantissa bits).
    case float16
    /// bfloat16: the top half of a Float32 (8 exponent, 7 mantissa bits).
    case bfloat16
    /// 32-bit signed integer.
    case int32
    /// 64-bit signed integer: PyTorch's default for indices and class labels.
    case int64
    /// 8-bit unsigned integer (images, byte data).
    case uint8
    /// Boolean mask, one byte per element (0 or 1).
    case bool

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float32, .int32: 4
        case .float16, .bfloat16: 2
        case .int64: 8
        case .uint8, .bool: 1
        }
    }

    /// True for the floating-point types (the ones that can require gradients).
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16: true
        case .int32, .int64, .uint8, .bool: false
        }
    }

    /// True for the integer types (not bool): int32, int64 and uint8.
    var isInteger: Bool { self == .int32 || self == .int64 || self == .uint8 }

    /// True for `float16` and `bfloat16`, stored narrow and computed in Float32.
    var isReducedFloat: Bool { self == .float16 || self == .bfloat16 }

    /// The result type of an op on operands of types `self` and `other`, as
    /// `torch.promote_types`: bool < uint8 < int32 < int64 < floats; among floats the wider
    /// wins, and float16 with bfloat16 gives float32 (neither holds the other).
    public func promoted(with other: DType) -> DType {
        if self == other { return self }
        switch (isFloatingPoint, other.isFloatingPoint) {
        case (true, false): return self
        case (false, true): return other
        case (true, true):
            // Two different float types: one is float32, or they are float16 and bfloat16.
            return .float32
        case (false, false):
            return DType.integerRank(self) >= DType.integerRank(other) ? self : other
        }
    }

    /// The order of the non-float types under promotion.
    private static func integerRank(_ t: DType) -> Int {
        switch t {
        case .bool: 0
        case .uint8: 1
        case .int32: 2
        default: 3
        }
    }

    public var description: String { rawValue }
}
