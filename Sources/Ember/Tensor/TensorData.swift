/// Values a tensor can be created from: numbers and (nested) arrays of them.
/// `Tensor([[1, 2], [3, 4]])` reads a `[[Int]]` as a 2 x 2 tensor.
public protocol TensorData {
    /// Appends the scalars in row-major order and records the shape at `depth`;
    /// stops with a message on ragged nesting.
    func flatten(into values: inout [Double], shape: inout [Int], depth: Int)

    /// The dtype a tensor made from this value gets when none is given: Float32 for numbers
    /// (integer literals included, as `torch.tensor([1, 2.0])`), Int32 for `Int32`, Int64 for
    /// `Int64`, UInt8 for `UInt8`, Bool for `Bool`.
    static var defaultDType: DType { get }
}

extension TensorData {
    /// Float32, the default of numbers.
    public static var defaultDType: DType { .float32 }
}

extension TensorData where Self: BinaryFloatingPoint {
    /// A floating-point scalar.
    public func flatten(into values: inout [Double], shape: inout [Int], depth: Int) {
        values.append(Double(self))
    }
}

extension TensorData where Self: BinaryInteger {
    /// An integer scalar.
    public func flatten(into values: inout [Double], shape: inout [Int], depth: Int) {
        values.append(Double(self))
    }
}

extension Float: TensorData {}
extension Double: TensorData {}
extension Int: TensorData {}
extension Int32: TensorData {
    /// Int32 values stay Int32.
    public static var defaultDType: DType { .int32 }
}
extension Int64: TensorData {
    /// Int64 values stay Int64.
    public static var defaultDType: DType { .int64 }
}
extension UInt8: TensorData {
    /// Bytes stay UInt8.
    public static var defaultDType: DType { .uint8 }
}

extension Bool: TensorData {
    /// Booleans make a mask.
    public static var defaultDType: DType { .bool }

    /// A boolean scalar (1 or 0).
    public func flatten(into values: inout [Double], shape: inout [Int], depth: Int) {
        values.append(self ? 1 : 0)
    }
}

extension Array: TensorData where Element: TensorData {
    /// The dtype of the scalars.
    public static var defaultDType: DType { Element.defaultDType }

    /// A nested level: its length becomes dimension `depth` of the shape.
    public func flatten(into values: inout [Double], shape: inout [Int], depth: Int) {
        if shape.count == depth {
            shape.append(count)
        } else if shape.count > depth {
            check(shape[depth] == count,
                  "Tensor: ragged nested array: dimension \(depth) has lengths \(shape[depth]) and \(count)")
        }
        for element in self {
            element.flatten(into: &values, shape: &shape, depth: depth + 1)
        }
    }
}
