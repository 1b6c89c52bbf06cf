/// Fully connected layer: `y = x W^T + b` with weight `[out, in]` (PyTorch layout).
public final class Linear: Module, Layer {
    /// Weight `[outFeatures, inFeatures]`.
    @Parameter public var weight: Tensor
    /// Bias `[outFeatures]`, or nil.
    @OptionalParameter public var bias: Tensor?

    /// A layer with PyTorch's default initialisation (uniform in ±1/sqrt(inFeatures)).
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        check(inFeatures > 0 && outFeatures > 0, "Linear: sizes must be positive, got \(inFeatures) -> \(outFeatures)")
        weight = Init.kaimingUniform([outFeatures, inFeatures], fanIn: inFeatures)
        self.bias = bias ? Init.kaimingUniform([outFeatures], fanIn: inFeatures) : nil
    }

    /// `x W^T + b` over the last dimension of `x`.
    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}

/// A convolution layer's checked channels and groups, and its weight and bias with PyTorch's
/// default initialisation: weight `[out, in / groups, kernel...]`, or `[in, out / groups,
/// kernel...]` when `transposed`, and fan-in its dim 1 times the kernel (as PyTorch computes it).
func convolutionParameters(_ op: String, _ inChannels: Int, _ outChannels: Int, kernel: [Int], groups: Int, bias: Bool,
                           transposed: Bool) -> (weight: Tensor, bias: Tensor?) {
    check(inChannels > 0 && outChannels > 0 && kernel.allSatisfy { $0 > 0 },
          "\(op): channels and kernel size must be positive, got \(inChannels) -> \(outChannels), kernel \(kernel)")
    check(groups > 0, "\(op): groups must be a positive integer, got \(groups)")
    check(inChannels % groups == 0, "\(op): in_channels must be divisible by groups, got \(inChannels) and groups=\(groups)")
    check(outChannels % groups == 0, "\(op): out_channels must be divisible by groups, got \(outChannels) and groups=\(groups)")
    let shape = (transposed ? [inChannels, outChannels / groups] : [outChannels, inChannels / groups]) + kernel
    let fanIn = shape[1] * kernel.reduce(1, *)
    return (Init.kaimingUniform(shape, fanIn: fanIn), bias ? Init.kaimingUniform([outChannels], fanIn: fanIn) : nil)
}

/// 2-D convolution over NCHW input (`torch.nn.Conv2d`), grouped when `groups` > 1.
public final class Conv2d: Module, Layer {
    /// Weight `[outChannels, inChannels / groups, kH, kW]`.
    @Parameter public var weight: Tensor
    /// Bias `[outChannels]`, or nil.
    @OptionalParameter public var bias: Tensor?
    /// Vertical and horizontal stride, padding and dilation.
    public let stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
    /// Number of channel groups (`inChannels` for a depthwise convolution).
    public let groups: Int

    /// A layer with square windows and PyTorch's default initialisation.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        self.init(inChannels, outChannels, kernelSize: (kernelSize, kernelSize), stride: (stride, stride), padding: (padding, padding),
                  dilation: (dilation, dilation), groups: groups, bias: bias)
    }

    /// A layer with `kernelSize` (height, width) windows and PyTorch's default initialisation.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true) {
        (weight, self.bias) = convolutionParameters("Conv2d", inChannels, outChannels, kernel: [kernelSize.0, kernelSize.1], groups: groups,
                                                    bias: bias, transposed: false)
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
    }

    /// The convolution of `x` (`[N, inChannels, H, W]`).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
}

/// 2-D transposed convolution over NCHW input (`torch.nn.ConvTranspose2d`), grouped when
/// `groups` > 1: upsampling in decoders and generators.
public final class ConvTranspose2d: Module, Layer {
    /// Weight `[inChannels, outChannels / groups, kH, kW]` (PyTorch's layout).
    @Parameter public var weight: Tensor
    /// Bias `[outChannels]`, or nil.
    @OptionalParameter public var bias: Tensor?
    /// Vertical and horizontal stride, padding, output padding and dilation.
    public let stride: (Int, Int), padding: (Int, Int), outputPadding: (Int, Int), dilation: (Int, Int)
    /// Number of channel groups.
    public let groups: Int

    /// A layer with square windows and PyTorch's default initialisation.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            outputPadding: Int = 0, groups: Int = 1, bias: Bool = true, dilation: Int = 1) {
        self.init(inChannels, outChannels, kernelSize: (kernelSize, kernelSize), stride: (stride, stride), padding: (padding, padding),
                  outputPadding: (outputPadding, outputPadding), groups: groups, bias: bias, dilation: (dilation, dilation))
    }

    /// A layer with `kernelSize` (height, width) windows and PyTorch's default initialisation
    /// (its fan-in is `outChannels / groups * kH * kW`, as PyTorch computes it for this layout).
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                outputPadding: (Int, Int) = (0, 0), groups: Int = 1, bias: Bool = true, dilation: (Int, Int) = (1, 1)) {
        (weight, self.bias) = convolutionParameters("ConvTranspose2d", inChannels, outChannels, kernel: [kernelSize.0, kernelSize.1],
                                                    groups: groups, bias: bias, transposed: true)
        self.stride = stride
        self.padding = padding
        self.outputPadding = outputPadding
        self.dilation = dilation
        self.groups = groups
    }

    /// The transposed convolution of `x` (`[N, inChannels, H, W]`).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.convTranspose2d(weight: weight, bias: bias, stride: stride, padding: padding, outputPadding: outputPadding, groups: groups,
                          dilation: dilation)
    }
}

/// 1-D convolution over `[N, C, L]` input (`torch.nn.Conv1d`), grouped when `groups` > 1.
public final class Conv1d: Module, Layer {
    /// Weight `[outChannels, inChannels / groups, kernelSize]`.
    @Parameter public var weight: Tensor
    /// Bias `[outChannels]`, or nil.
    @OptionalParameter public var bias: Tensor?
    /// Stride, padding and dilation along the length.
    public let stride: Int, padding: Int, dilation: Int
    /// Number of channel groups (`inChannels` for a depthwise convolution).
    public let groups: Int

    /// A layer with PyTorch's default initialisation.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1,
                groups: Int = 1, bias: Bool = true) {
        (weight, self.bias) = convolutionParameters("Conv1d", inChannels, outChannels, kernel: [kernelSize], groups: groups, bias: bias,
                                                    transposed: false)
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
    }

    /// The convolution of `x` (`[N, inChannels, L]`).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.conv1d(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
}

/// 1-D transposed convolution over `[N, C, L]` input (`torch.nn.ConvTranspose1d`).
public final class ConvTranspose1d: Module, Layer {
    /// Weight `[inChannels, outChannels / groups, kernelSize]` (PyTorch's layout).
    @Parameter public var weight: Tensor
    /// Bias `[outChannels]`, or nil.
    @OptionalParameter public var bias: Tensor?
    /// Stride, padding, output padding and dilation along the length.
    public let stride: Int, padding: Int, outputPadding: Int, dilation: Int
    /// Number of channel groups.
    public let groups: Int

    /// A layer with PyTorch's default initialisation (fan-in `outChannels / groups * kernelSize`).
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, outputPadding: Int = 0,
                groups: Int = 1, bias: Bool = true, dilation: Int = 1) {
        (weight, self.bias) = convolutionParameters("ConvTranspose1d", inChannels, outChannels, kernel: [kernelSize], groups: groups,
                                                    bias: bias, transposed: true)
        self.stride = stride
        self.padding = padding
        self.outputPadding = outputPadding
        self.dilation = dilation
        self.groups = groups
    }

    /// The transposed convolution of `x` (`[N, inChannels, L]`).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.convTranspose1d(weight: weight, bias: bias, stride: stride, padding: padding, outputPadding: outputPadding, groups: groups,
                          dilation: dilation)
    }
}

/// 1-D max pooling (`torch.nn.MaxPool1d`).
public final class MaxPool1d: Module, Layer {
    let kernelSize: Int, stride: Int?, padding: Int

    /// Windows of `kernelSize` (stride defaults to the kernel size).
    public init(_ kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
    }

    /// The pooled input.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.maxPool1d(kernel: kernelSize, stride: stride, padding: padding) }
}

/// 1-D average pooling (`torch.nn.AvgPool1d`).
public final class AvgPool1d: Module, Layer {
    let kernelSize: Int, stride: Int?, padding: Int, countIncludePad: Bool

    /// Windows of `kernelSize` (stride defaults to the kernel size).
    public init(_ kernelSize: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) {
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.countIncludePad = countIncludePad
    }

    /// The pooled input.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.avgPool1d(kernel: kernelSize, stride: stride, padding: padding, countIncludePad: countIncludePad)
    }
}

/// Adaptive average pooling to a fixed output size (`torch.nn.AdaptiveAvgPool2d`).
public final class AdaptiveAvgPool2d: Module, Layer {
    let outputSize: (Int, Int)

    /// Pools to `outputSize` (height, width).
    public init(_ outputSize: (Int, Int)) { self.outputSize = outputSize }

    /// Pools to `outputSize` x `outputSize` (`AdaptiveAvgPool2d(1)` before a classifier head).
    public convenience init(_ outputSize: Int) { self.init((outputSize, outputSize)) }

    /// The pooled input.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.adaptiveAvgPool2d(outputSize: outputSize) }
}

/// Adaptive average pooling of `[N, C, L]` to a fixed length (`torch.nn.AdaptiveAvgPool1d`).
public final class AdaptiveAvgPool1d: Module, Layer {
    let outputSize: Int

    /// Pools to `outputSize` along the length.
    public init(_ outputSize: Int) { self.outputSize = outputSize }

    /// The pooled input.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.adaptiveAvgPool1d(outputSize: outputSize) }
}

/// `pixelShuffle` as a layer (`torch.nn.PixelShuffle`).
public final class PixelShuffle: Module, Layer {
    let upscaleFactor: Int

    /// Rearranges channels into an `upscaleFactor` times larger image.
    public init(_ upscaleFactor: Int) { self.upscaleFactor = upscaleFactor }

    /// `x.pixelShuffle(upscaleFactor:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.pixelShuffle(upscaleFactor: upscaleFactor) }
}

/// `pixelUnshuffle` as a layer (`torch.nn.PixelUnshuffle`).
public final class PixelUnshuffle: Module, Layer {
    let downscaleFactor: Int

    /// Rearranges `downscaleFactor` x `downscaleFactor` blocks of pixels into channels.
    public init(_ downscaleFactor: Int) { self.downscaleFactor = downscaleFactor }

    /// `x.pixelUnshuffle(downscaleFactor:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.pixelUnshuffle(downscaleFactor: downscaleFactor) }
}

/// Dim `dim` split into `sizes` (`torch.nn.Unflatten`), the inverse of `Flatten`.
public final class Unflatten: Module, Layer {
    let dim: Int, sizes: [Int]

    /// Splits `dim` into `sizes`.
    public init(dim: Int, sizes: [Int]) {
        self.dim = dim
        self.sizes = sizes
    }

    /// `x.unflatten(dim:sizes:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.unflatten(dim: dim, sizes: sizes) }
}

/// `glu` as a layer (`torch.nn.GLU`).
public final class GLU: Module, Layer {
    let dim: Int

    /// Halves `dim` into a value and a gate.
    public init(dim: Int = -1) { self.dim = dim }

    /// `glu(x, dim:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { glu(x, dim: dim) }
}

/// `logSoftmax(dim:)` as a layer (`torch.nn.LogSoftmax`).
public final class LogSoftmax: Module, Layer {
    let dim: Int
    /// Log-softmax along `dim`.
    public init(dim: Int = -1) { self.dim = dim }
    /// `x.logSoftmax(dim:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.logSoftmax(dim: dim) }
}

/// `interpolate` as a layer (`torch.nn.Upsample`): resizes to `size` or by `scaleFactor`.
public final class Upsample: Module, Layer {
    let size: [Int]?, scaleFactor: [Float]?, mode: InterpolationMode, alignCorners: Bool?

    /// Resizes to `size` or by `scaleFactor` (one value for every spatial dim or one each).
    public init(size: [Int]? = nil, scaleFactor: [Float]? = nil, mode: InterpolationMode = .nearest, alignCorners: Bool? = nil) {
        self.size = size
        self.scaleFactor = scaleFactor
        self.mode = mode
        self.alignCorners = alignCorners
    }

    /// The resized input.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        interpolate(x, size: size, scaleFactor: scaleFactor, mode: mode, alignCorners: alignCorners)
    }
}

/// Max pooling (`torch.nn.MaxPool2d`).
public final class MaxPool2d: Module, Layer {
    let kernelSize: (Int, Int), stride: (Int, Int)?, padding: (Int, Int)

    /// Square windows of `kernelSize` (stride defaults to the kernel size).
    public convenience init(_ kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        self.init((kernelSize, kernelSize), stride: stride.map { ($0, $0) }, padding: (padding, padding))
    }

    /// Windows of `kernelSize` (height, width); stride defaults to the kernel size.
    public init(_ kernelSize: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) {
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
    }

    /// The pooled input.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.maxPool2d(kernel: kernelSize, stride: stride, padding: padding) }
}

/// Average pooling (`torch.nn.AvgPool2d`).
public final class AvgPool2d: Module, Layer {
    let kernelSize: (Int, Int), stride: (Int, Int)?, padding: (Int, Int), countIncludePad: Bool

    /// Square windows of `kernelSize` (stride defaults to the kernel size).
    public convenience init(_ kernelSize: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) {
        self.init((kernelSize, kernelSize), stride: stride.map { ($0, $0) }, padding: (padding, padding), countIncludePad: countIncludePad)
    }

    /// Windows of `kernelSize` (height, width); stride defaults to the kernel size.
    public init(_ kernelSize: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0), countIncludePad: Bool = true) {
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.countIncludePad = countIncludePad
    }

    /// The pooled input.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.avgPool2d(kernel: kernelSize, stride: stride, padding: padding, countIncludePad: countIncludePad)
    }
}

/// Flattens dims `startDim...endDim` (by default all but the batch dim).
public final class Flatten: Module, Layer {
    let startDim: Int, endDim: Int

    /// Flattens `startDim...endDim`.
    public init(startDim: Int = 1, endDim: Int = -1) {
        self.startDim = startDim
        self.endDim = endDim
    }

    /// The flattened input.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.flatten(start: startDim, end: endDim) }
}

/// Inverted dropout, active only in training mode.
public final class Dropout: Module, Layer {
    /// Probability of zeroing an element.
    public let p: Float

    /// Dropout with probability `p`.
    public init(_ p: Float = 0.5) {
        check(p >= 0 && p <= 1, "Dropout: probability p must be in [0, 1], got \(p)")
        self.p = p
    }

    /// `x` with elements dropped (training) or unchanged (eval).
    public func callAsFunction(_ x: Tensor) -> Tensor { x.dropout(p: p, training: isTraining) }
}

/// A lookup table of `numEmbeddings` vectors of size `embeddingDim`.
public final class Embedding: Module, Layer {
    /// The table `[numEmbeddings, embeddingDim]`, initialised from N(0, 1).
    @Parameter public var weight: Tensor

    /// The row that `paddingIdx` names (non-negative), if any: zeros at first and never updated.
    public let paddingIdx: Int?

    /// A table with N(0, 1) entries; with `paddingIdx` (negative counts from the end) that
    /// row starts at zero and gets no gradient, as `torch.nn.Embedding(padding_idx=)`.
    public init(_ numEmbeddings: Int, _ embeddingDim: Int, paddingIdx: Int? = nil) {
        check(numEmbeddings > 0 && embeddingDim > 0, "Embedding: sizes must be positive, got \(numEmbeddings) x \(embeddingDim)")
        let table = Tensor.randn([numEmbeddings, embeddingDim])
        self.paddingIdx = paddingIdx.map { index in
            check(index >= -numEmbeddings && index < numEmbeddings, "Embedding: paddingIdx must be within numEmbeddings \(numEmbeddings), got \(index)")
            return index < 0 ? index + numEmbeddings : index
        }
        weight = self.paddingIdx.map { Tensor.where((Tensor.arange(numEmbeddings) == Float($0)).unsqueeze(1), 0, table) } ?? table
    }

    /// The rows named by integer `indices` of any shape: shape `indices.shape + [embeddingDim]`.
    public func callAsFunction(_ indices: Tensor) -> Tensor { embedding(indices, weight: weight, paddingIdx: paddingIdx) }
}

/// Layers applied in order; children are named "0", "1", ... as in PyTorch.
public final class Sequential: Module, Layer {
    /// The layers, in order.
    public let layers: [any Layer]

    /// The given layers, in order.
    public init(_ layers: [any Layer]) {
        self.layers = layers
    }

    /// The given layers, in order.
    public convenience init(_ layers: any Layer...) {
        self.init(layers)
    }

    /// Each layer applied to the previous one's output.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        layers.reduce(x) { $1($0) }
    }

    override public func namedChildren() -> [(name: String, module: Module)] {
        layers.enumerated().map { ("\($0.offset)", $0.element as Module) }
    }
}

/// `relu` as a layer.
public final class ReLU: Module, Layer {
    /// A ReLU layer.
    override public init() {}
    /// `x.relu()`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.relu() }
}

/// `gelu` as a layer (`torch.nn.GELU`).
public final class GELU: Module, Layer {
    /// Exact (`.none`, the default) or tanh-approximated GELU.
    public let approximate: GELUApproximation

    /// A GELU layer of the given form.
    public init(approximate: GELUApproximation = .none) {
        self.approximate = approximate
    }

    /// `x.gelu(approximate:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.gelu(approximate: approximate) }
}

/// `tanh` as a layer.
public final class Tanh: Module, Layer {
    /// A Tanh layer.
    override public init() {}
    /// `x.tanh()`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.tanh() }
}

/// `sigmoid` as a layer.
public final class Sigmoid: Module, Layer {
    /// A Sigmoid layer.
    override public init() {}
    /// `x.sigmoid()`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.sigmoid() }
}

/// `leakyRelu` as a layer.
public final class LeakyReLU: Module, Layer {
    let slope: Float
    /// A LeakyReLU layer with the given negative slope.
    public init(negativeSlope: Float = 0.01) { slope = negativeSlope }
    /// `x.leakyRelu(slope:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.leakyRelu(slope: slope) }
}

/// `silu` as a layer (`torch.nn.SiLU`).
public final class SiLU: Module, Layer {
    /// A SiLU layer.
    override public init() {}
    /// `x.silu()`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.silu() }
}

/// `mish` as a layer (`torch.nn.Mish`).
public final class Mish: Module, Layer {
    /// A Mish layer.
    override public init() {}
    /// `x.mish()`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.mish() }
}

/// `elu` as a layer (`torch.nn.ELU`).
public final class ELU: Module, Layer {
    let alpha: Float
    /// An ELU layer with the given alpha.
    public init(alpha: Float = 1) { self.alpha = alpha }
    /// `x.elu(alpha:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.elu(alpha: alpha) }
}

/// `selu` as a layer (`torch.nn.SELU`).
public final class SELU: Module, Layer {
    /// A SELU layer.
    override public init() {}
    /// `x.selu()`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.selu() }
}

/// `softplus` as a layer (`torch.nn.Softplus`).
public final class Softplus: Module, Layer {
    let beta: Float, threshold: Float
    /// A Softplus layer with the given beta and threshold.
    public init(beta: Float = 1, threshold: Float = 20) {
        self.beta = beta
        self.threshold = threshold
    }
    /// `x.softplus(beta:threshold:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.softplus(beta: beta, threshold: threshold) }
}

/// `logSigmoid` as a layer (`torch.nn.LogSigmoid`).
public final class LogSigmoid: Module, Layer {
    /// A LogSigmoid layer.
    override public init() {}
    /// `x.logSigmoid()`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.logSigmoid() }
}

/// `hardSigmoid` as a layer (`torch.nn.Hardsigmoid`).
public final class Hardsigmoid: Module, Layer {
    /// A Hardsigmoid layer.
    override public init() {}
    /// `x.hardSigmoid()`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.hardSigmoid() }
}

/// `hardSwish` as a layer (`torch.nn.Hardswish`).
public final class Hardswish: Module, Layer {
    /// A Hardswish layer.
    override public init() {}
    /// `x.hardSwish()`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.hardSwish() }
}

/// The input unchanged (`torch.nn.Identity`), a placeholder where a layer is optional.
public final class Identity: Module, Layer {
    /// An Identity layer.
    override public init() {}
    /// `x` itself.
    public func callAsFunction(_ x: Tensor) -> Tensor { x }
}

/// `softmax(dim:)` as a layer.
public final class Softmax: Module, Layer {
    let dim: Int
    /// Softmax along `dim`.
    public init(dim: Int = -1) { self.dim = dim }
    /// `x.softmax(dim:)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.softmax(dim: dim) }
}
