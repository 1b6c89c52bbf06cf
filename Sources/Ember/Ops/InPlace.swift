/// In-place updates, for optimizers, running statistics and initialisation. They write
/// into the tensor's own storage, bump its version (so autograd can detect a saved tensor
/// that changed), and are refused on tensors that take part in a recorded graph.
extension Tensor {
    /// Stops unless an in-place write into this tensor is safe and possible.
    func checkInPlace(_ op: String) {
        check(!(requiresGradFlag && GradMode.enabled),
              "\(op): in-place update of a tensor that requires grad; wrap it in Tensor.noGrad { } (as optimizers do)")
        check(dtype.isFloatingPoint, "\(op): in-place ops need a floating-point tensor, got \(dtype)")
        check(offset == 0 && isContiguous && count == storage.elementCount || (count == 0),
              "\(op): in-place ops need a tensor that owns its whole storage contiguously (shape \(Shape.describe(shape))); use clone() first")
    }

    /// Writes `op(self, other)` into self (other broadcast to self's shape).
    private func applyInPlace(_ op: BinaryOp, _ other: ElementwiseArgument, name: String) {
        checkInPlace(name)
        let operand: Operand
        switch other {
        case .scalar(let s): operand = .scalar(s)
        case .tensor(let t):
            Tensor.checkSameDevice(name, self, t)
            let shape = Tensor.broadcastShape(name, self.shape, t.shape)
            check(shape == self.shape, "\(name): cannot broadcast \(Shape.describe(t.shape)) into \(Shape.describe(self.shape)) in place")
            // Reading the destination's own storage through another layout would race the write.
            let converted = t.castStorage(to: dtype)
            let source = converted.storage === storage && !(converted.offset == 0 && converted.strides == strides) ? converted.contiguousCopy() : converted
            operand = .view(source.broadcastView(to: shape))
        }
        if count > 0 { backend.binary(op, .view(view), operand, shape: shape, dtype: dtype, destination: storage.buffer) }
        storage.version += 1
    }

    /// In-place `a += b`.
    public static func += (a: Tensor, b: Tensor) { a.applyInPlace(.add, .tensor(b), name: "+=") }
    /// In-place `a -= b`.
    public static func -= (a: Tensor, b: Tensor) { a.applyInPlace(.sub, .tensor(b), name: "-=") }
    /// In-place `a *= b`.
    public static func *= (a: Tensor, b: Tensor) { a.applyInPlace(.mul, .tensor(b), name: "*=") }
    /// In-place `a /= b`.
    public static func /= (a: Tensor, b: Tensor) { a.applyInPlace(.div, .tensor(b), name: "/=") }
    /// In-place `a += s`.
    public static func += (a: Tensor, s: Float) { a.applyInPlace(.add, .scalar(s), name: "+=") }
    /// In-place `a -= s`.
    public static func -= (a: Tensor, s: Float) { a.applyInPlace(.sub, .scalar(s), name: "-=") }
    /// In-place `a *= s`.
    public static func *= (a: Tensor, s: Float) { a.applyInPlace(.mul, .scalar(s), name: "*=") }
    /// In-place `a /= s`.
    public static func /= (a: Tensor, s: Float) { a.applyInPlace(.div, .scalar(s), name: "/=") }

    /// Overwrites self with `source`'s values (broadcast to self's shape), in place.
    public func copy(from source: Tensor) {
        checkInPlace("copy(from:)")
        Tensor.checkSameDevice("copy(from:)", self, source)
        let shape = Tensor.broadcastShape("copy(from:)", self.shape, source.shape)
        check(shape == self.shape, "copy(from:): cannot broadcast \(Shape.describe(source.shape)) into \(Shape.describe(self.shape))")
        let converted = source.castStorage(to: dtype)
        let values = converted.storage === storage ? converted.contiguousCopy() : converted
        if count > 0 { backend.copy(values.broadcastView(to: shape), to: storage.buffer) }
        storage.version += 1
    }

    /// Sets every element to `value`, in place.
    public func fill(_ value: Float) {
        checkInPlace("fill")
        if count > 0 { backend.fill(storage.buffer, count: count, value: Double(value), dtype: dtype) }
        storage.version += 1
    }
}
