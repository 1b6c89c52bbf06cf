import CPUKernels
import Foundation

/// The elementwise ops, each defined once: its kernel name, its scalar expression in OpenCL C
/// (from which `ElementwiseSource` generates every dtype and layout variant of its kernels)
/// and the CPU function object its loops are specialised on (`Elementwise`), and, for ops that
/// map integers to integers, its exact `IntegerForm`. The float math is in Float32 for every
/// storage type (helpers such as `ember_erf` are in `Kernels/math.cl`). Adding an op: one
/// `static let` here, its public function and backward rule in `Ops/`, and its tests.
struct UnaryOp: Equatable, CustomStringConvertible {
    /// The definition shared by every instance of the op.
    let kernel: UnaryKernel
    /// The op's two Float parameters (`p0`, `p1` in the expression; unused ones are 0).
    var p0: Float = 0, p1: Float = 0

    static func == (a: UnaryOp, b: UnaryOp) -> Bool { a.kernel === b.kernel && a.p0 == b.p0 && a.p1 == b.p1 }

    var description: String { kernel.name }

    static let neg = UnaryOp(kernel: .init("neg", "-x", Elementwise.Neg.self, integer: .init("(long)(0UL - (ulong)x)") { 0 &- $0 },
                                           half: EMBER_HALF_NEG))
    static let abs = UnaryOp(kernel: .init("abs", "fabs(x)", Elementwise.Abs.self, integer: .init("x < 0 ? (long)(0UL - (ulong)x) : x") { $0 < 0 ? 0 &- $0 : $0 },
                                           half: EMBER_HALF_ABS))
    static let sign = UnaryOp(kernel: .init("sign", "x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x)", Elementwise.Sign.self,
                                            integer: .init("x > 0 ? 1L : (x < 0 ? -1L : 0L)") { $0.signum() }))
    static let exp = UnaryOp(kernel: .init("exp", "exp(x)", Elementwise.Exp.self))
    static let log = UnaryOp(kernel: .init("log", "log(x)", Elementwise.Log.self))
    static let sqrt = UnaryOp(kernel: .init("sqrt", "sqrt(x)", Elementwise.Sqrt.self))
    static let rsqrt = UnaryOp(kernel: .init("rsqrt", "1.0f / sqrt(x)", Elementwise.Rsqrt.self))
    static let square = UnaryOp(kernel: .init("square", "x * x", Elementwise.Square.self, integer: .init("(long)((ulong)x * (ulong)x)") { $0 &* $0 },
                                              half: EMBER_HALF_SQUARE))
    static let reciprocal = UnaryOp(kernel: .init("reciprocal", "1.0f / x", Elementwise.Reciprocal.self))
    static let sin = UnaryOp(kernel: .init("sin", "sin(x)", Elementwise.Sin.self))
    static let cos = UnaryOp(kernel: .init("cos", "cos(x)", Elementwise.Cos.self))
    static let tanh = UnaryOp(kernel: .init("tanh", "tanh(x)", Elementwise.Tanh.self))
    static let sigmoid = UnaryOp(kernel: .init("sigmoid", "1.0f / (1.0f + exp(-x))", Elementwise.Sigmoid.self))
    static let relu = UnaryOp(kernel: .init("relu", "x > 0.0f ? x : 0.0f", Elementwise.Relu.self, integer: .init("x > 0 ? x : 0L") { Swift.max($0, 0) },
                                            half: EMBER_HALF_RELU))
    static let gelu = UnaryOp(kernel: .init("gelu", "0.5f * x * (1.0f + ember_erf(x * 0.70710678118654752f))", Elementwise.Gelu.self,
                                            dense: ember_gelu))
    static let geluTanh = UnaryOp(kernel: .init("gelu_tanh", "0.5f * x * (1.0f + tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)))",
                                                Elementwise.GeluTanh.self))
    static let erf = UnaryOp(kernel: .init("erf", "ember_erf(x)", Elementwise.Erf.self))
    static let silu = UnaryOp(kernel: .init("silu", "x / (1.0f + exp(-x))", Elementwise.Silu.self))
    static let mish = UnaryOp(kernel: .init("mish", "x * tanh(x > 20.0f ? x : log1p(exp(x)))", Elementwise.Mish.self))
    static let logSigmoid = UnaryOp(kernel: .init("log_sigmoid", "fmin(x, 0.0f) - log1p(exp(-fabs(x)))", Elementwise.LogSigmoid.self))
    static let hardSigmoid = UnaryOp(kernel: .init("hard_sigmoid", "fmin(fmax(x + 3.0f, 0.0f), 6.0f) / 6.0f", Elementwise.HardSigmoid.self))
    static let hardSwish = UnaryOp(kernel: .init("hard_swish", "x * fmin(fmax(x + 3.0f, 0.0f), 6.0f) / 6.0f", Elementwise.HardSwish.self))
    static let log1p = UnaryOp(kernel: .init("log1p", "log1p(x)", Elementwise.Log1p.self))
    static let expm1 = UnaryOp(kernel: .init("expm1", "expm1(x)", Elementwise.Expm1.self))
    static let floor = UnaryOp(kernel: .init("floor", "floor(x)", Elementwise.Floor.self, integer: .init("x") { $0 }))
    static let ceil = UnaryOp(kernel: .init("ceil", "ceil(x)", Elementwise.Ceil.self, integer: .init("x") { $0 }))
    static let round = UnaryOp(kernel: .init("round", "rint(x)", Elementwise.Round.self, integer: .init("x") { $0 }))
    static let trunc = UnaryOp(kernel: .init("trunc", "trunc(x)", Elementwise.Trunc.self, integer: .init("x") { $0 }))
    private static let softplusKernel = UnaryKernel("softplus", "p0 * x > p1 ? x : log1p(exp(p0 * x)) / p0", Elementwise.Softplus.self)
    private static let eluKernel = UnaryKernel("elu", "x > 0.0f ? p1 * x : p1 * p0 * expm1(x)", Elementwise.Elu.self)
    private static let leakyReluKernel = UnaryKernel("leaky_relu", "x > 0.0f ? x : p0 * x", Elementwise.LeakyRelu.self)
    private static let clampKernel = UnaryKernel("clamp", "fmin(fmax(x, p0), p1)", Elementwise.Clamp.self)
    private static let powScalarKernel = UnaryKernel("pow_scalar", "pow(x, p0)", Elementwise.PowScalar.self)

    /// x for x > 0, else slope·x.
    static func leakyRelu(slope: Float) -> UnaryOp { UnaryOp(kernel: leakyReluKernel, p0: slope) }
    /// min(max(x, lower), upper).
    static func clamp(min lower: Float, max upper: Float) -> UnaryOp { UnaryOp(kernel: clampKernel, p0: lower, p1: upper) }
    /// x^exponent.
    static func powScalar(_ exponent: Float) -> UnaryOp { UnaryOp(kernel: powScalarKernel, p0: exponent) }
    /// log(1 + e^(beta·x)) / beta, or x where beta·x > threshold.
    static func softplus(beta: Float, threshold: Float) -> UnaryOp { UnaryOp(kernel: softplusKernel, p0: beta, p1: threshold) }
    /// scale·x for x > 0, else scale·alpha·(e^x - 1) (ELU with scale 1, SELU with its constants).
    static func elu(alpha: Float, scale: Float) -> UnaryOp { UnaryOp(kernel: eluKernel, p0: alpha, p1: scale) }

    /// Every unary op (the OpenCL program holds one kernel pair per entry).
    static let all: [UnaryKernel] = [neg, abs, sign, exp, log, sqrt, rsqrt, square, reciprocal, sin, cos, tanh,
                                     sigmoid, relu, gelu, geluTanh, erf, silu, mish, logSigmoid, hardSigmoid, hardSwish,
                                     log1p, expm1, floor, ceil, round, trunc].map(\.kernel)
        + [leakyReluKernel, clampKernel, powScalarKernel, softplusKernel, eluKernel]
}

/// Elementwise `(Float, Float) -> Float`; comparisons write a `.bool` mask. Defined once, as
/// `UnaryOp` is.
struct BinaryOp: Equatable, CustomStringConvertible {
    /// The definition.
    let kernel: BinaryKernel

    static func == (a: BinaryOp, b: BinaryOp) -> Bool { a.kernel === b.kernel }

    var description: String { kernel.name }
    /// True for the comparisons, which produce masks.
    var isComparison: Bool { kernel.producesMask }

    static let add = BinaryOp(kernel: .init("add", "a + b", Elementwise.Add.self, integer: .init("(long)((ulong)a + (ulong)b)") { $0 &+ $1 },
                                          half: EMBER_HALF_ADD))
    static let sub = BinaryOp(kernel: .init("sub", "a - b", Elementwise.Sub.self, integer: .init("(long)((ulong)a - (ulong)b)") { $0 &- $1 },
                                          half: EMBER_HALF_SUB))
    static let mul = BinaryOp(kernel: .init("mul", "a * b", Elementwise.Mul.self, integer: .init("(long)((ulong)a * (ulong)b)") { $0 &* $1 },
                                          half: EMBER_HALF_MUL))
    static let div = BinaryOp(kernel: .init("div", "a / b", Elementwise.Div.self, half: EMBER_HALF_DIV))
    static let pow = BinaryOp(kernel: .init("pow", "pow(a, b)", Elementwise.Pow.self))
    /// a - b·floor(a / b), with the divisor's sign (Python's `%`); integers by 0 give 0.
    static let remainder = BinaryOp(kernel: .init("remainder", "ember_remainder(a, b)", Elementwise.Remainder.self, integer: .init(
        "(b == 0 || b == -1) ? 0L : ((a % b != 0 && ((a % b < 0) != (b < 0))) ? a % b + b : a % b)") { a, b in
            guard b != 0 else { return 0 }
            let r = a.remainderReportingOverflow(dividingBy: b).partialValue
            return r != 0 && (r < 0) != (b < 0) ? r &+ b : r
        }))
    /// floor(a / b) (Python's `//`); integers by 0 give 0.
    static let floorDivide = BinaryOp(kernel: .init("floor_divide", "ember_floor_divide(a, b)", Elementwise.FloorDivide.self, integer: .init(
        "b == 0 ? 0L : (b == -1 ? (long)(0UL - (ulong)a) : (a / b - ((a % b != 0 && ((a < 0) != (b < 0))) ? 1L : 0L)))") { a, b in
            guard b != 0 else { return 0 }
            let q = a.dividedReportingOverflow(by: b).partialValue, r = a.remainderReportingOverflow(dividingBy: b).partialValue
            return r != 0 && (a < 0) != (b < 0) ? q &- 1 : q
        }))
    static let maximum = BinaryOp(kernel: .init("maximum", "(isnan(a) || isnan(b)) ? NAN : fmax(a, b)", Elementwise.Maximum.self,
                                                 integer: .init("max(a, b)") { Swift.max($0, $1) }, half: EMBER_HALF_MAXIMUM))
    static let minimum = BinaryOp(kernel: .init("minimum", "(isnan(a) || isnan(b)) ? NAN : fmin(a, b)", Elementwise.Minimum.self,
                                                 integer: .init("min(a, b)") { Swift.min($0, $1) }, half: EMBER_HALF_MINIMUM))
    /// ReLU's backward, `b > 0 ? a : 0` (the gradient `a` where the input `b` is positive).
    static let reluGradient = BinaryOp(kernel: .init("relu_gradient", "b > 0.0f ? a : 0.0f", Elementwise.ReluGradient.self,
                                                     half: EMBER_HALF_RELU_GRADIENT))
    /// The exact GELU's backward, `a·(Φ(b) + b·φ(b))`: the gradient `a` times GELU's derivative
    /// at the input `b` (Φ, φ the standard normal CDF and density).
    static let geluGradient = BinaryOp(kernel: .init("gelu_gradient",
        "a * (0.5f * (1.0f + ember_erf(b * 0.70710678118654752f)) + 0.39894228040143268f * b * ember_exp(-0.5f * b * b))",
        Elementwise.GeluGradient.self, dense: ember_gelu_gradient))
    /// The tanh-form GELU's backward: with s = sigmoid(2u), u = √(2/π)·(b + 0.044715·b³), the
    /// GELU is b·s and its derivative s + b·s·(1 - s)·2u'.
    static let geluTanhGradient = BinaryOp(kernel: .init("gelu_tanh_gradient",
        "a * (1.0f / (1.0f + exp(-1.5957691216057308f * (b + 0.044715f * b * b * b))) * (1.0f + b * (1.0f - 1.0f / (1.0f + exp(-1.5957691216057308f * (b + 0.044715f * b * b * b)))) * 1.5957691216057308f * (1.0f + 0.134145f * b * b)))",
        Elementwise.GeluTanhGradient.self))
    static let eq = BinaryOp(kernel: .init("eq", "a == b", Elementwise.Equal.self, mask: true, integer: .init("a == b") { $0 == $1 ? 1 : 0 }))
    static let ne = BinaryOp(kernel: .init("ne", "a != b", Elementwise.NotEqual.self, mask: true, integer: .init("a != b") { $0 != $1 ? 1 : 0 }))
    static let lt = BinaryOp(kernel: .init("lt", "a < b", Elementwise.Less.self, mask: true, integer: .init("a < b") { $0 < $1 ? 1 : 0 }))
    static let le = BinaryOp(kernel: .init("le", "a <= b", Elementwise.LessEqual.self, mask: true, integer: .init("a <= b") { $0 <= $1 ? 1 : 0 }))
    static let gt = BinaryOp(kernel: .init("gt", "a > b", Elementwise.Greater.self, mask: true, integer: .init("a > b") { $0 > $1 ? 1 : 0 }))
    static let ge = BinaryOp(kernel: .init("ge", "a >= b", Elementwise.GreaterEqual.self, mask: true, integer: .init("a >= b") { $0 >= $1 ? 1 : 0 }))

    /// Every binary op.
    static let all: [BinaryKernel] = [add, sub, mul, div, pow, remainder, floorDivide, maximum, minimum, reluGradient, geluGradient, geluTanhGradient, eq, ne, lt, le, gt, ge].map(\.kernel)
}

/// The ops' math in Swift for the CPU loops, one function object per op (the same expression
/// as its OpenCL text).
extension Elementwise {
    struct Neg: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { -x } }
    struct Abs: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { Swift.abs(x) } }
    struct Sign: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : x) } }
    struct Exp: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.exp(x) } }
    struct Log: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.log(x) } }
    struct Sqrt: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x.squareRoot() } }
    struct Rsqrt: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { 1 / x.squareRoot() } }
    struct Square: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x * x } }
    struct Reciprocal: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { 1 / x } }
    struct Sin: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.sin(x) } }
    struct Cos: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.cos(x) } }
    struct Tanh: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.tanh(x) } }
    struct Sigmoid: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { 1 / (1 + VectorMath.exp(-x)) } }
    struct Relu: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x > 0 ? x : 0 } }
    struct Gelu: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { 0.5 * x * (1 + VectorMath.erf(x * 0.707_106_781_186_547_5)) } }
    /// GELU's tanh form as x·sigmoid(2u), u = √(2/π)·(x + 0.044715·x³), which equals
    /// 0.5·x·(1 + tanh(u)) and needs only an exp.
    struct GeluTanh: PlainUnaryFunction {
        @inline(__always) func apply(_ x: Float) -> Float {
            x / (1 + VectorMath.exp(-1.595_769_121_605_731 * (x + 0.044_715 * x * x * x)))
        }
    }
    struct Erf: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { VectorMath.erf(x) } }
    struct Silu: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x / (1 + VectorMath.exp(-x)) } }
    struct Mish: PlainUnaryFunction {
        @inline(__always) func apply(_ x: Float) -> Float { x * Foundation.tanh(x > 20 ? x : Foundation.log1p(VectorMath.exp(x))) }
    }
    struct LogSigmoid: PlainUnaryFunction {
        @inline(__always) func apply(_ x: Float) -> Float { Swift.min(x, 0) - Foundation.log1p(VectorMath.exp(-Swift.abs(x))) }
    }
    struct HardSigmoid: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { Swift.min(Swift.max(x + 3, 0), 6) / 6 } }
    struct HardSwish: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x * Swift.min(Swift.max(x + 3, 0), 6) / 6 } }
    struct Log1p: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.log1p(x) } }
    struct Expm1: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { Foundation.expm1(x) } }
    struct Floor: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x.rounded(.down) } }
    struct Ceil: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x.rounded(.up) } }
    struct Round: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x.rounded(.toNearestOrEven) } }
    struct Trunc: PlainUnaryFunction { @inline(__always) func apply(_ x: Float) -> Float { x.rounded(.towardZero) } }
    struct Softplus: UnaryFunction {
        let beta: Float, threshold: Float
        init(_ p0: Float, _ p1: Float) { beta = p0; threshold = p1 }
        @inline(__always) func apply(_ x: Float) -> Float { beta * x > threshold ? x : Foundation.log1p(VectorMath.exp(beta * x)) / beta }
    }
    struct Elu: UnaryFunction {
        let alpha: Float, scale: Float
        init(_ p0: Float, _ p1: Float) { alpha = p0; scale = p1 }
        @inline(__always) func apply(_ x: Float) -> Float { x > 0 ? scale * x : scale * alpha * Foundation.expm1(x) }
    }
    struct LeakyRelu: UnaryFunction {
        let slope: Float
        init(_ p0: Float, _ p1: Float) { slope = p0 }
        @inline(__always) func apply(_ x: Float) -> Float { x > 0 ? x : slope * x }
    }
    struct Clamp: UnaryFunction {
        let lower: Float, upper: Float
        init(_ p0: Float, _ p1: Float) { lower = p0; upper = p1 }
        @inline(__always) func apply(_ x: Float) -> Float { Swift.min(Swift.max(x, lower), upper) }
    }
    struct PowScalar: UnaryFunction {
        let exponent: Float
        init(_ p0: Float, _ p1: Float) { exponent = p0 }
        @inline(__always) func apply(_ x: Float) -> Float { Foundation.pow(x, exponent) }
    }

    struct Add: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a + b } }
    struct Sub: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a - b } }
    struct Mul: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a * b } }
    struct Div: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a / b } }
    struct Pow: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { Foundation.pow(a, b) } }
    struct Remainder: BinaryFunction {
        @inline(__always) func apply(_ a: Float, _ b: Float) -> Float {
            let m = Foundation.fmod(a, b)
            return m != 0 && (b < 0) != (m < 0) ? m + b : m
        }
    }
    struct FloorDivide: BinaryFunction {
        @inline(__always) func apply(_ a: Float, _ b: Float) -> Float {
            if b == 0 { return a / b }
            let m = Foundation.fmod(a, b)
            var d = (a - m) / b
            if m != 0 && (b < 0) != (m < 0) { d -= 1 }
            if d == 0 { return Float(signOf: a / b, magnitudeOf: 0) }
            let f = d.rounded(.down)
            return d - f > 0.5 ? f + 1 : f
        }
    }
    struct Maximum: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a.isNaN || b.isNaN ? .nan : Swift.max(a, b) } }
    struct Minimum: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a.isNaN || b.isNaN ? .nan : Swift.min(a, b) } }
    struct ReluGradient: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { b > 0 ? a : 0 } }
    struct GeluGradient: BinaryFunction {
        @inline(__always) func apply(_ a: Float, _ b: Float) -> Float {
            a * (0.5 * (1 + VectorMath.erf(b * 0.707_106_781_186_547_5)) + 0.398_942_280_401_432_7 * b * VectorMath.exp(-0.5 * b * b))
        }
    }
    struct GeluTanhGradient: BinaryFunction {
        @inline(__always) func apply(_ a: Float, _ b: Float) -> Float {
            let s = 1 / (1 + VectorMath.exp(-1.595_769_121_605_731 * (b + 0.044_715 * b * b * b)))
            return a * (s * (1 + b * (1 - s) * 1.595_769_121_605_731 * (1 + 0.134_145 * b * b)))
        }
    }
    struct Equal: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a == b ? 1 : 0 } }
    struct NotEqual: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a != b ? 1 : 0 } }
    struct Less: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a < b ? 1 : 0 } }
    struct LessEqual: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a <= b ? 1 : 0 } }
    struct Greater: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a > b ? 1 : 0 } }
    struct GreaterEqual: BinaryFunction { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a >= b ? 1 : 0 } }

}

/// An op's exact integer form: its OpenCL C expression over `long` operands (`x`, or `a` and
/// `b`) and the same function in Swift, both wrapping on overflow as PyTorch's integer
/// arithmetic does (the OpenCL text computes in `ulong` where C's signed overflow is undefined).
struct IntegerForm<Function>: @unchecked Sendable {
    let expression: String
    let apply: Function

    init(_ expression: String, _ apply: Function) {
        self.expression = expression
        self.apply = apply
    }
}

/// A C kernel of a unary op over `n` contiguous floats: `(x, y, n)`.
typealias DenseUnaryKernel = @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void
/// A C kernel of a binary op over `n` contiguous floats of each operand: `(a, b, y, n)`.
typealias DenseBinaryKernel = @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void

/// An op's Float32 C kernel, which the CPU's 16-bit loops also run on their widened blocks.
enum DenseKernel {
    case unary(DenseUnaryKernel)
    case binary(DenseBinaryKernel)
}

/// A unary op's definition: its kernel name, OpenCL expression of `x` (and parameters `p0`,
/// `p1`), and the CPU loops specialised on its function object `F`.
final class UnaryKernel: Sendable {
    let name: String
    let expression: String
    /// The op's exact integer form, when it maps integers to integers (neg, abs, ...): on
    /// integer input it computes in Int64 and the result keeps the input's type, as PyTorch's;
    /// other ops compute in Float32 and give Float32.
    let integer: IntegerForm<(Int64) -> Int64>?
    /// Runs the op's specialised CPU loop (see `CPUBackend.unaryLoop`).
    let cpu: @Sendable (CPUBackend, StridedView, DeviceBuffer, Float, Float) -> Void

    /// True when integer input keeps its integer type.
    var keepsIntegers: Bool { integer != nil }

    /// `dense`, when given, is a C kernel (`CPUKernels`, AVX-512/AVX2 code picked at run time)
    /// computing the same function over a contiguous Float32 run, which the CPU loops call in
    /// place of `function` for contiguous Float32 operands and on the Float32 blocks they widen
    /// contiguous float16/bfloat16 operands into; `half` names the op in the C
    /// kernels over contiguous float16/bfloat16 runs (`ember_half_unary`, one pass computing
    /// the same bits as widening, `function` and narrowing), which they call for those.
    init<F: UnaryFunction>(_ name: String, _ expression: String, _ function: F.Type, integer: IntegerForm<(Int64) -> Int64>? = nil,
                           dense: DenseUnaryKernel? = nil, half: ember_half_unary_op? = nil) {
        self.name = name
        self.expression = expression
        self.integer = integer
        self.cpu = { backend, source, destination, p0, p1 in
            backend.unaryLoop(source, destination, F(p0, p1), dense: dense, half: half)
        }
    }
}

/// A binary op's definition: its kernel name, OpenCL expression of `a` and `b`, whether it is
/// a comparison (its expression is a condition, written as a mask), and its CPU loops.
final class BinaryKernel: Sendable {
    let name: String
    let expression: String
    let producesMask: Bool
    /// The op's exact integer form (add, sub, mul, maximum, minimum and the comparisons, whose
    /// integer form is 1 or 0): two integer operands compute in Int64; other ops compute in
    /// Float32.
    let integer: IntegerForm<(Int64, Int64) -> Int64>?
    /// Runs the op's specialised CPU loop (see `CPUBackend.binaryLoop`).
    let cpu: @Sendable (CPUBackend, Operand, Operand, [Int], DType, DeviceBuffer) -> Void

    /// True when the op of two integers is an integer (add, sub, mul, maximum, minimum): its
    /// result then has the operands' promoted integer (or bool) type; other ops give Float32
    /// (or a mask).
    var keepsIntegers: Bool { integer != nil && !producesMask }

    /// `dense` as `UnaryKernel`'s: a C kernel for two contiguous Float32 operands of the result's
    /// shape; `half` as `UnaryKernel`'s (`ember_half_binary`), for contiguous float16/bfloat16
    /// operands of the result's shape or a scalar beside one.
    init<F: BinaryFunction>(_ name: String, _ expression: String, _ function: F.Type, mask: Bool = false,
                            integer: IntegerForm<(Int64, Int64) -> Int64>? = nil, dense: DenseBinaryKernel? = nil,
                            half: ember_half_binary_op? = nil) {
        self.name = name
        self.expression = expression
        self.producesMask = mask
        self.integer = integer
        self.cpu = { backend, a, b, shape, dtype, destination in
            backend.binaryLoop(a, b, shape: shape, dtype: dtype, destination, F(), mask: mask, dense: dense, half: half)
        }
    }
}

/// The OpenCL program `integer.cl` of the ops' exact integer forms, generated from their
/// definitions: one kernel per op over dense `long` runs (a constant operand comes as a value
/// with step 0), and the integer reductions. Built at its first use.
enum IntegerSource {
    static let generated: String = {
        var out = ""
        for op in UnaryOp.all {
            guard let form = op.integer else { continue }
            out += """
            __kernel void integer_\(op.name)(__global const long* src, int off, __global long* dst, int n) {
                int i = get_global_id(0);
                if (i >= n) return;
                long x = src[off + i];
                dst[i] = \(form.expression);
            }

            """
        }
        for op in BinaryOp.all {
            guard let form = op.integer else { continue }
            let (type, value) = op.producesMask ? ("uchar", "(\(form.expression)) ? 1 : 0") : ("long", form.expression)
            out += """
            __kernel void integer_\(op.name)(__global const long* x, int x_off, int x_step, long x_value,
                                           __global const long* y, int y_off, int y_step, long y_value, __global \(type)* dst, int n) {
                int i = get_global_id(0);
                if (i >= n) return;
                long a = x_step ? x[x_off + i] : x_value, b = y_step ? y[y_off + i] : y_value;
                dst[i] = \(value);
            }

            """
        }
        // `op` is ReduceOp's raw value: 0 sum, 1 max, 2 min, 3 argmax, 4 argmin.
        out += """
        __kernel void integer_reduce(__global const long* src, int off, int outer, int size, int inner, int op, __global long* dst) {
            int index = get_global_id(0);
            if (index >= outer * inner) return;
            int o = index / inner, i = index % inner;
            __global const long* base = src + off + (long)o * size * inner + i;
            long best = base[0];
            int at = 0;
            for (int k = 1; k < size; ++k) {
                long x = base[(long)k * inner];
                if (op == 0) best = (long)((ulong)best + (ulong)x);
                else if ((op == 1 || op == 3) ? x > best : x < best) { best = x; at = k; }
            }
            dst[index] = op >= 3 ? (long)at : best;
        }

        """
        return out
    }()
}

/// The OpenCL source of the elementwise ops, generated from their definitions and appended
/// to `Kernels/elementwise.cl` (the layout helpers), after `Kernels/storage.cl` (the `LOAD`
/// and `STORE` macros of each storage type). The program is built once per float storage
/// type (`-DSTORAGE=` 0 float32, 1 float16, 2 bfloat16) with the same kernel names, the
/// narrow ones on first use of their type.
enum ElementwiseSource {
    /// The generated kernels (unary, binary, select) for the storage type the build selects.
    static let generated: String = {
        var out = ""
        for op in UnaryOp.all {
            out += """
            __kernel void unary_\(op.name)(__global const ELEM* src, int src_off, __global ELEM* dst, int n, float p0, float p1) {
            \(denseRun([("x", "src", "src_off")], op.expression, mask: false))}
            __kernel void unary_\(op.name)_strided(__global const ELEM* src, int src_off, __global ELEM* dst, int n,
                                                 int rank, int8 shape, int8 stride, float p0, float p1) {
                STRIDED_RUN(n, rank, shape)
                int at = src_off + view_offset(row, j0, rank, shape, stride), step = int8_entry(rank - 1, stride);
                for (int k = 0; k < len; ++k) {
                    float x = LOAD(src, at + k * step);
                    STORE(dst, i0 + k, \(op.expression));
                }
            }

            """
        }
        for op in BinaryOp.all {
            let mask = op.producesMask
            let out_t = mask ? "uchar" : "ELEM"
            let value = mask ? "(\(op.expression)) ? 1 : 0" : op.expression
            let store = mask ? "dst[%@] = \(value);" : "STORE(dst, %@, \(value));"
            func st(_ index: String) -> String { store.replacingOccurrences(of: "%@", with: index) }
            out += """
            __kernel void binary_\(op.name)_tt(__global const ELEM* x, int x_off, __global const ELEM* y, int y_off, __global \(out_t)* dst, int n) {
            \(denseRun([("a", "x", "x_off"), ("b", "y", "y_off")], value, mask: mask))}
            __kernel void binary_\(op.name)_ts(__global const ELEM* x, int x_off, float b, __global \(out_t)* dst, int n) {
            \(denseRun([("a", "x", "x_off")], value, mask: mask))}
            __kernel void binary_\(op.name)_st(float a, __global const ELEM* y, int y_off, __global \(out_t)* dst, int n) {
            \(denseRun([("b", "y", "y_off")], value, mask: mask))}
            __kernel void binary_\(op.name)_strided(__global const ELEM* x, int x_off, int8 x_stride, float x_scalar, int x_is_scalar,
                                                  __global const ELEM* y, int y_off, int8 y_stride, float y_scalar, int y_is_scalar,
                                                  __global \(out_t)* dst, int n, int rank, int8 shape) {
                STRIDED_RUN(n, rank, shape)
                OPERAND_RUN(xa, x_off, x_stride, x_is_scalar)
                OPERAND_RUN(ya, y_off, y_stride, y_is_scalar)
                for (int k = 0; k < len; ++k) {
                    float a = OPERAND_VALUE(xa, x, x_scalar, x_is_scalar, k);
                    float b = OPERAND_VALUE(ya, y, y_scalar, y_is_scalar, k);
                    \(st("i0 + k"))
                }
            }

            """
        }
        return out
    }()

    /// The body of a dense kernel over its work-item's run (`DENSE_RUN`): each input `name`
    /// read from element `offset + i` of `pointer`, `value` written to element `i` of `dst`
    /// (a byte when `mask`). In float16 builds with full runs (`HALF_RUNS`, CPU devices) the
    /// float16 operands go a chunk of eight at a time through `half_chunk_in`/`half_chunk_out`,
    /// the form PoCL vectorises.
    private static func denseRun(_ inputs: [(name: String, pointer: String, offset: String)], _ value: String, mask: Bool) -> String {
        let loads = inputs.map { "float \($0.name) = LOAD(\($0.pointer), \($0.offset) + i);" }.joined(separator: " ")
        let widen = inputs.map {
            "float8 \($0.name)_8 = half_chunk_in(\($0.pointer) + \($0.offset) + c); const float* \($0.name)_k = (const float*)&\($0.name)_8;"
        }
        let lanes = inputs.map { "float \($0.name) = \($0.name)_k[k];" }.joined(separator: " ")
        return """
            DENSE_RUN(n)
        #if STORAGE == 1 && HALF_RUNS
            if (end - i0 == RUN) {
                for (int c = i0; c < end; c += 8) {
                    \(widen.joined(separator: "\n            "))
                    \(mask ? "" : "float8 out_8; float* out_k = (float*)&out_8;")
                    for (int k = 0; k < 8; ++k) { \(lanes) \(mask ? "dst[c + k] = \(value);" : "out_k[k] = \(value);") }
                    \(mask ? "" : "half_chunk_out(dst + c, out_8);")
                }
                return;
            }
        #endif
            for (int i = i0; i < end; ++i) { \(loads) \(mask ? "dst[i] = \(value);" : "STORE(dst, i, \(value));") }

        """
    }

    /// The cast kernels `cast_<from>_<to>` for every pair of distinct dtypes: each reads its
    /// source as float (float types) or long (the others) and converts with `DType.convert`'s
    /// rules. Part of the STORAGE=0 build only (they do not depend on it).
    static let casts: String = {
        var out = "#if STORAGE == 0\n"
        for from in DType.allCases {
            for to in DType.allCases where to != from {
                out += """
                __kernel void cast_\(from)_\(to)(__global const \(cType(from))* src, int src_off, __global \(cType(to))* dst, int n,
                                               int rank, int8 shape, int8 stride) {
                    STRIDED_RUN(n, rank, shape)
                    int at = src_off + view_offset(row, j0, rank, shape, stride), step = int8_entry(rank - 1, stride);
                    for (int k = 0; k < len; ++k) {
                        \(from.isFloatingPoint ? "float" : "long") v = \(load(from, "src", "at + k * step"));
                        \(store(to, "dst", "i0 + k", from: from))
                    }
                }

                """
            }
        }
        return out + "#endif\n"
    }()

    /// The OpenCL C type a buffer of `dtype` is declared with.
    private static func cType(_ dtype: DType) -> String {
        switch dtype {
        case .float32: "float"
        case .float16, .bfloat16: "ushort"
        case .int32: "int"
        case .int64: "long"
        case .uint8, .bool: "uchar"
        }
    }

    private static func load(_ dtype: DType, _ p: String, _ i: String) -> String {
        switch dtype {
        case .float16: "half_to_float(\(p)[\(i)])"
        case .bfloat16: "bf16_to_float(\(p)[\(i)])"
        default: "\(p)[\(i)]"
        }
    }

    /// The statement storing `v` (a float, or a long when `from` is not a float type).
    private static func store(_ dtype: DType, _ p: String, _ i: String, from: DType) -> String {
        let float = from.isFloatingPoint
        switch dtype {
        case .float32: return "\(p)[\(i)] = (float)v;"
        case .float16: return "\(p)[\(i)] = float_to_half((float)v);"
        case .bfloat16: return "\(p)[\(i)] = float_to_bf16((float)v);"
        case .int32: return "\(p)[\(i)] = \(float ? "convert_int_sat_rtz(v)" : "(int)v");"
        case .int64: return "\(p)[\(i)] = \(float ? "convert_long_sat_rtz(v)" : "v");"
        case .uint8: return "\(p)[\(i)] = \(float ? "(uchar)convert_long_sat_rtz(v)" : "(uchar)v");"
        case .bool: return "\(p)[\(i)] = v != 0 ? 1 : 0;"
        }
    }
}
