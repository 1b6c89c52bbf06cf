import Foundation

/// The fused optimizer updates and the many-tensor norm reduction on OpenCL (`Kernels/optim.cl`,
/// built once per float storage type).
extension OpenCLBackend {
    /// Work-items per tensor of `power_sum_partials` (its global size along dim 0): 16 on CPU
    /// devices, each reducing a contiguous slice with vector sums (with 4 work-groups' worth
    /// per tensor, as on GPUs, each did a few elements and a 26-tensor norm took 5x the CPU
    /// device's time), 4 work-groups' worth on GPUs.
    private var normItems: Int { isCPU ? 16 : 4 * reductionLocal }
    /// Tensors one `power_sum_partials` launch reduces (its 16 buffer arguments).
    static let normSourcesPerLaunch = 16

    /// Tensors one optimizer launch updates (`OPTIM_TENSORS` in optim.cl).
    static let optimizerTensorsPerLaunch = 8

    /// One launch per 8 tensors: each tensor's runs of `stridedRun` elements are work-items,
    /// tensor after tensor.
    func optimizerStep(_ rule: OptimizerRule, _ updates: [OptimizerUpdate], dtype: DType) {
        let program = Self.typedProgram("optim.cl", dtype)
        func flag(_ value: Bool) -> Argument { .int(value ? 1 : 0) }
        for first in stride(from: 0, to: updates.count, by: Self.optimizerTensorsPerLaunch) {
            let batch = Array(updates[first..<min(updates.count, first + Self.optimizerTensorsPerLaunch)])
            var starts: [Int] = [], items = 0
            for u in batch {
                check(u.states.count == rule.stateCount, "optimizerStep: the rule takes \(rule.stateCount) state buffers, got \(u.states.count)")
                pool.noteKernels(0, bytes: Traffic.optimizerStep(u, dtype))
                starts.append(items)
                items += (u.count + stridedRun - 1) / stridedRun
            }
            let slots = 0..<Self.optimizerTensorsPerLaunch
            starts += Array(repeating: items, count: slots.count - batch.count)
            let counts = slots.map { $0 < batch.count ? batch[$0].count : 0 }
            let offsets = slots.map { $0 < batch.count ? batch[$0].gradientOffset : 0 }
            /// Every slot's buffer `pick` (the last tensor's in the unused slots).
            func buffers(_ pick: (OptimizerUpdate) -> DeviceBuffer) -> [Argument] {
                slots.map { .buffer(pick(batch[min($0, batch.count - 1)])) }
            }
            let head: [Argument] = [.int8(starts), .int8(counts), .int8(offsets)] + buffers(\.parameter) + buffers(\.gradient)
            switch rule {
            case .sgd(let r):
                launch(program, "optim_sgd", count: items, head + buffers { $0.states.first ?? $0.parameter } + [
                    .float(r.lr), .float(r.weightDecay), .float(r.momentum), .float(r.keep), flag(r.dampened), flag(r.nesterov),
                    flag(r.firstStep), flag(rule.stateCount > 0),
                ])
            case .adam(let r):
                launch(program, "optim_adam", count: items, head + buffers { $0.states[0] } + buffers { $0.states[1] } + [
                    .float(r.weightDecay), flag(r.decoupled), .float(r.decayFactor), .float(r.beta1), .float(r.oneMinusBeta1),
                    .float(r.beta2), .float(r.oneMinusBeta2), .float(r.stepSize), .float(r.correction2), .float(r.eps),
                ])
            case .rmsprop(let r):
                let average = { (u: OptimizerUpdate) in r.centered ? u.states[1] : u.parameter }
                let buffer = { (u: OptimizerUpdate) in r.momentum > 0 ? u.states[u.states.count - 1] : u.parameter }
                launch(program, "optim_rmsprop", count: items, head + buffers { $0.states[0] } + buffers(average) + buffers(buffer) + [
                    .float(r.lr), .float(r.weightDecay), .float(r.alpha), .float(r.oneMinusAlpha), .float(r.eps), .float(r.momentum),
                    flag(r.centered), flag(r.momentum > 0),
                ])
            }
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
            launch3D(program, "power_sum_partials", global: (normItems, batch.count, 1), local: (isCPU ? 1 : reductionLocal, 1, 1),
                     [.int(mode), .float(q), .int16(batch.map(\.offset)), .int16(batch.map(\.count))] + buffers
                         + [.buffer(partials), .int(first)])
        }
        launch("optim.cl", "power_sum_finish", count: reductionLocal, local: reductionLocal,
               [.buffer(partials), .int(slots), .int(mode), .buffer(destination)])
    }
}
