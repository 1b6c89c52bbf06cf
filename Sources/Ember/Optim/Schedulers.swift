import Foundation

/// A learning-rate schedule: `step()` advances one epoch (or iteration) and sets the
/// optimizer's `lr` from the closed form of `torch.optim.lr_scheduler`.
public class LRScheduler {
    /// The optimizer whose `lr` is set.
    public let optimizer: Optimizer
    /// The learning rate at epoch 0.
    public let baseLR: Float
    /// Epochs stepped so far.
    public private(set) var epoch = 0

    init(_ optimizer: Optimizer) {
        self.optimizer = optimizer
        self.baseLR = optimizer.lr
    }

    /// The learning rate last set.
    public var lastLR: Float { optimizer.lr }

    /// Advances one epoch and updates the optimizer's learning rate.
    public func step() {
        epoch += 1
        optimizer.lr = rate(at: epoch)
    }

    /// The learning rate at `epoch`.
    func rate(at epoch: Int) -> Float { baseLR }
}

/// Multiplies the rate by `gamma` every `stepSize` epochs.
public final class StepLR: LRScheduler {
    let stepSize: Int, gamma: Float

    /// `lr = baseLR * gamma^(epoch / stepSize)`.
    public init(_ optimizer: Optimizer, stepSize: Int, gamma: Float = 0.1) {
        check(stepSize > 0, "StepLR: stepSize must be positive, got \(stepSize)")
        self.stepSize = stepSize
        self.gamma = gamma
        super.init(optimizer)
    }

    override func rate(at epoch: Int) -> Float { baseLR * Foundation.pow(gamma, Float(epoch / stepSize)) }
}

/// Multiplies the rate by `gamma` every epoch.
public final class ExponentialLR: LRScheduler {
    let gamma: Float

    /// `lr = baseLR * gamma^epoch`.
    public init(_ optimizer: Optimizer, gamma: Float) {
        self.gamma = gamma
        super.init(optimizer)
    }

    override func rate(at epoch: Int) -> Float { baseLR * Foundation.pow(gamma, Float(epoch)) }
}

/// Cosine annealing from the base rate down to `etaMin` over `tMax` epochs.
public final class CosineAnnealingLR: LRScheduler {
    let tMax: Int, etaMin: Float

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
}

/// Linear warm-up: the factor goes from `startFactor` to `endFactor` over `totalIters`
/// steps, then stays (`torch.optim.lr_scheduler.LinearLR`).
public final class LinearLR: LRScheduler {
    let startFactor: Float, endFactor: Float, totalIters: Int

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
    }

    override func rate(at epoch: Int) -> Float {
        baseLR * (startFactor + (endFactor - startFactor) * Float(min(epoch, totalIters)) / Float(totalIters))
    }
}
