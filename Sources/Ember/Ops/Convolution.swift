/// 2-D convolution as im2col + GEMM. `im2col` and `col2im` are each other's adjoint, so
/// each one's backward is the other, and conv2d's gradients (and their gradients) follow
/// from matmul's rule.
extension Tensor {
    /// Checked geometry of a window op over this NCHW tensor.
    func windowGeometry(_ op: String, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)) -> Conv2dGeometry {
        Tensor.windowGeometry(op, shape: shape, kernel: kernel, stride: stride, padding: padding, dilation: dilation)
    }

    /// Checked geometry of a window op over an NCHW tensor of `shape`.
    static func windowGeometry(_ op: String, shape: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int),
                               dilation: (Int, Int)) -> Conv2dGeometry {
        check(shape.count == 4, "\(op): expected a 4-D NCHW input, got shape \(Shape.describe(shape))")
        check(kernel.0 > 0 && kernel.1 > 0, "\(op): kernel size must be positive, got \(kernel)")
        check(stride.0 > 0 && stride.1 > 0, "\(op): stride must be positive, got \(stride)")
        check(padding.0 >= 0 && padding.1 >= 0, "\(op): padding must be >= 0, got \(padding)")
        check(dilation.0 > 0 && dilation.1 > 0, "\(op): dilation must be positive, got \(dilation)")
        let g = Conv2dGeometry(batch: shape[0], channels: shape[1], height: shape[2], width: shape[3],
                               kernelH: kernel.0, kernelW: kernel.1, strideH: stride.0, strideW: stride.1,
                               padH: padding.0, padW: padding.1, dilationH: dilation.0, dilationW: dilation.1)
        check(g.outHeight > 0 && g.outWidth > 0,
              "\(op): input of shape \(Shape.describe(shape)) is too small for kernel \(kernel) with padding \(padding) and dilation \(dilation)")
        return g
    }

    /// Unfolds an NCHW tensor into columns `[N, C*kH*kW, outH*outW]` of its float type (an
    /// integer or bool tensor's values as Float32): the kernels copy elements of every float
    /// storage type, so a 16-bit input makes no Float32 copy.
    func im2col(_ g: Conv2dGeometry) -> Tensor {
        let source = arithmeticStorage.dense
        let out = Tensor(uninitialized: [g.batch, g.channels * g.kernelH * g.kernelW, g.outHeight * g.outWidth], dtype: source.dtype,
                         device: device, op: "im2col")
        if out.count > 0 {
            backend.im2col(source.storage.buffer, offset: source.offset, geometry: g, dtype: source.dtype, destination: out.storage.buffer)
        }
        return out.recording("Im2ColBackward", inputs: [self]) { { grad in [grad.col2im(g)] } }
    }

    /// Folds columns `[N, C*kH*kW, outH*outW]` back into NCHW of their float type (integer or
    /// bool columns as Float32), summing overlaps in Float32 and rounding each pixel once.
    func col2im(_ g: Conv2dGeometry) -> Tensor {
        let source = arithmeticStorage.dense
        let out = Tensor(uninitialized: [g.batch, g.channels, g.height, g.width], dtype: source.dtype, device: device, op: "col2im")
        if out.count > 0 {
            backend.col2im(source.storage.buffer, offset: source.offset, geometry: g, dtype: source.dtype, destination: out.storage.buffer)
        }
        return out.recording("Col2ImBackward", inputs: [self]) { { grad in [grad.im2col(g)] } }
    }

    /// 2-D cross-correlation of an NCHW input with `weight` `[outC, inC / groups, kH, kW]` and
    /// an optional `bias` `[outC]`, as `torch.nn.functional.conv2d`.
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1) -> Tensor {
        conv2d(weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding), dilation: (dilation, dilation), groups: groups)
    }

    /// 2-D convolution with separate vertical and horizontal stride, padding and dilation.
    /// With `groups` > 1 the channels split into that many groups, each convolved with its own
    /// `outC / groups` filters (`groups == inC` is a depthwise convolution). Under
    /// `Tensor.autocast` input, weight and bias are cast to its type.
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int) = (1, 1),
                       groups: Int = 1) -> Tensor {
        if case let (x, weight, bias)? = Autocast.lowPrecision(self, weight, bias) {
            return x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
        }
        Tensor.checkSameDevice("conv2d", self, weight)
        check(weight.rank == 4, "conv2d: weight must be 4-D [outC, inC / groups, kH, kW], got \(Shape.describe(weight.shape))")
        check(rank == 4, "conv2d: expected a 4-D NCHW input, got shape \(Shape.describe(shape))")
        check(groups > 0, "conv2d: non-positive groups is not supported, got groups=\(groups)")
        check(weight.shape[0] % groups == 0,
              "conv2d: given groups=\(groups), expected weight to be divisible by \(groups) at dimension 0, but got weight of size \(Shape.describe(weight.shape)) instead")
        check(weight.shape[1] * groups == shape[1],
              "conv2d: given groups=\(groups), weight of size \(Shape.describe(weight.shape)), expected input \(Shape.describe(shape)) to have \(weight.shape[1] * groups) channels, but got \(shape[1]) channels instead")
        let g = windowGeometry("conv2d", kernel: (weight.shape[2], weight.shape[3]), stride: stride, padding: padding, dilation: dilation)
        let outChannels = weight.shape[0]
        if let bias {
            Tensor.checkSameDevice("conv2d", self, bias)
            check(bias.shape == [outChannels], "conv2d: bias must have shape [\(outChannels)], got \(Shape.describe(bias.shape))")
        }
        let columns = im2col(g)
        var out: Tensor
        if groups == 1 {
            // The filters [outC, K] times each image's columns [K, outH * outW], the bias added
            // to each filter's row by the GEMM.
            let filters = weight.reshape([outChannels, -1])
            out = bias.map { filters.matmul(columns, adding: $0, perRow: true) } ?? filters.matmul(columns)
        } else {
            // Group k's filters [outC / groups, K] times its rows of the columns [K, outH * outW].
            let k = columns.shape[1] / groups
            out = weight.reshape([groups, outChannels / groups, k])
                .matmul(columns.reshape([g.batch, groups, k, g.outHeight * g.outWidth]))
                .reshape([g.batch, outChannels, g.outHeight * g.outWidth])
            if let bias { out = out + bias.reshape([outChannels, 1]) }
        }
        return out.reshape([g.batch, outChannels, g.outHeight, g.outWidth])
    }
}

// MARK: - Unfold and fold

/// The sliding `kernelSize` windows of an NCHW input as columns `[N, C·kH·kW, L]`, L the number
/// of windows (`torch.nn.functional.unfold`, im2col): the layout conv2d multiplies its filters by.
public func unfold(_ x: Tensor, kernelSize: (Int, Int), dilation: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                   stride: (Int, Int) = (1, 1)) -> Tensor {
    x.im2col(x.windowGeometry("unfold", kernel: kernelSize, stride: stride, padding: padding, dilation: dilation))
}

/// Columns `[N, C·kH·kW, L]` summed back into an `[N, C, outputSize]` image
/// (`torch.nn.functional.fold`, col2im): overlapping windows add up. unfold's adjoint.
public func fold(_ columns: Tensor, outputSize: (Int, Int), kernelSize: (Int, Int), dilation: (Int, Int) = (1, 1),
                 padding: (Int, Int) = (0, 0), stride: (Int, Int) = (1, 1)) -> Tensor {
    check(columns.rank == 3 && columns.shape[1] % (kernelSize.0 * kernelSize.1) == 0 && kernelSize.0 > 0 && kernelSize.1 > 0,
          "fold: expected columns [N, C·\(kernelSize.0)·\(kernelSize.1), L], got \(Shape.describe(columns.shape))")
    let channels = columns.shape[1] / (kernelSize.0 * kernelSize.1)
    let g = Tensor.windowGeometry("fold", shape: [columns.shape[0], channels, outputSize.0, outputSize.1], kernel: kernelSize,
                                  stride: stride, padding: padding, dilation: dilation)
    check(g.outHeight * g.outWidth == columns.shape[2],
          "fold: \(columns.shape[2]) columns do not match the \(g.outHeight * g.outWidth) windows of output size \(outputSize)")
    return columns.col2im(g)
}

// MARK: - Transposed convolution

extension Tensor {
    /// 2-D transposed convolution ("deconvolution") of an NCHW input with `weight`
    /// `[inC, outC / groups, kH, kW]` and an optional `bias` `[outC]`, as
    /// `torch.nn.functional.conv_transpose2d`: the adjoint of conv2d, so each input pixel
    /// spreads its filter over the output. Output size (H - 1)·stride - 2·padding +
    /// dilation·(k - 1) + outputPadding + 1. The filters' product with each image's pixels
    /// is folded by col2im (im2col's adjoint), so the gradients follow from matmul's and im2col's.
    public func convTranspose2d(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                                outputPadding: (Int, Int) = (0, 0), groups: Int = 1, dilation: (Int, Int) = (1, 1)) -> Tensor {
        if case let (x, weight, bias)? = Autocast.lowPrecision(self, weight, bias) {
            return x.convTranspose2d(weight: weight, bias: bias, stride: stride, padding: padding, outputPadding: outputPadding,
                                     groups: groups, dilation: dilation)
        }
        let op = "convTranspose2d"
        Tensor.checkSameDevice(op, self, weight)
        check(rank == 4, "\(op): expected a 4-D NCHW input, got shape \(Shape.describe(shape))")
        check(weight.rank == 4, "\(op): weight must be 4-D [inC, outC / groups, kH, kW], got \(Shape.describe(weight.shape))")
        check(groups > 0 && shape[1] % groups == 0, "\(op): groups (\(groups)) must be positive and divide the input's \(shape[1]) channels")
        check(weight.shape[0] == shape[1],
              "\(op): weight of size \(Shape.describe(weight.shape)) expects \(weight.shape[0]) input channels, but input \(Shape.describe(shape)) has \(shape[1])")
        check(stride.0 > 0 && stride.1 > 0 && dilation.0 > 0 && dilation.1 > 0 && padding.0 >= 0 && padding.1 >= 0,
              "\(op): stride and dilation must be positive and padding >= 0, got stride \(stride), padding \(padding), dilation \(dilation)")
        check(outputPadding.0 >= 0 && outputPadding.1 >= 0
              && (outputPadding.0 < stride.0 || outputPadding.0 < dilation.0) && (outputPadding.1 < stride.1 || outputPadding.1 < dilation.1),
              "\(op): output padding \(outputPadding) must be smaller than either stride \(stride) or dilation \(dilation)")
        let (kH, kW) = (weight.shape[2], weight.shape[3]), outChannels = weight.shape[1] * groups
        let height = (shape[2] - 1) * stride.0 - 2 * padding.0 + dilation.0 * (kH - 1) + outputPadding.0 + 1
        let width = (shape[3] - 1) * stride.1 - 2 * padding.1 + dilation.1 * (kW - 1) + outputPadding.1 + 1
        check(height > 0 && width > 0, "\(op): input of shape \(Shape.describe(shape)) gives an output of \(height) x \(width) for kernel (\(kH), \(kW)), stride \(stride) and padding \(padding)")
        if let bias {
            Tensor.checkSameDevice(op, self, bias)
            check(bias.shape == [outChannels], "\(op): bias must have shape [\(outChannels)], got \(Shape.describe(bias.shape))")
        }
        // The convolution whose adjoint this is: from the output's size down to the input's.
        let g = Tensor.windowGeometry(op, shape: [shape[0], outChannels, height, width], kernel: (kH, kW), stride: stride, padding: padding,
                                      dilation: dilation)
        let pixels = shape[2] * shape[3], perGroup = shape[1] / groups
        // Group k's filters, transposed to [outC / groups * kH * kW, inC / groups], times its channels' pixels.
        let columns = weight.reshape([groups, perGroup, -1]).transpose(-2, -1)
            .matmul(reshape([shape[0], groups, perGroup, pixels]))
            .reshape([shape[0], outChannels * kH * kW, pixels])
        let out = columns.col2im(g)
        return bias.map { out + $0.reshape([1, outChannels, 1, 1]) } ?? out
    }

    /// 2-D transposed convolution with square stride, padding, output padding and dilation.
    public func convTranspose2d(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, outputPadding: Int = 0,
                                groups: Int = 1, dilation: Int = 1) -> Tensor {
        convTranspose2d(weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding),
                        outputPadding: (outputPadding, outputPadding), groups: groups, dilation: (dilation, dilation))
    }
}

// MARK: - 1-D windows

extension Tensor {
    /// Checks a 1-D window op over this `[N, C, L]` tensor, with messages in the op's own
    /// terms; the op then runs as its 2-D form over `[N, C, 1, L]`.
    func checkWindow1d(_ op: String, kernel: Int, stride: Int, padding: Int, dilation: Int) {
        check(rank == 3, "\(op): expected a 3-D [N, C, L] input, got shape \(Shape.describe(shape))")
        check(kernel > 0, "\(op): kernel size must be positive, got \(kernel)")
        check(stride > 0, "\(op): stride must be positive, got \(stride)")
        check(padding >= 0, "\(op): padding must be >= 0, got \(padding)")
        check(dilation > 0, "\(op): dilation must be positive, got \(dilation)")
        check(shape[2] + 2 * padding >= dilation * (kernel - 1) + 1,
              "\(op): input of shape \(Shape.describe(shape)) is too small for kernel \(kernel) with padding \(padding) and dilation \(dilation)")
    }

    /// 1-D cross-correlation of an `[N, C, L]` input with `weight` `[outC, inC / groups, k]`
    /// and an optional `bias` `[outC]`, as `torch.nn.functional.conv1d`: the 2-D convolution
    /// of a height-1 image, so it shares conv2d's kernels and gradients.
    public func conv1d(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1) -> Tensor {
        check(weight.rank == 3, "conv1d: weight must be 3-D [outC, inC / groups, k], got \(Shape.describe(weight.shape))")
        checkWindow1d("conv1d", kernel: weight.shape[2], stride: stride, padding: padding, dilation: dilation)
        check(groups > 0, "conv1d: non-positive groups is not supported, got groups=\(groups)")
        check(weight.shape[1] * groups == shape[1],
              "conv1d: given groups=\(groups), weight of size \(Shape.describe(weight.shape)), expected input \(Shape.describe(shape)) to have \(weight.shape[1] * groups) channels, but got \(shape[1]) channels instead")
        return unsqueeze(2).conv2d(weight: weight.unsqueeze(2), bias: bias, stride: (1, stride), padding: (0, padding),
                                   dilation: (1, dilation), groups: groups).squeeze(2)
    }

    /// 1-D transposed convolution of an `[N, C, L]` input with `weight` `[inC, outC / groups, k]`,
    /// as `torch.nn.functional.conv_transpose1d`: `convTranspose2d` over a height-1 image.
    public func convTranspose1d(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, outputPadding: Int = 0,
                                groups: Int = 1, dilation: Int = 1) -> Tensor {
        check(rank == 3, "convTranspose1d: expected a 3-D [N, C, L] input, got shape \(Shape.describe(shape))")
        check(weight.rank == 3, "convTranspose1d: weight must be 3-D [inC, outC / groups, k], got \(Shape.describe(weight.shape))")
        check(weight.shape[0] == shape[1],
              "convTranspose1d: weight of size \(Shape.describe(weight.shape)) expects \(weight.shape[0]) input channels, but input \(Shape.describe(shape)) has \(shape[1])")
        return unsqueeze(2).convTranspose2d(weight: weight.unsqueeze(2), bias: bias, stride: (1, stride), padding: (0, padding),
                                            outputPadding: (0, outputPadding), groups: groups, dilation: (1, dilation)).squeeze(2)
    }
}