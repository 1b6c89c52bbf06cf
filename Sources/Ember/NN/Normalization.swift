/// Batch normalisation over the channel dim (dim 1) of `[N, C]`, `[N, C, L]` or `[N, C, H, W]`
/// input, as PyTorch's BatchNorm1d/2d: batch statistics in training (biased variance to
/// normalise, unbiased to update the running variance), running statistics in eval. Without
/// running statistics (`trackRunningStats: false`) batch statistics are used in both modes.
public class BatchNorm: Module, Layer {
    /// Scale `[C]` (when affine).
    @OptionalParameter public var weight: Tensor?
    /// Shift `[C]` (when affine).
    @OptionalParameter public var bias: Tensor?
    /// Running mean `[C]` (when tracking running statistics).
    @OptionalBuffer public var runningMean: Tensor?
    /// Running (unbiased) variance `[C]` (when tracking running statistics).
    @OptionalBuffer public var runningVar: Tensor?
    /// Number of training batches seen, a Float32 scalar (when tracking running statistics).
    @OptionalBuffer public var numBatchesTracked: Tensor?
    /// The number of channels.
    public let numFeatures: Int
    /// Added to the variance before the square root.
    public let eps: Float
    /// Weight of the new batch in the running statistics.
    public let momentum: Float
    /// Input ranks accepted (2 and 3 for 1-D, 4 for 2-D).
    let ranks: Set<Int>
    let name: String

    init(_ numFeatures: Int, eps: Float, momentum: Float, affine: Bool, trackRunningStats: Bool, ranks: Set<Int>, name: String) {
        check(numFeatures > 0, "\(name): numFeatures must be positive, got \(numFeatures)")
        check(eps > 0, "\(name): eps must be positive, got \(eps)")
        check(momentum >= 0 && momentum <= 1, "\(name): momentum must be in [0, 1], got \(momentum)")
        weight = affine ? Tensor.ones([numFeatures]) : nil
        bias = affine ? Tensor.zeros([numFeatures]) : nil
        _runningMean = OptionalBuffer(wrappedValue: trackRunningStats ? Tensor.zeros([numFeatures]) : nil, name: "running_mean")
        _runningVar = OptionalBuffer(wrappedValue: trackRunningStats ? Tensor.ones([numFeatures]) : nil, name: "running_var")
        _numBatchesTracked = OptionalBuffer(wrappedValue: trackRunningStats ? Tensor.zeros([]) : nil, name: "num_batches_tracked")
        self.numFeatures = numFeatures
        self.eps = eps
        self.momentum = momentum
        self.ranks = ranks
        self.name = name
    }

    /// The normalised input.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let channels = numFeatures
        check(ranks.contains(x.rank) && x.shape[1] == channels,
              "\(name): expected input of rank \(ranks.sorted()) with \(channels) channels in dim 1, got \(Shape.describe(x.shape))")
        let training = isTraining || runningMean == nil
        if isTraining, let numBatchesTracked {
            Tensor.noGrad { numBatchesTracked += 1 }
        }
        return batchNorm(x, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias,
                         training: training, momentum: momentum, eps: eps)
    }
}

/// Batch normalisation of `[N, C]` or `[N, C, L]` input.
public final class BatchNorm1d: BatchNorm {
    /// `numFeatures` channels; PyTorch's defaults.
    public init(_ numFeatures: Int, eps: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true, trackRunningStats: Bool = true) {
        super.init(numFeatures, eps: eps, momentum: momentum, affine: affine, trackRunningStats: trackRunningStats,
                   ranks: [2, 3], name: "BatchNorm1d")
    }
}

/// Batch normalisation of `[N, C, H, W]` input.
public final class BatchNorm2d: BatchNorm {
    /// `numFeatures` channels; PyTorch's defaults.
    public init(_ numFeatures: Int, eps: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true, trackRunningStats: Bool = true) {
        super.init(numFeatures, eps: eps, momentum: momentum, affine: affine, trackRunningStats: trackRunningStats,
                   ranks: [4], name: "BatchNorm2d")
    }
}

/// Layer normalisation over the trailing `normalizedShape` dims.
public final class LayerNorm: Module, Layer {
    /// Scale, shaped `normalizedShape` (when elementwise affine).
    @OptionalParameter public var weight: Tensor?
    /// Shift, shaped `normalizedShape` (when elementwise affine with `bias`).
    @OptionalParameter public var bias: Tensor?
    let normalizedShape: [Int]
    let eps: Float

    /// Normalises over the last `normalizedShape.count` dims; `bias: false` keeps the scale
    /// and drops the shift (PyTorch's `LayerNorm(..., bias=False)`, nanoGPT's LayerNorm).
    public init(_ normalizedShape: [Int], eps: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) {
        check(!normalizedShape.isEmpty && normalizedShape.allSatisfy { $0 > 0 },
              "LayerNorm: normalizedShape must be non-empty and positive, got \(normalizedShape)")
        self.normalizedShape = normalizedShape
        self.eps = eps
        weight = elementwiseAffine ? Tensor.ones(normalizedShape) : nil
        self.bias = elementwiseAffine && bias ? Tensor.zeros(normalizedShape) : nil
    }

    /// Normalises over the last dim, of size `normalizedShape` (PyTorch's `LayerNorm(n)`).
    public convenience init(_ normalizedShape: Int, eps: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) {
        self.init([normalizedShape], eps: eps, elementwiseAffine: elementwiseAffine, bias: bias)
    }

    /// The normalised input.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        layerNorm(x, normalizedShape: normalizedShape, weight: weight, bias: bias, eps: eps)
    }
}

/// Root-mean-square normalisation over the trailing dims (`torch.nn.RMSNorm`), with a learned
/// scale `weight` (ones at first) unless `elementwiseAffine` is false.
public final class RMSNorm: Module, Layer {
    /// Scale, shaped `normalizedShape` (when elementwise affine).
    @OptionalParameter public var weight: Tensor?
    let normalizedShape: [Int]
    let eps: Float?

    /// Normalises over the last `normalizedShape.count` dims; `eps` nil is Float32's machine
    /// epsilon, as PyTorch's default.
    public init(_ normalizedShape: [Int], eps: Float? = nil, elementwiseAffine: Bool = true) {
        check(!normalizedShape.isEmpty && normalizedShape.allSatisfy { $0 > 0 },
              "RMSNorm: normalizedShape must be non-empty and positive, got \(normalizedShape)")
        self.normalizedShape = normalizedShape
        self.eps = eps
        weight = elementwiseAffine ? Tensor.ones(normalizedShape) : nil
    }

    /// Normalises over the last dim, of size `normalizedShape` (PyTorch's `RMSNorm(n)`).
    public convenience init(_ normalizedShape: Int, eps: Float? = nil, elementwiseAffine: Bool = true) {
        self.init([normalizedShape], eps: eps, elementwiseAffine: elementwiseAffine)
    }

    /// The normalised input.
    public func callAsFunction(_ x: Tensor) -> Tensor { rmsNorm(x, normalizedShape: normalizedShape, weight: weight, eps: eps) }
}

/// Group normalisation over the channels of `[N, C, *]` input (`torch.nn.GroupNorm`), with a
/// learned per-channel scale and shift (ones and zeros at first) unless `affine` is false.
public final class GroupNorm: Module, Layer {
    /// Per-channel scale `[numChannels]` (when affine).
    @OptionalParameter public var weight: Tensor?
    /// Per-channel shift `[numChannels]` (when affine).
    @OptionalParameter public var bias: Tensor?
    let numGroups: Int, eps: Float

    /// `numChannels` split into `numGroups` groups (which must divide it).
    public init(numGroups: Int, numChannels: Int, eps: Float = 1e-5, affine: Bool = true) {
        check(numGroups > 0 && numChannels > 0 && numChannels % numGroups == 0,
              "GroupNorm: numChannels (\(numChannels)) must be divisible by numGroups (\(numGroups))")
        self.numGroups = numGroups
        self.eps = eps
        weight = affine ? Tensor.ones([numChannels]) : nil
        bias = affine ? Tensor.zeros([numChannels]) : nil
    }

    /// The normalised input.
    public func callAsFunction(_ x: Tensor) -> Tensor { groupNorm(x, numGroups: numGroups, weight: weight, bias: bias, eps: eps) }
}