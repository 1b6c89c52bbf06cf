import Foundation

/// A learning-rate schedule: `step()` advances one epoch (or iteration) and sets the
/// optimizer's `lr` from the closed form of `torch.optim.lr_scheduler`.
///
/// `stateDict()` and `loadStateDict(_:)` save and restore what PyTorch's scheduler state
/// holds (`last_epoch`, `base_lrs`, `_last_lr` and the schedule's settings), so a scheduler
/// made on a resumed optimizer (whose `lr` is mid-schedule) continues exactly.
public class LRScheduler {
    /// The optimizer whose `lr` is set.
    public let optimizer: Optimizer
    /// The learning rate at epoch 0 (PyTorch's `base_lrs`).
    public private(set) var baseLR: Float
    /// Epochs stepped so far (PyTorch's `last_epoch`).
    public private(set) var epoch = 0
    /// The learning rate last set (PyTorch's `get_last_lr()`).
    public internal(set) var lastLR: Float

    init(_ optimizer: Optimizer) {
        self.optimizer = optimizer
        self.baseLR = optimizer.lr
        self.lastLR = optimizer.lr
    }

    /// Advances one epoch and updates the optimizer's learning rate.
    public func step() {
        epoch += 1
        optimizer.lr = rate(at: epoch)
        lastLR = optimizer.lr
    }

    /// The learning rate at `epoch`.
    func rate(at epoch: Int) -> Float { baseLR }

    /// The schedule's settings by PyTorch name (`step_size`, `gamma`, ...); counts are whole numbers.
    var settings: [(name: String, value: Float)] { [] }

    /// Sets the settings from values already checked by `validate(setting:_:)`.
    func restore(settings: [String: Float]) {}

    /// Why `value` is not valid for setting `name`, or nil.
    func validate(setting name: String, _ value: Float) -> String? { value.isFinite ? nil : "expected a finite number" }

    /// The scheduler's state, PyTorch's names: `last_epoch` (int32), `base_lrs` and `_last_lr`
    /// (one rate per parameter group, so shape [1]) and the settings (int32 counts, float32 factors).
    public func stateDict() -> StateDict {
        var out: [(String, Tensor)] = [("last_epoch", Tensor(shape: [], data: [Int32(clamping: epoch)])),
                                       ("base_lrs", Tensor(shape: [1], data: [baseLR])),
                                       ("_last_lr", Tensor(shape: [1], data: [lastLR]))]
        for (name, value) in settings {
            out.append((name, LRScheduler.counts.contains(name) ? Tensor(shape: [], data: [Int32(value)]) : Tensor(value)))
        }
        return StateDict(out)
    }

    /// Settings that are counts (saved as int32).
    static var counts: Set<String> { ["step_size", "T_max", "total_iters"] }

    /// Restores state saved by `stateDict()` and sets the optimizer's `lr` to the restored
    /// last rate (PyTorch leaves that to the optimizer's state dict; setting it here too
    /// makes the order of loading and of making the scheduler irrelevant: `LinearLR`'s
    /// initialiser changes the rate). Throws, changing nothing, when a key is missing or
    /// unknown or a value is malformed.
    public func loadStateDict(_ dict: StateDict) throws {
        let expected = ["last_epoch", "base_lrs", "_last_lr"] + settings.map(\.name)
        let missing = expected.filter { dict[$0] == nil }.sorted()
        let unexpected = dict.keys.filter { !expected.contains($0) }.sorted()
        var bad: [String] = []
        var values: [String: Float] = [:]
        for name in expected {
            guard let tensor = dict[name] else { continue }
            guard tensor.count == 1 && tensor.rank <= 1 else {
                bad.append("\(name): expected one value, got shape \(Shape.describe(tensor.shape))")
                continue
            }
            let value = tensor.float().item()
            let problem: String?
            switch name {
            case "last_epoch": problem = value >= 0 && value == value.rounded() && value < 2e9 ? nil : "expected a whole number >= 0, got \(value)"
            case "base_lrs", "_last_lr": problem = value.isFinite && value >= 0 ? nil : "expected a finite rate >= 0, got \(value)"
            default: problem = validate(setting: name, value)
            }
            if let problem { bad.append("\(name): \(problem)") } else { values[name] = value }
        }
        if !missing.isEmpty || !unexpected.isEmpty || !bad.isEmpty {
            throw EmberError.stateDictMismatch(missing: missing, unexpected: unexpected, shapeMismatches: bad)
        }
        epoch = Int(values["last_epoch"]!)
        baseLR = values["base_lrs"]!
        lastLR = values["_last_lr"]!
        restore(settings: values)
        optimizer.lr = lastLR
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

    override func rate(at epoch: Int) -> Float { baseLR * Foundation.pow(gamma, Float(epoch / stepSize)) }

    override var settings: [(name: String, value: Float)] { [("step_size", Float(stepSize)), ("gamma", gamma)] }

    override func validate(setting name: String, _ value: Float) -> String? {
        name == "step_size" ? LRScheduler.positiveCount(value) : super.validate(setting: name, value)
    }

    override func restore(settings: [String: Float]) {
        stepSize = Int(settings["step_size"]!)
        gamma = settings["gamma"]!
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

    override func rate(at epoch: Int) -> Float { baseLR * Foundation.pow(gamma, Float(epoch)) }

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

    override func rate(at epoch: Int) -> Float {
        etaMin + (baseLR - etaMin) * (1 + Foundation.cos(Float.pi * Float(epoch) / Float(tMax))) / 2
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

    /// Sets the rate to `baseLR * startFactor` now.
    public init(_ optimizer: Optimizer, startFactor: Float = 1.0 / 3, endFactor: Float = 1, totalIters: Int = 5) {
        check(startFactor > 0 && startFactor <= 1, "LinearLR: startFactor must be in (0, 1], got \(startFactor)")
        check(endFactor >= 0 && endFactor <= 1, "LinearLR: endFactor must be in [0, 1], got \(endFactor)")
        check(totalIters > 0, "LinearLR: totalIters must be positive, got \(totalIters)")
        self.startFactor = startFactor
        self.endFactor = endFactor
        self.totalIters = totalIters
        super.init(optimizer)
        optimizer.lr = rate(at: 0)
        lastLR = optimizer.lr
    }

    override func rate(at epoch: Int) -> Float {
        baseLR * (startFactor + (endFactor - startFactor) * Float(min(epoch, totalIters)) / Float(totalIters))
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
