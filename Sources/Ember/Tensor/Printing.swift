import Foundation

extension Tensor: CustomStringConvertible {
    /// PyTorch-style text: the values (summarised past 1000 elements), then the shape, the
    /// dtype when not float32, the device, and the gradFn name or requiresGrad.
    public var description: String {
        let values = count == 0 ? [] : toArray()
        let body = Tensor.format(values, shape: shape, dtype: dtype)
        var extras = ["shape: \(Shape.describe(shape))"]
        if dtype != .float32 { extras.append("dtype: \(dtype)") }
        extras.append("device: \(device)")
        if let name = gradFnName { extras.append("gradFn: \(name)") } else if requiresGradFlag { extras.append("requiresGrad: true") }
        return "tensor(\(body), \(extras.joined(separator: ", ")))"
    }

    private static func format(_ values: [Float], shape: [Int], dtype: DType) -> String {
        let summarise = values.count > 1000
        let isIntegral = values.allSatisfy { !$0.isFinite || $0 == $0.rounded() }
        func scalar(_ v: Float) -> String {
            if dtype == .bool { return v != 0 ? "true" : "false" }
            if !dtype.isFloatingPoint { return String(Int(v)) }
            if !v.isFinite { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
            if isIntegral && Swift.abs(v) < 1e8 { return String(format: "%.0f.", v) }
            let a = Swift.abs(v)
            return (a != 0 && (a < 1e-4 || a >= 1e8)) ? String(format: "%.4e", v) : String(format: "%.4f", v)
        }
        if shape.isEmpty { return values.isEmpty ? "[]" : scalar(values[0]) }
        let strides = Shape.contiguousStrides(shape)
        func render(_ dim: Int, _ base: Int, _ indent: Int) -> String {
            let n = shape[dim]
            var picks = Array(0..<n)
            if summarise && n > 6 { picks = [0, 1, 2, -1, n - 3, n - 2, n - 1] }
            let parts = picks.map { i -> String in
                if i < 0 { return "..." }
                if dim == shape.count - 1 { return scalar(values[base + i * strides[dim]]) }
                return render(dim + 1, base + i * strides[dim], indent + 1)
            }
            let separator = dim == shape.count - 1 ? ", " : ",\n" + String(repeating: "\n", count: shape.count - dim - 2) + String(repeating: " ", count: indent + 8)
            return "[" + parts.joined(separator: separator) + "]"
        }
        return render(0, 0, 0)
    }
}
