import Foundation

/// Ember's fused paths: an optimizer updates each parameter with one backend call (one kernel
/// launch) instead of about ten elementwise ops, and `clipGradNorm` reduces every gradient of a
/// device in one reduction instead of a few ops per gradient.
///
/// `EMBER_FUSION=0` in the environment turns them off for the process, which then runs the
/// composed ops (the reference the fused paths are tested against); `Optimizer.fused` and
/// `clipGradNorm(_:maxNorm:normType:fused:)` choose per optimizer and per call.
public enum Fusion {
    /// Whether fused paths are on by default: true unless `EMBER_FUSION` is `0` (read once).
    public static let enabled = ProcessInfo.processInfo.environment["EMBER_FUSION"] != "0"
}

extension Tensor {
    /// Applies one `rule` update to `parameter` and its `states` in place, in one backend call,
    /// reading `gradient` (converted to the parameter's dtype and made contiguous first when it
    /// is not already). Parameter and states must own their storage contiguously, have the
    /// parameter's shape, dtype and device, and be distinct; the caller runs under `noGrad`.
    static func optimizerStep(_ rule: OptimizerRule, parameter: Tensor, gradient: Tensor, states: [Tensor]) {
        parameter.checkInPlace("optimizerStep")
        check(states.count == rule.stateCount, "optimizerStep: the rule takes \(rule.stateCount) state tensors, got \(states.count)")
        check(gradient.shape == parameter.shape, "optimizerStep: gradient \(Shape.describe(gradient.shape)) does not match parameter \(Shape.describe(parameter.shape))")
        checkSameDevice("optimizerStep", parameter, gradient)
        for state in states {
            state.checkInPlace("optimizerStep")
            checkSameDevice("optimizerStep", parameter, state)
            check(state.shape == parameter.shape && state.dtype == parameter.dtype && state.storage !== parameter.storage,
                  "optimizerStep: a state tensor \(Shape.describe(state.shape)) \(state.dtype) must be a separate tensor shaped and typed as the parameter \(Shape.describe(parameter.shape)) \(parameter.dtype)")
        }
        let converted = gradient.castStorage(to: parameter.dtype)
        let g = converted.isContiguous ? converted : converted.contiguousCopy()
        if parameter.count > 0 {
            parameter.backend.optimizerStep(rule, parameter: parameter.storage.buffer, gradient: g.storage.buffer, gradientOffset: g.offset,
                                            states: states.map(\.storage.buffer), count: parameter.count, dtype: parameter.dtype)
        }
        parameter.storage.version += 1
        for state in states { state.storage.version += 1 }
    }

    /// `power`'s reduction over every element of `tensors` (all on one device and of one float
    /// dtype), as a 0-d float32 tensor on that device, from one backend call.
    static func powerSum(_ power: NormPower, _ tensors: [Tensor]) -> Tensor {
        check(!tensors.isEmpty, "powerSum: no tensors")
        let first = tensors[0]
        for t in tensors {
            checkSameDevice("powerSum", first, t)
            check(t.dtype == first.dtype && t.dtype.isFloatingPoint, "powerSum: tensors of one float dtype, got \(first.dtype) and \(t.dtype)")
        }
        let views = tensors.filter { $0.count > 0 }.map { t in
            let c = t.isContiguous ? t : t.contiguousCopy()
            return StridedView(buffer: c.storage.buffer, offset: c.offset, shape: [c.count], strides: [1], dtype: c.dtype)
        }
        let out = Tensor(uninitialized: [], device: first.device, op: "powerSum")
        first.backend.powerSum(power, views, dtype: first.dtype, destination: out.storage.buffer)
        return out
    }
}
