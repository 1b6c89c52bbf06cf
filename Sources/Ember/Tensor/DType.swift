/// The element type of a tensor.
///
/// Every element is stored in four bytes. `bool` tensors are stored as Float32 `0` / `1`,
/// so a mask can be multiplied with data without a conversion kernel.
public enum DType: String, Sendable, CustomStringConvertible {
    /// 32-bit IEEE float: data, activations, parameters.
    case float32
    /// 32-bit signed integer: indices and class labels.
    case int32
    /// Boolean mask (stored as Float32 0 / 1).
    case bool

    /// Bytes per element (always 4).
    public var byteSize: Int { 4 }

    /// True when the stored bits are Float32 (`float32` and `bool`).
    var isFloatStorage: Bool { self != .int32 }

    public var description: String { rawValue }
}
