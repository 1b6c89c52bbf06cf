/// The functional forms of the layers (`torch.nn.functional`): each module's forward calls
/// its function here, so the two never differ.

/// `x W^T + b` over the last dim of `x` (`torch.nn.functional.linear`): `weight` is
/// `[out, in]` (PyTorch's layout), `bias` `[out]`. Under `Tensor.autocast` all three are cast
/// to its type.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    if case let (x, weight, bias)? = Autocast.lowPrecision(x, weight, bias) { return linear(x, weight: weight, bias: bias) }
    check(weight.rank == 2, "linear: weight must be [out, in], got \(Shape.describe(weight.shape))")
    check(x.rank >= 1 && x.shape.last == weight.shape[1],
          "linear: input of shape \(Shape.describe(x.shape)) does not end in \(weight.shape[1]) features (weight \(Shape.describe(weight.shape)))")
    if let bias {
        check(bias.shape == [weight.shape[0]],
              "linear: bias of shape \(Shape.describe(bias.shape)) does not match weight \(Shape.describe(weight.shape)) (expected [\(weight.shape[0])])")
    }
    return bias.map { x.matmul(weight.T, adding: $0, perRow: false) } ?? x.matmul(weight.T)
}

/// Rows of the table `weight` (`[numEmbeddings, embeddingDim]`) named by integer `indices` of any
/// shape (`torch.nn.functional.embedding`): shape `indices.shape + [embeddingDim]`. An index
/// outside `0..<numEmbeddings` stops the program (on OpenCL at the next synchronisation).
/// Positions whose index is `paddingIdx` (negative counts from the end) give no gradient to
/// that row.
public func embedding(_ indices: Tensor, weight: Tensor, paddingIdx: Int? = nil) -> Tensor {
    check(weight.rank == 2, "embedding: weight must be [numEmbeddings, embeddingDim], got \(Shape.describe(weight.shape))")
    let table = weight.shape[0]
    if let paddingIdx {
        check(paddingIdx >= -table && paddingIdx < table, "embedding: paddingIdx must be within numEmbeddings \(table), got \(paddingIdx)")
    }
    let rows = weight.indexSelect(dim: 0, index: indices.reshape([-1]), op: "embedding").reshape(indices.shape + [weight.shape[1]])
    guard let paddingIdx, weight.requiresGrad else { return rows }
    // The same values, with the gradient stopped where the index is the padding row.
    return Tensor.where((indices != Float(paddingIdx < 0 ? paddingIdx + table : paddingIdx)).unsqueeze(-1), rows, rows.detach())
}

/// Checks that `x` ends in the non-empty `normalizedShape` and that each given parameter has
/// exactly that shape (layerNorm's and rmsNorm's inputs).
private func checkNormalizedShape(_ op: String, _ x: Tensor, _ normalizedShape: [Int], _ parameters: [(name: String, tensor: Tensor?)]) {
    check(!normalizedShape.isEmpty && Array(x.shape.suffix(normalizedShape.count)) == normalizedShape && x.rank >= normalizedShape.count,
          "\(op): input of shape \(Shape.describe(x.shape)) does not end in normalizedShape \(Shape.describe(normalizedShape))")
    for case let (name, p?) in parameters {
        check(p.shape == normalizedShape,
              "\(op): \(name) of shape \(Shape.describe(p.shape)) does not match normalizedShape \(Shape.describe(normalizedShape))")
    }
}

/// Normalises over the trailing `normalizedShape` dims with the biased variance
/// (`torch.nn.functional.layer_norm`), then scales by `weight` and shifts by `bias` (each
/// shaped `normalizedShape`) when given. Under `Tensor.autocast` it computes in Float32.
public func layerNorm(_ x: Tensor, normalizedShape: [Int], weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
    if case let (x, weight, bias)? = Autocast.fullPrecision(x, weight, bias) {
        return layerNorm(x, normalizedShape: normalizedShape, weight: weight, bias: bias, eps: eps)
    }
    checkNormalizedShape("layerNorm", x, normalizedShape, [("weight", weight), ("bias", bias)])
    // Narrow inputs normalise in Float32 and round back, as the statistics need.
    if [x, weight, bias].contains(where: { $0?.dtype.isReducedFloat == true }) {
        let wide = layerNorm(x.to(.float32), normalizedShape: normalizedShape, weight: weight?.to(.float32), bias: bias?.to(.float32), eps: eps)
        return wide.to(x.dtype.isFloatingPoint ? x.dtype : .float32)
    }
    return Tensor.layerNormRows(x, normalizedShape: normalizedShape, weight: weight, bias: bias, eps: eps)
}

/// The one-hot encoding of integer class indices (`torch.nn.functional.one_hot`): an
/// `.int64` tensor of shape `indices.shape + [numClasses]`, 1 at each index. `numClasses`
/// -1 takes the largest index plus one; an index outside `0..<numClasses` stops the program.
public func oneHot(_ indices: Tensor, numClasses: Int = -1) -> Tensor {
    check(indices.dtype.isInteger, "oneHot: expected integer class indices, got \(indices.dtype)")
    // The smallest and largest index in one host read.
    let bounds = indices.count == 0 ? [0, -1] : Tensor.stack([indices.min(), indices.max()]).toInt64Array().map { Int($0) }
    let (low, high) = (bounds[0], bounds[1])
    check(low >= 0, "oneHot: class values must be non-negative, got \(low)")
    let classes = numClasses == -1 ? high + 1 : numClasses
    check(classes >= 0 && high < classes, "oneHot: class values must be smaller than numClasses \(classes), got \(high)")
    return (indices.unsqueeze(-1).long() == Tensor.arange(classes, device: indices.device)).long()
}

/// The gated linear unit (`torch.nn.functional.glu`): `x` halved along `dim` into a and b,
/// a·sigmoid(b).
public func glu(_ x: Tensor, dim: Int = -1) -> Tensor {
    let d = Tensor.normalizeDim(dim, rank: x.rank, op: "glu")
    check(x.shape[d] % 2 == 0, "glu: halving dim \(dim) needs an even size, got \(Shape.describe(x.shape))")
    let halves = x.chunk(2, dim: d)
    return halves[0] * halves[1].sigmoid()
}

/// `x` divided by its `p`-norm along `dim`, the norm kept at least `eps`
/// (`torch.nn.functional.normalize`).
public func normalize(_ x: Tensor, p: Float = 2, dim: Int = 1, eps: Float = 1e-12) -> Tensor {
    x / x.norm(p: p, dim: dim, keepDim: true).clamp(min: eps)
}

/// The cosine of the angle between `x1` and `x2` along `dim` (broadcasting the rest), as
/// `torch.nn.functional.cosine_similarity`: the sum of the two inputs' products, each divided
/// by its 2-norm kept at least `eps`.
public func cosineSimilarity(_ x1: Tensor, _ x2: Tensor, dim: Int = 1, eps: Float = 1e-8) -> Tensor {
    let shape = Tensor.broadcastShape("cosineSimilarity", x1.shape, x2.shape)
    let (a, b) = (x1.expand(shape), x2.expand(shape))
    return ((a / a.norm(dim: dim, keepDim: true).clamp(min: eps)) * (b / b.norm(dim: dim, keepDim: true).clamp(min: eps))).sum(dim: dim)
}

/// Group normalisation (`torch.nn.functional.group_norm`): the channels (dim 1) of each
/// sample split into `numGroups` groups, each normalised with its biased variance over its
/// channels and every position (LayerNorm's row kernel over each group), then scaled by
/// `weight` and shifted by `bias` (each `[C]`) when given.
public func groupNorm(_ x: Tensor, numGroups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
    check(x.rank >= 2 && numGroups > 0 && x.shape[1] % numGroups == 0,
          "groupNorm: expected an input [N, C, *] with C divisible by numGroups \(numGroups), got \(Shape.describe(x.shape))")
    let channels = x.shape[1]
    for (name, p) in [("weight", weight), ("bias", bias)] {
        if let p { check(p.shape == [channels], "groupNorm: \(name) of shape \(Shape.describe(p.shape)) does not match the \(channels) channels") }
    }
    let perGroup = Shape.count(x.shape) / Swift.max(x.shape[0] * numGroups, 1)
    let normalized = layerNorm(x.reshape([x.shape[0], numGroups, perGroup]), normalizedShape: [perGroup], eps: eps).reshape(x.shape)
    let perChannel = [1, channels] + [Int](repeating: 1, count: x.rank - 2)
    let scaled = weight.map { normalized * $0.reshape(perChannel) } ?? normalized
    return bias.map { scaled + $0.reshape(perChannel) } ?? scaled
}

/// Root-mean-square normalisation over the trailing `normalizedShape` dims
/// (`torch.nn.functional.rms_norm`): x / sqrt(mean(x²) + eps), scaled by `weight` (shaped
/// `normalizedShape`) when given. `eps` defaults to Float32's machine epsilon, as PyTorch's
/// does. Narrow inputs normalise in Float32 and round back to their type before the scale.
public func rmsNorm(_ x: Tensor, normalizedShape: [Int], weight: Tensor? = nil, eps: Float? = nil) -> Tensor {
    checkNormalizedShape("rmsNorm", x, normalizedShape, [("weight", weight)])
    if let weight { Tensor.checkSameDevice("rmsNorm", x, weight) }
    let wide = x.dtype == .float32 ? x : x.to(.float32)
    let dims = Array((x.rank - normalizedShape.count)..<x.rank)
    let normalized = wide * (wide.square().mean(dims: dims, keepDim: true) + (eps ?? Float.ulpOfOne)).rsqrt()
    let rounded = x.dtype.isFloatingPoint && x.dtype != .float32 ? normalized.to(x.dtype) : normalized
    return weight.map { rounded * $0 } ?? rounded
}

extension Tensor {
    /// `layerNorm` of Float32 (or integer) input: one backend pass over rows of the normalised
    /// size forward, and one (plus one for the parameters) backward. Under a created graph the
    /// backward is composed of differentiable ops, so higher derivatives are exact.
    static func layerNormRows(_ x: Tensor, normalizedShape: [Int], weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
        for p in [weight, bias].compactMap({ $0 }) { checkSameDevice("layerNorm", x, p) }
        let cols = Shape.count(normalizedShape), rows = cols == 0 ? 0 : x.count / cols
        let source = x.floatStorage.dense
        let (w, b) = (weight?.floatStorage.dense, bias?.floatStorage.dense)
        let out = Tensor(uninitialized: x.shape, device: x.device, op: "layerNorm")
        let mean = Tensor(uninitialized: [rows], device: x.device, op: "layerNorm")
        let rstd = Tensor(uninitialized: [rows], device: x.device, op: "layerNorm")
        if out.count > 0 {
            x.backend.layerNorm(source.storage.buffer, offset: source.offset, rows: rows, cols: cols, weight: w?.storage.buffer,
                                bias: b?.storage.buffer, eps: eps, destination: out.storage.buffer, mean: mean.storage.buffer,
                                rstd: rstd.storage.buffer)
        }
        let inputs: [Tensor] = [x] + [weight, bias].compactMap { $0 }
        return out.recording("NativeLayerNormBackward", inputs: inputs) {
            let saved = (x: SavedTensor(x, op: "NativeLayerNormBackward"), weight: weight.map { SavedTensor($0, op: "NativeLayerNormBackward") })
            return { g in
                let (x, weight) = (saved.x.value, saved.weight?.value)
                let dims = Array((x.rank - normalizedShape.count)..<x.rank)
                if GradMode.enabled {
                    // The same gradients as Tensor ops of x, g and the weight.
                    let centered = x - x.mean(dims: dims, keepDim: true)
                    let r = ((centered * centered).mean(dims: dims, keepDim: true) + eps).rsqrt()
                    let xhat = centered * r
                    let gw = weight.map { g * $0 } ?? g
                    let dx = r * (gw - gw.mean(dims: dims, keepDim: true) - xhat * (gw * xhat).mean(dims: dims, keepDim: true))
                    let parameters: [Tensor] = (weight == nil ? [] : [(g * xhat).sumTo(normalizedShape)]) + (bias == nil ? [] : [g.sumTo(normalizedShape)])
                    return [dx] + parameters
                }
                // The forward's dense Float32 input and weight (copies only when x or the weight
                // was not), read after the saved tensors' version checks above.
                let gradient = g.floatStorage.dense, input = source
                let dx = Tensor(uninitialized: x.shape, device: x.device, op: "layerNormBackward")
                let dw = weight.map { _ in Tensor(uninitialized: normalizedShape, device: x.device, op: "layerNormBackward") }
                let db = bias.map { _ in Tensor(uninitialized: normalizedShape, device: x.device, op: "layerNormBackward") }
                if dx.count > 0 {
                    x.backend.layerNormBackward(gradient.storage.buffer, source: input.storage.buffer, offset: input.offset, rows: rows, cols: cols,
                                                mean: mean.storage.buffer, rstd: rstd.storage.buffer,
                                                weight: w?.storage.buffer, inputGradient: dx.storage.buffer,
                                                weightGradient: dw?.storage.buffer, biasGradient: db?.storage.buffer)
                } else {
                    for t in [dw, db].compactMap({ $0 }) { x.backend.fill(t.storage.buffer, count: t.count, value: 0, dtype: .float32) }
                }
                let parameters: [Tensor] = [dw, db].compactMap { $0 }
                return [dx] + parameters
            }
        }
    }
}

/// Batch normalisation over the channel dim (dim 1) of `[N, C, ...]` input
/// (`torch.nn.functional.batch_norm`). In `training`, normalises with the batch statistics
/// (biased variance) and, when `runningMean` and `runningVar` (`[C]`) are given, updates them
/// in place: `running = (1 - momentum)·running + momentum·batch`, with the unbiased variance.
/// Otherwise normalises with the running statistics, which must then be given. Then scales by
/// `weight` and shifts by `bias` (`[C]`) when given. Under `Tensor.autocast` it computes in
/// Float32 (the running statistics are updated in place in their own type).
public func batchNorm(_ x: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor? = nil, bias: Tensor? = nil,
                      training: Bool = false, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
    if case let (x, weight, bias)? = Autocast.fullPrecision(x, weight, bias) {
        return batchNorm(x, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias,
                         training: training, momentum: momentum, eps: eps)
    }
    check(x.rank >= 2, "batchNorm: expected input of shape [N, C, ...], got \(Shape.describe(x.shape))")
    let channels = x.shape[1]
    check((runningMean == nil) == (runningVar == nil),
          "batchNorm: runningMean and runningVar must be given together, got \(runningMean == nil ? "only runningVar" : "only runningMean")")
    for (name, p) in [("runningMean", runningMean), ("runningVar", runningVar), ("weight", weight), ("bias", bias)] {
        if let p {
            check(p.shape == [channels],
                  "batchNorm: \(name) of shape \(Shape.describe(p.shape)) does not match the \(channels) channels of input \(Shape.describe(x.shape))")
        }
    }
    let dims = [0] + Array(2..<x.rank)
    var statShape = [Int](repeating: 1, count: x.rank)
    statShape[1] = channels
    var y: Tensor
    if training {
        let count = dims.reduce(1) { $0 * x.shape[$1] }
        check(count > 1, "batchNorm: expected more than 1 value per channel when training, got input \(Shape.describe(x.shape))")
        let mean = x.mean(dims: dims, keepDim: true)
        let centered = x - mean
        let variance = (centered * centered).mean(dims: dims, keepDim: true)
        y = centered * (variance + eps).rsqrt()
        if let runningMean, let runningVar {
            Tensor.noGrad {
                runningMean *= 1 - momentum
                runningMean += mean.reshape([channels]) * momentum
                runningVar *= 1 - momentum
                runningVar += variance.reshape([channels]) * (momentum * Float(count) / Float(count - 1))
            }
        }
    } else {
        guard let runningMean, let runningVar else {
            failCheck("batchNorm: runningMean and runningVar must be given when not training (input \(Shape.describe(x.shape)))")
        }
        y = (x - runningMean.reshape(statShape)) * (runningVar.reshape(statShape) + eps).rsqrt()
    }
    if let weight { y = y * weight.reshape(statShape) }
    if let bias { y = y + bias.reshape(statShape) }
    return y
}
