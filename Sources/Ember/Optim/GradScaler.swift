import Foundation

/// Loss scaling for float16 training (`torch.amp.GradScaler`), with PyTorch's semantics and
/// defaults.
///
/// Small float16 gradients underflow to zero; multiplying the loss by a large `scale` before
/// `backward()` keeps them representable, and dividing the gradients by it before the
/// optimizer step restores their values. When a step's gradients hold inf or NaN (the scale
/// was too large) the step is skipped and the scale backs off; after `growthInterval`
/// consecutive finite steps it grows again.
///
/// ```swift
/// let scaler = GradScaler()
/// for (x, y) in loader {
///     let loss = Tensor.autocast(.float16) { crossEntropy(model(x), y) }
///     optimizer.zeroGrad()
///     scaler.scale(loss).backward()
///     scaler.unscale(optimizer)                 // optional: to clip the true gradients
///     clipGradNorm(model.parameters(), maxNorm: 1)
///     scaler.step(optimizer)                    // skipped when a gradient is inf or NaN
///     scaler.update()
/// }
/// ```
///
/// The scale and the growth tracker live on the host, so `scale(_:)` is one scalar multiply
/// and `update()` costs no device work; `unscale(_:)` multiplies each gradient by 1 / scale
/// and reduces each to one value that is NaN exactly when it holds inf or NaN, and `step(_:)`
/// reads their sum with one host read per device. A disabled scaler (`enabled: false`) passes
/// everything through, so one training loop serves every precision.
public final class GradScaler {
    /// Whether scaling is on; when off every method passes through and `scale` is 1.
    public let enabled: Bool
    /// What the scale is multiplied by after `growthInterval` consecutive finite steps.
    public private(set) var growthFactor: Float
    /// What the scale is multiplied by after a step with inf or NaN gradients.
    public private(set) var backoffFactor: Float
    /// Consecutive finite steps before the scale grows.
    public private(set) var growthInterval: Int
    /// The current scale (host-side; PyTorch's `_scale`).
    private var currentScale: Float
    /// Consecutive finite steps since the scale last changed (PyTorch's `_growth_tracker`).
    public private(set) var growthTracker = 0

    /// Where one optimizer is in the current iteration (PyTorch's `OptState`).
    private enum Stage { case ready, unscaled, stepped }

    /// One optimizer's progress since the last `update()`: its stage, and once unscaled, per
    /// device, a 0-d sum that is NaN exactly when some gradient held inf or NaN.
    private struct OptimizerState {
        var stage = Stage.ready
        var checks: [Tensor] = []
        /// The host value of `checks` once read.
        var foundInf: Bool?
    }

    /// Each optimizer's state this iteration, by identity.
    private var optimizerStates: [ObjectIdentifier: OptimizerState] = [:]

    /// A scaler with PyTorch's defaults: scale 2^16, doubled after 2000 finite steps, halved
    /// after a step with inf or NaN gradients.
    public init(initScale: Float = 65536, growthFactor: Float = 2, backoffFactor: Float = 0.5, growthInterval: Int = 2000,
                enabled: Bool = true) {
        check(initScale.isFinite && initScale > 0, "GradScaler: initScale must be a positive finite number, got \(initScale)")
        check(growthFactor > 1, "GradScaler: growthFactor must be greater than 1, got \(growthFactor)")
        check(backoffFactor > 0 && backoffFactor < 1, "GradScaler: backoffFactor must be in (0, 1), got \(backoffFactor)")
        check(growthInterval > 0, "GradScaler: growthInterval must be positive, got \(growthInterval)")
        self.enabled = enabled
        self.currentScale = initScale
        self.growthFactor = growthFactor
        self.backoffFactor = backoffFactor
        self.growthInterval = growthInterval
    }

    /// The current scale (PyTorch's `get_scale()`); 1 when disabled.
    public var scale: Float { enabled ? currentScale : 1 }

    /// `loss` times the current scale (differentiable); `loss` itself when disabled.
    public func scale(_ loss: Tensor) -> Tensor {
        enabled ? loss * currentScale : loss
    }

    /// Divides the gradients of `optimizer`'s parameters by the scale, in place, and records
    /// whether any holds inf or NaN (read by `step(_:)`). Call it before clipping or inspecting
    /// gradients; at most once per optimizer between `update()`s, and before `step(_:)`.
    public func unscale(_ optimizer: Optimizer) {
        guard enabled else { return }
        let key = ObjectIdentifier(optimizer)
        var state = optimizerStates[key] ?? OptimizerState()
        check(state.stage != .unscaled, "GradScaler.unscale: already called on this optimizer since the last update()")
        check(state.stage != .stepped, "GradScaler.unscale: called after step(); unscale, then step, then update")
        let grads = optimizer.parameters.compactMap(\.grad)
        check(!grads.contains { $0.dtype == .float16 },
              "GradScaler.unscale: attempting to unscale float16 gradients; keep the parameters in float32 and run the forward pass under Tensor.autocast(.float16)")
        // 1 / scale rounded once from Double, as PyTorch's `_scale.double().reciprocal().float()`.
        let inverse = Float(1 / Double(currentScale))
        state.checks = Tensor.noGrad {
            for g in grads { g *= inverse }
            // g * 0 is 0 where g is finite and NaN where it is inf or NaN, so each gradient's
            // sum is NaN exactly when it holds a non-finite value (a plain sum could overflow).
            return Dictionary(grouping: grads, by: \.device).values.map { group in
                Tensor.stack(group.map { ($0 * 0).sum() }).sum()
            }
        }
        state.stage = .unscaled
        optimizerStates[key] = state
    }

    /// Unscales `optimizer`'s gradients if `unscale(_:)` was not called this iteration, then
    /// runs `optimizer.step()` unless a gradient held inf or NaN. Returns whether the step ran.
    /// At most once per optimizer between `update()`s.
    @discardableResult
    public func step(_ optimizer: Optimizer) -> Bool {
        guard enabled else {
            optimizer.step()
            return true
        }
        let key = ObjectIdentifier(optimizer)
        check(optimizerStates[key]?.stage != .stepped, "GradScaler.step: already called on this optimizer since the last update()")
        if optimizerStates[key]?.stage != .unscaled { unscale(optimizer) }
        let foundInf = readFoundInf(key)
        if !foundInf { optimizer.step() }
        optimizerStates[key]!.stage = .stepped
        return !foundInf
    }

    /// Whether optimizer `key`'s unscaled gradients held inf or NaN: reads its checks from the
    /// devices (one host read per device) the first time.
    private func readFoundInf(_ key: ObjectIdentifier) -> Bool {
        if let known = optimizerStates[key]!.foundInf { return known }
        let found = optimizerStates[key]!.checks.contains { !$0.item().isFinite }
        optimizerStates[key]!.foundInf = found
        return found
    }

    /// Updates the scale from this iteration's steps and starts the next iteration: times
    /// `backoffFactor` if any optimizer's gradients held inf or NaN (and the growth count
    /// restarts), else after `growthInterval` consecutive finite iterations times
    /// `growthFactor` (kept only when finite). `newScale` sets the scale directly instead.
    public func update(newScale: Float? = nil) {
        guard enabled else { return }
        defer { optimizerStates = [:] }
        if let newScale {
            check(newScale.isFinite && newScale > 0, "GradScaler.update: newScale must be a positive finite number, got \(newScale)")
            currentScale = newScale
            return
        }
        let unscaled = optimizerStates.keys.filter { optimizerStates[$0]!.stage != .ready }
        check(!unscaled.isEmpty, "GradScaler.update: no inf checks were recorded prior to update(); call step(optimizer) first")
        if unscaled.contains(where: readFoundInf) {
            currentScale *= backoffFactor
            growthTracker = 0
        } else if growthTracker + 1 == growthInterval {
            let grown = currentScale * growthFactor
            if grown.isFinite { currentScale = grown }
            growthTracker = 0
        } else {
            growthTracker += 1
        }
    }

    /// The scaler's state under PyTorch's names: `scale`, `growth_factor`, `backoff_factor`
    /// (float32 scalars), `growth_interval` and `_growth_tracker` (int32 scalars); empty when
    /// disabled, as PyTorch's.
    public func stateDict() -> StateDict {
        guard enabled else { return StateDict() }
        return ["scale": Tensor(currentScale), "growth_factor": Tensor(growthFactor), "backoff_factor": Tensor(backoffFactor),
                "growth_interval": Tensor(shape: [], data: [Int32(clamping: growthInterval)]),
                "_growth_tracker": Tensor(shape: [], data: [Int32(clamping: growthTracker)])]
    }

    /// Restores state saved by `stateDict()`. Throws, changing nothing, when the dict is empty
    /// (saved from a disabled scaler), a key is missing or unknown, or a value is malformed.
    /// Nothing to load into a disabled scaler.
    public func loadStateDict(_ dict: StateDict) throws {
        guard enabled else { return }
        let expected = ["scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"]
        if dict.isEmpty {
            throw EmberError.stateDictMismatch(missing: expected.sorted(), unexpected: [],
                                               shapeMismatches: ["the state dict is empty, possibly because it was saved from a disabled GradScaler"])
        }
        var values: [String: Float] = [:], bad: [String] = []
        for name in expected {
            guard let tensor = dict[name] else { continue }
            guard tensor.count == 1 else {
                bad.append("\(name): expected one value, got shape \(Shape.describe(tensor.shape))")
                continue
            }
            let value = tensor.float().item()
            let valid = switch name {
            case "scale": value.isFinite && value > 0
            case "growth_factor": value.isFinite && value > 1
            case "backoff_factor": value > 0 && value < 1
            case "growth_interval": value >= 1 && value == value.rounded() && value < 2e9
            default: value >= 0 && value == value.rounded() && value < 2e9
            }
            if valid { values[name] = value } else { bad.append("\(name): invalid value \(value)") }
        }
        let missing = expected.filter { dict[$0] == nil }.sorted()
        let unexpected = dict.keys.filter { !expected.contains($0) }.sorted()
        if !missing.isEmpty || !unexpected.isEmpty || !bad.isEmpty {
            throw EmberError.stateDictMismatch(missing: missing, unexpected: unexpected, shapeMismatches: bad)
        }
        currentScale = values["scale"]!
        growthFactor = values["growth_factor"]!
        backoffFactor = values["backoff_factor"]!
        growthInterval = Int(values["growth_interval"]!)
        growthTracker = Int(values["_growth_tracker"]!)
    }
}
