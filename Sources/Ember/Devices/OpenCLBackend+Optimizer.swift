import Foundation

/// The fused optimizer update and the many-tensor norm reduction on OpenCL (`Kernels/optim.cl`,
/// built once per float storage type).
extension OpenCLBackend {
    /// Work-items per tensor of `power_sum_partials` (`NORM_ITEMS` in optim.cl).
    private var normItems: Int { 4 * reductionLocal }
    /// Tensors one `power_sum_partials` launch reduces (its 16 buffer arguments).
    static let normSourcesPerLaunch = 16

    func optimizerStep(_ rule: OptimizerRule, parameter: DeviceBuffer, gradient: DeviceBuffer, gradientOffset: Int,
                       states: [DeviceBuffer], count: Int, dtype: DType) {
        check(states.count == rule.stateCount, "optimizerStep: the rule takes \(rule.stateCount) state buffers, got \(states.count)")
        pool.noteKernels(0, bytes: count * dtype.byteSize * (3 + 2 * states.count))
        let program = Self.typedProgram("optim.cl", dtype)
        let head: [Argument] = [.buffer(parameter), .buffer(gradient), .int(gradientOffset)]
        func flag(_ value: Bool) -> Argument { .int(value ? 1 : 0) }
        switch rule {
        case .sgd(let r):
            launchDense(program, "optim_sgd", count: count, head + [
                .buffer(states.first ?? parameter), .int(count), .float(r.lr), .float(r.weightDecay), .float(r.momentum),
                .float(r.keep), flag(r.dampened), flag(r.nesterov), flag(r.firstStep), flag(!states.isEmpty),
            ])
        case .adam(let r):
            launchDense(program, "optim_adam", count: count, head + [
                .buffer(states[0]), .buffer(states[1]), .int(count), .float(r.weightDecay), flag(r.decoupled),
                .float(r.decayFactor), .float(r.beta1), .float(r.oneMinusBeta1), .float(r.beta2), .float(r.oneMinusBeta2),
                .float(r.stepSize), .float(r.correction2), .float(r.eps),
            ])
        case .rmsprop(let r):
            let average = r.centered ? states[1] : parameter, buffer = r.momentum > 0 ? states[states.count - 1] : parameter
            launchDense(program, "optim_rmsprop", count: count, head + [
                .buffer(states[0]), .buffer(average), .buffer(buffer), .int(count), .float(r.lr), .float(r.weightDecay),
                .float(r.alpha), .float(r.oneMinusAlpha), .float(r.eps), .float(r.momentum), flag(r.centered), flag(r.momentum > 0),
            ])
        }
    }

    /// One `power_sum_partials` launch per 16 sources into a scratch buffer of partial
    /// results, then one `power_sum_finish` into `destination`.
    func powerSum(_ power: NormPower, _ sources: [StridedView], dtype: DType, destination: DeviceBuffer) {
        pool.noteKernels(0, bytes: sources.reduce(0) { $0 + $1.count } * dtype.byteSize + 4)
        let (mode, q): (Int, Float) = switch power {
        case .square: (0, 2)
        case .power(let q): (1, q)
        case .maxAbs: (2, 1)
        }
        let slots = sources.count * normItems
        guard let partials = try? allocate(bytes: max(slots, 1) * 4) else {
            return record(status: -4, "powerSum: no memory for \(slots) partial results")
        }
        let program = Self.typedProgram("optim.cl", dtype)
        for first in stride(from: 0, to: sources.count, by: Self.normSourcesPerLaunch) {
            let batch = Array(sources[first..<min(sources.count, first + Self.normSourcesPerLaunch)])
            let buffers: [Argument] = (0..<Self.normSourcesPerLaunch).map { .buffer(batch[min($0, batch.count - 1)].buffer) }
            launch3D(program, "power_sum_partials", global: (normItems, batch.count, 1), local: (reductionLocal, 1, 1),
                     [.int(mode), .float(q), .int16(batch.map(\.offset)), .int16(batch.map(\.count))] + buffers
                         + [.buffer(partials), .int(first)])
        }
        launch("optim.cl", "power_sum_finish", count: reductionLocal, local: reductionLocal,
               [.buffer(partials), .int(slots), .int(mode), .buffer(destination)])
    }
}
