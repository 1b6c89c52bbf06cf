/// Shared plumbing for op definitions: device checks, dtype promotion and the
/// reduction of broadcast gradients.
extension Tensor {
    /// Stops with a message naming both devices when two tensors of one op differ.
    @inline(__always)
    static func checkSameDevice(_ op: String, _ a: Tensor, _ b: Tensor) {
        if a.storage.device != b.storage.device {
            fatalError("\(op): expected all tensors on the same device, got \(a.device) and \(b.device) (move one with .to(_:))")
        }
    }

    /// This tensor with Float32 storage: Int32 is converted; Bool is reinterpreted (no copy).
    var floatStorage: Tensor {
        switch dtype {
        case .float32: return self
        case .bool: return Tensor(storage: storage, shape: shape, strides: strides, offset: offset, dtype: .float32)
        case .int32:
            let out = Tensor(uninitialized: shape, device: device, op: "float")
            if count > 0 { backend.cast(view, from: .int32, to: .float32, destination: out.storage.buffer) }
            return out
        }
    }

    /// The broadcast of two shapes; stops with a message naming the op when incompatible.
    static func broadcastShape(_ op: String, _ a: [Int], _ b: [Int]) -> [Int] {
        guard let shape = Shape.broadcast(a, b) else {
            fatalError("\(op): shapes \(Shape.describe(a)) and \(Shape.describe(b)) cannot be broadcast together")
        }
        return shape
    }

    /// This tensor's view read as the broadcast `shape` (stride 0 on broadcast dims).
    func broadcastView(to target: [Int]) -> StridedView {
        StridedView(buffer: storage.buffer, offset: offset, shape: target,
                    strides: Shape.broadcastStrides(shape: shape, strides: strides, to: target))
    }

    /// Sums a broadcast gradient back down to `target` (the shape of the input it flows to).
    func sumTo(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        var dims: [Int] = Array(0..<lead)
        for i in 0..<target.count where target[i] == 1 && shape[lead + i] != 1 {
            dims.append(lead + i)
        }
        let reduced = dims.isEmpty ? self : sum(dims: dims, keepDim: true)
        return reduced.reshape(target)
    }
}
