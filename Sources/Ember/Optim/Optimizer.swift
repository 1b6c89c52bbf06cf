import Foundation

/// A set of parameters with its own hyper-parameters (PyTorch's `param_groups` entries):
/// nanoGPT, for example, decays its 2-D weights and not its biases and LayerNorm weights.
///
/// A nil `lr` or `weightDecay` means the optimizer's own value (its `lr:`/`weightDecay:`
/// argument); the optimizer fills them in when it adopts the group, so the groups in
/// `Optimizer.paramGroups` always hold numbers. Setting one back to nil there restores the
/// optimizer's value.
public struct ParamGroup {
    /// The group's parameters (fixed once an optimizer holds them).
    public let params: [Tensor]
    /// The group's learning rate (schedulers set it per group).
    public var lr: Float?
    /// The group's weight decay (L2 for SGD, Adam and RMSprop; decoupled for AdamW).
    public var weightDecay: Float?

    /// A group of `params`; nil hyper-parameters take the optimizer's values.
    public init(params: [Tensor], lr: Float? = nil, weightDecay: Float? = nil) {
        self.params = params
        self.lr = lr
        self.weightDecay = weightDecay
    }
}

/// The base of every optimizer: the parameters it updates in parameter groups (each with a
/// learning rate and a weight decay), per-parameter state tensors (on each parameter's
/// device, updated in place), and `zeroGrad()`.
open class Optimizer {
    /// Every parameter updated by `step()`, the groups' parameters in order (the indices of
    /// `steps` and of the state dict's `state.<i>` entries, as PyTorch numbers them).
    public let parameters: [Tensor]
    /// The parameter groups; change `paramGroups[i].lr` (or `weightDecay`) between steps to
    /// give a group its own schedule. A group's parameters cannot change.
    public var paramGroups: [ParamGroup] {
        didSet { adoptGroups(previous: oldValue) }
    }
    /// The learning rate of the first group; setting it sets every group's (schedulers do).
    public var lr: Float {
        get { groupLR[0] }
        set {
            Optimizer.checkRate(newValue, name: "lr", in: type(of: self))
            for g in paramGroups.indices { paramGroups[g].lr = newValue }
        }
    }
    /// The optimizer's own learning rate and weight decay, used by groups that give none.
    let defaultLR: Float, defaultWeightDecay: Float
    /// Each group's learning rate and weight decay, resolved for `update`.
    private(set) var groupLR: [Float] = [], groupWeightDecay: [Float] = []
    /// The group of each parameter.
    let groupIndex: [Int]
    /// Updates applied to each parameter so far (PyTorch's per-parameter `step`): a parameter
    /// without a gradient is skipped by `step()` and keeps its count.
    public private(set) var steps: [Int]
    /// Per-parameter state by name (`momentum_buffer`, `exp_avg`, ...), created on first use.
    var state: [[String: Tensor]]
    /// Whether `step()` updates each parameter with one fused backend call (one kernel launch)
    /// instead of the composed elementwise ops; `Fusion.enabled` (`EMBER_FUSION=0` turns it
    /// off) unless set. Both give the same values: bit for bit for float32 on the CPU, within
    /// Float32 rounding on OpenCL; float16 and bfloat16 parameters are rounded once per
    /// stored value instead of once per op. A parameter whose state has another dtype than
    /// itself (float32 state loaded for a narrow parameter), or whose device is still
    /// compiling the fused kernels, takes the composed update.
    public var fused = Fusion.enabled
    /// The fused updates of the running `step()`, launched together once it has visited every
    /// parameter.
    let fusedUpdates = OptimizerUpdates()

    /// An optimizer over `parameters` (which must be distinct float32 leaves) with learning
    /// rate `lr`, in one group. The optimizer holds the tensor objects: moving the model with
    /// `to(_:)` or re-initialising it in place afterwards keeps it valid.
    public convenience init(_ parameters: [Tensor], lr: Float) {
        self.init([ParamGroup(params: parameters)], lr: lr, weightDecay: 0)
    }

    /// An optimizer over parameter groups; groups without their own `lr` or `weightDecay`
    /// get these. Every parameter must be a distinct float32 leaf, in one group only; at
    /// least one group must hold parameters.
    public init(_ groups: [ParamGroup], lr: Float, weightDecay: Float) {
        let parameters = groups.flatMap(\.params)
        check(!parameters.isEmpty, "\(type(of: self)): got an empty parameter list")
        var seen: [ObjectIdentifier: Int] = [:]
        for (i, p) in parameters.enumerated() {
            check(p.isLeaf && p.dtype.isFloatingPoint, "\(type(of: self)): parameters must be floating-point leaf tensors")
            if let j = seen.updateValue(i, forKey: ObjectIdentifier(p)) {
                check(false, "\(type(of: self)): parameters \(j) and \(i) are the same tensor; it would be updated twice per step")
            }
        }
        Optimizer.checkRate(lr, name: "lr", in: Self.self)
        Optimizer.checkRate(weightDecay, name: "weightDecay", in: Self.self)
        self.parameters = parameters
        self.defaultLR = lr
        self.defaultWeightDecay = weightDecay
        self.groupIndex = groups.enumerated().flatMap { g, group in Array(repeating: g, count: group.params.count) }
        self.steps = Array(repeating: 0, count: parameters.count)
        self.state = Array(repeating: [:], count: parameters.count)
        self.paramGroups = groups
        adoptGroups(previous: nil)
    }

    /// Fills the groups' nil hyper-parameters with the optimizer's, checks them, and resolves
    /// them for `update`; stops when a group's parameters were replaced.
    private func adoptGroups(previous: [ParamGroup]?) {
        if let previous {
            check(paramGroups.count == previous.count && zip(paramGroups, previous).allSatisfy { new, old in
                new.params.count == old.params.count && zip(new.params, old.params).allSatisfy { $0 === $1 }
            }, "\(type(of: self)): paramGroups' parameters cannot change (\(previous.count) groups before, \(paramGroups.count) now); make a new optimizer")
        }
        var lrs: [Float] = [], decays: [Float] = []
        for group in paramGroups {
            let lr = group.lr ?? defaultLR, decay = group.weightDecay ?? defaultWeightDecay
            Optimizer.checkRate(lr, name: "lr", in: type(of: self))
            Optimizer.checkRate(decay, name: "weightDecay", in: type(of: self))
            lrs.append(lr)
            decays.append(decay)
        }
        groupLR = lrs
        groupWeightDecay = decays
        if paramGroups.contains(where: { $0.lr == nil || $0.weightDecay == nil }) {
            var filled = paramGroups
            for g in filled.indices {
                filled[g].lr = lrs[g]
                filled[g].weightDecay = decays[g]
            }
            paramGroups = filled  // one assignment: its didSet finds nothing left to fill
        }
    }

    /// The learning rate of group `group`.
    public func lr(ofGroup group: Int) -> Float { groupLR[group] }

    /// The learning rate of parameter `index`'s group.
    public func lr(ofParameter index: Int) -> Float { groupLR[groupIndex[index]] }

    /// The weight decay of parameter `index`'s group.
    public func weightDecay(ofParameter index: Int) -> Float { groupWeightDecay[groupIndex[index]] }

    /// Stops unless hyper-parameter `name` of optimizer `owner` is finite and >= 0.
    static func checkRate(_ value: Float, name: String, in owner: Optimizer.Type) {
        check(value.isFinite && value >= 0, "\(owner): \(name) must be a finite number >= 0, got \(value)")
    }

    /// The names of the per-parameter state tensors this optimizer keeps.
    open var stateNames: Set<String> { [] }

    /// Clears every parameter's gradient.
    public func zeroGrad() {
        for p in parameters { p.zeroGrad() }
    }

    /// Applies one update to every parameter that has a gradient. State tensors of a
    /// parameter that moved to another device (`Module.to(_:)`) move with it first.
    public func step() {
        Tensor.noGrad {
            for (i, p) in parameters.enumerated() {
                guard let grad = p.grad else { continue }
                var moved: [ObjectIdentifier: (old: Storage, new: Storage)] = [:]
                for t in state[i].values where t.device != p.device { t.moveStorage(to: p.device, sharing: &moved) }
                steps[i] += 1
                update(i, p, grad)
            }
            fusedUpdates.run()
            // The composed updates' lazy graphs (OpenCL) run now, not at the next read.
            var flushed = Set<Device>()
            for p in parameters where p.grad != nil && flushed.insert(p.device).inserted { p.backend.flush() }
        }
    }

    /// The update rule for parameter `index` (runs under `noGrad`, after `steps[index]` has
    /// been incremented); `lr(ofParameter:)` and `weightDecay(ofParameter:)` give its group's
    /// hyper-parameters.
    open func update(_ index: Int, _ parameter: Tensor, _ gradient: Tensor) {
        fatalError("\(type(of: self)) must override update(_:_:_:)")
    }

    /// Whether `p` takes the fused update now: `fused`, and its device's fused kernels are
    /// built (the composed update runs while they compile, so a cold start does not wait).
    func fusedReady(_ p: Tensor) -> Bool {
        fused && p.backend.kernelsReady(.optimizer, dtype: p.dtype)
    }

    /// The state tensors `names` of parameter `index` for a fused update, zeros where missing;
    /// nil (the composed update runs) when fusion is off or a state has another dtype than
    /// the parameter.
    func fusedStates(_ index: Int, _ names: [String], like p: Tensor) -> [Tensor]? {
        guard fusedReady(p), !names.contains(where: { state[index][$0].map { $0.dtype != p.dtype } ?? false }) else { return nil }
        return names.map { name in stateTensor(index, name) { Tensor.zeros(like: p) } }
    }

    /// The state tensor `name` of parameter `index`, created by `initial` on first use.
    func stateTensor(_ index: Int, _ name: String, _ initial: () -> Tensor) -> Tensor {
        if let t = state[index][name] { return t }
        let t = initial().contiguousCopy()
        state[index][name] = t
        return t
    }

    /// Optimizer state as named tensors for checkpoints, flattened from PyTorch's layout:
    /// each group's `param_groups.<g>.lr`, then for each parameter that has been updated
    /// `state.<i>.step` and its state tensors (`state.<i>.exp_avg`, ...), `i` counting the
    /// parameters across groups. The tensors are the live state.
    public func stateDict() -> StateDict {
        var out: [(String, Tensor)] = groupLR.enumerated().map { ("param_groups.\($0).lr", Tensor($1)) }
        for (i, entries) in state.enumerated() where steps[i] > 0 || !entries.isEmpty {
            out.append(("state.\(i).step", Tensor(Float(steps[i]))))
            for name in entries.keys.sorted() { out.append(("state.\(i).\(name)", entries[name]!)) }
        }
        return StateDict(out)
    }

    /// Restores state saved by `stateDict()`; tensors are copied to each parameter's device
    /// and dtype (as PyTorch's `load_state_dict`: a bfloat16 parameter's moments are bfloat16).
    /// A group whose rate the dict lacks keeps its rate (a single-group file sets group 0).
    /// Throws, changing nothing, when a key is unknown or a tensor has the wrong shape.
    public func loadStateDict(_ dict: StateDict) throws {
        var unexpected: [String] = [], shapes: [String] = []
        var newLR = groupLR, newSteps = steps, newState = state
        for (key, tensor) in dict {
            let parts = key.split(separator: ".", maxSplits: 2).map(String.init)
            if parts.count == 3, parts[0] == "param_groups", parts[2] == "lr", let g = Int(parts[1]), paramGroups.indices.contains(g) {
                guard tensor.count == 1, tensor.item().isFinite, tensor.item() >= 0 else {
                    shapes.append("\(key): expected a finite rate >= 0, got \(Shape.describe(tensor.shape))")
                    continue
                }
                newLR[g] = tensor.item()
                continue
            }
            guard parts.count == 3, parts[0] == "state", let i = Int(parts[1]), parameters.indices.contains(i),
                  parts[2] == "step" || stateNames.contains(parts[2]) else {
                unexpected.append(key)
                continue
            }
            if parts[2] == "step" {
                guard tensor.count == 1, let step = Int(exactly: tensor.item()), step >= 0 else {
                    shapes.append("\(key): expected a step count >= 0")
                    continue
                }
                newSteps[i] = step
            } else if tensor.shape != parameters[i].shape {
                shapes.append("\(key): expected \(Shape.describe(parameters[i].shape)), got \(Shape.describe(tensor.shape))")
            } else {
                newState[i][parts[2]] = tensor.to(parameters[i].device, dtype: parameters[i].dtype).detach().contiguousCopy()
            }
        }
        if !unexpected.isEmpty || !shapes.isEmpty {
            throw EmberError.stateDictMismatch(missing: [], unexpected: unexpected.sorted(), shapeMismatches: shapes.sorted())
        }
        for g in paramGroups.indices { paramGroups[g].lr = newLR[g] }
        steps = newSteps
        state = newState
    }
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, exactly as
/// `torch.optim.SGD`.
public final class SGD: Optimizer {
    let momentum: Float, dampening: Float, nesterov: Bool

    /// SGD with PyTorch's hyper-parameters.
    public convenience init(_ parameters: [Tensor], lr: Float, momentum: Float = 0, dampening: Float = 0,
                            nesterov: Bool = false, weightDecay: Float = 0) {
        self.init([ParamGroup(params: parameters)], lr: lr, momentum: momentum, dampening: dampening,
                  nesterov: nesterov, weightDecay: weightDecay)
    }

    /// SGD over parameter groups; `lr` and `weightDecay` are the values of groups that give none.
    public init(_ groups: [ParamGroup], lr: Float, momentum: Float = 0, dampening: Float = 0,
                nesterov: Bool = false, weightDecay: Float = 0) {
        Optimizer.checkRate(momentum, name: "momentum", in: SGD.self)
        Optimizer.checkRate(dampening, name: "dampening", in: SGD.self)
        check(!nesterov || (momentum > 0 && dampening == 0), "SGD: nesterov needs momentum > 0 and zero dampening")
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        super.init(groups, lr: lr, weightDecay: weightDecay)
    }

    override public var stateNames: Set<String> { ["momentum_buffer"] }

    override public func update(_ index: Int, _ p: Tensor, _ grad: Tensor) {
        let buffer = state[index]["momentum_buffer"]
        guard fusedReady(p), buffer.map({ $0.dtype == p.dtype }) ?? true else { return composedUpdate(index, p, grad) }
        var states: [Tensor] = []
        if momentum != 0 {
            if let buffer {
                states = [buffer]
            } else {
                // The first step sets the buffer to the gradient: it is written before it is read.
                let created = Tensor(uninitialized: p.shape, dtype: p.dtype, device: p.device, op: "momentum_buffer")
                state[index]["momentum_buffer"] = created
                states = [created]
            }
        }
        let rule = OptimizerRule.SGDStep(lr: lr(ofParameter: index), weightDecay: weightDecay(ofParameter: index), momentum: momentum,
                                         keep: 1 - dampening, dampened: dampening != 0, nesterov: nesterov,
                                         firstStep: momentum != 0 && buffer == nil)
        fusedUpdates.add(.sgd(rule), parameter: p, gradient: grad, states: states)
    }

    /// The update in composed tensor ops: what `EMBER_FUSION=0` runs, and the reference the
    /// fused update is tested against.
    func composedUpdate(_ index: Int, _ p: Tensor, _ grad: Tensor) {
        let weightDecay = weightDecay(ofParameter: index)
        var g = weightDecay != 0 ? grad + p * weightDecay : grad
        if momentum != 0 {
            if let buffer = state[index]["momentum_buffer"] {
                buffer *= momentum
                buffer += dampening != 0 ? g * (1 - dampening) : g
                g = nesterov ? g + buffer * momentum : buffer
            } else {
                let buffer = stateTensor(index, "momentum_buffer") { g }
                g = nesterov ? g + buffer * momentum : buffer
            }
        }
        p -= g * lr(ofParameter: index)
    }
}

/// Adam (`torch.optim.Adam`), with L2 weight decay added to the gradient; `amsgrad` divides by
/// the largest second moment seen so far.
public class Adam: Optimizer {
    let beta1: Float, beta2: Float, eps: Float
    /// Weight decay applied to the parameter itself (AdamW) instead of the gradient.
    let decoupled: Bool
    /// Whether the denominator uses the largest second moment so far (AMSGrad, state `max_exp_avg_sq`).
    let amsgrad: Bool

    /// Adam with PyTorch's defaults.
    public convenience init(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                            eps: Float = 1e-8, weightDecay: Float = 0, amsgrad: Bool = false) {
        self.init([ParamGroup(params: parameters)], lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: false, amsgrad: amsgrad)
    }

    /// Adam over parameter groups; `lr` and `weightDecay` are the values of groups that give none.
    public convenience init(_ groups: [ParamGroup], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                            eps: Float = 1e-8, weightDecay: Float = 0, amsgrad: Bool = false) {
        self.init(groups, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: false, amsgrad: amsgrad)
    }

    init(_ groups: [ParamGroup], lr: Float, betas: (Float, Float), eps: Float, weightDecay: Float, decoupled: Bool, amsgrad: Bool) {
        let owner: Optimizer.Type = decoupled ? AdamW.self : Adam.self
        check(betas.0 >= 0 && betas.0 < 1 && betas.1 >= 0 && betas.1 < 1, "\(owner): betas must be in [0, 1), got \(betas)")
        Optimizer.checkRate(eps, name: "eps", in: owner)
        beta1 = betas.0
        beta2 = betas.1
        self.eps = eps
        self.decoupled = decoupled
        self.amsgrad = amsgrad
        super.init(groups, lr: lr, weightDecay: weightDecay)
    }

    override public var stateNames: Set<String> { Set(["exp_avg", "exp_avg_sq"] + (amsgrad ? ["max_exp_avg_sq"] : [])) }

    override public func update(_ index: Int, _ p: Tensor, _ grad: Tensor) {
        // AMSGrad runs composed (in-place ops, which the lazy graphs fuse on OpenCL).
        guard !amsgrad, let states = fusedStates(index, ["exp_avg", "exp_avg_sq"], like: p) else { return composedUpdate(index, p, grad) }
        let lr = lr(ofParameter: index), weightDecay = weightDecay(ofParameter: index)
        let t = Float(steps[index])
        let rule = OptimizerRule.AdamStep(weightDecay: weightDecay, decoupled: decoupled, decayFactor: 1 - lr * weightDecay,
                                          beta1: beta1, oneMinusBeta1: 1 - beta1, beta2: beta2, oneMinusBeta2: 1 - beta2,
                                          stepSize: lr / (1 - Foundation.pow(beta1, t)), correction2: 1 - Foundation.pow(beta2, t),
                                          eps: eps)
        fusedUpdates.add(.adam(rule), parameter: p, gradient: grad, states: states)
    }

    /// The update in composed tensor ops: what `EMBER_FUSION=0` runs, and the reference the
    /// fused update is tested against.
    func composedUpdate(_ index: Int, _ p: Tensor, _ grad: Tensor) {
        let lr = lr(ofParameter: index), weightDecay = weightDecay(ofParameter: index)
        var g = grad
        if weightDecay != 0 {
            if decoupled { p *= 1 - lr * weightDecay } else { g = g + p * weightDecay }
        }
        let m = stateTensor(index, "exp_avg") { Tensor.zeros(like: p) }
        let v = stateTensor(index, "exp_avg_sq") { Tensor.zeros(like: p) }
        m *= beta1
        m += g * (1 - beta1)
        v *= beta2
        v += g * g * (1 - beta2)
        let t = Float(steps[index])
        let correction1 = 1 - Foundation.pow(beta1, t)
        let correction2 = 1 - Foundation.pow(beta2, t)
        var second = v
        if amsgrad {
            second = stateTensor(index, "max_exp_avg_sq") { Tensor.zeros(like: p) }
            second.copy(from: second.maximum(v))
        }
        p -= m * (lr / correction1) / ((second / correction2).sqrt() + eps)
    }
}

/// AdamW (`torch.optim.AdamW`): Adam with decoupled weight decay.
public final class AdamW: Adam {
    /// AdamW with PyTorch's defaults.
    public init(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 1e-2, amsgrad: Bool = false) {
        super.init([ParamGroup(params: parameters)], lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: true, amsgrad: amsgrad)
    }

    /// AdamW over parameter groups (nanoGPT: `[ParamGroup(params: decay, weightDecay: 0.1),
    /// ParamGroup(params: noDecay, weightDecay: 0)]`); `lr` and `weightDecay` are the values
    /// of groups that give none.
    public init(_ groups: [ParamGroup], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 1e-2, amsgrad: Bool = false) {
        super.init(groups, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: true, amsgrad: amsgrad)
    }
}

/// RMSprop (`torch.optim.RMSprop`), with optional momentum and centering.
public final class RMSprop: Optimizer {
    let alpha: Float, eps: Float, momentum: Float, centered: Bool

    /// RMSprop with PyTorch's defaults.
    public convenience init(_ parameters: [Tensor], lr: Float = 1e-2, alpha: Float = 0.99, eps: Float = 1e-8,
                            weightDecay: Float = 0, momentum: Float = 0, centered: Bool = false) {
        self.init([ParamGroup(params: parameters)], lr: lr, alpha: alpha, eps: eps, weightDecay: weightDecay,
                  momentum: momentum, centered: centered)
    }

    /// RMSprop over parameter groups; `lr` and `weightDecay` are the values of groups that give none.
    public init(_ groups: [ParamGroup], lr: Float = 1e-2, alpha: Float = 0.99, eps: Float = 1e-8,
                weightDecay: Float = 0, momentum: Float = 0, centered: Bool = false) {
        check(alpha >= 0 && alpha <= 1, "RMSprop: alpha must be in [0, 1], got \(alpha)")
        Optimizer.checkRate(eps, name: "eps", in: RMSprop.self)
        Optimizer.checkRate(momentum, name: "momentum", in: RMSprop.self)
        self.alpha = alpha
        self.eps = eps
        self.momentum = momentum
        self.centered = centered
        super.init(groups, lr: lr, weightDecay: weightDecay)
    }

    override public var stateNames: Set<String> { ["square_avg", "grad_avg", "momentum_buffer"] }

    override public func update(_ index: Int, _ p: Tensor, _ grad: Tensor) {
        let names = ["square_avg"] + (centered ? ["grad_avg"] : []) + (momentum > 0 ? ["momentum_buffer"] : [])
        guard let states = fusedStates(index, names, like: p) else { return composedUpdate(index, p, grad) }
        let rule = OptimizerRule.RMSpropStep(lr: lr(ofParameter: index), weightDecay: weightDecay(ofParameter: index), alpha: alpha,
                                             oneMinusAlpha: 1 - alpha, eps: eps, momentum: momentum, centered: centered)
        fusedUpdates.add(.rmsprop(rule), parameter: p, gradient: grad, states: states)
    }

    /// The update in composed tensor ops: what `EMBER_FUSION=0` runs, and the reference the
    /// fused update is tested against.
    func composedUpdate(_ index: Int, _ p: Tensor, _ grad: Tensor) {
        let lr = lr(ofParameter: index), weightDecay = weightDecay(ofParameter: index)
        let g = weightDecay != 0 ? grad + p * weightDecay : grad
        let squareAverage = stateTensor(index, "square_avg") { Tensor.zeros(like: p) }
        squareAverage *= alpha
        squareAverage += g * g * (1 - alpha)
        var average: Tensor
        if centered {
            let gradAverage = stateTensor(index, "grad_avg") { Tensor.zeros(like: p) }
            gradAverage *= alpha
            gradAverage += g * (1 - alpha)
            average = (squareAverage - gradAverage * gradAverage).sqrt() + eps
        } else {
            average = squareAverage.sqrt() + eps
        }
        if momentum > 0 {
            let buffer = stateTensor(index, "momentum_buffer") { Tensor.zeros(like: p) }
            buffer *= momentum
            buffer += g / average
            p -= buffer * lr
        } else {
            average = g / average
            p -= average * lr
        }
    }
}

/// Adagrad (`torch.optim.Adagrad`): each element's step is the learning rate (decayed as
/// lr / (1 + (t - 1)·lrDecay)) over the root of its summed squared gradients (state `sum`,
/// starting at `initialAccumulatorValue`). Composed of in-place tensor ops, which the lazy
/// graphs fuse on OpenCL.
public final class Adagrad: Optimizer {
    let lrDecay: Float, eps: Float, initialAccumulatorValue: Float

    /// Adagrad with PyTorch's defaults.
    public convenience init(_ parameters: [Tensor], lr: Float = 1e-2, lrDecay: Float = 0, weightDecay: Float = 0,
                            initialAccumulatorValue: Float = 0, eps: Float = 1e-10) {
        self.init([ParamGroup(params: parameters)], lr: lr, lrDecay: lrDecay, weightDecay: weightDecay,
                  initialAccumulatorValue: initialAccumulatorValue, eps: eps)
    }

    /// Adagrad over parameter groups; `lr` and `weightDecay` are the values of groups that give none.
    public init(_ groups: [ParamGroup], lr: Float = 1e-2, lrDecay: Float = 0, weightDecay: Float = 0, initialAccumulatorValue: Float = 0,
                eps: Float = 1e-10) {
        Optimizer.checkRate(lrDecay, name: "lrDecay", in: Adagrad.self)
        Optimizer.checkRate(initialAccumulatorValue, name: "initialAccumulatorValue", in: Adagrad.self)
        Optimizer.checkRate(eps, name: "eps", in: Adagrad.self)
        self.lrDecay = lrDecay
        self.eps = eps
        self.initialAccumulatorValue = initialAccumulatorValue
        super.init(groups, lr: lr, weightDecay: weightDecay)
    }

    override public var stateNames: Set<String> { ["sum"] }

    override public func update(_ index: Int, _ p: Tensor, _ grad: Tensor) {
        let weightDecay = weightDecay(ofParameter: index)
        let g = weightDecay != 0 ? grad + p * weightDecay : grad
        let sum = stateTensor(index, "sum") { Tensor.full(like: p, initialAccumulatorValue) }
        let rate = lr(ofParameter: index) / (1 + Float(steps[index] - 1) * lrDecay)
        sum += g * g
        p -= g / (sum.sqrt() + eps) * rate
    }
}