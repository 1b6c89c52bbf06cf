import Foundation
import Testing
@testable import Ember

/// `GradScaler`: PyTorch's scaling, unscaling, step skipping, scale updates and state dict.
@Suite("GradScaler")
struct GradScalerTests {
    /// A parameter `[2]` and an SGD (lr 1) over it whose loss `sum(p * x)` has gradient `x`.
    static func problem(_ device: Device = .cpu) -> (Tensor, SGD, Tensor) {
        let p = Tensor(shape: [2], data: [1, 2], device: device, requiresGrad: true)
        return (p, SGD([p], lr: 1), (p * Tensor(shape: [2], data: [0.5, -3], device: device)).sum())
    }

    @Test("scale multiplies the loss, unscale divides the gradients back, step applies them", arguments: TestDevices.all)
    func scaleAndUnscale(_ device: Device) {
        let scaler = GradScaler(initScale: 1024)
        #expect(scaler.scale == 1024 && scaler.enabled)
        let (p, opt, loss) = GradScalerTests.problem(device)
        let scaled = scaler.scale(loss)
        #expect(scaled.item() == loss.item() * 1024)
        scaled.backward()
        #expect(p.grad!.toArray() == [512, -3072])
        scaler.unscale(opt)
        #expect(p.grad!.toArray() == [0.5, -3])
        #expect(scaler.step(opt))
        #expect(p.toArray() == [0.5, 5])
        scaler.update()
        #expect(scaler.scale == 1024 && scaler.growthTracker == 1)
    }

    @Test("step unscales the gradients itself when unscale was not called")
    func stepUnscales() {
        let scaler = GradScaler(initScale: 8)
        let (p, opt, loss) = GradScalerTests.problem()
        scaler.scale(loss).backward()
        #expect(scaler.step(opt))
        #expect(p.grad!.toArray() == [0.5, -3] && p.toArray() == [0.5, 5])
    }

    @Test("a step with an inf or NaN gradient is skipped and the scale backs off", arguments: [Float.infinity, -Float.infinity, Float.nan])
    func skippedStep(_ bad: Float) {
        for device in TestDevices.all {
            let scaler = GradScaler(initScale: 1024, growthInterval: 3)
            let (p, opt, loss) = GradScalerTests.problem(device)
            let other = Tensor(shape: [3], data: [1, 1, 1], device: device, requiresGrad: true)
            let twoGroups = SGD([ParamGroup(params: [p]), ParamGroup(params: [other])], lr: 1)
            // One finite step first, so the backoff also restarts the growth count.
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            #expect(scaler.growthTracker == 1)
            opt.zeroGrad()
            other.grad = Tensor(shape: [3], data: [1, bad, 2], device: device)
            p.grad = Tensor(shape: [2], data: [1, 1], device: device)
            let before = p.toArray()
            #expect(!scaler.step(twoGroups), "\(bad) on \(device)")
            #expect(p.toArray() == before && other.toArray() == [1, 1, 1])
            scaler.update()
            #expect(scaler.scale == 512 && scaler.growthTracker == 0)
        }
    }

    @Test("the scale grows after growthInterval consecutive finite steps, and only to a finite value")
    func growth() {
        let scaler = GradScaler(initScale: 4, growthFactor: 3, growthInterval: 3)
        let (p, opt, _) = GradScalerTests.problem()
        var scales: [Float] = []
        for _ in 0..<7 {
            p.grad = Tensor(shape: [2], data: [1, 1])
            scaler.step(opt)
            scaler.update()
            scales.append(scaler.scale)
        }
        #expect(scales == [4, 4, 12, 12, 12, 36, 36])
        let large = GradScaler(initScale: Float.greatestFiniteMagnitude, growthInterval: 1)
        p.grad = Tensor(shape: [2], data: [1, 1])
        large.step(opt)
        large.update()
        #expect(large.scale == Float.greatestFiniteMagnitude && large.growthTracker == 0)
        // update(newScale:) sets it directly.
        p.grad = Tensor(shape: [2], data: [1, 1])
        scaler.step(opt)
        scaler.update(newScale: 5)
        #expect(scaler.scale == 5)
    }

    @Test("stateDict has PyTorch's keys and loadStateDict restores them")
    func stateDict() throws {
        let scaler = GradScaler(initScale: 256, growthFactor: 4, backoffFactor: 0.25, growthInterval: 5)
        let (p, opt, _) = GradScalerTests.problem()
        for _ in 0..<2 {
            p.grad = Tensor(shape: [2], data: [1, 1])
            scaler.step(opt)
            scaler.update()
        }
        let state = scaler.stateDict()
        #expect(state.keys == ["scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"])
        #expect(state["scale"]!.item() == 256 && state["growth_factor"]!.item() == 4 && state["backoff_factor"]!.item() == 0.25)
        #expect(state["growth_interval"]!.dtype == .int32 && state["growth_interval"]!.item() == 5 && state["_growth_tracker"]!.item() == 2)
        let restored = GradScaler()
        try restored.loadStateDict(state)
        #expect(restored.scale == 256 && restored.growthFactor == 4 && restored.backoffFactor == 0.25)
        #expect(restored.growthInterval == 5 && restored.growthTracker == 2)
        // Three more finite steps reach the interval: the restored tracker counts on.
        for _ in 0..<3 {
            p.grad = Tensor(shape: [2], data: [1, 1])
            restored.step(opt)
            restored.update()
        }
        #expect(restored.scale == 1024 && restored.growthTracker == 0)

        #expect(GradScaler(enabled: false).stateDict().isEmpty)
        #expect(throws: EmberError.self) { try GradScaler().loadStateDict(StateDict()) }
        var bad = state
        bad["scale"] = Tensor(-1)
        bad["extra"] = Tensor(1)
        #expect(throws: EmberError.stateDictMismatch(missing: [], unexpected: ["extra"], shapeMismatches: ["scale: invalid value -1.0"])) {
            try restored.loadStateDict(bad)
        }
        #expect(restored.scale == 1024)
    }

    @Test("a disabled scaler passes everything through")
    func disabled() {
        let scaler = GradScaler(enabled: false)
        let (p, opt, loss) = GradScalerTests.problem()
        #expect(scaler.scale(loss) === loss && scaler.scale == 1)
        loss.backward()
        scaler.unscale(opt)
        #expect(p.grad!.toArray() == [0.5, -3])
        #expect(scaler.step(opt))
        scaler.update()
        #expect(p.toArray() == [0.5, 5])
    }

    @Test("unscaling twice in one iteration stops with a message")
    func unscaleTwice() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let scaler = GradScaler()
            let (_, opt, loss) = GradScalerTests.problem()
            scaler.scale(loss).backward()
            scaler.unscale(opt)
            scaler.unscale(opt)
        }.map { result in
            #expect(stderrText(result).contains("GradScaler.unscale: already called on this optimizer since the last update()"))
        }
    }
}
