import Foundation

/// The base of every optimizer: the parameters it updates, a learning rate, per-parameter
/// state tensors (on each parameter's device, updated in place), and `zeroGrad()`.
open class Optimizer {
    /// The parameters updated by `step()`.
    public let parameters: [Tensor]
    /// The learning rate (schedulers change it).
    public var lr: Float {
        didSet { Optimizer.checkRate(lr, name: "lr") }
    }
    /// Steps taken so far.
    public private(set) var stepCount = 0
    /// Per-parameter state by name (`momentum_buffer`, `exp_avg`, ...), created on first use.
    var state: [[String: Tensor]]

    /// An optimizer over `parameters` (which must be leaves) with learning rate `lr`.
    public init(_ parameters: [Tensor], lr: Float) {
        precondition(!parameters.isEmpty, "\(type(of: self)): got an empty parameter list")
        for p in parameters {
            precondition(p.isLeaf && p.dtype == .float32, "\(type(of: self)): parameters must be float32 leaf tensors")
        }
        Optimizer.checkRate(lr, name: "lr")
        self.parameters = parameters
        self.lr = lr
        self.state = Array(repeating: [:], count: parameters.count)
    }

    /// Stops unless `value` is finite and >= 0.
    static func checkRate(_ value: Float, name: String) {
        precondition(value.isFinite && value >= 0, "optimizer: \(name) must be a finite number >= 0, got \(value)")
    }

    /// Clears every parameter's gradient.
    public func zeroGrad() {
        for p in parameters { p.zeroGrad() }
    }

    /// Applies one update to every parameter that has a gradient.
    public func step() {
        stepCount += 1
        Tensor.noGrad {
            for (i, p) in parameters.enumerated() {
                guard let grad = p.grad else { continue }
                update(i, p, grad)
            }
        }
    }

    /// The update rule for parameter `index` (runs under `noGrad`).
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

    /// Optimizer state as named tensors (`state.<i>.<name>`, plus `step`), for checkpoints.
    public func stateDict() -> [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = [("step", Tensor(Float(stepCount))), ("lr", Tensor(lr))]
        for (i, entries) in state.enumerated() {
            for name in entries.keys.sorted() { out.append(("state.\(i).\(name)", entries[name]!)) }
        }
        return out
    }

    /// Restores state saved by `stateDict()`; tensors move to each parameter's device.
    public func loadStateDict(_ dict: [String: Tensor]) throws {
        if let step = dict["step"] { stepCount = Int(step.item()) }
        if let rate = dict["lr"] { lr = rate.item() }
        for (key, tensor) in dict where key.hasPrefix("state.") {
            let parts = key.split(separator: ".", maxSplits: 2)
            guard parts.count == 3, let i = Int(parts[1]), parameters.indices.contains(i) else {
                throw EmberError.invalidFile(path: key, reason: "optimizer state key does not name a parameter index")
            }
            state[i][String(parts[2])] = tensor.to(parameters[i].device).detach().contiguousCopy()
        }
    }
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay, exactly as
/// `torch.optim.SGD`.
public final class SGD: Optimizer {
    let momentum: Float, dampening: Float, nesterov: Bool, weightDecay: Float

    /// SGD with PyTorch's hyper-parameters.
    public init(_ parameters: [Tensor], lr: Float, momentum: Float = 0, dampening: Float = 0,
                nesterov: Bool = false, weightDecay: Float = 0) {
        Optimizer.checkRate(momentum, name: "momentum")
        Optimizer.checkRate(weightDecay, name: "weightDecay")
        precondition(!nesterov || (momentum > 0 && dampening == 0), "SGD: nesterov needs momentum > 0 and zero dampening")
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        super.init(parameters, lr: lr)
    }

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
        precondition(betas.0 >= 0 && betas.0 < 1 && betas.1 >= 0 && betas.1 < 1, "Adam: betas must be in [0, 1), got \(betas)")
        Optimizer.checkRate(eps, name: "eps")
        Optimizer.checkRate(weightDecay, name: "weightDecay")
        beta1 = betas.0
        beta2 = betas.1
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupled = decoupled
        super.init(parameters, lr: lr)
    }

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
        let t = Float(stepCount)
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
        precondition(alpha >= 0 && alpha <= 1, "RMSprop: alpha must be in [0, 1], got \(alpha)")
        Optimizer.checkRate(eps, name: "eps")
        Optimizer.checkRate(weightDecay, name: "weightDecay")
        Optimizer.checkRate(momentum, name: "momentum")
        self.alpha = alpha
        self.eps = eps
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.centered = centered
        super.init(parameters, lr: lr)
    }

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
