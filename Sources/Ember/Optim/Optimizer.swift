import Foundation

/// The base of every optimizer: the parameters it updates, a learning rate, per-parameter
/// state tensors (on each parameter's device, updated in place), and `zeroGrad()`.
open class Optimizer {
    /// The parameters updated by `step()`.
    public let parameters: [Tensor]
    /// The learning rate (schedulers change it).
    public var lr: Float {
        didSet { Optimizer.checkRate(lr, name: "lr", in: type(of: self)) }
    }
    /// Updates applied to each parameter so far (PyTorch's per-parameter `step`): a parameter
    /// without a gradient is skipped by `step()` and keeps its count.
    public private(set) var steps: [Int]
    /// Per-parameter state by name (`momentum_buffer`, `exp_avg`, ...), created on first use.
    var state: [[String: Tensor]]

    /// An optimizer over `parameters` (which must be distinct float32 leaves) with learning
    /// rate `lr`. The optimizer holds the tensor objects: moving the model with `to(_:)` or
    /// re-initialising it in place afterwards keeps it valid.
    public init(_ parameters: [Tensor], lr: Float) {
        check(!parameters.isEmpty, "\(type(of: self)): got an empty parameter list")
        var seen: [ObjectIdentifier: Int] = [:]
        for (i, p) in parameters.enumerated() {
            check(p.isLeaf && p.dtype == .float32, "\(type(of: self)): parameters must be float32 leaf tensors")
            if let j = seen.updateValue(i, forKey: ObjectIdentifier(p)) {
                check(false, "\(type(of: self)): parameters \(j) and \(i) are the same tensor; it would be updated twice per step")
            }
        }
        Optimizer.checkRate(lr, name: "lr", in: Self.self)
        self.parameters = parameters
        self.lr = lr
        self.steps = Array(repeating: 0, count: parameters.count)
        self.state = Array(repeating: [:], count: parameters.count)
    }

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
        }
    }

    /// The update rule for parameter `index` (runs under `noGrad`, after `steps[index]` has
    /// been incremented).
    open func update(_ index: Int, _ parameter: Tensor, _ gradient: Tensor) {
        fatalError("\(type(of: self)) must override update(_:_:_:)")
    }

    /// The state tensor `name` of parameter `index`, created by `initial` on first use.
    func stateTensor(_ index: Int, _ name: String, _ initial: () -> Tensor) -> Tensor {
        if let t = state[index][name] { return t }
        let t = initial().contiguousCopy()
        state[index][name] = t
        return t
    }

    /// Optimizer state as named tensors for checkpoints, flattened from PyTorch's layout:
    /// `param_groups.0.lr`, then for each parameter that has been updated `state.<i>.step`
    /// and its state tensors (`state.<i>.exp_avg`, ...). The tensors are the live state.
    public func stateDict() -> StateDict {
        var out: [(String, Tensor)] = [("param_groups.0.lr", Tensor(lr))]
        for (i, entries) in state.enumerated() where steps[i] > 0 || !entries.isEmpty {
            out.append(("state.\(i).step", Tensor(Float(steps[i]))))
            for name in entries.keys.sorted() { out.append(("state.\(i).\(name)", entries[name]!)) }
        }
        return StateDict(out)
    }

    /// Restores state saved by `stateDict()`; tensors are copied to each parameter's device.
    /// Throws, changing nothing, when a key is unknown or a tensor has the wrong shape.
    public func loadStateDict(_ dict: StateDict) throws {
        var unexpected: [String] = [], shapes: [String] = []
        var newLR = lr, newSteps = steps, newState = state
        for (key, tensor) in dict {
            if key == "param_groups.0.lr" {
                guard tensor.count == 1, tensor.item().isFinite, tensor.item() >= 0 else {
                    shapes.append("\(key): expected a finite rate >= 0, got \(Shape.describe(tensor.shape))")
                    continue
                }
                newLR = tensor.item()
                continue
            }
            let parts = key.split(separator: ".", maxSplits: 2).map(String.init)
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
                newState[i][parts[2]] = tensor.float().to(parameters[i].device).detach().contiguousCopy()
            }
        }
        if !unexpected.isEmpty || !shapes.isEmpty {
            throw EmberError.stateDictMismatch(missing: [], unexpected: unexpected.sorted(), shapeMismatches: shapes.sorted())
        }
        lr = newLR
        steps = newSteps
        state = newState
    }
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, exactly as
/// `torch.optim.SGD`.
public final class SGD: Optimizer {
    let momentum: Float, dampening: Float, nesterov: Bool, weightDecay: Float

    /// SGD with PyTorch's hyper-parameters.
    public init(_ parameters: [Tensor], lr: Float, momentum: Float = 0, dampening: Float = 0,
                nesterov: Bool = false, weightDecay: Float = 0) {
        Optimizer.checkRate(momentum, name: "momentum", in: SGD.self)
        Optimizer.checkRate(dampening, name: "dampening", in: SGD.self)
        Optimizer.checkRate(weightDecay, name: "weightDecay", in: SGD.self)
        check(!nesterov || (momentum > 0 && dampening == 0), "SGD: nesterov needs momentum > 0 and zero dampening")
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        super.init(parameters, lr: lr)
    }

    override public var stateNames: Set<String> { ["momentum_buffer"] }

    override public func update(_ index: Int, _ p: Tensor, _ grad: Tensor) {
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
        p -= g * lr
    }
}

/// Adam (`torch.optim.Adam`), with L2 weight decay added to the gradient.
public class Adam: Optimizer {
    let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    /// Weight decay applied to the parameter itself (AdamW) instead of the gradient.
    let decoupled: Bool

    /// Adam with PyTorch's defaults.
    public convenience init(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                            eps: Float = 1e-8, weightDecay: Float = 0) {
        self.init(parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: false)
    }

    init(_ parameters: [Tensor], lr: Float, betas: (Float, Float), eps: Float, weightDecay: Float, decoupled: Bool) {
        let owner: Optimizer.Type = decoupled ? AdamW.self : Adam.self
        check(betas.0 >= 0 && betas.0 < 1 && betas.1 >= 0 && betas.1 < 1, "\(owner): betas must be in [0, 1), got \(betas)")
        Optimizer.checkRate(eps, name: "eps", in: owner)
        Optimizer.checkRate(weightDecay, name: "weightDecay", in: owner)
        beta1 = betas.0
        beta2 = betas.1
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupled = decoupled
        super.init(parameters, lr: lr)
    }

    override public var stateNames: Set<String> { ["exp_avg", "exp_avg_sq"] }

    override public func update(_ index: Int, _ p: Tensor, _ grad: Tensor) {
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
        p -= m * (lr / correction1) / ((v / correction2).sqrt() + eps)
    }
}

/// AdamW (`torch.optim.AdamW`): Adam with decoupled weight decay.
public final class AdamW: Adam {
    /// AdamW with PyTorch's defaults.
    public init(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 1e-2) {
        super.init(parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: true)
    }
}

/// RMSprop (`torch.optim.RMSprop`), with optional momentum and centering.
public final class RMSprop: Optimizer {
    let alpha: Float, eps: Float, weightDecay: Float, momentum: Float, centered: Bool

    /// RMSprop with PyTorch's defaults.
    public init(_ parameters: [Tensor], lr: Float = 1e-2, alpha: Float = 0.99, eps: Float = 1e-8,
                weightDecay: Float = 0, momentum: Float = 0, centered: Bool = false) {
        check(alpha >= 0 && alpha <= 1, "RMSprop: alpha must be in [0, 1], got \(alpha)")
        Optimizer.checkRate(eps, name: "eps", in: RMSprop.self)
        Optimizer.checkRate(weightDecay, name: "weightDecay", in: RMSprop.self)
        Optimizer.checkRate(momentum, name: "momentum", in: RMSprop.self)
        self.alpha = alpha
        self.eps = eps
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.centered = centered
        super.init(parameters, lr: lr)
    }

    override public var stateNames: Set<String> { ["square_avg", "grad_avg", "momentum_buffer"] }

    override public func update(_ index: Int, _ p: Tensor, _ grad: Tensor) {
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
