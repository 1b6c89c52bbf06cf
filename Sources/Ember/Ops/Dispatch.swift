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

    /// This tensor's values as Float32 (no autograd): itself when it is Float32, else a
    /// converted copy. What ops whose kernels read Float32 only compute on.
    var floatStorage: Tensor {
        castStorage(to: .float32)
    }

    /// The tensor float kernels compute on: itself when it has a float type (they read every
    /// float storage type), else its values as Float32.
    var arithmeticStorage: Tensor {
        dtype.isFloatingPoint ? self : floatStorage
    }

    /// This tensor's values as dense Int64 elements of the broadcast `shape` (no autograd):
    /// what the ops' exact integer forms compute on.
    func int64Elements(_ shape: [Int]) -> Tensor {
        let x = castStorage(to: .int64)
        if x.shape == shape { return x.dense }
        let out = Tensor(uninitialized: shape, dtype: .int64, device: device, op: "expand")
        if out.count > 0 { backend.copy(x.broadcastView(to: shape), to: out.storage.buffer) }
        return out
    }

    /// Runs a Float32-only op on narrow float input: nil when this tensor is not float16 or
    /// bfloat16; else `body` of this tensor widened to Float32 (a differentiable cast), the
    /// result rounded back to this tensor's dtype. Ops whose kernels read Float32 only begin
    /// with it, so they accept every float dtype and their gradients flow in it.
    func viaFloat32(_ body: (Tensor) -> Tensor) -> Tensor? {
        guard dtype.isReducedFloat else { return nil }
        return body(to(.float32)).to(dtype)
    }

    /// This integer tensor as the indices the index kernels read: int32 and int64 as they are,
    /// uint8 converted to int32; stops with a message naming `op` for float and bool tensors.
    func indices(for op: String) -> Tensor {
        switch dtype {
        case .int32, .int64: return self
        case .uint8: return castStorage(to: .int32)
        default: fatalError("\(op): index must be an integer (int64 or int32) tensor, got \(dtype)")
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
                    strides: Shape.broadcastStrides(shape: shape, strides: strides, to: target), dtype: dtype)
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
