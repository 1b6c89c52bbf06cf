import Foundation

/// Scales the gradients of `parameters` in place so their joint `normType`-norm is at most
/// `maxNorm`; returns the norm before clipping (`torch.nn.utils.clip_grad_norm_`).
///
/// As PyTorch, the gradients are multiplied by `min(maxNorm / (total + 1e-6), 1)`, so a NaN
/// norm turns them into NaN. The norm is reduced on each gradient's device, with one host
/// read per device; parameters without a gradient are skipped. When `fused` (the default
/// unless `EMBER_FUSION=0`), each device's gradients of one dtype are reduced by one backend
/// call (on OpenCL one launch per 16 gradients and one to combine them) instead of a few ops
/// per gradient; then each gradient is scaled by one op.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float, normType: Float = 2, fused: Bool = Fusion.enabled) -> Float {
    check(maxNorm.isFinite && maxNorm >= 0, "clipGradNorm: maxNorm must be finite and >= 0, got \(maxNorm)")
    check(normType > 0, "clipGradNorm: normType must be positive, got \(normType)")
    let grads = parameters.compactMap(\.grad)
    guard !grads.isEmpty else { return 0 }
    let total: Float = Tensor.noGrad {
        let groups = Dictionary(grouping: grads, by: \.device).values
        // While a device still compiles its fused kernels, the composed norm runs.
        if fused && grads.allSatisfy({ $0.backend.kernelsReady(.optimizer, dtype: $0.dtype) }) {
            let power: NormPower = normType.isInfinite ? .maxAbs : normType == 2 ? .square : .power(normType)
            let perDevice = groups.map { group in
                let parts = Dictionary(grouping: group, by: \.dtype).values.map { Tensor.powerSum(power, $0) }
                guard parts.count > 1 else { return parts[0].item() }
                let stacked = Tensor.stack(parts)
                return (power == .maxAbs ? stacked.max() : stacked.sum()).item()
            }
            if normType.isInfinite { return perDevice.max()! }
            let sum = perDevice.reduce(0, +)
            return normType == 2 ? sum.squareRoot() : Foundation.pow(sum, 1 / normType)
        }
        if normType.isInfinite {
            return groups.map { group in Tensor.stack(group.map { $0.abs().max() }).max().item() }.max()!
        }
        // The 2-norm squares (one cheap kernel) instead of raising |g| to a power.
        let perDevice = groups.map { group in
            group.map { normType == 2 ? $0.square().sum() : $0.abs().pow(normType).sum() }
                .reduce(Tensor.zeros([], device: group[0].device), +).item()
        }
        let sum = perDevice.reduce(0, +)
        return normType == 2 ? sum.squareRoot() : Foundation.pow(sum, 1 / normType)
    }
    let scale = maxNorm / (total + 1e-6)
    if !(scale >= 1) {
        Tensor.noGrad { for g in grads { g *= scale } }
    }
    return total
}

/// Clamps every gradient of `parameters` into `[-clipValue, clipValue]` in place
/// (`torch.nn.utils.clip_grad_value_`); parameters without a gradient are skipped.
public func clipGradValue(_ parameters: [Tensor], clipValue: Float) {
    check(clipValue.isFinite && clipValue >= 0, "clipGradValue: clipValue must be finite and >= 0, got \(clipValue)")
    Tensor.noGrad {
        for g in parameters.compactMap(\.grad) { g.copy(from: g.clamp(min: -clipValue, max: clipValue)) }
    }
}