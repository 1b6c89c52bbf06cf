import CPUKernels
import Foundation
import Testing
@testable import Ember

/// The CPU's one-pass 16-bit kernels (`ember_half_binary`, `ember_half_unary`, `ember_half_sum`)
/// against widening each element, the op's Swift function and narrowing, on every instruction
/// set the CPU has, every operand layout, and lengths with and without a vector tail.
@Suite("CPU float16/bfloat16 one-pass kernels")
struct HalfKernelTests {
    static let formats: [(ember_half_format, String)] = [(EMBER_FLOAT16, "float16"), (EMBER_BFLOAT16, "bfloat16")]
    static let lengths = [1, 3, 8, 13, 64, 1027]

    static func widen(_ format: ember_half_format, _ x: [UInt16]) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        if format == EMBER_FLOAT16 { ember_f16_to_f32_isa(EMBER_ISA_SCALAR, x, &y, x.count) } else { ember_bf16_to_f32_isa(EMBER_ISA_SCALAR, x, &y, x.count) }
        return y
    }

    static func narrow(_ format: ember_half_format, _ x: [Float]) -> [UInt16] {
        var y = [UInt16](repeating: 0, count: x.count)
        if format == EMBER_FLOAT16 { ember_f32_to_f16_isa(EMBER_ISA_SCALAR, x, &y, x.count) } else { ember_f32_to_bf16_isa(EMBER_ISA_SCALAR, x, &y, x.count) }
        return y
    }

    /// True when `bits` is a NaN of `format`.
    static func isNaN(_ format: ember_half_format, _ bits: UInt16) -> Bool {
        format == EMBER_FLOAT16 ? bits & 0x7FFF > 0x7C00 : bits & 0x7FFF > 0x7F80
    }

    /// Random bit patterns: every class of value (NaN, infinities, subnormals, signed zeros)
    /// turns up, plus exact zeros and ties for maximum/minimum.
    static func patterns(_ n: Int, seed: UInt64) -> [UInt16] {
        var random = TestRandom(seed: seed)
        return (0..<n).map { i in
            switch i % 11 {
            case 3: return 0x8000
            case 7: return 0
            default: return UInt16(truncatingIfNeeded: random.next())
            }
        }
    }

    /// Same bits, or NaN for NaN (the sign and payload of a NaN from two NaN operands depend on
    /// the operand order the compiler picks).
    static func expectSame(_ got: [UInt16], _ want: [UInt16], _ format: ember_half_format, _ label: String) {
        var mismatches = 0
        for i in got.indices where got[i] != want[i] && !(isNaN(format, got[i]) && isNaN(format, want[i])) {
            mismatches += 1
            if mismatches <= 3 { Issue.record("\(label) [\(i)]: \(String(got[i], radix: 16)), want \(String(want[i], radix: 16))") }
        }
        #expect(mismatches == 0, "\(label): \(mismatches) of \(got.count) differ")
    }

    static let binary: [(ember_half_binary_op, String, @Sendable (Float, Float) -> Float)] = [
        (EMBER_HALF_ADD, "add", Elementwise.Add().apply), (EMBER_HALF_SUB, "sub", Elementwise.Sub().apply),
        (EMBER_HALF_MUL, "mul", Elementwise.Mul().apply), (EMBER_HALF_DIV, "div", Elementwise.Div().apply),
        (EMBER_HALF_MAXIMUM, "maximum", Elementwise.Maximum().apply), (EMBER_HALF_MINIMUM, "minimum", Elementwise.Minimum().apply),
        (EMBER_HALF_RELU_GRADIENT, "relu_gradient", Elementwise.ReluGradient().apply),
    ]

    static let unary: [(ember_half_unary_op, String, @Sendable (Float) -> Float)] = [
        (EMBER_HALF_NEG, "neg", Elementwise.Neg().apply), (EMBER_HALF_ABS, "abs", Elementwise.Abs().apply),
        (EMBER_HALF_RELU, "relu", Elementwise.Relu().apply), (EMBER_HALF_SQUARE, "square", Elementwise.Square().apply),
    ]

    @Test("binary ops of two runs, a run and a scalar, and a scalar and a run give the bits of widen-compute-narrow")
    func binaryOps() {
        for (format, name) in Self.formats {
            let a = Self.patterns(1027, seed: 1), b = Self.patterns(1027, seed: 2)
            let wa = Self.widen(format, a), wb = Self.widen(format, b)
            // Scalars: a finite value and a special one (the kernels take them as Float32).
            for scalar in [wb[5].isFinite ? wb[5] : 1.5, -0.0, .infinity] as [Float] {
                for (op, opName, f) in Self.binary {
                    for isa in isas(upTo: ember_cpu_isa()) {
                        for n in Self.lengths {
                            for layout in ["run, run", "run, scalar", "scalar, run"] {
                                let left = layout.hasPrefix("scalar") ? [Float](repeating: scalar, count: n) : Array(wa[..<n])
                                let right = layout.hasSuffix("scalar") ? [Float](repeating: scalar, count: n) : Array(wb[..<n])
                                let want = Self.narrow(format, zip(left, right).map(f))
                                var got = [UInt16](repeating: 0x1234, count: n + 1)
                                a.withUnsafeBufferPointer { pa in
                                    b.withUnsafeBufferPointer { pb in
                                        ember_half_binary_isa(isa, op, format, layout.hasPrefix("scalar") ? nil : pa.baseAddress, scalar,
                                                              layout.hasSuffix("scalar") ? nil : pb.baseAddress, scalar, &got, n)
                                    }
                                }
                                Self.expectSame(Array(got[..<n]), want, format, "\(name) \(opName) (\(layout), scalar \(scalar)), isa \(isa.rawValue), n \(n)")
                                #expect(got[n] == 0x1234, "\(name) \(opName): wrote past n = \(n)")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("unary ops give the bits of widen-compute-narrow")
    func unaryOps() {
        for (format, name) in Self.formats {
            let x = Self.patterns(1027, seed: 3), wx = Self.widen(format, x)
            for (op, opName, f) in Self.unary {
                for isa in isas(upTo: ember_cpu_isa()) {
                    for n in Self.lengths {
                        let want = Self.narrow(format, wx[..<n].map(f))
                        var got = [UInt16](repeating: 0x1234, count: n + 1)
                        ember_half_unary_isa(isa, op, format, x, &got, n)
                        Self.expectSame(Array(got[..<n]), want, format, "\(name) \(opName), isa \(isa.rawValue), n \(n)")
                        #expect(got[n] == 0x1234, "\(name) \(opName): wrote past n = \(n)")
                    }
                }
            }
        }
    }

    @Test("sums match a Double sum of the widened values; NaN and infinity propagate")
    func sums() {
        var random = TestRandom(seed: 4)
        for (format, name) in Self.formats {
            let values = (0..<4099).map { _ in random.float(-4...4) }
            let x = Self.narrow(format, values), wx = Self.widen(format, x)
            for isa in isas(upTo: ember_cpu_isa()) {
                for n in Self.lengths + [4099] {
                    let exact = wx[..<n].reduce(0.0) { $0 + Double($1) }
                    let magnitude = wx[..<n].reduce(0.0) { $0 + Double(Swift.abs($1)) }
                    let got = ember_half_sum_isa(isa, format, x, n)
                    #expect(Swift.abs(Double(got) - exact) <= 1e-6 * magnitude + 1e-7, "\(name) sum, isa \(isa.rawValue), n \(n): \(got), want \(exact)")
                }
                var special = x
                special[1000] = format == EMBER_FLOAT16 ? 0x7C00 : 0x7F80
                #expect(ember_half_sum_isa(isa, format, special, 1027) == .infinity, "\(name): +inf in the sum")
                special[17] = format == EMBER_FLOAT16 ? 0x7E00 : 0x7FC0
                #expect(ember_half_sum_isa(isa, format, special, 1027).isNaN, "\(name): NaN in the sum")
                #expect(ember_half_sum_isa(isa, format, x, 0) == 0, "\(name): empty sum")
            }
        }
    }
    @Test("tensor ops over broadcast 16-bit rows (a bias per channel, a row beside a matrix) give the bits of widen-compute-narrow")
    func broadcastRows() {
        // Shapes of the two operands; the first is large enough that the CPU's threads split it mid-row.
        let layouts: [([Int], [Int])] = [([64, 16, 100], [16, 1]), ([16, 1], [64, 16, 100]), ([6, 40], [40]), ([40], [6, 40])]
        let ops: [(String, (Tensor, Tensor) -> Tensor, (Float, Float) -> Float)] = [
            ("add", { $0 + $1 }, Elementwise.Add().apply), ("mul", { $0 * $1 }, Elementwise.Mul().apply),
            ("div", { $0 / $1 }, Elementwise.Div().apply),
        ]
        for (format, name) in Self.formats {
            let dtype: DType = format == EMBER_FLOAT16 ? .float16 : .bfloat16
            for (sa, sb) in layouts {
                let wa = Self.widen(format, Self.patterns(Shape.count(sa), seed: 5)), wb = Self.widen(format, Self.patterns(Shape.count(sb), seed: 6))
                let a = Tensor(shape: sa, data: wa, dtype: dtype, device: .cpu), b = Tensor(shape: sb, data: wb, dtype: dtype, device: .cpu)
                let shape = Shape.broadcast(sa, sb)!
                let xa = Self.widen(format, a.expand(shape).contiguous().hostBytes().pairs)
                let xb = Self.widen(format, b.expand(shape).contiguous().hostBytes().pairs)
                for (opName, op, f) in ops {
                    let got = op(a, b).hostBytes().pairs
                    Self.expectSame(got, Self.narrow(format, zip(xa, xb).map(f)), format, "\(name) \(opName) \(sa) with \(sb)")
                }
            }
        }
    }
}

private extension Array where Element == UInt8 {
    /// Little-endian 16-bit words.
    var pairs: [UInt16] { stride(from: 0, to: count, by: 2).map { UInt16(self[$0]) | UInt16(self[$0 + 1]) << 8 } }
}
