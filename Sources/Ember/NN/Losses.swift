/// How a loss combines per-element values.
public enum Reduction: Sendable {
    /// The mean over all elements.
    case mean
    /// The sum over all elements.
    case sum
    /// No reduction: one value per element.
    case none
}

extension Tensor {
    /// Applies a `Reduction`.
    func reduced(_ reduction: Reduction) -> Tensor {
        switch reduction {
        case .mean: return mean()
        case .sum: return sum()
        case .none: return self
        }
    }
}

/// Checks the (input, labels) pair of a classification loss and returns the labels as `[N, 1]`.
private func classLabels(_ op: String, _ input: Tensor, _ labels: Tensor) -> Tensor {
    check(input.rank == 2, "\(op): expected input of shape [N, C], got \(Shape.describe(input.shape))")
    check(labels.dtype == .int32, "\(op): labels must be int32 class indices, got \(labels.dtype)")
    check(labels.shape == [input.shape[0]],
          "\(op): labels of shape \(Shape.describe(labels.shape)) do not match input of shape \(Shape.describe(input.shape))")
    return labels.reshape([-1, 1])
}

/// Negative log-likelihood of class-index `labels` (Int32 `[N]`) under `logProbs` `[N, C]`.
public func nllLoss(_ logProbs: Tensor, _ labels: Tensor, reduction: Reduction = .mean) -> Tensor {
    let index = classLabels("nllLoss", logProbs, labels)
    return (-logProbs.gather(dim: 1, index: index).reshape([-1])).reduced(reduction)
}

/// Cross-entropy of `logits` `[N, C]` against class-index `labels` (Int32 `[N]`), computed
/// through a stable log-softmax; `labelSmoothing` mixes in the uniform distribution.
public func crossEntropy(_ logits: Tensor, _ labels: Tensor, labelSmoothing: Float = 0, reduction: Reduction = .mean) -> Tensor {
    check(labelSmoothing >= 0 && labelSmoothing <= 1, "crossEntropy: labelSmoothing must be in [0, 1], got \(labelSmoothing)")
    let index = classLabels("crossEntropy", logits, labels)
    let logProbs = logits.logSoftmax(dim: 1)
    var perSample = -logProbs.gather(dim: 1, index: index).reshape([-1])
    if labelSmoothing > 0 {
        perSample = perSample * (1 - labelSmoothing) - logProbs.mean(dim: 1) * labelSmoothing
    }
    return perSample.reduced(reduction)
}

/// Checks that a regression loss's operands have one shape.
private func sameShape(_ op: String, _ a: Tensor, _ b: Tensor) {
    check(a.shape == b.shape, "\(op): input shape \(Shape.describe(a.shape)) and target shape \(Shape.describe(b.shape)) differ")
}

/// Mean squared error.
public func mse(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
    sameShape("mse", input, target)
    let d = input - target
    return (d * d).reduced(reduction)
}

/// Mean absolute error.
public func l1Loss(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
    sameShape("l1Loss", input, target)
    return (input - target).abs().reduced(reduction)
}

/// `log(x)` clamped at -100 as in PyTorch's binary cross-entropy, with a finite gradient:
/// where `x` is 0 or subnormal the value is the clamped log and the gradient is 0 (a plain
/// `log().clamp(min:)` gives 0 * inf = NaN there, e.g. for a saturated sigmoid output of 1).
private func clampedLog(_ x: Tensor) -> Tensor {
    let normal = x > Float.leastNormalMagnitude
    return Tensor.where(normal, Tensor.where(normal, x, 1).log(), x.detach().log().clamp(min: -100))
}

/// Binary cross-entropy of probabilities in [0, 1] (logs clamped at -100, as PyTorch).
public func binaryCrossEntropy(_ probabilities: Tensor, _ targets: Tensor, reduction: Reduction = .mean) -> Tensor {
    sameShape("binaryCrossEntropy", probabilities, targets)
    let logP = clampedLog(probabilities)
    let logNotP = clampedLog(1 - probabilities)
    return (-(targets * logP + (1 - targets) * logNotP)).reduced(reduction)
}

/// Binary cross-entropy on logits, stable for any magnitude: max(x, 0) - x·t + log(1 + e^-|x|).
public func binaryCrossEntropy(withLogits logits: Tensor, targets: Tensor, reduction: Reduction = .mean) -> Tensor {
    sameShape("binaryCrossEntropy", logits, targets)
    return (logits.relu() - logits * targets + (1 + (-logits.abs()).exp()).log()).reduced(reduction)
}
