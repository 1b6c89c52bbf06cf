import Foundation

/// Ember's fused paths: an optimizer updates each parameter in one pass instead of about ten
/// elementwise ops (on OpenCL eight parameters per kernel launch), `clipGradNorm` reduces every
/// gradient of a device in one reduction instead of a few ops per gradient, and `crossEntropy`
/// of `[N, C]` scores is one kernel forward and one backward instead of a log-softmax, gathers
/// and sums.
///
/// `EMBER_FUSION=0` in the environment turns them off for the process, which then runs the
/// composed ops (the reference the fused paths are tested against); `Optimizer.fused` and
/// `clipGradNorm(_:maxNorm:normType:fused:)` choose per optimizer and per call.
public enum Fusion {
    /// Whether fused paths are on by default: true unless `EMBER_FUSION` is `0` (read once).
    public static let enabled = ProcessInfo.processInfo.environment["EMBER_FUSION"] != "0"
}

/// The fused optimizer updates of one `Optimizer.step()`: each is checked as it is added, and
/// all run when the step has visited every parameter, consecutive updates of one rule, device
/// and dtype in one backend call (on OpenCL one kernel launch per eight tensors). Between an
/// update's `add` and `run` nothing reads or writes its tensors: the step's other work is
/// composed updates of other parameters.
final class OptimizerUpdates {
    /// Runs of updates, each for one backend call.
    private var runs: [(rule: OptimizerRule, device: Device, backend: Backend, dtype: DType, updates: [OptimizerUpdate])] = []
    /// The tensors whose buffers the runs name (converted gradients included), kept until they run.
    private var held: [Tensor] = []

    /// Adds one `rule` update of `parameter` and its `states`, in place, reading `gradient`
    /// (converted to the parameter's dtype and made contiguous first when it is not already).
    /// Parameter and states must own their storage contiguously, have the parameter's shape,
    /// dtype and device, and be distinct; the caller runs under `noGrad`. Their versions are
    /// bumped now.
    func add(_ rule: OptimizerRule, parameter: Tensor, gradient: Tensor, states: [Tensor]) {
        parameter.checkInPlace("optimizerStep")
        check(states.count == rule.stateCount, "optimizerStep: the rule takes \(rule.stateCount) state tensors, got \(states.count)")
        check(gradient.shape == parameter.shape, "optimizerStep: gradient \(Shape.describe(gradient.shape)) does not match parameter \(Shape.describe(parameter.shape))")
        Tensor.checkSameDevice("optimizerStep", parameter, gradient)
        for state in states {
            state.checkInPlace("optimizerStep")
            Tensor.checkSameDevice("optimizerStep", parameter, state)
            check(state.shape == parameter.shape && state.dtype == parameter.dtype && state.storage !== parameter.storage,
                  "optimizerStep: a state tensor \(Shape.describe(state.shape)) \(state.dtype) must be a separate tensor shaped and typed as the parameter \(Shape.describe(parameter.shape)) \(parameter.dtype)")
        }
        let converted = gradient.castStorage(to: parameter.dtype)
        let g = converted.isContiguous ? converted : converted.contiguousCopy()
        if parameter.count > 0 {
            let update = OptimizerUpdate(parameter: parameter.storage.buffer, gradient: g.storage.buffer, gradientOffset: g.offset,
                                         states: states.map(\.storage.buffer), count: parameter.count)
            if let last = runs.last, last.rule == rule && last.device == parameter.device && last.dtype == parameter.dtype {
                runs[runs.count - 1].updates.append(update)
            } else {
                runs.append((rule, parameter.device, parameter.backend, parameter.dtype, [update]))
            }
            held += [parameter, g] + states
        }
        parameter.storage.version += 1
        for state in states { state.storage.version += 1 }
    }

    /// Runs every update added since the last run.
    func run() {
        for r in runs { r.backend.optimizerStep(r.rule, r.updates, dtype: r.dtype) }
        runs = []
        held = []
    }
}

extension Tensor {
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
