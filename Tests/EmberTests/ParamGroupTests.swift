import Foundation
import Testing
@testable import Ember

/// Parameter groups: each group's own learning rate and weight decay, per-group schedules and
/// state dicts. Reference values come from PyTorch 2.13 (`torch.optim.*` with the same groups).
@Suite("Optimizer parameter groups")
struct ParamGroupTests {
    /// Three steps of loss = sum(a^3) + sum(b^2) / 2 + sum(c^2 * [1, 3]) with `make`'s optimizer,
    /// calling `before(step, optimizer)` first each time.
    static func run(_ d: Device, _ make: (Tensor, Tensor, Tensor) -> Optimizer,
                    before: (Int, Optimizer) -> Void = { _, _ in }) -> (a: [Float], b: [Float], c: [Float]) {
        let a = Tensor([1, -2, 0.5], device: d, requiresGrad: true)
        let b = Tensor(shape: [2, 2], data: [0.3, -0.7, 1.5, 2.0], device: d, requiresGrad: true)
        let c = Tensor([0.25, -1], device: d, requiresGrad: true)
        let weights = Tensor([1, 3], device: d)
        let opt = make(a, b, c)
        for step in 0..<3 {
            before(step, opt)
            opt.zeroGrad()
            ((a * a * a).sum() + (b * b).sum() * 0.5 + (c * c * weights).sum()).backward()
            opt.step()
        }
        return (a.toArray(), b.toArray(), c.toArray())
    }

    @Test("AdamW groups get their own weight decay and learning rate, changed per step", arguments: TestDevices.all)
    func adamW(_ d: Device) {
        let (a, b, c) = ParamGroupTests.run(d, { a, b, c in
            AdamW([ParamGroup(params: [a, b], weightDecay: 0.1), ParamGroup(params: [c], lr: 0.05, weightDecay: 0)],
                  lr: 1e-2, betas: (0.9, 0.99))
        }, before: { step, opt in if step == 2 { opt.paramGroups[0].lr = 0.02 } })
        // torch.optim.AdamW([{"params": [a, b], "weight_decay": 0.1}, {"params": [c], "weight_decay": 0.0, "lr": 0.05}],
        //                   lr=1e-2, betas=(0.9, 0.99)), param_groups[0]["lr"] = 0.02 before the third step.
        expectClose(a, [0.9560924172401428, -2.0319719314575195, 0.4581313729286194], rtol: 2e-6)
        expectClose(b, [0.2589147984981537, -0.6572787761688232, 1.4540696144104004, 1.9520694017410278], rtol: 2e-6)
        expectClose(c, [0.10234237462282181, -0.8502901792526245], rtol: 2e-6)
    }

    @Test("SGD, Adam and RMSprop groups match PyTorch", arguments: TestDevices.all)
    func others(_ d: Device) {
        // torch.optim.SGD([{"params": [a]}, {"params": [c], "lr": 0.5, "weight_decay": 0.2}], lr=0.1, momentum=0.9)
        var r = ParamGroupTests.run(d) { a, _, c in
            SGD([ParamGroup(params: [a]), ParamGroup(params: [c], lr: 0.5, weightDecay: 0.2)], lr: 0.1, momentum: 0.9)
        }
        expectClose(r.a, [-0.11632664501667023, -27.304370880126953, 0.16619421541690826], rtol: 2e-6)
        expectClose(r.c, [-0.17349998652935028, 0.0540006160736084], rtol: 2e-6, atol: 1e-6)
        // torch.optim.RMSprop([{"params": [a], "weight_decay": 0.1}, {"params": [c], "lr": 0.05}], lr=0.01)
        r = ParamGroupTests.run(d) { a, _, c in
            RMSprop([ParamGroup(params: [a], weightDecay: 0.1), ParamGroup(params: [c], lr: 0.05)], lr: 0.01)
        }
        expectClose(r.a, [0.7884653210639954, -2.236760139465332, 0.3070078194141388], rtol: 2e-6)
        expectClose(r.c, [-0.03819361329078674, -0.15484364330768585], rtol: 2e-5, atol: 1e-6)
        // torch.optim.Adam([{"params": [a], "weight_decay": 0.1}, {"params": [c], "lr": 0.05}], lr=0.01)
        r = ParamGroupTests.run(d) { a, _, c in
            Adam([ParamGroup(params: [a], weightDecay: 0.1), ParamGroup(params: [c], lr: 0.05)], lr: 0.01)
        }
        expectClose(r.a, [0.9700207114219666, -2.0300092697143555, 0.47004470229148865], rtol: 2e-6)
        expectClose(r.c, [0.1024356260895729, -0.8503116965293884], rtol: 2e-6)
    }

    @Test("nil group settings take the optimizer's; lr = x sets every group")
    func defaults() {
        let opt = AdamW([ParamGroup(params: [Tensor.zeros([2], requiresGrad: true)]),
                         ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)], lr: 0.5, weightDecay: 0)], lr: 0.01)
        #expect(opt.paramGroups.map(\.lr) == [0.01, 0.5] && opt.paramGroups.map(\.weightDecay) == [0.01, 0])
        #expect(opt.lr == 0.01 && opt.lr(ofParameter: 1) == 0.5 && opt.weightDecay(ofParameter: 0) == 0.01)
        opt.lr = 0.2
        #expect(opt.paramGroups.map(\.lr) == [0.2, 0.2])
        opt.paramGroups[1].lr = nil
        #expect(opt.paramGroups[1].lr == 0.01, "nil restores the optimizer's value")
        #expect(opt.parameters.count == 2 && opt.stateDict().map(\.name) == ["param_groups.0.lr", "param_groups.1.lr"])
    }

    @Test("schedulers keep one base rate per group, as PyTorch's base_lrs")
    func schedulers() throws {
        let opt = SGD([ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)]),
                       ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)], lr: 0.02)], lr: 0.1)
        let s = CosineAnnealingLR(opt, tMax: 4, etaMin: 0.01)
        var rates = [s.lastLRs]
        for _ in 0..<3 { s.step(); rates.append(s.lastLRs) }
        // torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.01).get_last_lr()
        let torch: [[Float]] = [[0.1, 0.02], [0.08681980515339464, 0.01853553390593274], [0.05500000000000001, 0.015],
                                [0.023180194846605363, 0.011464466094067262]]
        expectClose(rates.flatMap { $0 }, torch.flatMap { $0 })
        #expect(opt.paramGroups.map(\.lr) == s.lastLRs)
        let saved = s.stateDict()
        #expect(saved["base_lrs"]!.shape == [2] && saved["_last_lr"]!.toArray() == s.lastLRs)
        let other = SGD([ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)]),
                         ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)])], lr: 1)
        let resumed = CosineAnnealingLR(other, tMax: 9)
        try resumed.loadStateDict(saved)
        resumed.step()
        s.step()
        #expect(resumed.lastLRs == s.lastLRs && other.paramGroups.map(\.lr) == s.lastLRs)
        let single = CosineAnnealingLR(SGD([Tensor.zeros([1], requiresGrad: true)], lr: 1), tMax: 4)
        #expect(throws: EmberError.stateDictMismatch(missing: [], unexpected: [], shapeMismatches: [
            "base_lrs: expected one rate per parameter group (1), got shape [2]",
            "_last_lr: expected one rate per parameter group (1), got shape [2]"])) { try single.loadStateDict(saved) }
    }

    @Test("WarmupCosineLR is nanoGPT's get_lr")
    func warmupCosine() {
        let its = [0, 1, 50, 99, 100, 101, 500, 1050, 1999, 2000, 2001, 3000]
        // nanoGPT's get_lr(it) with learning_rate 1e-3, warmup_iters 100, lr_decay_iters 2000, min_lr 1e-4 (Python floats).
        let nanoGPT: [Float] = [9.900990099009901e-06, 1.9801980198019803e-05, 0.000504950495049505, 0.0009900990099009901,
                                0.001, 0.0009999993848585915, 0.0009051132292283772, 0.00055, 0.00010000061514140841,
                                0.0001, 0.0001, 0.0001]
        expectClose(its.map { WarmupCosineLR.rate(iteration: $0, base: 1e-3, warmupIters: 100, lrDecayIters: 2000, minLR: 1e-4) },
                    nanoGPT, rtol: 1e-6, atol: 0)
        let opt = AdamW([ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)]),
                         ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)], weightDecay: 0)], lr: 1e-3)
        let s = WarmupCosineLR(opt, warmupIters: 100, lrDecayIters: 2000, minLR: 1e-4)
        var rates: [Float] = [opt.lr]
        for it in 1...3000 {
            s.step()
            if its.contains(it) { rates.append(opt.lr) }
            #expect(opt.paramGroups[1].lr == opt.lr)
        }
        expectClose(rates, nanoGPT, rtol: 1e-6, atol: 0)
    }

    @Test("a two-group AdamW resumes exactly from its state dict", arguments: TestDevices.all)
    func resume(_ d: Device) throws {
        func make(_ w: Tensor, _ g: Tensor) -> AdamW {
            AdamW([ParamGroup(params: [w], weightDecay: 0.1), ParamGroup(params: [g], weightDecay: 0)], lr: 1e-2, betas: (0.9, 0.99))
        }
        func step(_ w: Tensor, _ g: Tensor, _ opt: Optimizer) {
            opt.zeroGrad()
            ((w * w * w).sum() + (g * w.slice(dim: 0, start: 0, end: 2)).sum()).backward()
            opt.step()
        }
        let w = Tensor([1, -2, 0.5], device: d, requiresGrad: true), g = Tensor([0.5, 2], device: d, requiresGrad: true)
        let opt = make(w, g)
        let schedule = WarmupCosineLR(opt, warmupIters: 2, lrDecayIters: 10, minLR: 1e-3)
        for _ in 0..<3 { step(w, g, opt); schedule.step() }
        let saved = StateDict(opt.stateDict().map { ($0.name, $0.tensor.clone()) })
        let savedSchedule = schedule.stateDict()
        #expect(saved.keys == ["param_groups.0.lr", "param_groups.1.lr", "state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step",
                               "state.1.exp_avg", "state.1.exp_avg_sq", "state.1.step"].sorted { a, b in
            saved.keys.firstIndex(of: a)! < saved.keys.firstIndex(of: b)! })
        let w2 = Tensor(shape: [3], data: w.toArray(), device: d, requiresGrad: true)
        let g2 = Tensor(shape: [2], data: g.toArray(), device: d, requiresGrad: true)
        let resumed = make(w2, g2)
        let resumedSchedule = WarmupCosineLR(resumed, warmupIters: 2, lrDecayIters: 10, minLR: 1e-3)
        try resumed.loadStateDict(saved)
        try resumedSchedule.loadStateDict(savedSchedule)
        for _ in 0..<3 {
            step(w, g, opt); schedule.step()
            step(w2, g2, resumed); resumedSchedule.step()
        }
        #expect(w.toArray() == w2.toArray() && g.toArray() == g2.toArray() && resumed.paramGroups.map(\.lr) == opt.paramGroups.map(\.lr))
    }

    @Test("an old single-group state dict loads into group 0 of a grouped optimizer")
    func oldFiles() throws {
        let opt = SGD([ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)]),
                       ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)], lr: 0.3)], lr: 0.1)
        try opt.loadStateDict(["param_groups.0.lr": Tensor(Float(0.05))])
        #expect(opt.paramGroups.map(\.lr) == [0.05, 0.3])
        #expect(throws: EmberError.stateDictMismatch(missing: [], unexpected: ["param_groups.2.lr"], shapeMismatches: [])) {
            try opt.loadStateDict(["param_groups.2.lr": Tensor(Float(0.05))])
        }
    }

    @Test("a group's parameters cannot be replaced, and its rates are checked")
    func misuse() async {
        let replaced = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let opt = AdamW([Tensor.zeros([1], requiresGrad: true)])
            opt.paramGroups[0] = ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)])
        }
        #expect(stderrText(replaced).contains("AdamW: paramGroups' parameters cannot change"))
        let negative = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let opt = SGD([ParamGroup(params: [Tensor.zeros([1], requiresGrad: true)])], lr: 0.1)
            opt.paramGroups[0].weightDecay = -1
        }
        #expect(stderrText(negative).contains("SGD: weightDecay must be a finite number >= 0, got -1.0"))
        let shared = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let p = Tensor.zeros([1], requiresGrad: true)
            _ = AdamW([ParamGroup(params: [p]), ParamGroup(params: [p], weightDecay: 0)])
        }
        #expect(stderrText(shared).contains("AdamW: parameters 0 and 1 are the same tensor"))
    }
}
