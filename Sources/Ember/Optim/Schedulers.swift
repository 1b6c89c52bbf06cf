import Foundation

/// A learning-rate schedule: `step()` advances one epoch (or iteration) and sets the learning
/// rate of each of the optimizer's parameter groups from the closed form of
/// `torch.optim.lr_scheduler`, applied to that group's base rate.
///
/// `stateDict()` and `loadStateDict(_:)` save and restore what PyTorch's scheduler state
/// holds (`last_epoch`, `base_lrs`, `_last_lr` and the schedule's settings), so a scheduler
/// made on a resumed optimizer (whose `lr` is mid-schedule) continues exactly.
public class LRScheduler {
    /// The optimizer whose groups' rates are set.
    public let optimizer: Optimizer
    /// Each group's learning rate at epoch 0 (PyTorch's `base_lrs`).
    public private(set) var baseLRs: [Float]
    /// Epochs stepped so far (PyTorch's `last_epoch`).
    public private(set) var epoch = 0
    /// The rates last set, one per group (PyTorch's `get_last_lr()`).
    public internal(set) var lastLRs: [Float]

    /// The first group's base rate.
    public var baseLR: Float { baseLRs[0] }
    /// The first group's rate last set.
    public var lastLR: Float { lastLRs[0] }

    init(_ optimizer: Optimizer) {
        self.optimizer = optimizer
        self.baseLRs = optimizer.paramGroups.indices.map { optimizer.lr(ofGroup: $0) }
        self.lastLRs = baseLRs
    }

    /// Advances one epoch and updates every group's learning rate.
    public func step() {
        epoch += 1
        apply(epoch)
    }

    /// Sets every group's rate to the schedule's value at `epoch`.
    func apply(_ epoch: Int) {
        lastLRs = baseLRs.map { rate(at: epoch, base: $0) }
        for (g, rate) in lastLRs.enumerated() { optimizer.paramGroups[g].lr = rate }
    }

    /// The learning rate at `epoch` of a group whose base rate is `base`.
    func rate(at epoch: Int, base: Float) -> Float { base }

    /// The schedule's settings by PyTorch name (`step_size`, `gamma`, ...); counts are whole numbers.
    var settings: [(name: String, value: Float)] { [] }

    /// Sets the settings from values already checked by `validate(setting:_:)`.
    func restore(settings: [String: Float]) {}

    /// Why `value` is not valid for setting `name`, or nil.
    func validate(setting name: String, _ value: Float) -> String? { value.isFinite ? nil : "expected a finite number" }

    /// The scheduler's state, PyTorch's names: `last_epoch` (int32), `base_lrs` and `_last_lr`
    /// (one rate per parameter group, shape [groups]) and the settings (int32 counts, float32 factors).
    public func stateDict() -> StateDict {
        var out: [(String, Tensor)] = [("last_epoch", Tensor(shape: [], data: [Int32(clamping: epoch)])),
                                       ("base_lrs", Tensor(shape: [baseLRs.count], data: baseLRs)),
                                       ("_last_lr", Tensor(shape: [lastLRs.count], data: lastLRs))]
        for (name, value) in settings {
            out.append((name, LRScheduler.counts.contains(name) ? Tensor(shape: [], data: [Int32(value)]) : Tensor(value)))
        }
        return StateDict(out)
    }

    /// Settings that are counts (saved as int32).
    static var counts: Set<String> {
        ["step_size", "T_max", "total_iters", "warmup_iters", "lr_decay_iters", "patience", "cooldown", "num_bad_epochs", "cooldown_counter"]
    }

    /// Restores state saved by `stateDict()` and sets each group's rate to its restored last
    /// rate (PyTorch leaves that to the optimizer's state dict; setting it here too makes the
    /// order of loading and of making the scheduler irrelevant: `LinearLR`'s initialiser
    /// changes the rate). Throws, changing nothing, when a key is missing or unknown, a value
    /// is malformed, or the rates are not one per group.
    public func loadStateDict(_ dict: StateDict) throws {
        let expected = ["last_epoch", "base_lrs", "_last_lr"] + settings.map(\.name)
        let missing = expected.filter { dict[$0] == nil }.sorted()
        let unexpected = dict.keys.filter { !expected.contains($0) }.sorted()
        let groups = optimizer.paramGroups.count
        var bad: [String] = []
        var values: [String: Float] = [:], rates: [String: [Float]] = [:]
        for name in expected {
            guard let tensor = dict[name] else { continue }
            if name == "base_lrs" || name == "_last_lr" {
                let list = tensor.float().toArray()
                if tensor.rank > 1 || list.count != groups {
                    bad.append("\(name): expected one rate per parameter group (\(groups)), got shape \(Shape.describe(tensor.shape))")
                } else if let wrong = list.first(where: { !($0.isFinite && $0 >= 0) }) {
                    bad.append("\(name): expected a finite rate >= 0, got \(wrong)")
                } else {
                    rates[name] = list
                }
                continue
            }
            guard tensor.count == 1 && tensor.rank <= 1 else {
                bad.append("\(name): expected one value, got shape \(Shape.describe(tensor.shape))")
                continue
            }
            let value = tensor.float().item()
            let problem: String?
            switch name {
            case "last_epoch": problem = value >= 0 && value == value.rounded() && value < 2e9 ? nil : "expected a whole number >= 0, got \(value)"
            default: problem = validate(setting: name, value)
            }
            if let problem { bad.append("\(name): \(problem)") } else { values[name] = value }
        }
        if !missing.isEmpty || !unexpected.isEmpty || !bad.isEmpty {
            throw EmberError.stateDictMismatch(missing: missing, unexpected: unexpected, shapeMismatches: bad)
        }
        epoch = Int(values["last_epoch"]!)
        baseLRs = rates["base_lrs"]!
        lastLRs = rates["_last_lr"]!
        restore(settings: values)
        for (g, rate) in lastLRs.enumerated() { optimizer.paramGroups[g].lr = rate }
    }

    /// Why `value` is not a positive whole number, or nil.
    static func positiveCount(_ value: Float) -> String? {
        value >= 1 && value == value.rounded() && value < 2e9 ? nil : "expected a whole number >= 1, got \(value)"
    }
}

/// Multiplies the rate by `gamma` every `stepSize` epochs.
public final class StepLR: LRScheduler {
    private(set) var stepSize: Int, gamma: Float

    /// `lr = baseLR * gamma^(epoch / stepSize)`.
    public init(_ optimizer: Optimizer, stepSize: Int, gamma: Float = 0.1) {
        check(stepSize > 0, "StepLR: stepSize must be positive, got \(stepSize)")
        self.stepSize = stepSize
        self.gamma = gamma
        super.init(optimizer)
    }

    override func rate(at epoch: Int, base: Float) -> Float { base * Foundation.pow(gamma, Float(epoch / stepSize)) }

    override var settings: [(name: String, value: Float)] { [("step_size", Float(stepSize)), ("gamma", gamma)] }

    override func validate(setting name: String, _ value: Float) -> String? {
        name == "step_size" ? LRScheduler.positiveCount(value) : super.validate(setting: name, value)
    }

    override func restore(settings: [String: Float]) {
        stepSize = Int(settings["step_size"]!)
        gamma = settings["gamma"]!
    }
}

/// Multiplies the rate by `gamma` at each of the `milestones` epochs
/// (`torch.optim.lr_scheduler.MultiStepLR`). The milestones are the initialiser's; the state
/// dict holds `gamma` beside the epoch and rates.
public final class MultiStepLR: LRScheduler {
    let milestones: [Int]
    private(set) var gamma: Float

    /// `lr = baseLR * gamma^(number of milestones <= epoch)`; a milestone given twice counts twice.
    public init(_ optimizer: Optimizer, milestones: [Int], gamma: Float = 0.1) {
        check(milestones.allSatisfy { $0 >= 0 }, "MultiStepLR: milestones must be >= 0, got \(milestones)")
        self.milestones = milestones.sorted()
        self.gamma = gamma
        super.init(optimizer)
    }

    override func rate(at epoch: Int, base: Float) -> Float {
        base * Foundation.pow(gamma, Float(milestones.filter { $0 <= epoch }.count))
    }

    override var settings: [(name: String, value: Float)] { [("gamma", gamma)] }

    override func restore(settings: [String: Float]) {
        gamma = settings["gamma"]!
    }
}

/// The base rate times a function of the epoch (`torch.optim.lr_scheduler.LambdaLR`), the
/// same function for every group. The function is the initialiser's, not in the state dict
/// (as PyTorch saves no plain function).
public final class LambdaLR: LRScheduler {
    let factor: (Int) -> Float

    /// `lr = baseLR * lrLambda(epoch)`, set for epoch 0 now.
    public init(_ optimizer: Optimizer, lrLambda: @escaping (Int) -> Float) {
        factor = lrLambda
        super.init(optimizer)
        apply(0)
    }

    override func rate(at epoch: Int, base: Float) -> Float { base * factor(epoch) }
}

/// Whether `ReduceLROnPlateau` watches a metric that should fall (a loss) or rise (an accuracy).
public enum PlateauMode: String, Sendable {
    /// Lower is better.
    case min
    /// Higher is better.
    case max
}

/// How `ReduceLROnPlateau` compares a metric with the best so far.
public enum ThresholdMode: String, Sendable {
    /// Better by a fraction `threshold` of the best.
    case rel
    /// Better by `threshold` itself.
    case abs
}

/// Cuts each group's rate by `factor` when a metric has stopped improving for more than
/// `patience` epochs (`torch.optim.lr_scheduler.ReduceLROnPlateau`): call `step(_:)` with
/// the metric once per epoch. After a cut, `cooldown` epochs pass before bad epochs count
/// again; no rate goes below `minLR`, and a cut smaller than `eps` is skipped. The state
/// dict holds the settings and `best`, `num_bad_epochs` and `cooldown_counter`; the two
/// modes are the initialiser's.
public final class ReduceLROnPlateau: LRScheduler {
    let mode: PlateauMode, thresholdMode: ThresholdMode
    private(set) var factor: Float, patience: Int, threshold: Float, cooldown: Int, minLR: Float, eps: Float
    /// The best metric seen (infinity, or -infinity in `.max` mode, before the first).
    public private(set) var best: Float
    /// Epochs since the metric last improved.
    public private(set) var badEpochs = 0
    private var cooldownLeft = 0
    private var metric: Float?

    /// A scheduler watching a metric to `mode`.
    public init(_ optimizer: Optimizer, mode: PlateauMode = .min, factor: Float = 0.1, patience: Int = 10, threshold: Float = 1e-4,
                thresholdMode: ThresholdMode = .rel, cooldown: Int = 0, minLR: Float = 0, eps: Float = 1e-8) {
        check(factor < 1, "ReduceLROnPlateau: factor should be < 1.0, got \(factor)")
        check(patience >= 0 && cooldown >= 0, "ReduceLROnPlateau: patience and cooldown must be >= 0, got \(patience) and \(cooldown)")
        self.mode = mode
        self.thresholdMode = thresholdMode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.cooldown = cooldown
        self.minLR = minLR
        self.eps = eps
        best = mode == .min ? .infinity : -.infinity
        super.init(optimizer)
    }

    /// Records this epoch's `metric` and cuts the rates if it has plateaued.
    public func step(_ metric: Float) {
        self.metric = metric
        super.step()
    }

    /// Stops: this scheduler needs the metric (`step(_:)`).
    override public func step() {
        check(metric != nil, "ReduceLROnPlateau: step() needs the metric it watches; call step(_ metric:)")
        super.step()
    }

    override func apply(_ epoch: Int) {
        guard let current = metric else { return }
        metric = nil
        if isBetter(current) {
            best = current
            badEpochs = 0
        } else {
            badEpochs += 1
        }
        if cooldownLeft > 0 {
            cooldownLeft -= 1
            badEpochs = 0
        }
        if badEpochs > patience {
            for g in optimizer.paramGroups.indices {
                let old = optimizer.lr(ofGroup: g), new = Swift.max(old * factor, minLR)
                if old - new > eps { optimizer.paramGroups[g].lr = new }
            }
            cooldownLeft = cooldown
            badEpochs = 0
        }
        lastLRs = optimizer.paramGroups.indices.map { optimizer.lr(ofGroup: $0) }
    }

    private func isBetter(_ value: Float) -> Bool {
        switch (mode, thresholdMode) {
        case (.min, .rel): return value < best * (1 - threshold)
        case (.min, .abs): return value < best - threshold
        case (.max, .rel): return value > best * (threshold + 1)
        case (.max, .abs): return value > best + threshold
        }
    }

    override var settings: [(name: String, value: Float)] {
        [("factor", factor), ("patience", Float(patience)), ("threshold", threshold), ("cooldown", Float(cooldown)), ("min_lr", minLR),
         ("eps", eps), ("best", best), ("num_bad_epochs", Float(badEpochs)), ("cooldown_counter", Float(cooldownLeft))]
    }

    override func validate(setting name: String, _ value: Float) -> String? {
        switch name {
        case "best": return value.isNaN ? "expected a number, got nan" : nil
        case "patience", "cooldown", "num_bad_epochs", "cooldown_counter":
            return value >= 0 && value == value.rounded() && value < 2e9 ? nil : "expected a whole number >= 0, got \(value)"
        case "factor": return value < 1 ? nil : "expected a factor < 1, got \(value)"
        default: return super.validate(setting: name, value)
        }
    }

    override func restore(settings: [String: Float]) {
        factor = settings["factor"]!
        patience = Int(settings["patience"]!)
        threshold = settings["threshold"]!
        cooldown = Int(settings["cooldown"]!)
        minLR = settings["min_lr"]!
        eps = settings["eps"]!
        best = settings["best"]!
        badEpochs = Int(settings["num_bad_epochs"]!)
        cooldownLeft = Int(settings["cooldown_counter"]!)
    }
}

/// Multiplies the rate by `gamma` every epoch.
public final class ExponentialLR: LRScheduler {
    private(set) var gamma: Float

    /// `lr = baseLR * gamma^epoch`.
    public init(_ optimizer: Optimizer, gamma: Float) {
        self.gamma = gamma
        super.init(optimizer)
    }

    override func rate(at epoch: Int, base: Float) -> Float { base * Foundation.pow(gamma, Float(epoch)) }

    override var settings: [(name: String, value: Float)] { [("gamma", gamma)] }

    override func restore(settings: [String: Float]) {
        gamma = settings["gamma"]!
    }
}

/// Cosine annealing from the base rate down to `etaMin` over `tMax` epochs.
public final class CosineAnnealingLR: LRScheduler {
    private(set) var tMax: Int, etaMin: Float

    /// `lr = etaMin + (baseLR - etaMin) * (1 + cos(pi * epoch / tMax)) / 2`.
    public init(_ optimizer: Optimizer, tMax: Int, etaMin: Float = 0) {
        check(tMax > 0, "CosineAnnealingLR: tMax must be positive, got \(tMax)")
        self.tMax = tMax
        self.etaMin = etaMin
        super.init(optimizer)
    }

    override func rate(at epoch: Int, base: Float) -> Float {
        etaMin + (base - etaMin) * (1 + Foundation.cos(Float.pi * Float(epoch) / Float(tMax))) / 2
    }

    override var settings: [(name: String, value: Float)] { [("T_max", Float(tMax)), ("eta_min", etaMin)] }

    override func validate(setting name: String, _ value: Float) -> String? {
        name == "T_max" ? LRScheduler.positiveCount(value) : super.validate(setting: name, value)
    }

    override func restore(settings: [String: Float]) {
        tMax = Int(settings["T_max"]!)
        etaMin = settings["eta_min"]!
    }
}

/// Linear warm-up: the factor goes from `startFactor` to `endFactor` over `totalIters`
/// steps, then stays (`torch.optim.lr_scheduler.LinearLR`).
public final class LinearLR: LRScheduler {
    private(set) var startFactor: Float, endFactor: Float, totalIters: Int

    /// Sets each group's rate to its base rate times `startFactor` now.
    public init(_ optimizer: Optimizer, startFactor: Float = 1.0 / 3, endFactor: Float = 1, totalIters: Int = 5) {
        check(startFactor > 0 && startFactor <= 1, "LinearLR: startFactor must be in (0, 1], got \(startFactor)")
        check(endFactor >= 0 && endFactor <= 1, "LinearLR: endFactor must be in [0, 1], got \(endFactor)")
        check(totalIters > 0, "LinearLR: totalIters must be positive, got \(totalIters)")
        self.startFactor = startFactor
        self.endFactor = endFactor
        self.totalIters = totalIters
        super.init(optimizer)
        apply(0)
    }

    override func rate(at epoch: Int, base: Float) -> Float {
        base * (startFactor + (endFactor - startFactor) * Float(min(epoch, totalIters)) / Float(totalIters))
    }

    override var settings: [(name: String, value: Float)] {
        [("start_factor", startFactor), ("end_factor", endFactor), ("total_iters", Float(totalIters))]
    }

    override func validate(setting name: String, _ value: Float) -> String? {
        switch name {
        case "total_iters": return LRScheduler.positiveCount(value)
        case "start_factor": return value > 0 && value <= 1 ? nil : "expected a factor in (0, 1], got \(value)"
        default: return value >= 0 && value <= 1 ? nil : "expected a factor in [0, 1], got \(value)"
        }
    }

    override func restore(settings: [String: Float]) {
        startFactor = settings["start_factor"]!
        endFactor = settings["end_factor"]!
        totalIters = Int(settings["total_iters"]!)
    }
}

/// nanoGPT's schedule (`get_lr` in its train.py): a linear warm-up over `warmupIters`
/// iterations, a cosine decay to `minLR` at iteration `lrDecayIters`, then `minLR`.
/// Iteration `it` (the number of `step()` calls so far, starting at 0 when made) gets
/// `base * (it + 1) / (warmupIters + 1)` while `it < warmupIters`, then
/// `minLR + (base - minLR) * (1 + cos(pi * (it - warmupIters) / (lrDecayIters - warmupIters))) / 2`
/// up to `lrDecayIters`. Made before the first iteration, it sets iteration 0's rate; call
/// `step()` after every optimizer step.
public final class WarmupCosineLR: LRScheduler {
    private(set) var warmupIters: Int, lrDecayIters: Int, minLR: Float

    /// Sets each group's rate for iteration 0 now.
    public init(_ optimizer: Optimizer, warmupIters: Int, lrDecayIters: Int, minLR: Float) {
        check(warmupIters >= 0, "WarmupCosineLR: warmupIters must be >= 0, got \(warmupIters)")
        check(lrDecayIters > warmupIters, "WarmupCosineLR: lrDecayIters (\(lrDecayIters)) must exceed warmupIters (\(warmupIters))")
        check(minLR.isFinite && minLR >= 0, "WarmupCosineLR: minLR must be a finite number >= 0, got \(minLR)")
        self.warmupIters = warmupIters
        self.lrDecayIters = lrDecayIters
        self.minLR = minLR
        super.init(optimizer)
        apply(0)
    }

    /// nanoGPT's `get_lr(it)` for a learning rate of `base`.
    public static func rate(iteration it: Int, base: Float, warmupIters: Int, lrDecayIters: Int, minLR: Float) -> Float {
        if it < warmupIters { return Float(Double(base) * Double(it + 1) / Double(warmupIters + 1)) }
        if it > lrDecayIters { return minLR }
        let ratio = Double(it - warmupIters) / Double(lrDecayIters - warmupIters)
        let coefficient = 0.5 * (1 + Foundation.cos(Double.pi * ratio))
        return Float(Double(minLR) + coefficient * Double(base - minLR))
    }

    override func rate(at epoch: Int, base: Float) -> Float {
        WarmupCosineLR.rate(iteration: epoch, base: base, warmupIters: warmupIters, lrDecayIters: lrDecayIters, minLR: minLR)
    }

    override var settings: [(name: String, value: Float)] {
        [("warmup_iters", Float(warmupIters)), ("lr_decay_iters", Float(lrDecayIters)), ("min_lr", minLR)]
    }

    override func validate(setting name: String, _ value: Float) -> String? {
        switch name {
        case "warmup_iters": return value >= 0 && value == value.rounded() && value < 2e9 ? nil : "expected a whole number >= 0, got \(value)"
        case "lr_decay_iters": return LRScheduler.positiveCount(value)
        default: return value.isFinite && value >= 0 ? nil : "expected a finite rate >= 0, got \(value)"
        }
    }

    override func restore(settings: [String: Float]) {
        warmupIters = Int(settings["warmup_iters"]!)
        lrDecayIters = Int(settings["lr_decay_iters"]!)
        minLR = settings["min_lr"]!
    }
}
