import Synchronization

/// Automatic mixed precision (`torch.autocast`): inside `Tensor.autocast(.bfloat16) { ... }`
/// the ops that gain from a narrow type run in it and the ops that need range or precision run
/// in Float32, whatever types their inputs have.
///
/// - Lower-precision ops (`matmul`, `linear` and `Linear`, `conv2d` and `Conv2d`,
///   `scaledDotProductAttention`) cast their floating-point inputs to the scope's type first.
///   The cast is the differentiable `to(_:)`, so Float32 parameters stay the master copies:
///   their gradients come back through the cast as Float32.
/// - Full-precision ops (`softmax`, `logSoftmax`, the losses, `layerNorm`, `batchNorm`, `sum`
///   and so `mean`, `exp`, `log`, `pow`, `rsqrt`, `reciprocal`, `logSumExp`, `cumsum`) widen
///   float16 and bfloat16 inputs to Float32 and return Float32.
/// - Every other op runs in the type of its inputs; binary ops promote (bfloat16 + Float32 is
///   Float32).
///
/// Each listed op begins with one line that asks `lowPrecision` or `fullPrecision` for its
/// converted inputs and, when something changed, calls itself on them (the second call finds
/// nothing to convert). Backward rules run with autocast off, so the backward of each op runs
/// in the types its forward used, wherever `backward()` is called.
///
/// The scope is task-local, like grad mode: other tasks and threads are unaffected, child
/// tasks inherit it, and a nested scope (or `enabled: false`) holds until its body returns.
/// Outside every scope the check is one relaxed atomic load.
enum Autocast {
    /// Number of enabled scopes running in the process; `current` reads it before anything else.
    static let activeScopes = Atomic<Int>(0)
    /// The type of the current task's innermost scope; nil outside one or under `enabled: false`.
    @TaskLocal static var scope: DType?

    /// The current task's autocast type, or nil (cheaply) when no scope is enabled.
    @inline(__always)
    static var current: DType? {
        activeScopes.load(ordering: .relaxed) == 0 ? nil : scope
    }

    /// The operands of a lower-precision op with every floating-point tensor cast to the
    /// scope's type, or nil when autocast is off or no operand changes.
    static func lowPrecision<each Operand: AutocastOperand>(_ operands: repeat each Operand) -> (repeat each Operand)? {
        guard let target = current else { return nil }
        return converted(repeat each operands) { $0.isFloatingPoint && $0 != target ? target : nil }
    }

    /// The operands of a full-precision op with every float16 and bfloat16 tensor widened to
    /// Float32, or nil when autocast is off or no operand changes.
    static func fullPrecision<each Operand: AutocastOperand>(_ operands: repeat each Operand) -> (repeat each Operand)? {
        guard current != nil else { return nil }
        return converted(repeat each operands) { $0.isReducedFloat ? .float32 : nil }
    }

    /// The operands with each tensor converted to `rule(its dtype)` where that is not nil; nil
    /// when the rule converts none.
    private static func converted<each Operand: AutocastOperand>(_ operands: repeat each Operand,
                                                                 rule: (DType) -> DType?) -> (repeat each Operand)? {
        var changes = false
        for operand in repeat each operands {
            if let type = operand.autocastType, rule(type) != nil { changes = true }
        }
        guard changes else { return nil }
        return (repeat (each operands).converted(by: rule))
    }
}

/// An input of an autocast op: a tensor, or an optional one (a bias).
protocol AutocastOperand {
    /// The tensor's dtype; nil when there is no tensor.
    var autocastType: DType? { get }
    /// The operand with its tensor converted to `rule(dtype)` (differentiably) when that is not nil.
    func converted(by rule: (DType) -> DType?) -> Self
}

extension Tensor: AutocastOperand {
    var autocastType: DType? { dtype }

    func converted(by rule: (DType) -> DType?) -> Tensor {
        rule(dtype).map { to($0) } ?? self
    }
}

extension Optional: AutocastOperand where Wrapped == Tensor {
    var autocastType: DType? { self?.dtype }

    func converted(by rule: (DType) -> DType?) -> Tensor? {
        self?.converted(by: rule)
    }
}

extension Tensor {
    /// Runs `body` under automatic mixed precision in `dtype` (`.bfloat16` or `.float16`), as
    /// `torch.autocast`: matrix products, linear layers, convolutions and attention compute in
    /// `dtype`; softmax, the losses, normalisation, sums and exponentials compute in Float32 (see
    /// the `Autocast` list in Autograd/Autocast.swift). Wrap the forward pass and the loss, not
    /// `backward()` (which runs each op's backward in its forward's types either way). Parameters
    /// stay Float32 and receive Float32 gradients. With float16, scale the loss with a
    /// `GradScaler`. `enabled: false` turns autocast off inside an enabled scope. Scopes are
    /// per task and nest; the outer state returns when `body` does.
    public static func autocast<T>(_ dtype: DType, enabled: Bool = true, _ body: () throws -> T) rethrows -> T {
        check(dtype.isReducedFloat, "autocast: dtype must be .bfloat16 or .float16, got \(dtype)")
        guard enabled else { return try Autocast.$scope.withValue(nil, operation: body) }
        Autocast.activeScopes.add(1, ordering: .relaxed)
        defer { Autocast.activeScopes.subtract(1, ordering: .relaxed) }
        return try Autocast.$scope.withValue(dtype, operation: body)
    }

    /// The type of the current task's enabled autocast scope, or nil outside one
    /// (`torch.get_autocast_dtype` when `torch.is_autocast_enabled`).
    public static var autocastType: DType? { Autocast.current }
}
