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
    let y = x.matmul(weight.T)
    return bias.map { y + $0 } ?? y
}

/// Rows of the table `weight` (`[numEmbeddings, embeddingDim]`) named by integer `indices` of any
/// shape (`torch.nn.functional.embedding`): shape `indices.shape + [embeddingDim]`. An index
/// outside `0..<numEmbeddings` stops the program (on OpenCL at the next synchronisation).
public func embedding(_ indices: Tensor, weight: Tensor) -> Tensor {
    check(weight.rank == 2, "embedding: weight must be [numEmbeddings, embeddingDim], got \(Shape.describe(weight.shape))")
    return weight.indexSelect(dim: 0, index: indices.reshape([-1]), op: "embedding").reshape(indices.shape + [weight.shape[1]])
}

/// Normalises over the trailing `normalizedShape` dims with the biased variance
/// (`torch.nn.functional.layer_norm`), then scales by `weight` and shifts by `bias` (each
/// shaped `normalizedShape`) when given. Under `Tensor.autocast` it computes in Float32.
public func layerNorm(_ x: Tensor, normalizedShape: [Int], weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
    if case let (x, weight, bias)? = Autocast.fullPrecision(x, weight, bias) {
        return layerNorm(x, normalizedShape: normalizedShape, weight: weight, bias: bias, eps: eps)
    }
    check(!normalizedShape.isEmpty && Array(x.shape.suffix(normalizedShape.count)) == normalizedShape && x.rank >= normalizedShape.count,
          "layerNorm: input of shape \(Shape.describe(x.shape)) does not end in normalizedShape \(Shape.describe(normalizedShape))")
    for (name, p) in [("weight", weight), ("bias", bias)] {
        if let p {
            check(p.shape == normalizedShape,
                  "layerNorm: \(name) of shape \(Shape.describe(p.shape)) does not match normalizedShape \(Shape.describe(normalizedShape))")
        }
    }
    let dims = Array((x.rank - normalizedShape.count)..<x.rank)
    let centered = x - x.mean(dims: dims, keepDim: true)
    var y = centered * ((centered * centered).mean(dims: dims, keepDim: true) + eps).rsqrt()
    if let weight { y = y * weight }
    if let bias { y = y + bias }
    return y
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
