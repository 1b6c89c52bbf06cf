// Every loss computes in Float32 under `Tensor.autocast`: its floating-point inputs are widened
// first (Autograd/Autocast.swift).

/// How a loss combines per-element values.
public enum Reduction: Sendable {
    /// The mean over all elements (for class-index losses, weighted and over the targets
    /// that are not ignored, as PyTorch).
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

// MARK: Class-index and class-probability losses

/// The class dim of a classification loss's input: 0 for unbatched `[C]`, else 1 (`[N, C]`,
/// `[N, C, d1, ...]`, PyTorch's layout).
private func classDim(_ op: String, _ input: Tensor) -> Int {
    check(input.rank >= 1 && input.shape[input.rank == 1 ? 0 : 1] > 0,
          "\(op): expected input of shape [C], [N, C] or [N, C, d1, ...] with C > 0, got \(Shape.describe(input.shape))")
    return input.rank == 1 ? 0 : 1
}

/// A loss of unbatched `[C]` input (a 0-d class index or a `[C]` probability target) as the
/// batch of one it is: `loss` on `[1, C]`, its per-sample result 0-d.
private func unbatched(_ op: String, _ input: Tensor, _ target: Tensor, _ reduction: Reduction,
                       _ loss: (Tensor, Tensor, Reduction) -> Tensor) -> Tensor {
    let expected = target.dtype.isFloatingPoint ? input.shape : []
    check(target.shape == expected,
          "\(op): target of shape \(Shape.describe(target.shape)) does not match input of shape \(Shape.describe(input.shape)) (expected \(Shape.describe(expected)))")
    let out = loss(input.unsqueeze(0), target.unsqueeze(0), reduction)
    return reduction == .none ? out.reshape([]) : out
}

/// Checks class-index `target` (int64 or int32, the input's shape without the class dim).
private func checkLabels(_ op: String, _ input: Tensor, _ target: Tensor, classDim: Int) {
    check(!target.dtype.isFloatingPoint && target.dtype != .bool,
          "\(op): target must be int64 or int32 class indices, got \(target.dtype)")
    var expected = input.shape
    expected.remove(at: classDim)
    check(target.shape == expected,
          "\(op): target of shape \(Shape.describe(target.shape)) does not match input of shape \(Shape.describe(input.shape)) (expected \(Shape.describe(expected)))")
}

/// Checks per-class `weight` (`[C]`, float32) and returns it shaped to broadcast along the
/// class dim of `input`.
private func classWeight(_ op: String, _ weight: Tensor, _ input: Tensor, classDim: Int) -> Tensor {
    let classes = input.shape[classDim]
    check(weight.dtype.isFloatingPoint && weight.shape == [classes],
          "\(op): weight must be a float tensor of shape [\(classes)] for input of shape \(Shape.describe(input.shape)), got \(weight.dtype) \(Shape.describe(weight.shape))")
    var shape = [Int](repeating: 1, count: input.rank - classDim)
    shape[0] = classes
    return weight.reshape(shape)
}

/// The targets of `classes` classes that are not `ignoreIndex`: a Float 0/1 `mask` shaped
/// like `target` (nil when every target is kept) and their `count` when it is known on the
/// host. CPU targets are counted on the host, so the common case (nothing ignored) costs no
/// kernel; on other devices the count is `mask.sum()`, and the mask is ones gathered at the
/// targets under the rule that reads 0 at `ignoreIndex`: the kernels the loss's own gather
/// and fills run (where a comparison and a cast made a first step on an empty PoCL cache
/// compile two more kernels and the integer program, 0.8 s), and no wait.
private func keptTargets(_ op: String, _ target: Tensor, classes: Int, ignoreIndex: Int) -> (mask: Tensor?, count: Int?) {
    func mask() -> Tensor {
        Tensor.ones([classes], device: target.device).gather(dim: 0, index: target.reshape([-1]), rule: IndexRule(op: op, ignored: ignoreIndex))
            .reshape(target.shape)
    }
    guard target.device == .cpu else { return (mask(), nil) }
    let kept = target.toIntArray().reduce(0) { $0 + (Int($1) == ignoreIndex ? 0 : 1) }
    return (kept == target.count ? nil : mask(), kept)
}

/// `weight[y] * logProbs[y]` at each target position (shaped like `target`), 0 where the
/// target is `ignoreIndex`, and `weight[y]` there (0 where ignored; nil without `weight`):
/// the negated loss terms, whose sign the reduction folds in.
private func pickedLogProbs(_ op: String, _ logProbs: Tensor, _ target: Tensor, classDim: Int, weight: Tensor?,
                            ignoreIndex: Int) -> (terms: Tensor, weights: Tensor?) {
    let rule = IndexRule(op: op, ignored: ignoreIndex)
    let picked = logProbs.gather(dim: classDim, index: target.unsqueeze(classDim), rule: rule).squeeze(classDim)
    guard let weight else { return (picked, nil) }
    Tensor.checkSameDevice(op, logProbs, weight)
    let perTarget = weight.gather(dim: 0, index: target.reshape([-1]), rule: rule).reshape(target.shape)
    return (picked * perTarget, perTarget)
}

/// PyTorch's class-index loss from `log_softmax`-style `logProbs`: per position
/// `(1 - ε)·w[y]·(-logp[y]) + ε/C·Σ_c w[c]·(-logp[c])`, 0 where the target is ignored; the
/// mean divides by the summed `w[y]` of the kept targets (their count without weights), so
/// with every target ignored it is NaN.
///
/// The terms are summed with the opposite sign and the reduction negates once (in the
/// mean's scale), which spares a kernel forward and backward; without weights the mean's
/// count is the host's on the CPU and `keptTargets`' gather and sum elsewhere.
private func classIndexLoss(_ op: String, _ logProbs: Tensor, _ target: Tensor, classDim: Int, weight: Tensor?,
                            ignoreIndex: Int, reduction: Reduction, labelSmoothing: Float) -> Tensor {
    checkLabels(op, logProbs, target, classDim: classDim)
    let classWeights = weight.map { classWeight(op, $0, logProbs, classDim: classDim) }
    var (terms, weights) = pickedLogProbs(op, logProbs, target, classDim: classDim, weight: weight, ignoreIndex: ignoreIndex)
    let needsKept = weights == nil && reduction == .mean || labelSmoothing > 0
    let kept = needsKept ? keptTargets(op, target, classes: logProbs.shape[classDim], ignoreIndex: ignoreIndex) : (mask: nil, count: nil)
    if labelSmoothing > 0 {
        let classes = Float(logProbs.shape[classDim])
        var smooth = (classWeights.map { logProbs * $0 } ?? logProbs).sum(dim: classDim)
        if let mask = kept.mask { smooth = smooth * mask }
        terms = terms * (1 - labelSmoothing) + smooth * (labelSmoothing / classes)
    }
    switch reduction {
    case .none: return -terms
    case .sum: return -terms.sum()
    case .mean:
        if let weights { return -terms.sum() / weights.sum() }
        if let count = kept.count { return terms.sum() * (-1 / Float(count)) }
        // Times a scale rather than divided by the count: the count needs no gradient, and
        // a product's backward costs two kernels where a quotient's costs five.
        return terms.sum() * (-1 / kept.mask!.sum())
    }
}

/// Cross-entropy of class-probability `target` (the input's shape): per position
/// `-Σ_c w[c]·t[c]·logp[c]` with `t` smoothed to `(1 - ε)·t + ε/C`; the mean is over positions.
private func classProbabilityLoss(_ logProbs: Tensor, _ target: Tensor, classDim: Int, weight: Tensor?,
                                  ignoreIndex: Int, reduction: Reduction, labelSmoothing: Float) -> Tensor {
    check(target.shape == logProbs.shape,
          "crossEntropy: \(target.dtype) target of shape \(Shape.describe(target.shape)) for input of shape \(Shape.describe(logProbs.shape)): class indices must be int64 or int32, class probabilities must have the input's shape")
    check(ignoreIndex < 0, "crossEntropy: ignoreIndex is not supported for class-probability targets, got \(ignoreIndex)")
    Tensor.checkSameDevice("crossEntropy", logProbs, target)
    let classes = Float(logProbs.shape[classDim])
    let smoothed = labelSmoothing > 0 ? target * (1 - labelSmoothing) + labelSmoothing / classes : target
    var terms = logProbs * smoothed
    if let weight { terms = terms * classWeight("crossEntropy", weight, logProbs, classDim: classDim) }
    return (-terms.sum(dim: classDim)).reduced(reduction)
}

/// Cross-entropy of unnormalised scores (`torch.nn.functional.cross_entropy`), through one
/// stable log-softmax.
///
/// `input` is `[C]`, `[N, C]` or `[N, C, d1, ...]` (the class dim is 1, as in PyTorch). `target`
/// is either Int32 class indices shaped like `input` without the class dim (a 0-d tensor for
/// `[C]` input), or float32 class probabilities of `input`'s shape. `weight` (`[C]`) rescales
/// each class. Targets equal to `ignoreIndex` contribute 0 and leave the mean's denominator,
/// which is the summed weight of the kept targets (their count without `weight`); with all
/// ignored the mean is NaN, as PyTorch. `labelSmoothing` mixes in the uniform distribution:
/// `(1 - ε)·nll + ε/C·Σ_c w[c]·(-log p[c])` per target. An index outside `0..<C` other
/// than `ignoreIndex` stops the program, as in `gather`.
///
/// Float32 `[N, C]` scores with class-index targets take one fused kernel forward (each row's
/// log-sum-exp, pick and smoothing sum) and one backward (the row's softmax minus the
/// targets); `EMBER_FUSION=0`, other layouts, a `weight` that requires grad and a device
/// still compiling the kernels take the composed log-softmax, gather and sums.
public func crossEntropy(_ input: Tensor, _ target: Tensor, weight: Tensor? = nil, ignoreIndex: Int = -100,
                         reduction: Reduction = .mean, labelSmoothing: Float = 0) -> Tensor {
    crossEntropy(input, target, weight: weight, ignoreIndex: ignoreIndex, reduction: reduction, labelSmoothing: labelSmoothing,
                 fused: Fusion.enabled)
}

/// `crossEntropy`, through the fused row kernels where they apply when `fused` (the composed
/// ops otherwise: the reference the tests compare the fused path with).
func crossEntropy(_ input: Tensor, _ target: Tensor, weight: Tensor?, ignoreIndex: Int, reduction: Reduction,
                  labelSmoothing: Float, fused: Bool) -> Tensor {
    if case let (input, target, weight)? = Autocast.fullPrecision(input, target, weight) {
        return crossEntropy(input, target, weight: weight, ignoreIndex: ignoreIndex, reduction: reduction, labelSmoothing: labelSmoothing,
                            fused: fused)
    }
    check(labelSmoothing >= 0 && labelSmoothing <= 1, "crossEntropy: labelSmoothing must be in [0, 1], got \(labelSmoothing)")
    let dim = classDim("crossEntropy", input)
    check(target.dtype != .bool, "crossEntropy: target must be int64 or int32 class indices or float class probabilities, got bool")
    if dim == 0 {
        return unbatched("crossEntropy", input, target, reduction) {
            crossEntropy($0, $1, weight: weight, ignoreIndex: ignoreIndex, reduction: $2, labelSmoothing: labelSmoothing, fused: fused)
        }
    }
    // A weight that requires grad takes the composed ops, which differentiate it too.
    if fused && input.rank == 2 && input.dtype == .float32 && !target.dtype.isFloatingPoint && (weight?.dtype ?? .float32) == .float32
        && weight?.requiresGrad != true && input.backend.kernelsReady(.loss, dtype: .float32) {
        checkLabels("crossEntropy", input, target, classDim: 1)
        Tensor.checkSameDevice("crossEntropy", input, target)
        if let weight {
            Tensor.checkSameDevice("crossEntropy", input, weight)
            _ = classWeight("crossEntropy", weight, input, classDim: 1)
        }
        return Tensor.fusedCrossEntropy(input, target, weight: weight, rule: IndexRule(op: "crossEntropy", ignored: ignoreIndex),
                                        smoothing: labelSmoothing, reduction: reduction)
    }
    let logProbs = input.logSoftmax(dim: dim)
    if target.dtype.isFloatingPoint {
        return classProbabilityLoss(logProbs, target, classDim: dim, weight: weight, ignoreIndex: ignoreIndex,
                                    reduction: reduction, labelSmoothing: labelSmoothing)
    }
    return classIndexLoss("crossEntropy", logProbs, target, classDim: dim, weight: weight, ignoreIndex: ignoreIndex,
                          reduction: reduction, labelSmoothing: labelSmoothing)
}

extension Tensor {
    /// The fused cross-entropy of each row of `logits` (`[N, C]` float32) against `target`
    /// (`[N]` class indices), reduced: the rows' terms (weighted and smoothed, 0 where the
    /// target is `rule.ignored`) as they are, summed, or summed over the sum of the rows' kept
    /// weights (`weight[y]` or 1, 0 where ignored), both sums from one reduction. Records
    /// CrossEntropyBackward, whose rule runs the fused backward kernel (dividing by the weight
    /// sum itself for the mean), or under a created graph the same gradient from differentiable ops.
    static func fusedCrossEntropy(_ logits: Tensor, _ target: Tensor, weight: Tensor?, rule: IndexRule, smoothing: Float,
                                  reduction: Reduction) -> Tensor {
        let rows = logits.shape[0], classes = logits.shape[1]
        let x = logits.strides[1] == 1 || classes == 1 ? logits.detach() : logits.detach().contiguousCopy()
        let labels = target.indices(for: rule.op)
        let w = weight.map { $0.isContiguous && $0.offset == 0 ? $0.detach() : $0.detach().contiguousCopy() }
        // Row 0: the terms; row 1: the kept weights.
        let rowsAndWeights = Tensor(uninitialized: [2, rows], device: logits.device, op: "crossEntropy")
        if rows > 0 {
            logits.backend.crossEntropy(x.view, target: labels.view, weight: w?.storage.buffer, smoothing: smoothing, indices: rule,
                                        destination: rowsAndWeights.storage.buffer)
        }
        let sums = reduction == .mean ? noGrad { rowsAndWeights.sum(dim: 1) } : nil
        let loss: Tensor = noGrad {
            switch reduction {
            case .none: rowsAndWeights[0]
            case .sum: rowsAndWeights[0].sum()
            case .mean: sums![0] / sums![1]
            }
        }
        return loss.recording("CrossEntropyBackward", inputs: [logits]) {
            let saved = SavedTensor(logits, op: "CrossEntropyBackward")
            return { g in
                let input = saved.value  // checks that the logits were not modified in place
                let perRow = reduction == .none ? g : g.expand([rows])
                let divisor = sums.map { $0[1] }
                if GradMode.enabled {
                    let scaled = divisor.map { perRow / $0 } ?? perRow
                    return [differentiableCrossEntropyGradient(scaled, input, labels, weight: w, kept: rowsAndWeights[1], rule: rule,
                                                               smoothing: smoothing)]
                }
                let dx = Tensor(uninitialized: [rows, classes], device: g.device, op: "CrossEntropyBackward")
                if rows > 0 {
                    g.backend.crossEntropyBackward(x.view, target: labels.view, weight: w?.storage.buffer, smoothing: smoothing,
                                                   indices: rule, gradient: perRow.view, divisor: divisor?.view,
                                                   destination: dx.storage.buffer)
                }
                return [dx]
            }
        }
    }

    /// The fused backward's gradient from differentiable ops (for a created graph):
    /// `g * (softmax(x) * a - t)` with `a = (1 - ε) * w[y] + ε / C * Σ_c w[c]` per kept row and
    /// `t = (1 - ε) * w[y]` at the target plus `ε / C * w[c]`, both 0 in ignored rows.
    private static func differentiableCrossEntropyGradient(_ g: Tensor, _ logits: Tensor, _ labels: Tensor, weight: Tensor?,
                                                           kept: Tensor, rule: IndexRule, smoothing: Float) -> Tensor {
        let classes = logits.shape[1], share = smoothing / Float(classes)
        let keptRows = rule.ignored.map { (labels != Float($0)).float() } ?? Tensor.ones(like: kept)
        let total = weight?.sum() ?? Tensor(Float(classes), device: logits.device)
        let a = kept * (1 - smoothing) + keptRows * total * share
        let picked = Tensor.zeros(logits.shape, device: logits.device)
            .scatterAdd(dim: 1, index: labels.unsqueeze(1), source: (kept * (1 - smoothing)).unsqueeze(1), rule: rule)
        let spread = keptRows.unsqueeze(1) * (weight.map { $0.reshape([1, classes]) } ?? Tensor.ones([1, classes], device: logits.device)) * share
        return g.unsqueeze(1) * (logits.softmax(dim: 1) * a.unsqueeze(1) - picked - spread)
    }
}

/// Negative log-likelihood of Int32 class-index `target` under log-probabilities `input`
/// (`torch.nn.functional.nll_loss`): the layouts, `weight` and `ignoreIndex` of
/// `crossEntropy` with index targets, the mean dividing by the summed weight of the kept
/// targets.
public func nllLoss(_ input: Tensor, _ target: Tensor, weight: Tensor? = nil, ignoreIndex: Int = -100,
                    reduction: Reduction = .mean) -> Tensor {
    if case let (input, target, weight)? = Autocast.fullPrecision(input, target, weight) {
        return nllLoss(input, target, weight: weight, ignoreIndex: ignoreIndex, reduction: reduction)
    }
    let dim = classDim("nllLoss", input)
    if dim == 0 {
        return unbatched("nllLoss", input, target, reduction) {
            nllLoss($0, $1, weight: weight, ignoreIndex: ignoreIndex, reduction: $2)
        }
    }
    return classIndexLoss("nllLoss", input, target, classDim: dim, weight: weight, ignoreIndex: ignoreIndex,
                          reduction: reduction, labelSmoothing: 0)
}

// MARK: Regression losses

/// Checks that a loss's input and target have one shape and device.
private func sameShape(_ op: String, _ input: Tensor, _ target: Tensor) {
    check(input.shape == target.shape,
          "\(op): input shape \(Shape.describe(input.shape)) and target shape \(Shape.describe(target.shape)) differ")
    Tensor.checkSameDevice(op, input, target)
}

/// Mean squared error `(input - target)²` (`torch.nn.functional.mse_loss`).
public func mseLoss(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
    if case let (input, target)? = Autocast.fullPrecision(input, target) { return mseLoss(input, target, reduction: reduction) }
    sameShape("mseLoss", input, target)
    let d = input - target
    return (d * d).reduced(reduction)
}

/// Mean absolute error `|input - target|` (`torch.nn.functional.l1_loss`).
public func l1Loss(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
    if case let (input, target)? = Autocast.fullPrecision(input, target) { return l1Loss(input, target, reduction: reduction) }
    sameShape("l1Loss", input, target)
    return (input - target).abs().reduced(reduction)
}

/// `0.5·d²/beta` where `|d| < beta`, else `|d| - 0.5·beta`, for `d = input - target`
/// (`torch.nn.functional.smooth_l1_loss`); `beta` 0 is the L1 loss.
public func smoothL1Loss(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean, beta: Float = 1) -> Tensor {
    if case let (input, target)? = Autocast.fullPrecision(input, target) { return smoothL1Loss(input, target, reduction: reduction, beta: beta) }
    sameShape("smoothL1Loss", input, target)
    check(beta >= 0, "smoothL1Loss: beta must be non-negative, got \(beta)")
    let d = input - target
    guard beta > 0 else { return d.abs().reduced(reduction) }
    let a = d.abs()
    return Tensor.where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta).reduced(reduction)
}

/// `0.5·d²` where `|d| < delta`, else `delta·(|d| - 0.5·delta)`, for `d = input - target`
/// (`torch.nn.functional.huber_loss`).
public func huberLoss(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean, delta: Float = 1) -> Tensor {
    if case let (input, target)? = Autocast.fullPrecision(input, target) { return huberLoss(input, target, reduction: reduction, delta: delta) }
    sameShape("huberLoss", input, target)
    check(delta > 0, "huberLoss: delta must be positive, got \(delta)")
    let d = input - target
    let a = d.abs()
    return Tensor.where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta).reduced(reduction)
}

/// How `klDiv` reduces its pointwise terms: PyTorch's `reduction`, with `batchMean` (the sum
/// over the batch size, the true KL divergence per sample) beside the usual three.
public enum KLDivReduction: Sendable {
    /// The mean over all elements (PyTorch's default; not the divergence's definition).
    case mean
    /// The sum divided by the first dim's size.
    case batchMean
    /// The sum over all elements.
    case sum
    /// No reduction.
    case none
}

/// The Kullback-Leibler divergence of `target` from the distribution whose log-probabilities
/// are `input` (`torch.nn.functional.kl_div`): pointwise target·(log target - input), 0 where
/// the target is 0; with `logTarget` the target is given as log-probabilities,
/// e^target·(target - input).
public func klDiv(_ input: Tensor, _ target: Tensor, reduction: KLDivReduction = .mean, logTarget: Bool = false) -> Tensor {
    if case let (input, target)? = Autocast.fullPrecision(input, target) {
        return klDiv(input, target, reduction: reduction, logTarget: logTarget)
    }
    let shape = Tensor.broadcastShape("klDiv", input.shape, target.shape)
    let terms = logTarget ? target.exp() * (target - input)
        : Tensor.where(target != 0, target * (Tensor.where(target != 0, target, 1).log() - input), 0)
    switch reduction {
    case .mean: return terms.mean()
    case .batchMean: return terms.sum() / Float(shape.first ?? 1)
    case .sum: return terms.sum()
    case .none: return terms
    }
}

// MARK: Binary cross-entropy

/// Checks that an element weight broadcasts to `input`'s shape without changing it.
private func checkElementWeight(_ op: String, _ name: String, _ weight: Tensor, _ input: Tensor) {
    check(Shape.broadcast(weight.shape, input.shape) == input.shape,
          "\(op): \(name) of shape \(Shape.describe(weight.shape)) does not broadcast to input of shape \(Shape.describe(input.shape))")
    Tensor.checkSameDevice(op, input, weight)
}

/// `log(x)` clamped at -100 as in PyTorch's binary cross-entropy, with a finite gradient:
/// where `x` is 0 or subnormal the value is the clamped log and the gradient is 0 (a plain
/// `log().clamp(min:)` gives 0 * inf = NaN there, e.g. for a saturated sigmoid output of 1).
private func clampedLog(_ x: Tensor) -> Tensor {
    let normal = x > Float.leastNormalMagnitude
    return Tensor.where(normal, Tensor.where(normal, x, 1).log(), x.detach().log().clamp(min: -100))
}

/// Binary cross-entropy `-(t·log p + (1 - t)·log(1 - p))` of probabilities `input` in [0, 1]
/// (`torch.nn.functional.binary_cross_entropy`; logs clamped at -100, as PyTorch), times
/// `weight` (broadcast to the input's shape) when given.
public func binaryCrossEntropy(_ input: Tensor, _ target: Tensor, weight: Tensor? = nil, reduction: Reduction = .mean) -> Tensor {
    if case let (input, target, weight)? = Autocast.fullPrecision(input, target, weight) {
        return binaryCrossEntropy(input, target, weight: weight, reduction: reduction)
    }
    sameShape("binaryCrossEntropy", input, target)
    let logP = clampedLog(input)
    let logNotP = clampedLog(1 - input)
    var loss = -(target * logP + (1 - target) * logNotP)
    if let weight {
        checkElementWeight("binaryCrossEntropy", "weight", weight, input)
        loss = loss * weight
    }
    return loss.reduced(reduction)
}

/// Binary cross-entropy of `sigmoid(input)` computed from the logits, stable for any
/// magnitude (`torch.nn.functional.binary_cross_entropy_with_logits`):
/// `(1 - t)·x + (1 + (posWeight - 1)·t)·log(1 + e^-x)`, times `weight`. `posWeight` weighs the
/// positive term per class (it broadcasts against the input, usually `[C]`); `weight`
/// broadcasts to the input's shape.
public func binaryCrossEntropyWithLogits(_ input: Tensor, _ target: Tensor, weight: Tensor? = nil, posWeight: Tensor? = nil,
                                         reduction: Reduction = .mean) -> Tensor {
    if case let (input, target, weight, posWeight)? = Autocast.fullPrecision(input, target, weight, posWeight) {
        return binaryCrossEntropyWithLogits(input, target, weight: weight, posWeight: posWeight, reduction: reduction)
    }
    sameShape("binaryCrossEntropyWithLogits", input, target)
    // log(1 + e^-|x|) is finite for any x; log(1 + e^-x) = that + max(-x, 0).
    let logTerm = (1 + (-input.abs()).exp()).log()
    var loss: Tensor
    if let posWeight {
        checkElementWeight("binaryCrossEntropyWithLogits", "posWeight", posWeight, input)
        loss = (1 - target) * input + (1 + (posWeight - 1) * target) * (logTerm + (-input).relu())
    } else {
        loss = input.relu() - input * target + logTerm
    }
    if let weight {
        checkElementWeight("binaryCrossEntropyWithLogits", "weight", weight, input)
        loss = loss * weight
    }
    return loss.reduced(reduction)
}
