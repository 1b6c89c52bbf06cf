import Foundation
import Testing
@testable import Ember

// Models for the module-fidelity tests (file scope: exit tests capture nothing).

/// A small model with BatchNorm buffers (first, so that no bias gradient cancels to
/// rounding noise, which Adam would amplify into device-dependent steps).
final class MovableNet: Module, Layer {
    let norm = BatchNorm1d(3)
    let fc1 = Linear(3, 4)
    let fc2 = Linear(4, 2)
    func callAsFunction(_ x: Tensor) -> Tensor { fc2(fc1(norm(x)).relu()) }
}

/// An embedding whose output layer shares its weight (weight tying).
final class TiedNet: Module, Layer {
    let embedding = Embedding(5, 3)
    let head = Linear(3, 5, bias: false)
    override init() {
        super.init()
        head.weight = embedding.weight
    }
    func callAsFunction(_ indices: Tensor) -> Tensor { head(embedding(indices)) }
}

/// Modules in a `[String: Module]` dictionary, a tuple, a labelled tuple, nested arrays,
/// an array of optionals and an `[Int: Module]` dictionary.
final class ContainerNet: Module {
    let heads: [String: Linear] = ["value": Linear(2, 1), "query": Linear(2, 2)]
    let pair = (Linear(1, 1), Linear(1, 1, bias: false))
    let named = (encoder: Linear(1, 1, bias: false), decoder: Linear(1, 1, bias: false))
    let grid = [[Linear(1, 1, bias: false)], [Linear(1, 1, bias: false), Linear(1, 1, bias: false)]]
    let maybe: [Linear?] = [nil, Linear(1, 1, bias: false)]
    let byNumber: [Int: Linear] = [10: Linear(1, 1, bias: false), 2: Linear(1, 1, bias: false)]
    /// A plain tensor: not state, like a plain attribute in PyTorch.
    let scratch = Tensor.zeros([7])
    lazy var late = Linear(1, 1, bias: false)
}

/// `ModuleList` and `ModuleDict` with PyTorch's names.
final class ListNet: Module {
    let blocks = ModuleList([Linear(2, 2), Linear(2, 2, bias: false)])
    let heads: ModuleDict = ["query": Linear(2, 1), "key": Linear(2, 1, bias: false)]
}

/// A struct holding a module: discovery cannot name it.
struct LayerHolder { let layer = Linear(2, 2) }
final class StructNet: Module { let holder = LayerHolder() }

/// An enum holding a module: discovery cannot name it.
enum LayerChoice { case one(Linear) }
final class EnumNet: Module { let choice = LayerChoice.one(Linear(2, 2)) }

/// A Set of (hashable) modules: unordered, so discovery cannot name them.
final class HashableLinear: Module, Hashable {
    let inner = Linear(1, 1)
    static func == (a: HashableLinear, b: HashableLinear) -> Bool { a === b }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
final class SetNet: Module { let layers: Set<HashableLinear> = [HashableLinear()] }

/// Bool and int32 buffers, and a non-persistent buffer.
final class MaskNet: Module {
    @Buffer var mask = Tensor([1, 0, 1], dtype: .bool)
    @Buffer var counts = Tensor([3, -1], dtype: .int32)
    @Buffer(persistent: false) var cache = Tensor.ones([2])
    @OptionalBuffer(persistent: false) var optionalCache: Tensor? = Tensor.zeros([1])
}

/// The entries of `Fixtures/python_tensors.safetensors` (written by Python's safetensors).
final class FixtureNet: Module {
    @Parameter var weight = Tensor.zeros([2, 3])
    @Parameter var bias = Tensor.zeros([2])
    @Buffer var steps = Tensor([0, 0, 0], dtype: .int32)
    @Buffer var mask = Tensor([0, 0, 0], dtype: .bool)
}

@Suite("module, optimizer and checkpoint fidelity")
struct ModuleFidelityTests {
    // MARK: 1. to(device) keeps parameter identity

    /// Two training steps of `MovableNet` with `make`'s optimizer: the first on the CPU, the
    /// second after moving the model (and nothing else) to `device`. Returns the final state.
    static func moveBetweenSteps(to device: Device, _ make: ([Tensor]) -> Optimizer) -> [[Float]] {
        let net = Tensor.withRandomSeed(11) { MovableNet() }
        let opt = make(net.parameters())
        let x = Tensor.withRandomSeed(12) { Tensor.randn([6, 3]) }
        let weight = net.fc1.weight, view = net.fc1.weight.T
        opt.zeroGrad()
        net(x).square().sum().backward()
        opt.step()
        net.to(device)
        #expect(net.fc1.weight === weight && opt.parameters[2] === weight, "to(_:) keeps the parameter object")
        #expect(weight.device == device && weight.requiresGrad && weight.isLeaf)
        #expect(weight.grad?.device == device, "the gradient moves with its parameter")
        #expect(view.device == .cpu, "a view taken before the move keeps the old storage")
        #expect(net.norm.runningMean!.device == device)
        opt.zeroGrad()
        net(x.to(device)).square().sum().backward()
        opt.step()
        #expect(opt.stateDict().allSatisfy { !$0.name.hasPrefix("state.") || $0.name.hasSuffix(".step") || $0.tensor.device == device },
                "optimizer state follows its parameter")
        #expect(net.stateDict().keys[5] == "fc1.weight")
        return net.stateDict().map { $0.tensor.toArray() }
    }

    @Test("an optimizer made before model.to(device) keeps training the model, as an all-CPU run", arguments: TestDevices.all)
    func optimizerSurvivesMove(_ d: Device) {
        let makers: [(String, ([Tensor]) -> Optimizer)] = [
            ("SGD", { SGD($0, lr: 0.05, momentum: 0.9) }), ("Adam", { Adam($0, lr: 0.05) }),
        ]
        for (name, make) in makers {
            let reference = ModuleFidelityTests.moveBetweenSteps(to: .cpu, make)
            let moved = ModuleFidelityTests.moveBetweenSteps(to: d, make)
            let initial = Tensor.withRandomSeed(11) { MovableNet() }.fc1.weight.toArray()
            #expect(moved[5] != initial, "\(name): fc1.weight changed")
            for (a, b) in zip(moved, reference) { expectClose(a, b, rtol: 1e-4, atol: 1e-5, "\(name) on \(d)") }
        }
    }

    @Test("to(device) keeps tensors that share storage sharing it, and moves non-persistent buffers", arguments: TestDevices.all)
    func moveSharing(_ d: Device) {
        let net = TiedNet().to(d)
        #expect(net.head.weight === net.embedding.weight && net.head.weight.device == d)
        let masks = MaskNet().to(d)
        #expect(masks.namedBuffers().allSatisfy { $0.tensor.device == d })
        #expect(masks.mask.dtype == .bool && masks.mask.toBoolArray() == [true, false, true])
        #expect(masks.counts.toIntArray() == [3, -1] && masks.cache.toArray() == [1, 1])
    }

    @Test("a graph recorded before to(device) refuses backward instead of mixing devices")
    func graphBeforeMove() async {
        guard TestDevices.openCL != nil else { return }
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let layer = Linear(2, 2)
            let loss = (layer.weight * layer.weight).sum()
            layer.to(TestDevices.openCL!)
            loss.backward()
        }.map { #expect(stderrText($0).contains("MulBackward: a tensor saved for backward was modified by an in-place operation")) }
    }

    // MARK: 2. shared modules and tied weights count once

    @Test("a module used twice is one set of parameters: SGD steps it once")
    func sharedModuleStepsOnce() {
        let shared = Linear(2, 2)
        let seq = Sequential(shared, ReLU(), shared)
        #expect(seq.parameters().count == 2 && seq.parameterCount == 6)
        #expect(seq.namedParameters().map(\.name) == ["0.weight", "0.bias"])
        #expect(seq.stateDict().keys == ["0.weight", "0.bias"])
        #expect(seq.namedModules().map(\.name) == ["", "0", "1"] && seq.children().count == 2)
        let opt = SGD(seq.parameters(), lr: 0.1)
        let before = shared.weight.toArray()
        seq(Tensor([[1, -2], [0.5, 3]])).sum().backward()
        let grad = shared.weight.grad!.toArray()
        opt.step()
        expectClose(shared.weight.toArray(), zip(before, grad).map { $0 - 0.1 * $1 })
    }

    @Test("tied weights: one parameter under its first name; either name, or both when equal, loads")
    func tiedWeights() throws {
        let net = TiedNet()
        #expect(net.head.weight === net.embedding.weight)
        #expect(net.namedParameters().map(\.name) == ["embedding.weight"])
        #expect(net.stateDict().keys == ["embedding.weight"])
        let values = Tensor.arange(0, 15).reshape([5, 3])
        try net.loadStateDict(["head.weight": values])
        #expect(net.embedding.weight.toArray() == values.toArray() && net.head.weight === net.embedding.weight)
        try net.loadStateDict(["embedding.weight": values * 2, "head.weight": values * 2])
        #expect(net.head.weight.toArray() == (values * 2).toArray())
        #expect(throws: EmberError.stateDictMismatch(missing: [], unexpected: [],
                                                     shapeMismatches: ["head.weight: holds other values than embedding.weight, but both name one tied tensor"])) {
            try net.loadStateDict(["embedding.weight": values, "head.weight": values * 3])
        }
        #expect(throws: EmberError.stateDictMismatch(missing: ["embedding.weight"], unexpected: [], shapeMismatches: [])) {
            try net.loadStateDict([:])
        }
        #expect(net.head.weight.toArray() == (values * 2).toArray(), "a failed load changes nothing")
        // The tie survives a checkpoint round trip.
        let url = temporaryFolder().appendingPathComponent("tied.safetensors")
        try net.save(to: url)
        let other = TiedNet()
        try other.load(from: url)
        #expect(other.head.weight === other.embedding.weight && other.head.weight.toArray() == (values * 2).toArray())
    }

    @Test("an optimizer given the same tensor twice stops with a message")
    func optimizerDuplicates() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let p = Tensor.zeros([2], requiresGrad: true)
            _ = SGD([p, Tensor.zeros([1], requiresGrad: true), p], lr: 0.1)
        }.map { #expect(stderrText($0).contains("SGD: parameters 0 and 2 are the same tensor; it would be updated twice per step")) }
    }

    // MARK: 3. assigning a parameter

    @Test("a tensor assigned to a parameter slot becomes a trainable parameter")
    func assignedParameter() {
        let layer = Linear(2, 2)
        layer.weight = Tensor.randn([2, 2])
        layer.bias = Tensor.zeros([2])
        #expect(layer.weight.requiresGrad && layer.bias!.requiresGrad)
        layer(Tensor.ones([1, 2])).sum().backward()
        #expect(layer.weight.grad != nil && layer.bias!.grad != nil)
    }

    @Test("assigning the output of an op to a parameter stops and says to detach()")
    func assignedNonLeaf() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let layer = Linear(2, 2)
            layer.weight = layer.weight * 2
        }.map { #expect(stderrText($0).contains("Parameter: a parameter must be a leaf tensor, got the output of MulBackward; assign tensor.detach() instead")) }
    }

    // MARK: 4. containers

    @Test("dictionaries, tuples, nested arrays and optionals of modules are discovered with stable names")
    func containerDiscovery() {
        let net = ContainerNet()
        #expect(net.namedParameters().map(\.name) == [
            "heads.query.weight", "heads.query.bias", "heads.value.weight", "heads.value.bias",
            "pair.0.weight", "pair.0.bias", "pair.1.weight", "named.encoder.weight", "named.decoder.weight",
            "grid.0.0.weight", "grid.1.0.weight", "grid.1.1.weight", "maybe.1.weight", "byNumber.2.weight", "byNumber.10.weight",
        ])
        #expect(net.parameterCount == 6 + 3 + 2 + 1 + 2 + 3 + 1 + 2)
        _ = net.late
        #expect(net.namedParameters().last!.name == "late.weight", "a lazy property counts once it exists")
        #expect(!net.stateDict().keys.contains { $0.contains("scratch") })
    }

    @Test("ModuleList and ModuleDict give PyTorch's names; ModuleDict keeps insertion order")
    func moduleListAndDict() {
        let net = ListNet()
        #expect(net.stateDict().keys == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "heads.query.weight", "heads.query.bias", "heads.key.weight"])
        net.blocks.append(Linear(2, 1))
        #expect(net.blocks.count == 3 && net.blocks[2] is Linear && net.blocks.map { $0 is Linear } == [true, true, true])
        net.blocks[0] = ReLU()
        net.heads["value"] = Linear(2, 1, bias: false)
        net.heads["key"] = nil
        #expect(net.heads.keys == ["query", "value"] && net.heads.count == 2 && net.heads.map(\.name) == ["query", "value"])
        #expect(net.stateDict().keys == ["blocks.1.weight", "blocks.2.weight", "blocks.2.bias", "heads.query.weight", "heads.query.bias", "heads.value.weight"])
    }

    @Test("a struct holding modules stops with a message naming the property")
    func structRefused() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = StructNet().parameters()
        }.map { #expect(stderrText($0).contains("Module: property 'holder' of StructNet holds modules inside LayerHolder, a struct, which module discovery cannot name")) }
    }

    @Test("an enum holding modules stops with a message naming the property")
    func enumRefused() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = EnumNet().stateDict()
        }.map { #expect(stderrText($0).contains("Module: property 'choice' of EnumNet holds modules inside LayerChoice, an enum")) }
    }

    @Test("a Set of modules stops with a message naming the property")
    func setRefused() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = SetNet().parameters()
        }.map { #expect(stderrText($0).contains("Module: property 'layers' of SetNet holds modules inside Set<HashableLinear>, a Set")) }
    }

    @Test("a ModuleDict name with a dot stops with a message")
    func moduleDictDottedName() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = ModuleDict([("a.b", ReLU())])
        }.map { #expect(stderrText($0).contains("ModuleDict: name 'a.b' must be non-empty and contain no '.'")) }
    }

    // MARK: 5. dtypes in checkpoints, non-persistent buffers

    @Test("bool and int32 buffers round-trip a checkpoint with their dtype, in place; BOOL is one byte per element")
    func boolBuffers() throws {
        let url = temporaryFolder().appendingPathComponent("mask.safetensors")
        let net = MaskNet()
        #expect(net.stateDict().keys == ["mask", "counts"])
        #expect(net.namedBuffers().map(\.name) == ["mask", "counts", "cache", "optionalCache"])
        try net.save(to: url)
        let other = MaskNet()
        Tensor.noGrad { other.cache.fill(5) }
        let mask = other.mask
        other.mask = Tensor([0, 0, 0], dtype: .bool)
        let replaced = other.mask
        try other.load(from: url)
        #expect(other.mask === replaced && other.mask !== mask, "loading writes into the buffer that is there")
        #expect(other.mask.dtype == .bool && other.mask.toBoolArray() == [true, false, true])
        #expect(other.counts.dtype == .int32 && other.counts.toIntArray() == [3, -1])
        #expect(other.cache.toArray() == [5, 5], "non-persistent buffers are not loaded")
        // The file as Python's safetensors writes it: BOOL, 1 byte per element.
        let data = try Data(contentsOf: url)
        let length = Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as! [String: Any]
        let entry = header["mask"] as! [String: Any]
        #expect(entry["dtype"] as? String == "BOOL" && (entry["data_offsets"] as! [Int]).reduce(0, -) == -3)
        #expect((header["counts"] as! [String: Any])["dtype"] as? String == "I32")
        #expect(header["cache"] == nil && header["optionalCache"] == nil)
        #expect(throws: EmberError.stateDictMismatch(missing: [], unexpected: ["cache"], shapeMismatches: [])) {
            try other.loadStateDict(["mask": Tensor([1, 1, 1], dtype: .bool), "counts": Tensor([1, 2], dtype: .int32), "cache": Tensor.ones([2])])
        }
    }

    @Test("a Python safetensors file with F32, I32 and BOOL loads into a module with those dtypes", arguments: TestDevices.all)
    func pythonDtypes(_ d: Device) throws {
        let net = FixtureNet().to(d)
        let weight = net.weight
        try net.load(from: IOTests.fixtures.appendingPathComponent("python_tensors.safetensors"), strict: false)
        #expect(net.weight === weight && net.weight.toArray() == [0, 0.25, 0.5, 0.75, 1, 1.25])
        #expect(net.steps.dtype == .int32 && net.steps.toIntArray() == [1, -2, Int32.max] && net.steps.device == d)
        #expect(net.mask.dtype == .bool && net.mask.toBoolArray() == [true, false, true] && net.mask.device == d)
    }

    // MARK: 6. StateDict

    @Test("StateDict keeps insertion order, looks up by name, replaces in place and removes")
    func stateDictType() throws {
        var dict: StateDict = ["b": Tensor(1), "a": Tensor(2)]
        dict["c"] = Tensor(3)
        dict["b"] = Tensor(4)
        #expect(dict.keys == ["b", "a", "c"] && dict.count == 3 && dict["b"]!.item() == 4 && dict[1].name == "a")
        dict["a"] = nil
        #expect(dict.keys == ["b", "c"] && dict["c"]!.item() == 3 && dict["a"] == nil)
        #expect(StateDict([("x", Tensor(1))]).map(\.name) == ["x"])
        let net = Tensor.withRandomSeed(3) { MovableNet() }
        let other = MovableNet()
        try other.loadStateDict(net.stateDict())
        #expect(other.stateDict().map { $0.tensor.toArray() } == net.stateDict().map { $0.tensor.toArray() })
    }

    @Test("a StateDict given a name twice stops with a message")
    func stateDictDuplicate() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = StateDict([("w", Tensor(1)), ("w", Tensor(2))])
        }.map { #expect(stderrText($0).contains("StateDict: name 'w' given twice")) }
    }

    @Test("every scheduler resumes mid-schedule from its state dict exactly as an uninterrupted run")
    func schedulerResume() throws {
        let makers: [(String, (Optimizer) -> LRScheduler, (Optimizer) -> LRScheduler)] = [
            ("StepLR", { StepLR($0, stepSize: 2, gamma: 0.5) }, { StepLR($0, stepSize: 7, gamma: 0.9) }),
            ("ExponentialLR", { ExponentialLR($0, gamma: 0.8) }, { ExponentialLR($0, gamma: 0.1) }),
            ("CosineAnnealingLR", { CosineAnnealingLR($0, tMax: 5, etaMin: 0.01) }, { CosineAnnealingLR($0, tMax: 50) }),
            ("LinearLR", { LinearLR($0, startFactor: 0.25, totalIters: 4) }, { LinearLR($0, startFactor: 0.5, endFactor: 0.9, totalIters: 9) }),
            ("MultiStepLR", { MultiStepLR($0, milestones: [2, 5], gamma: 0.5) }, { MultiStepLR($0, milestones: [2, 5], gamma: 0.9) }),
            ("LambdaLR", { LambdaLR($0) { 1 / Float($0 + 1) } }, { LambdaLR($0) { 1 / Float($0 + 1) } }),
        ]
        for (name, make, makeOther) in makers {
            let opt = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 0.3)
            let scheduler = make(opt)
            var uninterrupted: [Float] = []
            for _ in 0..<8 { scheduler.step(); uninterrupted.append(opt.lr) }

            let first = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 0.3)
            let firstScheduler = make(first)
            for _ in 0..<3 { firstScheduler.step() }
            let optimizerState = first.stateDict(), schedulerState = firstScheduler.stateDict()
            #expect(schedulerState.keys.prefix(3) == ["last_epoch", "base_lrs", "_last_lr"], "\(name)")
            #expect(schedulerState["last_epoch"]!.dtype == .int32 && schedulerState["last_epoch"]!.toIntArray() == [3])

            // Resume on a fresh optimizer (lr restored mid-schedule) with a scheduler made with other settings.
            let resumed = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 1)
            try resumed.loadStateDict(optimizerState)
            let resumedScheduler = makeOther(resumed)
            try resumedScheduler.loadStateDict(schedulerState)
            #expect(resumed.lr == uninterrupted[2] && resumedScheduler.lastLR == uninterrupted[2] && resumedScheduler.epoch == 3, "\(name)")
            var rates = Array(uninterrupted.prefix(3))
            for _ in 0..<5 { resumedScheduler.step(); rates.append(resumed.lr) }
            #expect(rates == uninterrupted, "\(name) resumed")
        }
        let scheduler = StepLR(SGD([Tensor.zeros([1], requiresGrad: true)], lr: 1), stepSize: 2)
        #expect(throws: EmberError.stateDictMismatch(missing: ["_last_lr", "base_lrs", "gamma"], unexpected: ["T_max"],
                                                     shapeMismatches: ["step_size: expected a whole number >= 1, got 0.5"])) {
            try scheduler.loadStateDict(["last_epoch": Tensor(2), "step_size": Tensor(0.5), "T_max": Tensor(3)])
        }
        #expect(scheduler.epoch == 0)
    }

    @Test("MultiStepLR, LambdaLR and ReduceLROnPlateau give PyTorch's rates; a plateau scheduler resumes from its state dict")
    func moreSchedulers() throws {
        // torch.optim.lr_scheduler.MultiStepLR(SGD(lr=0.3), milestones=[2, 5, 5], gamma=0.5), 8 steps.
        let multi = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 0.3)
        let multiScheduler = MultiStepLR(multi, milestones: [5, 2, 5], gamma: 0.5)
        expectClose((0..<8).map { _ in multiScheduler.step(); return multi.lr }, [0.3, 0.15, 0.15, 0.15, 0.0375, 0.0375, 0.0375, 0.0375])
        // LambdaLR(SGD(lr=0.3), lambda e: 1 / (e + 1)): the rate at epoch 0, then 4 steps.
        let lambda = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 0.3)
        let lambdaScheduler = LambdaLR(lambda) { 1 / Float($0 + 1) }
        var rates = [lambda.lr]
        for _ in 0..<4 { lambdaScheduler.step(); rates.append(lambda.lr) }
        expectClose(rates, [0.3, 0.15, 0.1, 0.075, 0.06])
        // ReduceLROnPlateau(SGD(lr=0.3), factor=0.5, patience=2, cooldown=1, min_lr=0.05), one step per metric.
        let metrics: [Float] = [1, 0.9, 0.95, 0.93, 0.92, 0.91, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
        let expected: [Float] = [0.3, 0.3, 0.3, 0.3, 0.15, 0.15, 0.15, 0.15, 0.15, 0.075, 0.075, 0.075, 0.075, 0.05, 0.05]
        func plateau(_ opt: Optimizer) -> ReduceLROnPlateau { ReduceLROnPlateau(opt, factor: 0.5, patience: 2, cooldown: 1, minLR: 0.05) }
        let opt = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 0.3)
        let scheduler = plateau(opt)
        expectClose(metrics.map { scheduler.step($0); return opt.lr }, expected)
        #expect(scheduler.best == 0.5 && scheduler.badEpochs == 0 && scheduler.lastLR == opt.lr)
        // Resumed after 8 epochs (in cooldown, with a best), on a fresh optimizer and scheduler.
        let first = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 0.3)
        let firstScheduler = plateau(first)
        for m in metrics.prefix(8) { firstScheduler.step(m) }
        let resumed = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 1)
        try resumed.loadStateDict(first.stateDict())
        let resumedScheduler = ReduceLROnPlateau(resumed, patience: 9)
        try resumedScheduler.loadStateDict(firstScheduler.stateDict())
        expectClose(Array(expected.prefix(8)) + metrics.dropFirst(8).map { resumedScheduler.step($0); return resumed.lr }, expected)
        // mode max with an absolute threshold: ReduceLROnPlateau(mode='max', threshold=0.1, threshold_mode='abs', patience=0).
        let rising = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 0.3)
        let risingScheduler = ReduceLROnPlateau(rising, mode: .max, patience: 0, threshold: 0.1, thresholdMode: .abs)
        expectClose(([0.5, 0.55, 0.7, 0.75, 0.9] as [Float]).map { risingScheduler.step($0); return rising.lr }, [0.3, 0.03, 0.03, 0.003, 0.003])
    }

    @Test("ReduceLROnPlateau's step() without the metric stops with a message")
    func plateauNeedsMetric() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            ReduceLROnPlateau(SGD([Tensor.zeros([1], requiresGrad: true)], lr: 0.1)).step()
        }.map { #expect(stderrText($0).contains("ReduceLROnPlateau: step() needs the metric it watches; call step(_ metric:)")) }
    }

    // MARK: 7. in-place initialisers and apply

    /// Mean and standard deviation of `values`, in Double.
    static func moments(_ values: [Float]) -> (mean: Double, std: Double) {
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(values.count)
        return (mean, variance.squareRoot())
    }

    @Test("in-place initialisers keep the tensor, follow PyTorch's fans and gains, and give the right statistics", arguments: TestDevices.all)
    func initialisers(_ d: Device) {
        // 100,000 samples: the sample mean and std are within 1% of sigma (about 3 standard errors).
        let w = Tensor.zeros([250, 100, 2, 2], device: d, requiresGrad: true)  // fanIn 400, fanOut 1000
        let opt = SGD([w], lr: 0.1)
        func expectMoments(_ name: String, _ expectedMean: Double, _ expectedStd: Double, bound: Double? = nil) {
            let values = w.toArray()
            let (mean, std) = ModuleFidelityTests.moments(values)
            #expect(Swift.abs(mean - expectedMean) < 0.01 * expectedStd + 1e-7, "\(name) mean \(mean)")
            #expect(Swift.abs(std - expectedStd) < 0.01 * expectedStd, "\(name) std \(std), expected \(expectedStd)")
            if let bound { #expect(values.allSatisfy { Swift.abs(Double($0) - expectedMean) <= bound * (1 + 1e-6) }, "\(name) bound") }
        }
        Tensor.withRandomSeed(5) {
            #expect(Init.normal(w, mean: 1, std: 2) === w)
            expectMoments("normal", 1, 2)
            Init.uniform(w, low: -1, high: 3)
            expectMoments("uniform", 1, 4 / 12.0.squareRoot(), bound: 2)
            Init.kaimingUniform(w)  // gain sqrt(2), fan in 400: bound sqrt(3) * sqrt(2) / 20
            expectMoments("kaimingUniform", 0, 2.0.squareRoot() / 20, bound: 6.0.squareRoot() / 20)
            Init.kaimingUniform(w, a: Float(5).squareRoot())  // PyTorch's layer default: bound 1 / sqrt(fanIn)
            expectMoments("kaimingUniform a=sqrt(5)", 0, 1 / (20 * 3.0.squareRoot()), bound: 1.0 / 20)
            Init.kaimingNormal(w, mode: .fanOut, nonlinearity: .relu)
            expectMoments("kaimingNormal fanOut", 0, (2.0 / 1000).squareRoot())
            Init.xavierUniform(w, gain: 2)
            expectMoments("xavierUniform", 0, 2 * (2.0 / 1400).squareRoot(), bound: 2 * (6.0 / 1400).squareRoot())
            Init.xavierNormal(w)
            expectMoments("xavierNormal", 0, (2.0 / 1400).squareRoot())
            Init.truncNormal(w, mean: 0.5, std: 1, a: -1.5, b: 2.5)
            // Var of N(0, 1) truncated to ±2: 1 - 4 phi(2) / (Phi(2) - Phi(-2)) = 0.773741.
            expectMoments("truncNormal", 0.5, 0.773741.squareRoot(), bound: 2)
        }
        Init.zeros(w)
        #expect(w.toArray().allSatisfy { $0 == 0 })
        Init.ones(w)
        #expect(w.toArray().allSatisfy { $0 == 1 })
        Init.constant(w, -0.5)
        #expect(w.toArray().allSatisfy { $0 == -0.5 } && w.requiresGrad && w.isLeaf && w.device == d)
        // The optimizer made before initialisation still updates the tensor.
        w.sum().backward()
        opt.step()
        #expect(w.toArray().allSatisfy { Swift.abs($0 + 0.6) < 1e-6 })
        #expect(Tensor.withRandomSeed(9) { Init.normal(Tensor.zeros([64], device: d)).toArray() }
                == Tensor.withRandomSeed(9) { Init.normal(Tensor.zeros([64], device: d)).toArray() })
    }

    @Test("fans and gains match torch.nn.init")
    func fansAndGains() {
        #expect(Init.fans([4, 3]) == (3, 4) && Init.fans([4, 3, 2, 5]) == (30, 40) && Init.fans([4, 3, 0]) == (0, 0))
        // torch.nn.init.calculate_gain: tanh 5/3, relu sqrt(2), leaky_relu(0.2) sqrt(2 / 1.04), selu 3/4.
        expectClose([Init.calculateGain(.tanh), Init.calculateGain(.relu), Init.calculateGain(.leakyRelu, param: 0.2),
                     Init.calculateGain(.leakyRelu), Init.calculateGain(.selu), Init.calculateGain(.sigmoid)],
                    [5.0 / 3, 1.4142135, 1.3867505, 1.4141428, 0.75, 1])
    }

    @Test("fans of a tensor with fewer than 2 dims stop with a message")
    func fansOfVector() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            Init.xavierUniform(Tensor.zeros([3]))
        }.map { #expect(stderrText($0).contains("Init.xavierUniform: fan in and fan out need a tensor of at least 2 dims, got shape [3]")) }
    }

    @Test("apply visits children before their parent, each module once; modules() and children() de-duplicate")
    func applyOrder() {
        let shared = Linear(2, 2)
        let inner = Sequential(ReLU(), shared)
        let outer = Sequential(shared, inner, Tanh())
        var order: [String] = []
        outer.apply { order.append(String(describing: type(of: $0))) }
        #expect(order == ["Linear", "ReLU", "Sequential", "Tanh", "Sequential"])
        #expect(outer.modules().count == 5 && outer.namedModules().map(\.name) == ["", "0", "1", "1.0", "2"])
        #expect(outer.children().count == 3)
        outer.apply { module in
            if let linear = module as? Linear { Init.zeros(linear.weight) }
        }
        #expect(shared.weight.toArray() == [0, 0, 0, 0])
        outer.eval()
        #expect(outer.modules().allSatisfy { !$0.isTraining })
    }

    // MARK: 8. LayerNorm(n)

    @Test("LayerNorm(n) is LayerNorm([n])")
    func layerNormInt() {
        let x = Tensor.withRandomSeed(2) { Tensor.randn([3, 4]) }
        let a = LayerNorm(4), b = LayerNorm([4])
        #expect(a.weight!.shape == [4] && a.stateDict().keys == ["weight", "bias"])
        #expect(a(x).toArray() == b(x).toArray())
        #expect(LayerNorm(4, eps: 1e-3, elementwiseAffine: false).stateDict().isEmpty)
    }
}
