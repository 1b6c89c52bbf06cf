import CPUKernels
import Foundation
import Testing

/// The two 16-bit operand formats of the GEMMs.
private enum HalfFormat: CustomStringConvertible {
    case bf16, f16

    var description: String { self == .bf16 ? "bf16" : "f16" }

    func encode(_ x: [Float]) -> [UInt16] {
        var y = [UInt16](repeating: 0, count: x.count)
        if self == .bf16 { ember_f32_to_bf16(x, &y, x.count) } else { ember_f32_to_f16(x, &y, x.count) }
        return y
    }

    func decode(_ x: [UInt16]) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        if self == .bf16 { ember_bf16_to_f32(x, &y, x.count) } else { ember_f16_to_f32(x, &y, x.count) }
        return y
    }
}

/// One GEMM problem with padded leading dimensions; `run` computes it with a given code path.
private struct GemmCase: CustomStringConvertible {
    let format: HalfFormat
    let transA: Bool, transB: Bool
    let m: Int, n: Int, k: Int
    let alpha: Float, beta: Float
    let lda: Int, ldb: Int, ldc: Int
    let a: [UInt16], b: [UInt16], c: [Float]

    init(_ format: HalfFormat, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, beta: Float, seed: UInt64) {
        self.format = format
        self.transA = transA
        self.transB = transB
        (self.m, self.n, self.k, self.alpha, self.beta) = (m, n, k, alpha, beta)
        lda = (transA ? m : k) + 3
        ldb = (transB ? k : n) + 5
        ldc = n + 2
        var random = TestRandom(seed: seed)
        a = format.encode((0..<(transA ? k : m) * lda).map { _ in random.float() })
        b = format.encode((0..<(transB ? n : k) * ldb).map { _ in random.float() })
        c = (0..<m * ldc).map { _ in random.float() }
    }

    var description: String {
        "\(format) \(transA ? "T" : "N")\(transB ? "T" : "N") \(m)x\(n)x\(k) alpha \(alpha) beta \(beta)"
    }

    /// C after the product; C starts from `initial` (self.c unless given).
    func run(isa: ember_isa, initial: [Float]? = nil) -> [Float] {
        var out = initial ?? c
        if format == .bf16 {
            ember_gemm_bf16_isa(isa, transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, &out, ldc)
        } else {
            ember_gemm_f16_isa(isa, transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, &out, ldc)
        }
        return out
    }

    /// Checks `out` against a Double reference of the same 16-bit inputs: within 1e-5 of
    /// |alpha| sum|a||b| + |beta c| in each element, and the padding columns of C untouched.
    func verify(_ out: [Float], _ label: String) {
        let fa = format.decode(a).map(Double.init), fb = format.decode(b).map(Double.init)
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<ldc {
                let index = i * ldc + j
                if j >= n {
                    #expect(out[index] == c[index], "\(self), \(label): padding at row \(i) column \(j) was written")
                    continue
                }
                var sum = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let x = fa[transA ? p * lda + i : i * lda + p], y = fb[transB ? j * ldb + p : p * ldb + j]
                    sum += x * y
                    magnitude += Swift.abs(x * y)
                }
                let scaled = beta == 0 ? 0 : Double(beta) * Double(c[index])
                let expected = Double(alpha) * sum + scaled
                let tolerance = 1e-5 * (Double(Swift.abs(alpha)) * magnitude + Swift.abs(scaled)) + 1e-30
                worst = Swift.max(worst, Swift.abs(Double(out[index]) - expected) / tolerance)
            }
        }
        #expect(worst <= 1, "\(self), \(label): error \(worst) x tolerance")
    }
}

/// Shapes around every tile (4x8, 6x16, 14x32, AMX 32x32 with 32 k) and cache block (k 256-1024,
/// rows 84-168, columns 1024), odd k, single rows and columns.
private let shapes: [(m: Int, n: Int, k: Int)] = [
    (1, 1, 1), (1, 1, 2), (3, 5, 7), (4, 8, 1), (6, 16, 8), (14, 32, 16), (15, 33, 17), (13, 31, 255),
    (29, 65, 257), (32, 32, 32), (33, 47, 95), (2, 17, 600), (3, 20, 1031), (350, 5, 3), (3, 1100, 5), (1, 40, 33), (40, 1, 33),
]
private let scales: [(alpha: Float, beta: Float)] = [(1, 0), (-0.5, 0.75), (2, 1), (1, -1)]

private func allCases(_ format: HalfFormat) -> [GemmCase] {
    var cases: [GemmCase] = []
    for (index, shape) in shapes.enumerated() {
        for transpose in 0..<4 {
            let scale = scales[(index + transpose) % scales.count]
            cases.append(GemmCase(format, transA: transpose & 1 != 0, transB: transpose & 2 != 0, m: shape.m, n: shape.n,
                                  k: shape.k, alpha: scale.alpha, beta: scale.beta, seed: UInt64(index * 4 + transpose)))
        }
    }
    return cases
}

@Suite("16-bit GEMM and conversions")
struct BF16GemmTests {
    @Test("bfloat16 GEMM of every code path this CPU has matches a Double reference, transposes and edges included")
    func bf16Paths() {
        let cases = allCases(.bf16)
        for isa in isas(upTo: ember_cpu_isa_bf16()) {
            for problem in cases { problem.verify(problem.run(isa: isa), "isa \(isa.rawValue)") }
        }
    }

    @Test("the bfloat16 GEMM picks AMX where /proc/cpuinfo lists it (and AVX-512 BF16) and Linux grants tile state")
    func amxDetected() {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let set = Set(flags.split(separator: " ").map(String.init))
        if set.isSuperset(of: ["amx_tile", "amx_bf16", "avx512_bf16", "avx512bw", "avx512vl"]) {
            #expect(ember_cpu_isa_bf16() == EMBER_ISA_AMX_BF16)
        } else {
            #expect(ember_cpu_isa_bf16() != EMBER_ISA_AMX_BF16)
        }
    }

    @Test("float16 GEMM of every code path this CPU has matches a Double reference, transposes and edges included")
    func f16Paths() {
        let cases = allCases(.f16)
        for isa in isas(upTo: ember_cpu_isa()) {
            for problem in cases { problem.verify(problem.run(isa: isa), "isa \(isa.rawValue)") }
        }
    }

    @Test("beta = 0 never reads C, and k = 0 or alpha = 0 leave beta * C")
    func degenerate() {
        for format in [HalfFormat.bf16, .f16] {
            let best = format == .bf16 ? ember_cpu_isa_bf16() : ember_cpu_isa()
            for isa in isas(upTo: best) {
                let problem = GemmCase(format, transA: false, transB: false, m: 5, n: 7, k: 9, alpha: 1, beta: 0, seed: 7)
                let poisoned = problem.c.enumerated().map { $0.offset % problem.ldc < problem.n ? Float.nan : $0.element }
                problem.verify(problem.run(isa: isa, initial: poisoned), "isa \(isa.rawValue), NaN C")
                for (k, alpha) in [(0, Float(1)), (9, Float(0))] {
                    for beta in [Float(0), 0.5] {
                        let empty = GemmCase(format, transA: true, transB: false, m: 5, n: 7, k: k, alpha: alpha, beta: beta, seed: 8)
                        let out = empty.run(isa: isa)
                        for (index, value) in out.enumerated() {
                            let expected = index % empty.ldc < empty.n ? beta * empty.c[index] : empty.c[index]
                            #expect(value == expected, "\(format) isa \(isa.rawValue) k \(k) alpha \(alpha) beta \(beta) at \(index)")
                        }
                    }
                }
            }
        }
    }

    @Test("a product split over threads, by rows or by columns, gives the single thread's bits")
    func threads() {
        defer { ember_gemm_set_threads(0) }
        // 190 rows split by rows; 20 rows x 1000 columns by columns. Both are above the
        // size from which the GEMM starts threads.
        let problems = [
            GemmCase(.bf16, transA: false, transB: false, m: 190, n: 170, k: 150, alpha: 1, beta: 0.5, seed: 11),
            GemmCase(.bf16, transA: true, transB: true, m: 20, n: 1000, k: 250, alpha: -1, beta: 0, seed: 12),
            GemmCase(.f16, transA: false, transB: true, m: 190, n: 170, k: 150, alpha: 1, beta: 1, seed: 13),
        ]
        for problem in problems {
            let best = problem.format == .bf16 ? ember_cpu_isa_bf16() : ember_cpu_isa()
            ember_gemm_set_threads(1)
            let serial = problem.run(isa: best)
            problem.verify(serial, "one thread")
            for count in [2, 3] {
                ember_gemm_set_threads(Int32(count))
                #expect(ember_gemm_threads() == Int32(count))
                let split = problem.run(isa: best)
                #expect(split.map(\.bitPattern) == serial.map(\.bitPattern), "\(problem), \(count) threads")
            }
        }
        ember_gemm_set_threads(0)
        #expect(ember_gemm_threads() == Int32(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    @Test("the parts of a product, run one at a time in any order, give the whole product's bits, in float32 or 16-bit C")
    func parts() {
        // Split by rows, by columns, and too small to split (one part).
        let problems = [
            GemmCase(.bf16, transA: false, transB: false, m: 190, n: 170, k: 150, alpha: 1, beta: 0.5, seed: 21),
            GemmCase(.bf16, transA: true, transB: true, m: 20, n: 1000, k: 250, alpha: -1, beta: 0, seed: 22),
            GemmCase(.f16, transA: false, transB: true, m: 190, n: 170, k: 150, alpha: 1, beta: 1, seed: 23),
            GemmCase(.bf16, transA: false, transB: true, m: 9, n: 7, k: 5, alpha: 2, beta: 1, seed: 24),
        ]
        for problem in problems {
            let format = problem.format == .bf16 ? EMBER_BFLOAT16 : EMBER_FLOAT16
            let best = problem.format == .bf16 ? ember_cpu_isa_bf16() : ember_cpu_isa()
            let whole = problem.run(isa: best)
            // A 16-bit C gets the float32 product from its widened values, rounded once.
            let narrowC = problem.format.encode(problem.c)
            let narrowWhole = problem.format.encode(problem.run(isa: best, initial: problem.format.decode(narrowC)))
            for threads in [1, 2, 3] {
                let parts = ember_gemm16_parts(format, Int32(threads), problem.m, problem.n, problem.k)
                #expect(parts >= 1 && parts <= threads, "\(problem): \(parts) parts for \(threads) threads")
                if problem.m * problem.n * problem.k > 1 << 22 && threads > 1 { #expect(parts == threads, "\(problem)") }
                var out = problem.c
                for part in (0..<parts).reversed() {
                    ember_gemm16_part(format, part, parts, problem.transA ? 1 : 0, problem.transB ? 1 : 0, problem.m, problem.n,
                                      problem.k, problem.alpha, problem.a, problem.lda, problem.b, problem.ldb, problem.beta,
                                      &out, 0, problem.ldc)
                }
                #expect(out.map(\.bitPattern) == whole.map(\.bitPattern), "\(problem), \(parts) parts")
                var narrow = narrowC
                for part in 0..<parts {
                    ember_gemm16_part(format, part, parts, problem.transA ? 1 : 0, problem.transB ? 1 : 0, problem.m, problem.n,
                                      problem.k, problem.alpha, problem.a, problem.lda, problem.b, problem.ldb, problem.beta,
                                      &narrow, 1, problem.ldc)
                }
                #expect(narrow == narrowWhole, "\(problem), \(parts) parts into 16-bit C")
            }
        }
    }

    @Test("float32 to bfloat16 rounds to nearest even and keeps NaN, infinities and subnormals")
    func bf16Rounding() {
        let table: [(UInt32, UInt16)] = [
            (0x3F80_0000, 0x3F80), (0x3F80_8000, 0x3F80), (0x3F81_8000, 0x3F82), (0x3F80_8001, 0x3F81),
            (0x3F80_7FFF, 0x3F80), (0xBF80_8000, 0xBF80), (0xBF81_8000, 0xBF82), (0x7F7F_FFFF, 0x7F80),
            (0x7F80_0000, 0x7F80), (0xFF80_0000, 0xFF80), (0x8000_0000, 0x8000), (0x0000_8000, 0x0000),
            (0x0001_8000, 0x0002), (0x0000_8001, 0x0001), (0x7FC0_0000, 0x7FC0), (0x7F80_0001, 0x7FC0),
            (0xFF80_0001, 0xFFC0), (0x7FFF_FFFF, 0x7FFF),
        ]
        let input = table.map { Float(bitPattern: $0.0) }
        for isa in isas(upTo: ember_cpu_isa()) {
            // Repeated so the vector loops see them as well as the scalar tails.
            let repeated = Array(repeating: input, count: 3).flatMap { $0 }
            var out = [UInt16](repeating: 0, count: repeated.count)
            ember_f32_to_bf16_isa(isa, repeated, &out, repeated.count)
            for (index, value) in out.enumerated() {
                let expected = table[index % table.count]
                #expect(value == expected.1, "isa \(isa.rawValue): \(String(expected.0, radix: 16)) -> \(String(value, radix: 16))")
            }
        }
    }

    @Test("float32 to bfloat16 of random bit patterns: the nearest bfloat16, ties to even, on every path")
    func bf16Random() {
        var random = TestRandom(seed: 99)
        let bits = (0..<4099).map { _ in UInt32(truncatingIfNeeded: random.next()) }
        let input = bits.map { Float(bitPattern: $0) }
        for isa in isas(upTo: ember_cpu_isa()) {
            var out = [UInt16](repeating: 0, count: input.count)
            ember_f32_to_bf16_isa(isa, input, &out, input.count)
            for (x, y) in zip(input, out) {
                let got = Float(bitPattern: UInt32(y) << 16)
                if x.isNaN {
                    #expect(got.isNaN && got.sign == x.sign, "isa \(isa.rawValue): NaN \(x.bitPattern)")
                    continue
                }
                // The two bfloat16 values around x (truncation toward zero and one step away).
                let low = Float(bitPattern: x.bitPattern & 0xFFFF_0000), high = Float(bitPattern: (x.bitPattern & 0xFFFF_0000) &+ 0x10000)
                let below = Swift.abs(Double(x) - Double(low)), above = Swift.abs(Double(high) - Double(x))
                let expected = below < above || (below == above && (low.bitPattern >> 16) & 1 == 0) ? low : high
                #expect(got.bitPattern == expected.bitPattern, "isa \(isa.rawValue): \(x) -> \(got), expected \(expected)")
            }
        }
    }

    @Test("bfloat16 to float32 to bfloat16 gives every pattern back; NaN stays NaN")
    func bf16RoundTrip() {
        let all = (0...0xFFFF).map { UInt16($0) }
        for isa in isas(upTo: ember_cpu_isa()) {
            var wide = [Float](repeating: 0, count: all.count), back = [UInt16](repeating: 0, count: all.count)
            ember_bf16_to_f32_isa(isa, all, &wide, all.count)
            ember_f32_to_bf16_isa(isa, wide, &back, all.count)
            for pattern in all {
                let index = Int(pattern)
                #expect(wide[index].bitPattern == UInt32(pattern) << 16, "isa \(isa.rawValue): \(pattern)")
                if wide[index].isNaN {
                    #expect(Float(bitPattern: UInt32(back[index]) << 16).isNaN && back[index] & 0x8000 == pattern & 0x8000)
                } else {
                    #expect(back[index] == pattern, "isa \(isa.rawValue): \(pattern) came back as \(back[index])")
                }
            }
        }
    }

    @Test("float16 conversions agree with Swift's Float16 on every half and on random floats, on every path")
    func f16Conversions() {
        let all = (0...0xFFFF).map { UInt16($0) }
        var random = TestRandom(seed: 5)
        // Random bit patterns, and values near the half range: subnormals, the overflow edge.
        var floats: [Float] = (0..<8191).map { i -> Float in
            let bits = UInt32(truncatingIfNeeded: random.next())
            switch i % 3 {
            case 0: return Float(bitPattern: bits)
            case 1: return Float(bitPattern: (bits & 0x807F_FFFF) | (UInt32(102 + i % 40) << 23))  // 2^-25 ..< 2^15
            default: return Float(bitPattern: (bits & 0x8000_3FFF) | 0x477F_C000)  // around 65504 .. 65536
            }
        }
        let edges: [Float] = [65504, 65519.996, 65520, -65520, 0x1p-24, 0x1p-25, 0x1.8p-24, 0x1.000002p-25, 0x1.ff8p-15,
                              0x1p-14 - 0x1p-25, 0x1.002p0, 0x1.006p0, -0.0, .infinity, -.infinity, .nan]
        floats += edges
        for isa in isas(upTo: ember_cpu_isa()) {
            var wide = [Float](repeating: 0, count: all.count), back = [UInt16](repeating: 0, count: all.count)
            ember_f16_to_f32_isa(isa, all, &wide, all.count)
            ember_f32_to_f16_isa(isa, wide, &back, all.count)
            for pattern in all {
                let index = Int(pattern), reference = Float(Float16(bitPattern: pattern))
                if reference.isNaN {
                    #expect(wide[index].isNaN && wide[index].sign == reference.sign, "isa \(isa.rawValue): \(pattern)")
                    #expect(Float16(bitPattern: back[index]).isNaN && back[index] & 0x8000 == pattern & 0x8000)
                } else {
                    #expect(wide[index].bitPattern == reference.bitPattern, "isa \(isa.rawValue): \(pattern) -> \(wide[index])")
                    #expect(back[index] == pattern, "isa \(isa.rawValue): \(pattern) came back as \(back[index])")
                }
            }
            var halves = [UInt16](repeating: 0, count: floats.count)
            ember_f32_to_f16_isa(isa, floats, &halves, floats.count)
            for (x, h) in zip(floats, halves) {
                if x.isNaN {
                    #expect(Float16(bitPattern: h).isNaN && (h & 0x8000 != 0) == (x.sign == .minus), "isa \(isa.rawValue): NaN")
                } else {
                    #expect(h == Float16(x).bitPattern, "isa \(isa.rawValue): \(x) -> \(String(h, radix: 16))")
                }
            }
        }
    }
}
