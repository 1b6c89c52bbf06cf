/// Losses as modules (`torch.nn.CrossEntropyLoss`, ...): each holds its options (class
/// weights as a buffer named `weight`, as PyTorch, so `to(_:)` moves them) and calls its
/// function in `Losses.swift`.

/// `crossEntropy` as a module.
public final class CrossEntropyLoss: Module {
    /// Per-class weights `[C]`, or nil.
    @OptionalBuffer public var weight: Tensor?
    /// Targets with this class index are ignored.
    public let ignoreIndex: Int
    /// How the per-target losses are combined.
    public let reduction: Reduction
    /// Weight of the uniform distribution mixed into the targets.
    public let labelSmoothing: Float

    /// A loss with PyTorch's defaults.
    public init(weight: Tensor? = nil, ignoreIndex: Int = -100, reduction: Reduction = .mean, labelSmoothing: Float = 0) {
        self.weight = weight
        self.ignoreIndex = ignoreIndex
        self.reduction = reduction
        self.labelSmoothing = labelSmoothing
    }

    /// `crossEntropy(input, target, ...)` with this module's options.
    public func callAsFunction(_ input: Tensor, _ target: Tensor) -> Tensor {
        crossEntropy(input, target, weight: weight, ignoreIndex: ignoreIndex, reduction: reduction, labelSmoothing: labelSmoothing)
    }
}

/// `nllLoss` as a module.
public final class NLLLoss: Module {
    /// Per-class weights `[C]`, or nil.
    @OptionalBuffer public var weight: Tensor?
    /// Targets with this class index are ignored.
    public let ignoreIndex: Int
    /// How the per-target losses are combined.
    public let reduction: Reduction

    /// A loss with PyTorch's defaults.
    public init(weight: Tensor? = nil, ignoreIndex: Int = -100, reduction: Reduction = .mean) {
        self.weight = weight
        self.ignoreIndex = ignoreIndex
        self.reduction = reduction
    }

    /// `nllLoss(input, target, ...)` with this module's options.
    public func callAsFunction(_ input: Tensor, _ target: Tensor) -> Tensor {
        nllLoss(input, target, weight: weight, ignoreIndex: ignoreIndex, reduction: reduction)
    }
}

/// `binaryCrossEntropy` as a module.
public final class BCELoss: Module {
    /// Element weights broadcast to the input, or nil.
    @OptionalBuffer public var weight: Tensor?
    /// How the element losses are combined.
    public let reduction: Reduction

    /// A loss with PyTorch's defaults.
    public init(weight: Tensor? = nil, reduction: Reduction = .mean) {
        self.weight = weight
        self.reduction = reduction
    }

    /// `binaryCrossEntropy(input, target, ...)` with this module's options.
    public func callAsFunction(_ input: Tensor, _ target: Tensor) -> Tensor {
        binaryCrossEntropy(input, target, weight: weight, reduction: reduction)
    }
}

/// `binaryCrossEntropyWithLogits` as a module.
public final class BCEWithLogitsLoss: Module {
    /// Element weights broadcast to the input, or nil.
    @OptionalBuffer public var weight: Tensor?
    /// Weights of the positive term (usually `[C]`), or nil; PyTorch's `pos_weight`.
    @OptionalBuffer public var posWeight: Tensor?
    /// How the element losses are combined.
    public let reduction: Reduction

    /// A loss with PyTorch's defaults.
    public init(weight: Tensor? = nil, posWeight: Tensor? = nil, reduction: Reduction = .mean) {
        self.weight = weight
        _posWeight = OptionalBuffer(wrappedValue: posWeight, name: "pos_weight")
        self.reduction = reduction
    }

    /// `binaryCrossEntropyWithLogits(input, target, ...)` with this module's options.
    public func callAsFunction(_ input: Tensor, _ target: Tensor) -> Tensor {
        binaryCrossEntropyWithLogits(input, target, weight: weight, posWeight: posWeight, reduction: reduction)
    }
}

/// `mseLoss` as a module.
public final class MSELoss: Module {
    /// How the element losses are combined.
    public let reduction: Reduction
    /// A loss with PyTorch's defaults.
    public init(reduction: Reduction = .mean) { self.reduction = reduction }
    /// `mseLoss(input, target, reduction:)`.
    public func callAsFunction(_ input: Tensor, _ target: Tensor) -> Tensor { mseLoss(input, target, reduction: reduction) }
}

/// `l1Loss` as a module.
public final class L1Loss: Module {
    /// How the element losses are combined.
    public let reduction: Reduction
    /// A loss with PyTorch's defaults.
    public init(reduction: Reduction = .mean) { self.reduction = reduction }
    /// `l1Loss(input, target, reduction:)`.
    public func callAsFunction(_ input: Tensor, _ target: Tensor) -> Tensor { l1Loss(input, target, reduction: reduction) }
}

/// `smoothL1Loss` as a module.
public final class SmoothL1Loss: Module {
    /// How the element losses are combined.
    public let reduction: Reduction
    /// Where the loss turns from quadratic to linear.
    public let beta: Float
    /// A loss with PyTorch's defaults.
    public init(reduction: Reduction = .mean, beta: Float = 1) {
        self.reduction = reduction
        self.beta = beta
    }
    /// `smoothL1Loss(input, target, reduction:, beta:)`.
    public func callAsFunction(_ input: Tensor, _ target: Tensor) -> Tensor {
        smoothL1Loss(input, target, reduction: reduction, beta: beta)
    }
}

/// `huberLoss` as a module.
public final class HuberLoss: Module {
    /// How the element losses are combined.
    public let reduction: Reduction
    /// Where the loss turns from quadratic to linear.
    public let delta: Float
    /// A loss with PyTorch's defaults.
    public init(reduction: Reduction = .mean, delta: Float = 1) {
        self.reduction = reduction
        self.delta = delta
    }
    /// `huberLoss(input, target, reduction:, delta:)`.
    public func callAsFunction(_ input: Tensor, _ target: Tensor) -> Tensor {
        huberLoss(input, target, reduction: reduction, delta: delta)
    }
}

/// `klDiv` as a module (`torch.nn.KLDivLoss`).
public final class KLDivLoss: Module {
    /// How the pointwise terms are combined.
    public let reduction: KLDivReduction
    /// Whether the target is given as log-probabilities.
    public let logTarget: Bool
    /// A loss with PyTorch's defaults.
    public init(reduction: KLDivReduction = .mean, logTarget: Bool = false) {
        self.reduction = reduction
        self.logTarget = logTarget
    }
    /// `klDiv(input, target, reduction:, logTarget:)`.
    public func callAsFunction(_ input: Tensor, _ target: Tensor) -> Tensor { klDiv(input, target, reduction: reduction, logTarget: logTarget) }
}