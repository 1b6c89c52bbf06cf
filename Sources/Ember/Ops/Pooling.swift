/// 2-D max and average pooling over NCHW tensors.
extension Tensor {
    /// Max over `kernel` x `kernel` windows (stride defaults to the kernel size); the gradient
    /// flows to the first maximum of each window.
    public func maxPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0, dilation: Int = 1) -> Tensor {
        maxPool2d(kernel: (kernel, kernel), stride: stride.map { ($0, $0) }, padding: (padding, padding), dilation: (dilation, dilation))
    }

    /// Max over `kernel.0` x `kernel.1` (height x width) windows, with separate vertical and
    /// horizontal stride (default: the kernel), padding and dilation.
    public func maxPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1)) -> Tensor {
        let g = windowGeometry("maxPool2d", kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: dilation)
        Tensor.checkPoolPadding("maxPool2d", kernel: kernel, padding: padding)
        let source = arithmeticStorage.dense
        let outShape = [g.batch, g.channels, g.outHeight, g.outWidth]
        let out = Tensor(uninitialized: outShape, dtype: source.dtype, device: device, op: "maxPool2d")
        let indices = Tensor(uninitialized: outShape, dtype: .int32, device: device, op: "maxPool2d")
        if out.count > 0 {
            backend.maxPool2d(source.storage.buffer, offset: source.offset, geometry: g, dtype: source.dtype,
                              destination: out.storage.buffer, indices: indices.storage.buffer)
        }
        return out.recording("MaxPool2DBackward", inputs: [self]) {
            { grad in [grad.maxPoolAdjoint(g, indices)] }
        }
    }

    /// The backward of max pooling: gradients `[N, C, outH, outW]` moved to the positions in
    /// `indices`. Differentiable: its own adjoint reads the gradient back at those positions.
    private func maxPoolAdjoint(_ g: Conv2dGeometry, _ indices: Tensor) -> Tensor {
        let source = arithmeticStorage.dense
        let out = Tensor(uninitialized: [g.batch, g.channels, g.height, g.width], dtype: source.dtype, device: device,
                         op: "maxPool2dBackward")
        if out.count > 0 {
            backend.maxPool2dBackward(source.storage.buffer, indices: indices.storage.buffer, geometry: g, dtype: source.dtype,
                                      destination: out.storage.buffer)
        }
        return out.recording("MaxPool2DBackwardBackward", inputs: [self]) {
            { grad in
                let planes = g.batch * g.channels
                return [grad.reshape([planes, g.height * g.width])
                    .gather(dim: 1, index: indices.reshape([planes, g.outHeight * g.outWidth]))
                    .reshape([g.batch, g.channels, g.outHeight, g.outWidth])]
            }
        }
    }

    /// Mean over `kernel` x `kernel` windows (stride defaults to the kernel size); padding is
    /// counted in the divisor when `countIncludePad` (PyTorch's default).
    public func avgPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) -> Tensor {
        avgPool2d(kernel: (kernel, kernel), stride: stride.map { ($0, $0) }, padding: (padding, padding), countIncludePad: countIncludePad)
    }

    /// Mean over `kernel.0` x `kernel.1` (height x width) windows, with separate vertical and
    /// horizontal stride (default: the kernel) and padding.
    public func avgPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0), countIncludePad: Bool = true) -> Tensor {
        let g = windowGeometry("avgPool2d", kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: (1, 1))
        Tensor.checkPoolPadding("avgPool2d", kernel: kernel, padding: padding)
        if let narrow = viaFloat32({ $0.avgPool(g, countIncludePad) }) { return narrow }
        return avgPool(g, countIncludePad)
    }

    /// Pooling pads at most half a window on each side (PyTorch's rule).
    private static func checkPoolPadding(_ op: String, kernel: (Int, Int), padding: (Int, Int)) {
        check(padding.0 <= kernel.0 / 2 && padding.1 <= kernel.1 / 2,
              "\(op): padding \(padding) must be at most half the kernel size \(kernel)")
    }

    private func avgPool(_ g: Conv2dGeometry, _ countPadding: Bool) -> Tensor {
        let source = floatStorage.dense
        let out = Tensor(uninitialized: [g.batch, g.channels, g.outHeight, g.outWidth], device: device, op: "avgPool2d")
        if out.count > 0 {
            backend.avgPool2d(source.storage.buffer, offset: source.offset, geometry: g, countPadding: countPadding,
                              destination: out.storage.buffer)
        }
        return out.recording("AvgPool2DBackward", inputs: [self]) { { grad in [grad.avgPoolAdjoint(g, countPadding)] } }
    }

    /// The adjoint of average pooling (its backward); differentiable, its own adjoint being the pool.
    private func avgPoolAdjoint(_ g: Conv2dGeometry, _ countPadding: Bool) -> Tensor {
        let source = dense
        let out = Tensor(uninitialized: [g.batch, g.channels, g.height, g.width], device: device, op: "avgPool2dBackward")
        if out.count > 0 {
            backend.avgPool2dBackward(source.storage.buffer, geometry: g, countPadding: countPadding, destination: out.storage.buffer)
        }
        return out.recording("AvgPool2DBackwardBackward", inputs: [self]) { { grad in [grad.avgPool(g, countPadding)] } }
    }
}

// MARK: - 1-D and adaptive pooling

extension Tensor {
    /// Max over windows of `kernel` along the last dim of an `[N, C, L]` input
    /// (`torch.nn.functional.max_pool1d`; stride defaults to the kernel).
    public func maxPool1d(kernel: Int, stride: Int? = nil, padding: Int = 0, dilation: Int = 1) -> Tensor {
        checkWindow1d("maxPool1d", kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: dilation)
        check(padding <= kernel / 2, "maxPool1d: padding \(padding) must be at most half the kernel size \(kernel)")
        return unsqueeze(2).maxPool2d(kernel: (1, kernel), stride: (1, stride ?? kernel), padding: (0, padding), dilation: (1, dilation)).squeeze(2)
    }

    /// Mean over windows of `kernel` along the last dim of an `[N, C, L]` input
    /// (`torch.nn.functional.avg_pool1d`; stride defaults to the kernel).
    public func avgPool1d(kernel: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) -> Tensor {
        checkWindow1d("avgPool1d", kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: 1)
        check(padding <= kernel / 2, "avgPool1d: padding \(padding) must be at most half the kernel size \(kernel)")
        return unsqueeze(2).avgPool2d(kernel: (1, kernel), stride: (1, stride ?? kernel), padding: (0, padding),
                                      countIncludePad: countIncludePad).squeeze(2)
    }

    /// Average pooling of an NCHW (or CHW) input to `outputSize` (height, width), as
    /// `torch.nn.functional.adaptive_avg_pool2d`: output cell i of n along a dim of size s
    /// averages `floor(i·s/n) ..< ceil((i+1)·s/n)`. A size that divides the input is one
    /// average pool; others average each output row and column's span.
    public func adaptiveAvgPool2d(outputSize: (Int, Int)) -> Tensor {
        check(rank == 3 || rank == 4, "adaptiveAvgPool2d: expected a 3-D or 4-D input, got shape \(Shape.describe(shape))")
        check(outputSize.0 > 0 && outputSize.1 > 0, "adaptiveAvgPool2d: output size must be positive, got \(outputSize)")
        guard rank == 4 else { return unsqueeze(0).adaptiveAvgPool2d(outputSize: outputSize).squeeze(0) }
        let (h, w) = (shape[2], shape[3])
        check(h > 0 && w > 0, "adaptiveAvgPool2d: expected non-empty height and width, got shape \(Shape.describe(shape))")
        if h % outputSize.0 == 0 && w % outputSize.1 == 0 {
            let kernel = (h / outputSize.0, w / outputSize.1)
            return avgPool2d(kernel: kernel, stride: kernel)
        }
        return adaptiveMean(dim: 2, size: outputSize.0).adaptiveMean(dim: 3, size: outputSize.1)
    }

    /// Average pooling of an `[N, C, L]` (or `[C, L]`) input to `outputSize` along the length, as
    /// `torch.nn.functional.adaptive_avg_pool1d`.
    public func adaptiveAvgPool1d(outputSize: Int) -> Tensor {
        check(rank == 2 || rank == 3, "adaptiveAvgPool1d: expected a 2-D or 3-D input, got shape \(Shape.describe(shape))")
        return unsqueeze(-2).adaptiveAvgPool2d(outputSize: (1, outputSize)).squeeze(-2)
    }

    /// Average pooling of an NCHW (or CHW) input to `outputSize` x `outputSize`.
    public func adaptiveAvgPool2d(outputSize: Int) -> Tensor { adaptiveAvgPool2d(outputSize: (outputSize, outputSize)) }

    /// The adaptive means along `dim` down to `size` cells (one mean per span, then one cat).
    private func adaptiveMean(dim: Int, size: Int) -> Tensor {
        let length = shape[dim]
        if length == size { return self }
        let cells = (0..<size).map { i in
            slice(dim: dim, start: i * length / size, end: ((i + 1) * length + size - 1) / size).mean(dim: dim, keepDim: true)
        }
        return Tensor.cat(cells, dim: dim)
    }
}

// MARK: - Resampling

/// How `interpolate` samples (`mode` in `torch.nn.functional.interpolate`).
public enum InterpolationMode: String, Sendable {
    /// The nearest input element (any number of spatial dims).
    case nearest
    /// Linear between the two nearest elements, over `[N, C, L]`.
    case linear
    /// Linear along height and width, over `[N, C, H, W]`.
    case bilinear
}

/// `x` (`[N, C, spatial...]`) resized to `size`, or by `scaleFactor`, as
/// `torch.nn.functional.interpolate`: one value for every spatial dim or one each. Output
/// element i of n from an input of m maps to input coordinate i·m/n (or i/scaleFactor) for
/// `.nearest` (floor, as PyTorch's "nearest"); the linear modes use pixel centres,
/// (i + 0.5)·m/n - 0.5 clamped at 0, or with `alignCorners` i·(m - 1)/(n - 1). Separable:
/// each dim is one or two index selects and a weighted sum, so it is differentiable.
public func interpolate(_ x: Tensor, size: [Int]? = nil, scaleFactor: [Float]? = nil, mode: InterpolationMode = .nearest,
                        alignCorners: Bool? = nil) -> Tensor {
    let spatial = x.rank - 2
    switch mode {
    case .nearest: check(spatial >= 1, "interpolate: nearest expects an input [N, C, spatial...], got \(Shape.describe(x.shape))")
    case .linear: check(spatial == 1, "interpolate: linear expects a 3-D input [N, C, L], got \(Shape.describe(x.shape))")
    case .bilinear: check(spatial == 2, "interpolate: bilinear expects a 4-D input [N, C, H, W], got \(Shape.describe(x.shape))")
    }
    check(mode != .nearest || alignCorners == nil, "interpolate: alignCorners can only be set with the linear modes")
    check((size == nil) != (scaleFactor == nil), "interpolate: give exactly one of size and scaleFactor")
    func perDim<T>(_ values: [T], _ name: String) -> [T] {
        check(values.count == 1 || values.count == spatial, "interpolate: \(name) \(values) must have 1 or \(spatial) values for input \(Shape.describe(x.shape))")
        return values.count == 1 ? [T](repeating: values[0], count: spatial) : values
    }
    let factors = scaleFactor.map { perDim($0, "scaleFactor") }
    let sizes = size.map { perDim($0, "size") } ?? zip(x.shape.suffix(spatial), factors!).map { Int((Float($0) * $1).rounded(.down)) }
    check(sizes.allSatisfy { $0 > 0 } && factors?.allSatisfy { $0 > 0 } != false,
          "interpolate: output size \(sizes) must be positive (input \(Shape.describe(x.shape)))")
    var out = x
    for (i, outSize) in sizes.enumerated() {
        let d = 2 + i, inSize = x.shape[d]
        guard inSize != outSize || factors != nil else { continue }
        // Input coordinates per output element in PyTorch's float arithmetic.
        let scale: Float = factors.map { 1 / $0[i] } ?? Float(inSize) / Float(outSize)
        func indices(_ values: [Int]) -> Tensor { Tensor(shape: [outSize], data: values.map(Int64.init), device: x.device) }
        if mode == .nearest {
            out = out.indexSelect(dim: d, index: indices((0..<outSize).map { Swift.min(Int((Float($0) * scale).rounded(.down)), inSize - 1) }))
            continue
        }
        let sources: [Float] = (0..<outSize).map { j in
            if alignCorners == true { return outSize > 1 ? Float(j) * (Float(inSize - 1) / Float(outSize - 1)) : 0 }
            return Swift.max(scale * (Float(j) + 0.5) - 0.5, 0)
        }
        let low = sources.map { Swift.min(Int($0), inSize - 1) }, high = low.map { Swift.min($0 + 1, inSize - 1) }
        var weightShape = [Int](repeating: 1, count: x.rank)
        weightShape[d] = outSize
        let upper = Tensor(shape: weightShape, data: zip(sources, low).map { $0 - Float($1) }, device: x.device).to(out.dtype)
        out = out.indexSelect(dim: d, index: indices(low)) * (1 - upper) + out.indexSelect(dim: d, index: indices(high)) * upper
    }
    return out === x ? x.clone() : out
}