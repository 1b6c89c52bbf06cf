import Foundation

/// PyTorch's initialisations (`torch.nn.init`), drawn from Ember's generator
/// (`Tensor.manualSeed`, `Tensor.withRandomSeed`).
///
/// The in-place forms (`Init.normal(weight, std: 0.02)`) fill an existing tensor under
/// `noGrad` and keep its identity, so an optimizer made earlier still updates it; they
/// return the tensor. The tensor must be a float32 tensor that owns its storage (any
/// parameter). Fans follow `torch.nn.init._calculate_fan_in_and_fan_out`: for a tensor of
/// shape `[out, in, k...]`, `fanIn = in * prod(k)` and `fanOut = out * prod(k)`; fewer than
/// 2 dims stops with a message.
public enum Init {
    /// Uniform in `[-bound, bound)`, as a new tensor.
    public static func uniform(_ shape: [Int], bound: Float) -> Tensor {
        Tensor.rand(shape, low: -bound, high: bound)
    }

    /// Kaiming-uniform with `a = sqrt(5)`, PyTorch's default for Linear and Conv2d weights, as
    /// a new tensor: uniform in ±1/sqrt(fanIn).
    public static func kaimingUniform(_ shape: [Int], fanIn: Int) -> Tensor {
        uniform(shape, bound: fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0)
    }

    /// Which fan Kaiming initialisation preserves: the forward pass's variance (`fanIn`)
    /// or the backward pass's (`fanOut`).
    public enum FanMode: Sendable {
        /// Scale by the number of inputs per output.
        case fanIn
        /// Scale by the number of outputs per input.
        case fanOut
    }

    /// The non-linearity a gain is computed for (`torch.nn.init.calculate_gain`).
    public enum Nonlinearity: Sendable {
        /// Identity, linear layers and convolutions: gain 1.
        case linear
        /// Gain 1.
        case sigmoid
        /// Gain 5/3.
        case tanh
        /// Gain sqrt(2).
        case relu
        /// Gain sqrt(2 / (1 + slope^2)).
        case leakyRelu
        /// Gain 3/4.
        case selu
    }

    /// The recommended gain for `nonlinearity`; `param` is the leaky ReLU's negative slope
    /// (0.01 when nil, as PyTorch).
    public static func calculateGain(_ nonlinearity: Nonlinearity, param: Float? = nil) -> Float {
        switch nonlinearity {
        case .linear, .sigmoid: return 1
        case .tanh: return 5.0 / 3
        case .relu: return Float(2).squareRoot()
        case .leakyRelu:
            let slope = param ?? 0.01
            return (2 / (1 + slope * slope)).squareRoot()
        case .selu: return 0.75
        }
    }

    /// `(fanIn, fanOut)` of a weight shaped `[out, in, k...]`.
    public static func fans(_ shape: [Int], op: String = "Init.fans") -> (fanIn: Int, fanOut: Int) {
        check(shape.count >= 2, "\(op): fan in and fan out need a tensor of at least 2 dims, got shape \(Shape.describe(shape))")
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// Fills `tensor` with `values()` in place, under `noGrad`; empty tensors are left alone.
    private static func fill(_ tensor: Tensor, _ op: String, _ values: () -> Tensor) -> Tensor {
        check(tensor.dtype.isFloatingPoint, "\(op): needs a floating-point tensor, got \(tensor.dtype)")
        guard tensor.count > 0 else { return tensor }
        Tensor.noGrad { tensor.copy(from: values()) }
        return tensor
    }

    /// Fills `tensor` in place with samples of N(mean, std²) (`torch.nn.init.normal_`).
    @discardableResult
    public static func normal(_ tensor: Tensor, mean: Float = 0, std: Float = 1) -> Tensor {
        check(std >= 0 && std.isFinite, "Init.normal: std must be finite and >= 0, got \(std)")
        return fill(tensor, "Init.normal") { Tensor.randn(tensor.shape, mean: mean, std: std, device: tensor.device) }
    }

    /// Fills `tensor` in place with samples uniform in `[low, high)` (`torch.nn.init.uniform_`).
    @discardableResult
    public static func uniform(_ tensor: Tensor, low: Float = 0, high: Float = 1) -> Tensor {
        check(low <= high, "Init.uniform: low (\(low)) must not exceed high (\(high))")
        return fill(tensor, "Init.uniform") { Tensor.rand(tensor.shape, low: low, high: high, device: tensor.device) }
    }

    /// Sets every element of `tensor` to `value`, in place (`torch.nn.init.constant_`).
    @discardableResult
    public static func constant(_ tensor: Tensor, _ value: Float) -> Tensor {
        check(tensor.dtype.isFloatingPoint, "Init.constant: needs a floating-point tensor, got \(tensor.dtype)")
        Tensor.noGrad { tensor.fill(value) }
        return tensor
    }

    /// Sets every element of `tensor` to 0, in place (`torch.nn.init.zeros_`).
    @discardableResult
    public static func zeros(_ tensor: Tensor) -> Tensor { constant(tensor, 0) }

    /// Sets every element of `tensor` to 1, in place (`torch.nn.init.ones_`).
    @discardableResult
    public static func ones(_ tensor: Tensor) -> Tensor { constant(tensor, 1) }

    /// The Kaiming standard deviation `gain / sqrt(fan)`.
    private static func kaimingStd(_ tensor: Tensor, a: Float, mode: FanMode, nonlinearity: Nonlinearity, op: String) -> Float {
        let (fanIn, fanOut) = fans(tensor.shape, op: op)
        let fan = mode == .fanIn ? fanIn : fanOut
        return fan > 0 ? calculateGain(nonlinearity, param: a) / Float(fan).squareRoot() : 0
    }

    /// Fills `tensor` in place with samples uniform in ±gain·sqrt(3 / fan)
    /// (`torch.nn.init.kaiming_uniform_`, same defaults: `a = 0`, fan in, leaky ReLU, so
    /// the gain is sqrt(2); `a` is the leaky ReLU's negative slope).
    @discardableResult
    public static func kaimingUniform(_ tensor: Tensor, a: Float = 0, mode: FanMode = .fanIn,
                                      nonlinearity: Nonlinearity = .leakyRelu) -> Tensor {
        let bound = Float(3).squareRoot() * kaimingStd(tensor, a: a, mode: mode, nonlinearity: nonlinearity, op: "Init.kaimingUniform")
        return fill(tensor, "Init.kaimingUniform") { Tensor.rand(tensor.shape, low: -bound, high: bound, device: tensor.device) }
    }

    /// Fills `tensor` in place with samples of N(0, gain² / fan) (`torch.nn.init.kaiming_normal_`).
    @discardableResult
    public static func kaimingNormal(_ tensor: Tensor, a: Float = 0, mode: FanMode = .fanIn,
                                     nonlinearity: Nonlinearity = .leakyRelu) -> Tensor {
        let std = kaimingStd(tensor, a: a, mode: mode, nonlinearity: nonlinearity, op: "Init.kaimingNormal")
        return fill(tensor, "Init.kaimingNormal") { Tensor.randn(tensor.shape, std: std, device: tensor.device) }
    }

    /// Fills `tensor` in place with samples uniform in ±gain·sqrt(6 / (fanIn + fanOut))
    /// (`torch.nn.init.xavier_uniform_`).
    @discardableResult
    public static func xavierUniform(_ tensor: Tensor, gain: Float = 1) -> Tensor {
        let (fanIn, fanOut) = fans(tensor.shape, op: "Init.xavierUniform")
        let bound = fanIn + fanOut > 0 ? gain * (6 / Float(fanIn + fanOut)).squareRoot() : 0
        return fill(tensor, "Init.xavierUniform") { Tensor.rand(tensor.shape, low: -bound, high: bound, device: tensor.device) }
    }

    /// Fills `tensor` in place with samples of N(0, gain² · 2 / (fanIn + fanOut))
    /// (`torch.nn.init.xavier_normal_`).
    @discardableResult
    public static func xavierNormal(_ tensor: Tensor, gain: Float = 1) -> Tensor {
        let (fanIn, fanOut) = fans(tensor.shape, op: "Init.xavierNormal")
        let std = fanIn + fanOut > 0 ? gain * (2 / Float(fanIn + fanOut)).squareRoot() : 0
        return fill(tensor, "Init.xavierNormal") { Tensor.randn(tensor.shape, std: std, device: tensor.device) }
    }

    /// Fills `tensor` in place with samples of N(mean, std²) restricted to `[a, b]`
    /// (`torch.nn.init.trunc_normal_`, same defaults). Samples outside are redrawn until none
    /// is left (exactly the truncated distribution); `[a, b]` must hold at least 1e-4 of the
    /// normal's probability, or redrawing would take too long.
    @discardableResult
    public static func truncNormal(_ tensor: Tensor, mean: Float = 0, std: Float = 1, a: Float = -2, b: Float = 2) -> Tensor {
        check(std > 0 && std.isFinite && a < b, "Init.truncNormal: needs std > 0 and a < b, got std \(std), a \(a), b \(b)")
        let mass = (Foundation.erf(Double((b - mean) / std) / 2.0.squareRoot()) - Foundation.erf(Double((a - mean) / std) / 2.0.squareRoot())) / 2
        check(mass >= 1e-4, "Init.truncNormal: [\(a), \(b)] holds only \(mass) of N(\(mean), \(std)²); move the window or the mean")
        let center = (a + b) / 2, halfWidth = (b - a) / 2
        return fill(tensor, "Init.truncNormal") {
            var x = Tensor.randn(tensor.shape, mean: mean, std: std, device: tensor.device)
            while true {
                let outside = (x - center).abs() > halfWidth
                if outside.float().sum().item() == 0 { return x }
                x = Tensor.where(outside, Tensor.randn(tensor.shape, mean: mean, std: std, device: tensor.device), x)
            }
        }
    }
}
