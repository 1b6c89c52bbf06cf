import Foundation

/// One side of a binary elementwise op: a tensor or a Float constant.
enum ElementwiseArgument {
    case tensor(Tensor)
    case scalar(Float)

    var tensor: Tensor? {
        if case .tensor(let t) = self { return t }
        return nil
    }
}

// MARK: - Unary math and activations

/// Which form of GELU to compute (`approximate` in `torch.nn.functional.gelu`).
public enum GELUApproximation: String, Sendable {
    /// The exact x·Φ(x), with the error function.
    case none
    /// The tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    case tanh
}

extension Tensor {
    /// Runs a unary kernel into a fresh tensor of this float dtype (integer input of an op with
    /// an integer form computes exactly in Int64 and keeps its type; other integer and bool
    /// input computes in Float32); no autograd.
    func unaryForward(_ op: UnaryOp) -> Tensor {
        if dtype.isInteger, op.kernel.integer != nil {
            let source = int64Elements(shape)
            let out = Tensor(uninitialized: shape, dtype: .int64, device: device, op: "\(op)")
            if count > 0 { backend.integerUnary(op.kernel, source.storage.buffer, offset: source.offset, count: count, destination: out.storage.buffer) }
            return out.castStorage(to: dtype)
        }
        let source = arithmeticStorage
        let out = Tensor(uninitialized: shape, dtype: source.dtype, device: device, op: "\(op)")
        if count > 0 { backend.unary(op, source.view, destination: out.storage.buffer) }
        return op.kernel.keepsIntegers && !dtype.isFloatingPoint && dtype != .bool ? out.castStorage(to: dtype) : out
    }

    /// A unary op whose gradient is `g * derivative(x)`, the derivative written with Tensor ops.
    private func unary(_ op: UnaryOp, _ name: String, derivative: @escaping (Tensor) -> Tensor) -> Tensor {
        unaryForward(op).recording(name, inputs: [self]) {
            let x = SavedTensor(self, op: name)
            return { g in [g * derivative(x.value)] }
        }
    }

    /// A unary op whose gradient is computed from its output `y` (e.g. exp, tanh). Under a
    /// created graph the output is recomputed by `differentiable` (the op itself) from the
    /// input, so second derivatives are exact.
    private func unaryFromOutput(_ op: UnaryOp, _ name: String, _ differentiable: @escaping (Tensor) -> Tensor,
                                 derivative: @escaping (Tensor) -> Tensor) -> Tensor {
        let y = unaryForward(op)
        return y.recording(name, inputs: [self]) {
            let x = SavedTensor(self, op: name)
            let out = SavedTensor(y.detach(), op: name)
            return { g in
                let value = GradMode.enabled ? differentiable(x.value) : out.value
                return [g * derivative(value)]
            }
        }
    }

    /// Elementwise negation.
    public static prefix func - (x: Tensor) -> Tensor {
        check(x.dtype != .bool, "neg: negation, the `-` operator, on a bool tensor is not supported; use logicalNot() (or ~) instead")
        return x.unary(.neg, "NegBackward") { _ in Tensor.full([], -1, device: x.device) }
    }

    /// Elementwise absolute value.
    public func abs() -> Tensor { unary(.abs, "AbsBackward") { $0.sign() } }

    /// Elementwise sign (-1, 0 or 1); its gradient is zero.
    public func sign() -> Tensor { unary(.sign, "SignBackward") { $0 * 0 } }

    /// Elementwise e^x (Float32 under `Tensor.autocast`, as are `log`, `rsqrt`, `reciprocal`, `pow`).
    public func exp() -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.exp() }
        return unaryFromOutput(.exp, "ExpBackward", { $0.exp() }) { $0 }
    }

    /// Elementwise natural logarithm.
    public func log() -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.log() }
        return unary(.log, "LogBackward") { $0.reciprocal() }
    }

    /// Elementwise square root.
    public func sqrt() -> Tensor { unaryFromOutput(.sqrt, "SqrtBackward", { $0.sqrt() }) { 0.5 / $0 } }

    /// Elementwise 1 / sqrt(x).
    public func rsqrt() -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.rsqrt() }
        return unaryFromOutput(.rsqrt, "RsqrtBackward", { $0.rsqrt() }) { y in -0.5 * y * y * y }
    }

    /// Elementwise 1 / x.
    public func reciprocal() -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.reciprocal() }
        return unaryFromOutput(.reciprocal, "ReciprocalBackward", { $0.reciprocal() }) { y in -(y * y) }
    }

    /// Elementwise x².
    public func square() -> Tensor { unary(.square, "PowBackward") { 2 * $0 } }

    /// Elementwise x^exponent, as `torch.pow`. Integer exponents up to 8 in size are products
    /// of squares (as fast as writing out the multiplications, exact for negative x), 0.5 and
    /// -0.5 are `sqrt` and `rsqrt`; other exponents run the general kernel. The gradient is
    /// `exponent * x^(exponent - 1)`, and 0 for exponent 0 (also at x = 0, as PyTorch).
    public func pow(_ exponent: Float) -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.pow(exponent) }
        return powForward(exponent).recording("PowBackward", inputs: [self]) {
            let x = SavedTensor(self, op: "PowBackward")
            return { g in
                switch exponent {
                case 0: return [g * 0]
                case 1: return [g]
                case 2: return [g * (2 * x.value)]
                default: return [g * (exponent * x.value.pow(exponent - 1))]
                }
            }
        }
    }

    /// x^exponent without autograd, by the cheapest kernels for the exponent.
    private func powForward(_ exponent: Float) -> Tensor {
        switch exponent {
        case 0: return Tensor.ones(shape, dtype: dtype.isFloatingPoint ? dtype : .float32, device: device)
        case 1: return arithmeticStorage.contiguousCopy()
        case 2: return unaryForward(.square)
        case 0.5: return unaryForward(.sqrt)
        case -0.5: return unaryForward(.rsqrt)
        case -1: return unaryForward(.reciprocal)
        default: break
        }
        guard exponent == exponent.rounded(), Swift.abs(exponent) <= 8 else { return unaryForward(.powScalar(exponent)) }
        // Binary exponentiation: x^n as a product of x^(2^k) over the set bits of |n|.
        var n = Int(Swift.abs(exponent))
        var base = arithmeticStorage, result: Tensor?
        while n > 0 {
            if n & 1 == 1 { result = result.map { Tensor.binaryForward(.mul, .tensor($0), .tensor(base), name: "pow") } ?? base }
            n >>= 1
            if n > 0 { base = base.unaryForward(.square) }
        }
        return exponent < 0 ? result!.unaryForward(.reciprocal) : result!
    }

    /// Elementwise sine.
    public func sin() -> Tensor { unary(.sin, "SinBackward") { $0.cos() } }

    /// Elementwise cosine.
    public func cos() -> Tensor { unary(.cos, "CosBackward") { -$0.sin() } }

    /// Elementwise hyperbolic tangent.
    public func tanh() -> Tensor { unaryFromOutput(.tanh, "TanhBackward", { $0.tanh() }) { y in 1 - y * y } }

    /// Elementwise logistic sigmoid 1 / (1 + e^-x).
    public func sigmoid() -> Tensor { unaryFromOutput(.sigmoid, "SigmoidBackward", { $0.sigmoid() }) { y in y * (1 - y) } }

    /// Elementwise max(x, 0); the gradient passes where x > 0 (one select, no mask arithmetic).
    public func relu() -> Tensor {
        unaryForward(.relu).recording("ReluBackward", inputs: [self]) {
            let x = SavedTensor(self, op: "ReluBackward")
            return { g in [Tensor.reluGradient(g, input: x.value)] }
        }
    }

    /// `g` where `input > 0`, else 0, in one pass (no mask): ReLU's backward, itself
    /// differentiable in `g` (the same rule) for higher-order gradients.
    static func reluGradient(_ g: Tensor, input: Tensor) -> Tensor {
        binaryForward(.reluGradient, .tensor(g), .tensor(input), name: "relu_backward").recording("ReluBackwardBackward", inputs: [g]) {
            let x = SavedTensor(input, op: "ReluBackwardBackward")
            return { gg in [reluGradient(gg, input: x.value)] }
        }
    }

    /// Elementwise Gauss error function.
    public func erf() -> Tensor {
        unary(.erf, "ErfBackward") { x in Float(2 / Double.pi.squareRoot()) * (-(x * x)).exp() }
    }

    /// Elementwise GELU, as `torch.nn.functional.gelu`: the exact form x·Φ(x) with Φ the
    /// standard normal CDF (`.none`, the default), or its tanh approximation
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (`.tanh`). Its backward is one pass
    /// (`geluGradient`) and has exact derivatives of every order.
    public func gelu(approximate: GELUApproximation = .none) -> Tensor {
        unaryForward(approximate == .none ? .gelu : .geluTanh).recording("GeluBackward", inputs: [self]) {
            let x = SavedTensor(self, op: "GeluBackward")
            return { g in [Tensor.geluGradient(g, input: x.value, approximate: approximate)] }
        }
    }

    /// `g · gelu'(input)` in one pass: GELU's backward. Differentiable in both operands for
    /// higher-order gradients: in `g` by the same rule, in `input` through `geluSecondDerivative`.
    static func geluGradient(_ g: Tensor, input: Tensor, approximate: GELUApproximation) -> Tensor {
        binaryForward(approximate == .none ? .geluGradient : .geluTanhGradient, .tensor(g), .tensor(input), name: "gelu_backward")
            .recording("GeluBackwardBackward", inputs: [g, input]) {
                let (gradient, x) = (SavedTensor(g, op: "GeluBackwardBackward"), SavedTensor(input, op: "GeluBackwardBackward"))
                return { gg in
                    [geluGradient(gg, input: x.value, approximate: approximate),
                     gg * gradient.value * geluSecondDerivative(x.value, approximate: approximate)]
                }
            }
    }

    /// GELU's second derivative, composed of differentiable ops: φ(x)·(2 - x²) for the exact
    /// form; for the tanh form, with s = sigmoid(2u), σ' = s·(1 - s), u' = k·(1 + 3c·x²),
    /// 4u'σ' + 4x·u'²·σ'·(1 - 2s) + 2x·σ'·u'' (u'' = 6kc·x).
    static func geluSecondDerivative(_ x: Tensor, approximate: GELUApproximation) -> Tensor {
        switch approximate {
        case .none:
            return Float(1 / (2 * Double.pi).squareRoot()) * (-0.5 * x * x).exp() * (2 - x * x)
        case .tanh:
            let k = Float((2 / Double.pi).squareRoot()), c: Float = 0.044715
            let s = (2 * k * (x + c * x * x * x)).sigmoid()
            let ds = s * (1 - s)
            let du = k * (1 + 3 * c * x * x)
            return 4 * du * ds + 4 * x * du * du * ds * (1 - 2 * s) + 2 * x * ds * (6 * k * c * x)
        }
    }

    /// Elementwise x for x > 0, else slope·x.
    public func leakyRelu(slope: Float = 0.01) -> Tensor {
        unary(.leakyRelu(slope: slope), "LeakyReluBackward") { x in (x > 0).float() * (1 - slope) + slope }
    }

    /// Elementwise SiLU (swish), x·sigmoid(x), as `torch.nn.functional.silu`.
    public func silu() -> Tensor {
        unary(.silu, "SiluBackward") { x in
            let s = x.sigmoid()
            return s * (1 + x * (1 - s))
        }
    }

    /// Elementwise Mish, x·tanh(softplus(x)), as `torch.nn.functional.mish`.
    public func mish() -> Tensor {
        unary(.mish, "MishBackward") { x in
            let t = x.softplus().tanh()
            return t + x * x.sigmoid() * (1 - t * t)
        }
    }

    /// Elementwise softplus, log(1 + e^(beta·x)) / beta, as `torch.nn.functional.softplus`:
    /// where beta·x exceeds `threshold` it is x (and its gradient 1).
    public func softplus(beta: Float = 1, threshold: Float = 20) -> Tensor {
        check(beta != 0, "softplus: beta must not be 0")
        return unary(.softplus(beta: beta, threshold: threshold), "SoftplusBackward") { x in
            Tensor.where(x * beta > threshold, 1, (x * beta).sigmoid())
        }
    }

    /// Elementwise ELU, x for x > 0 else alpha·(e^x - 1), as `torch.nn.functional.elu`.
    public func elu(alpha: Float = 1) -> Tensor { scaledElu(alpha: alpha, scale: 1) }

    /// Elementwise SELU, scale·elu(x, alpha) with PyTorch's constants (alpha ≈ 1.6733,
    /// scale ≈ 1.0507), as `torch.nn.functional.selu`.
    public func selu() -> Tensor {
        scaledElu(alpha: 1.673_263_242_354_377_3, scale: 1.050_700_987_355_480_5)
    }

    /// scale·x for x > 0, else scale·alpha·(e^x - 1); its derivative is scale, else
    /// scale·alpha·e^x (PyTorch's EluBackward for both).
    private func scaledElu(alpha: Float, scale: Float) -> Tensor {
        unary(.elu(alpha: alpha, scale: scale), "EluBackward") { x in Tensor.where(x > 0, scale, x.exp() * (scale * alpha)) }
    }

    /// Elementwise log(sigmoid(x)), computed as min(x, 0) - log(1 + e^-|x|) so it stays finite
    /// for large |x|, as `torch.nn.functional.logsigmoid`.
    public func logSigmoid() -> Tensor { unary(.logSigmoid, "LogSigmoidBackward") { x in (-x).sigmoid() } }

    /// Elementwise relu6(x + 3) / 6, as `torch.nn.functional.hardsigmoid`; the gradient is 1/6
    /// strictly inside (-3, 3).
    public func hardSigmoid() -> Tensor {
        unary(.hardSigmoid, "HardsigmoidBackward") { x in (x > -3).float() * (x < 3).float() * (1 / Float(6)) }
    }

    /// Elementwise x·relu6(x + 3) / 6, as `torch.nn.functional.hardswish`; the gradient is 0
    /// up to -3, x/3 + 1/2 below 3 and 1 from there.
    public func hardSwish() -> Tensor {
        unary(.hardSwish, "HardswishBackward") { x in Tensor.where(x <= -3, 0, Tensor.where(x < 3, x / 3 + 0.5, 1)) }
    }

    /// Elementwise log(1 + x), accurate for small x.
    public func log1p() -> Tensor { unary(.log1p, "Log1PBackward") { x in 1 / (1 + x) } }

    /// Elementwise e^x - 1, accurate for small x.
    public func expm1() -> Tensor { unary(.expm1, "Expm1Backward") { x in x.exp() } }

    /// Elementwise largest integer not above x (integer tensors are returned as they are, in a
    /// copy); the gradient is 0.
    public func floor() -> Tensor { unary(.floor, "FloorBackward") { Tensor.zeros(like: $0) } }

    /// Elementwise smallest integer not below x; the gradient is 0.
    public func ceil() -> Tensor { unary(.ceil, "CeilBackward") { Tensor.zeros(like: $0) } }

    /// Elementwise x rounded to `decimals` decimal places, halves to even (as `torch.round`:
    /// with decimals, (x·10^d).round() / 10^d); the gradient is 0.
    public func round(decimals: Int = 0) -> Tensor {
        guard decimals != 0 else { return unary(.round, "RoundBackward") { Tensor.zeros(like: $0) } }
        let scale = Float(Foundation.pow(10, Double(decimals)))
        return (self * scale).round() / scale
    }

    /// Elementwise x rounded toward zero; the gradient is 0.
    public func trunc() -> Tensor { unary(.trunc, "TruncBackward") { Tensor.zeros(like: $0) } }

    /// Elementwise clamp into `[min, max]`; the gradient flows where min <= x <= max. An
    /// integer tensor with integral (or infinite) bounds keeps its type and is clamped exactly.
    public func clamp(min lower: Float = -.infinity, max upper: Float = .infinity) -> Tensor {
        check(!(lower > upper), "clamp: min (\(lower)) must not exceed max (\(upper))")
        if dtype.isInteger, [lower, upper].allSatisfy({ $0.isInfinite || $0 == $0.rounded() }) {
            var x = self
            if lower.isFinite { x = Tensor.binaryForward(.maximum, .tensor(x), .scalar(lower), name: "clamp") }
            if upper.isFinite { x = Tensor.binaryForward(.minimum, .tensor(x), .scalar(upper), name: "clamp") }
            return x === self ? clone() : x
        }
        return unary(.clamp(min: lower, max: upper), "ClampBackward") { x in (x >= lower).float() * (x <= upper).float() }
    }
}

// MARK: - Binary arithmetic and comparisons

extension Tensor {
    /// Runs a binary kernel over the broadcast of the operands (no autograd). The operands
    /// promote to one type (`resultType`); float types compute in their own storage type,
    /// integer and bool operands in Float32. Comparisons give `.bool`; add, sub, mul, maximum
    /// and minimum of integers give the integer type; the rest a float type.
    static func binaryForward(_ op: BinaryOp, _ a: ElementwiseArgument, _ b: ElementwiseArgument, name: String) -> Tensor {
        let ta = a.tensor, tb = b.tensor
        if let ta, let tb { checkSameDevice(name, ta, tb) }
        guard let reference = ta ?? tb else { fatalError("\(name): needs a tensor operand") }
        let shape: [Int]
        switch (ta, tb) {
        case let (x?, y?): shape = broadcastShape(name, x.shape, y.shape)
        default: shape = reference.shape
        }
        let type = resultType(a, b)
        check(!(op == .sub && type == .bool), "\(name): subtraction, the `-` operator, with two bool tensors is not supported; use the `^` or logicalXor() operator instead")
        if type.isInteger, op.kernel.integer != nil, let exact = integerForward(op.kernel, a, b, shape: shape, device: reference.device, name: name) {
            return exact.castStorage(to: op.isComparison ? .bool : type)
        }
        let compute = type.isFloatingPoint ? type : .float32
        let out = Tensor(uninitialized: shape, dtype: op.isComparison ? .bool : compute, device: reference.device, op: name)
        if out.count > 0 {
            func operand(_ arg: ElementwiseArgument) -> Operand {
                switch arg {
                case .scalar(let s): return .scalar(s)
                case .tensor(let t): return .view(t.castStorage(to: compute).broadcastView(to: shape))
                }
            }
            reference.backend.binary(op, operand(a), operand(b), shape: shape, dtype: compute, destination: out.storage.buffer)
        }
        // Integer and bool results (add of bools is or, mul is and) compute in Float32.
        return op.kernel.keepsIntegers && !type.isFloatingPoint ? out.castStorage(to: type) : out
    }

    /// `op`'s exact integer form over the operands as Int64 (`binaryForward` of integer
    /// operands): Int64 elements, or a mask for the comparisons; nil when a constant is
    /// outside the Int64 range (the Float32 kernels take it).
    private static func integerForward(_ op: BinaryKernel, _ a: ElementwiseArgument, _ b: ElementwiseArgument, shape: [Int],
                                       device: Device, name: String) -> Tensor? {
        func operand(_ arg: ElementwiseArgument) -> IntegerOperand? {
            switch arg {
            case .scalar(let s): return Int64(exactly: s).map { .scalar($0) }
            case .tensor(let t):
                let x = t.int64Elements(shape)
                return .dense(x.storage.buffer, offset: x.offset)
            }
        }
        guard let x = operand(a), let y = operand(b) else { return nil }
        let out = Tensor(uninitialized: shape, dtype: op.producesMask ? .bool : .int64, device: device, op: name)
        if out.count > 0 { out.backend.integerBinary(op, x, y, count: out.count, destination: out.storage.buffer) }
        return out
    }

    /// The type two operands promote to, as `torch.result_type`: dimensioned tensors by
    /// `DType.promoted(with:)`; a 0-d tensor only when its category (bool < integer < float) is
    /// higher than theirs; a scalar (integral values count as integers) only when its category
    /// is higher than every tensor's, giving int64 or Float32.
    static func resultType(_ a: ElementwiseArgument, _ b: ElementwiseArgument) -> DType {
        func category(_ t: DType) -> Int { t.isFloatingPoint ? 2 : (t == .bool ? 0 : 1) }
        func scalarType(_ s: Float) -> DType { s == s.rounded() ? .int64 : .float32 }
        // `higher` over `lower` when its category is above lower's, else `lower`.
        func across(_ lower: DType, _ higher: DType) -> DType {
            category(higher) > category(lower) ? lower.promoted(with: higher) : lower
        }
        switch (a, b) {
        case let (.tensor(x), .tensor(y)):
            if (x.rank == 0) == (y.rank == 0) { return x.dtype.promoted(with: y.dtype) }
            return x.rank == 0 ? across(y.dtype, x.dtype) : across(x.dtype, y.dtype)
        case let (.tensor(t), .scalar(s)), let (.scalar(s), .tensor(t)):
            let wrapped = scalarType(s)
            return category(wrapped) > category(t.dtype) ? wrapped : t.dtype
        case (.scalar, .scalar):
            // Ember's scalars are Floats.
            return .float32
        }
    }

    /// The elements converted to `target` (no autograd): this tensor itself when it already has
    /// that type, else a converted copy, with PyTorch's conversion rules: to a float type
    /// round to nearest even (once, from integers too), floats to integers truncate toward zero
    /// (saturating; uint8 wraps modulo 256 after truncating to int64), integers to integers
    /// wrap, anything to bool is `!= 0`.
    func castStorage(to target: DType) -> Tensor {
        if target == dtype { return self }
        let out = Tensor(uninitialized: shape, dtype: target, device: device, op: "cast")
        if count > 0 { backend.cast(view, to: target, destination: out.storage.buffer) }
        return out
    }

    /// A differentiable binary op between two tensors; `rule` maps (g, a, b) to the two
    /// gradients before they are summed back over broadcast dims.
    private static func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, _ name: String,
                               rule: @escaping (Tensor, Tensor, Tensor) -> (Tensor?, Tensor?)) -> Tensor {
        binaryForward(op, .tensor(a), .tensor(b), name: "\(op)").recording(name, inputs: [a, b]) {
            let sa = SavedTensor(a, op: name), sb = SavedTensor(b, op: name)
            let shapeA = a.shape, shapeB = b.shape
            return { g in
                let (ga, gb) = rule(g, sa.value, sb.value)
                return [ga?.sumTo(shapeA), gb?.sumTo(shapeB)]
            }
        }
    }

    /// Elementwise sum with broadcasting.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        binaryForward(.add, .tensor(a), .tensor(b), name: "add").recording("AddBackward", inputs: [a, b]) {
            let shapeA = a.shape, shapeB = b.shape
            return { g in [g.sumTo(shapeA), g.sumTo(shapeB)] }
        }
    }

    /// Elementwise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        binaryForward(.sub, .tensor(a), .tensor(b), name: "sub").recording("SubBackward", inputs: [a, b]) {
            let shapeA = a.shape, shapeB = b.shape
            return { g in [g.sumTo(shapeA), (-g).sumTo(shapeB)] }
        }
    }

    /// Elementwise product with broadcasting.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        binary(.mul, a, b, "MulBackward") { g, a, b in (g * b, g * a) }
    }

    /// Elementwise quotient with broadcasting.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        binary(.div, a, b, "DivBackward") { g, a, b in (g / b, -g * a / (b * b)) }
    }

    /// Elementwise remainder of a / b with the sign of the divisor, as `torch.remainder` and
    /// Python's `%`: a - b·floor(a / b). Gradients: g for `a`, -g·floor(a / b) for `b`.
    /// Integer operands compute exactly (a zero divisor gives 0, where PyTorch raises).
    public func remainder(_ other: Tensor) -> Tensor {
        Tensor.binary(.remainder, self, other, "RemainderBackward") { g, a, b in (g, -g * a.floorDivide(b)) }
    }

    /// Elementwise floor(a / b), as `torch.floor_divide` and Python's `//` (a zero integer
    /// divisor gives 0, where PyTorch raises). Piecewise constant: its gradients are zero.
    public func floorDivide(_ other: Tensor) -> Tensor {
        Tensor.binary(.floorDivide, self, other, "FloorDivideBackward") { g, _, _ in (Tensor.zeros(like: g), Tensor.zeros(like: g)) }
    }

    /// `a.remainder(b)`, as Python's and PyTorch's `%`.
    public static func % (a: Tensor, b: Tensor) -> Tensor { a.remainder(b) }

    /// Remainder of a tensor by a scalar (`x % 10`); the gradient is g.
    public static func % (a: Tensor, s: Float) -> Tensor {
        binaryForward(.remainder, .tensor(a), .scalar(s), name: "remainder").recording("RemainderBackward", inputs: [a]) { { g in [g] } }
    }

    /// Floor division of a tensor by a scalar; zero gradient.
    public func floorDivide(_ s: Float) -> Tensor {
        Tensor.binaryForward(.floorDivide, .tensor(self), .scalar(s), name: "floor_divide")
            .recording("FloorDivideBackward", inputs: [self]) { { g in [Tensor.zeros(like: g)] } }
    }

    /// Elementwise power a^b with broadcasting.
    /// As PyTorch, the base's gradient is 0 where the exponent is 0, and the exponent's is 0
    /// where the base is 0 and the exponent >= 0 (instead of 0·inf = NaN).
    public func pow(_ exponent: Tensor) -> Tensor {
        if case let (x, exponent)? = Autocast.fullPrecision(self, exponent) { return x.pow(exponent) }
        return Tensor.binary(.pow, self, exponent, "PowBackward") { g, a, b in
            let zero = Tensor.zeros([], device: g.device)
            return (Tensor.where(b == 0, zero, g * b * a.pow(b - 1)),
                    Tensor.where((a == 0) * (b >= 0), zero, g * a.pow(b) * a.log()))
        }
    }

    /// Elementwise maximum (gradient split evenly on ties).
    public func maximum(_ other: Tensor) -> Tensor {
        Tensor.binary(.maximum, self, other, "MaximumBackward") { g, a, b in
            let share = (a > b).float() + 0.5 * (a == b).float()
            return (g * share, g * (1 - share))
        }
    }

    /// Elementwise minimum (gradient split evenly on ties).
    public func minimum(_ other: Tensor) -> Tensor {
        Tensor.binary(.minimum, self, other, "MinimumBackward") { g, a, b in
            let share = (a < b).float() + 0.5 * (a == b).float()
            return (g * share, g * (1 - share))
        }
    }

    /// Tensor + scalar.
    public static func + (a: Tensor, s: Float) -> Tensor {
        binaryForward(.add, .tensor(a), .scalar(s), name: "add").recording("AddBackward", inputs: [a]) { { g in [g] } }
    }

    /// Scalar + tensor.
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }

    /// Tensor - scalar.
    public static func - (a: Tensor, s: Float) -> Tensor {
        binaryForward(.sub, .tensor(a), .scalar(s), name: "sub").recording("SubBackward", inputs: [a]) { { g in [g] } }
    }

    /// Scalar - tensor.
    public static func - (s: Float, a: Tensor) -> Tensor {
        binaryForward(.sub, .scalar(s), .tensor(a), name: "sub").recording("RsubBackward", inputs: [a]) { { g in [-g] } }
    }

    /// Tensor * scalar.
    public static func * (a: Tensor, s: Float) -> Tensor {
        binaryForward(.mul, .tensor(a), .scalar(s), name: "mul").recording("MulBackward", inputs: [a]) { { g in [g * s] } }
    }

    /// Scalar * tensor.
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }

    /// Tensor / scalar.
    public static func / (a: Tensor, s: Float) -> Tensor {
        binaryForward(.div, .tensor(a), .scalar(s), name: "div").recording("DivBackward", inputs: [a]) { { g in [g / s] } }
    }

    /// Scalar / tensor.
    public static func / (s: Float, a: Tensor) -> Tensor {
        binaryForward(.div, .scalar(s), .tensor(a), name: "div").recording("DivBackward", inputs: [a]) {
            let x = SavedTensor(a, op: "DivBackward")
            return { g in [-s * g / x.value.square()] }
        }
    }

    private static func compare(_ op: BinaryOp, _ a: ElementwiseArgument, _ b: ElementwiseArgument, _ name: String) -> Tensor {
        binaryForward(op, a, b, name: name)
    }

    /// Elementwise a == b as a `.bool` mask.
    public static func == (a: Tensor, b: Tensor) -> Tensor { compare(.eq, .tensor(a), .tensor(b), "eq") }
    /// Elementwise a != b as a `.bool` mask.
    public static func != (a: Tensor, b: Tensor) -> Tensor { compare(.ne, .tensor(a), .tensor(b), "ne") }
    /// Elementwise a < b as a `.bool` mask.
    public static func < (a: Tensor, b: Tensor) -> Tensor { compare(.lt, .tensor(a), .tensor(b), "lt") }
    /// Elementwise a <= b as a `.bool` mask.
    public static func <= (a: Tensor, b: Tensor) -> Tensor { compare(.le, .tensor(a), .tensor(b), "le") }
    /// Elementwise a > b as a `.bool` mask.
    public static func > (a: Tensor, b: Tensor) -> Tensor { compare(.gt, .tensor(a), .tensor(b), "gt") }
    /// Elementwise a >= b as a `.bool` mask.
    public static func >= (a: Tensor, b: Tensor) -> Tensor { compare(.ge, .tensor(a), .tensor(b), "ge") }
    /// Elementwise a == s as a `.bool` mask.
    public static func == (a: Tensor, s: Float) -> Tensor { compare(.eq, .tensor(a), .scalar(s), "eq") }
    /// Elementwise a != s as a `.bool` mask.
    public static func != (a: Tensor, s: Float) -> Tensor { compare(.ne, .tensor(a), .scalar(s), "ne") }
    /// Elementwise a < s as a `.bool` mask.
    public static func < (a: Tensor, s: Float) -> Tensor { compare(.lt, .tensor(a), .scalar(s), "lt") }
    /// Elementwise a <= s as a `.bool` mask.
    public static func <= (a: Tensor, s: Float) -> Tensor { compare(.le, .tensor(a), .scalar(s), "le") }
    /// Elementwise a > s as a `.bool` mask.
    public static func > (a: Tensor, s: Float) -> Tensor { compare(.gt, .tensor(a), .scalar(s), "gt") }
    /// Elementwise a >= s as a `.bool` mask.
    public static func >= (a: Tensor, s: Float) -> Tensor { compare(.ge, .tensor(a), .scalar(s), "ge") }

    /// Elementwise s == a as a `.bool` mask.
    public static func == (s: Float, a: Tensor) -> Tensor { a == s }
    /// Elementwise s != a as a `.bool` mask.
    public static func != (s: Float, a: Tensor) -> Tensor { a != s }
    /// Elementwise s < a as a `.bool` mask.
    public static func < (s: Float, a: Tensor) -> Tensor { a > s }
    /// Elementwise s <= a as a `.bool` mask.
    public static func <= (s: Float, a: Tensor) -> Tensor { a >= s }
    /// Elementwise s > a as a `.bool` mask.
    public static func > (s: Float, a: Tensor) -> Tensor { a < s }
    /// Elementwise s >= a as a `.bool` mask.
    public static func >= (s: Float, a: Tensor) -> Tensor { a <= s }

    /// Elementwise x is NaN, as a `.bool` mask (false everywhere for integer and bool tensors).
    public func isnan() -> Tensor { self != self }
    /// Elementwise x is +infinity or -infinity, as a `.bool` mask.
    public func isinf() -> Tensor { dtype.isFloatingPoint ? abs() == .infinity : Tensor.zeros(shape, dtype: .bool, device: device) }
    /// Elementwise x is neither infinite nor NaN, as a `.bool` mask.
    public func isfinite() -> Tensor { dtype.isFloatingPoint ? abs() < .infinity : Tensor.ones(shape, dtype: .bool, device: device) }

    /// Elementwise logical not (`torch.logical_not`): `x == 0` as a `.bool` mask, for any dtype.
    public func logicalNot() -> Tensor { self == 0 }
    /// Elementwise logical and of two tensors of any dtypes (non-zero is true), as a `.bool` mask.
    public func logicalAnd(_ other: Tensor) -> Tensor { (self != 0) * (other != 0) }
    /// Elementwise logical or (non-zero is true), as a `.bool` mask.
    public func logicalOr(_ other: Tensor) -> Tensor { (self != 0) + (other != 0) }
    /// Elementwise logical exclusive or (non-zero is true), as a `.bool` mask.
    public func logicalXor(_ other: Tensor) -> Tensor { (self != 0) != (other != 0) }
    /// `~mask`: logical not of a bool tensor (PyTorch's `~` on masks).
    public static prefix func ~ (x: Tensor) -> Tensor {
        check(x.dtype == .bool, "bitwise_not: ~ is defined for bool tensors here, got \(x.dtype)")
        return x.logicalNot()
    }
    /// `a & b` of bool tensors.
    public static func & (a: Tensor, b: Tensor) -> Tensor { bitwiseOfMasks("bitwise_and", a, b) { $0.logicalAnd($1) } }
    /// `a | b` of bool tensors.
    public static func | (a: Tensor, b: Tensor) -> Tensor { bitwiseOfMasks("bitwise_or", a, b) { $0.logicalOr($1) } }
    /// `a ^ b` of bool tensors.
    public static func ^ (a: Tensor, b: Tensor) -> Tensor { bitwiseOfMasks("bitwise_xor", a, b) { $0.logicalXor($1) } }

    /// A bitwise operator on two masks (integers have no bitwise kernels yet: they stop with a message).
    private static func bitwiseOfMasks(_ name: String, _ a: Tensor, _ b: Tensor, _ op: (Tensor, Tensor) -> Tensor) -> Tensor {
        check(a.dtype == .bool && b.dtype == .bool, "\(name): defined for bool tensors here, got \(a.dtype) and \(b.dtype)")
        return op(a, b)
    }

    /// Elementwise `condition ? a : b` with broadcasting; the gradient flows to the chosen side.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        select(condition, .tensor(a), .tensor(b))
    }

    /// Elementwise `condition ? a : s` (the scalar is a kernel argument, not a tensor).
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ s: Float) -> Tensor {
        select(condition, .tensor(a), .scalar(s))
    }

    /// Elementwise `condition ? s : b`.
    public static func `where`(_ condition: Tensor, _ s: Float, _ b: Tensor) -> Tensor {
        select(condition, .scalar(s), .tensor(b))
    }

    /// `where` over tensors and scalars: operands promote (`resultType`), the condition is read
    /// as a mask (non-zero is true); float results record the gradient to the chosen side.
    private static func select(_ condition: Tensor, _ a: ElementwiseArgument, _ b: ElementwiseArgument) -> Tensor {
        guard let reference = a.tensor ?? b.tensor else { fatalError("where: needs a tensor operand") }
        checkSameDevice("where", condition, reference)
        var shape = broadcastShape("where", condition.shape, reference.shape)
        if let ta = a.tensor, let tb = b.tensor {
            checkSameDevice("where", ta, tb)
            shape = broadcastShape("where", shape, tb.shape)
        }
        let type = resultType(a, b), compute = type.isFloatingPoint ? type : .float32
        if type.isInteger {
            // Exactly, as b + (a - b)·mask in the integer forms (wrapping, so any values).
            let mask = ElementwiseArgument.tensor(condition.castStorage(to: .bool))
            let difference = binaryForward(.sub, a, b, name: "where")
            return binaryForward(.add, .tensor(binaryForward(.mul, .tensor(difference), mask, name: "where")), b, name: "where")
        }
        let out = Tensor(uninitialized: shape, dtype: compute, device: reference.device, op: "where")
        if out.count > 0 {
            let mask = condition.castStorage(to: .bool)
            func operand(_ arg: ElementwiseArgument) -> Operand {
                switch arg {
                case .scalar(let s): return .scalar(s)
                case .tensor(let t): return .view(t.castStorage(to: compute).broadcastView(to: shape))
                }
            }
            reference.backend.select(mask.broadcastView(to: shape), operand(a), operand(b), shape: shape, dtype: compute,
                                     destination: out.storage.buffer)
        }
        guard type.isFloatingPoint else { return out.castStorage(to: type) }
        let inputs = [a.tensor, b.tensor].compactMap { $0 }
        return out.recording("WhereBackward", inputs: inputs) {
            let mask = condition.detach()
            let sides = [a.tensor.map { ($0.shape, true) }, b.tensor.map { ($0.shape, false) }].compactMap { $0 }
            return { g in sides.map { shape, chosen in (chosen ? Tensor.where(mask, g, 0) : Tensor.where(mask, 0, g)).sumTo(shape) } }
        }
    }

    // MARK: dtype conversion

    /// This tensor converted to `dtype` (itself when it has that type), as `Tensor.to(dtype)` in
    /// PyTorch: floats round to nearest even, floats to integers truncate toward zero, anything
    /// to bool is `!= 0`. Between float types the gradient flows back, converted to this
    /// tensor's type.
    public func to(_ dtype: DType) -> Tensor {
        if dtype == self.dtype { return self }
        let out = castStorage(to: dtype)
        guard dtype.isFloatingPoint && self.dtype.isFloatingPoint else { return out }
        let source = self.dtype
        return out.recording("ToCopyBackward", inputs: [self]) { { g in [g.to(source)] } }
    }

    /// This tensor on `device` as `dtype` (one conversion, then one move).
    public func to(_ device: Device, dtype: DType) -> Tensor {
        to(dtype).to(device)
    }

    /// This tensor as Float32.
    public func float() -> Tensor { to(.float32) }

    /// This tensor as float16 (IEEE half).
    public func half() -> Tensor { to(.float16) }

    /// This tensor as bfloat16.
    public func bfloat16() -> Tensor { to(.bfloat16) }

    /// This tensor as Int32 (floats truncate toward zero).
    public func int() -> Tensor { to(.int32) }

    /// This tensor as Int64 (floats truncate toward zero).
    public func long() -> Tensor { to(.int64) }

    /// This tensor as a `.bool` mask (non-zero is true).
    public func bool() -> Tensor { to(.bool) }
}

// MARK: - Double scalars

/// `Double` scalars (the type of Swift's float literals and of most host arithmetic) combine
/// with tensors as `Float` ones do, rounded to Float32 as PyTorch rounds a Python float for a
/// float32 tensor. They are disfavoured overloads, so a literal (`x * 2`, `0.5 * x`) still
/// picks the `Float` operator instead of being ambiguous.
extension Tensor {
    /// Tensor + Double scalar.
    @_disfavoredOverload public static func + (a: Tensor, s: Double) -> Tensor { a + Float(s) }
    /// Double scalar + tensor.
    @_disfavoredOverload public static func + (s: Double, a: Tensor) -> Tensor { Float(s) + a }
    /// Tensor - Double scalar.
    @_disfavoredOverload public static func - (a: Tensor, s: Double) -> Tensor { a - Float(s) }
    /// Double scalar - tensor.
    @_disfavoredOverload public static func - (s: Double, a: Tensor) -> Tensor { Float(s) - a }
    /// Tensor * Double scalar.
    @_disfavoredOverload public static func * (a: Tensor, s: Double) -> Tensor { a * Float(s) }
    /// Double scalar * tensor.
    @_disfavoredOverload public static func * (s: Double, a: Tensor) -> Tensor { Float(s) * a }
    /// Tensor / Double scalar.
    @_disfavoredOverload public static func / (a: Tensor, s: Double) -> Tensor { a / Float(s) }
    /// Double scalar / tensor.
    @_disfavoredOverload public static func / (s: Double, a: Tensor) -> Tensor { Float(s) / a }
    /// Elementwise a == s as a `.bool` mask.
    @_disfavoredOverload public static func == (a: Tensor, s: Double) -> Tensor { a == Float(s) }
    /// Elementwise a != s as a `.bool` mask.
    @_disfavoredOverload public static func != (a: Tensor, s: Double) -> Tensor { a != Float(s) }
    /// Elementwise a < s as a `.bool` mask.
    @_disfavoredOverload public static func < (a: Tensor, s: Double) -> Tensor { a < Float(s) }
    /// Elementwise a <= s as a `.bool` mask.
    @_disfavoredOverload public static func <= (a: Tensor, s: Double) -> Tensor { a <= Float(s) }
    /// Elementwise a > s as a `.bool` mask.
    @_disfavoredOverload public static func > (a: Tensor, s: Double) -> Tensor { a > Float(s) }
    /// Elementwise a >= s as a `.bool` mask.
    @_disfavoredOverload public static func >= (a: Tensor, s: Double) -> Tensor { a >= Float(s) }
    /// Elementwise s == a as a `.bool` mask.
    @_disfavoredOverload public static func == (s: Double, a: Tensor) -> Tensor { a == Float(s) }
    /// Elementwise s != a as a `.bool` mask.
    @_disfavoredOverload public static func != (s: Double, a: Tensor) -> Tensor { a != Float(s) }
    /// Elementwise s < a as a `.bool` mask.
    @_disfavoredOverload public static func < (s: Double, a: Tensor) -> Tensor { a > Float(s) }
    /// Elementwise s <= a as a `.bool` mask.
    @_disfavoredOverload public static func <= (s: Double, a: Tensor) -> Tensor { a >= Float(s) }
    /// Elementwise s > a as a `.bool` mask.
    @_disfavoredOverload public static func > (s: Double, a: Tensor) -> Tensor { a < Float(s) }
    /// Elementwise s >= a as a `.bool` mask.
    @_disfavoredOverload public static func >= (s: Double, a: Tensor) -> Tensor { a <= Float(s) }
}

// MARK: - Closeness

extension Tensor {
    /// Elementwise `|self - other| <= atol + rtol * |other|` as a `.bool` mask, with
    /// broadcasting, as `torch.isclose`: equal values (infinities of one sign too) are close,
    /// a finite value is never close to an infinite one, and NaNs are close to each other
    /// only when `equalNan`. No gradient.
    public func isclose(_ other: Tensor, rtol: Float = 1e-5, atol: Float = 1e-8, equalNan: Bool = false) -> Tensor {
        check(rtol >= 0 && atol >= 0, "isclose: rtol and atol must be >= 0, got rtol \(rtol) and atol \(atol)")
        return Tensor.noGrad {
            let a = float().detach(), b = other.float().detach()
            let error = (a - b).abs()
            let within = (error <= rtol * b.abs() + atol).float() * (error < Float.infinity).float()
            var close = (a == b).float().maximum(within)
            if equalNan { close = close.maximum((a != a).float() * (b != b).float()) }
            return close != 0
        }
    }

    /// Whether every element is close to `other`'s (broadcast), as `torch.allclose`: see
    /// `isclose`. Reads one number back from the device.
    public func allclose(_ other: Tensor, rtol: Float = 1e-5, atol: Float = 1e-8, equalNan: Bool = false) -> Bool {
        (isclose(other, rtol: rtol, atol: atol, equalNan: equalNan) == 0).float().sum().item() == 0
    }
}
