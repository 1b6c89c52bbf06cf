import CPUKernels
import Foundation
import Testing
@testable import Ember

/// The OpenCL elementwise kernels' float16 full runs (`half_chunk_in`/`half_chunk_out` on CPU
/// devices), eager and fused, and the sums of every float storage type (`sum_slices` on CPU
/// devices), at lengths with full runs, tails and both, against the CPU device. The op cases
/// elsewhere are shorter than one run of 64 elements, so only these reach the full-run paths.
@Suite("OpenCL 16-bit runs and sums")
struct NarrowRunTests {
    /// A tail only, one full run, runs and a tail, many runs and a tail.
    static let lengths = [13, 64, 200, 64 * 37 + 5]

    /// Exact `dtype` values from random bit patterns: NaN, infinities, subnormals and zeros of
    /// both signs included.
    static func values(_ n: Int, _ dtype: DType, seed: UInt64) -> [Float] {
        let format = dtype == .float16 ? EMBER_FLOAT16 : EMBER_BFLOAT16
        return HalfKernelTests.widen(format, HalfKernelTests.patterns(n, seed: seed))
    }

    /// The elements' bits, 2 or 4 bytes each, with every NaN as one pattern (NaN payloads are
    /// not part of the contract).
    static func bits(_ t: Tensor) -> [UInt32] {
        let bytes = t.hostBytes(), width = t.dtype.byteSize, values = t.toArray()
        return (0..<t.count).map { i in
            if values[i].isNaN { return UInt32.max }
            return (0..<width).reduce(UInt32(0)) { $0 | UInt32(bytes[i * width + $1]) << (8 * $1) }
        }
    }

    static let ops: [(name: String, function: @Sendable (Tensor, Tensor) -> Tensor)] = [
        ("a + b", { $0 + $1 }),
        ("a * 0.75", { a, _ in a * 0.75 }),
        ("1.5 - b", { _, b in 1.5 - b }),
        ("relu(a)", { a, _ in a.relu() }),
        ("maximum(a, b)", { $0.maximum($1) }),
        ("a > b", { $0 > $1 }),
        ("relu(a * b + 1)", { ($0 * $1 + 1).relu() }),
        ("float(a) * float(b)", { $0.float() * $1.float() }),
        ("to(float(a) + 1)", { a, _ in (a.float() + 1).to(a.dtype) }),
    ]

    @Test("float16 and bfloat16 elementwise kernels, eager and fused, give the CPU's bits with full runs and tails",
          arguments: [DType.float16, .bfloat16])
    func elementwiseBits(_ dtype: DType) throws {
        LazyFusion.buildFailuresThrow = true
        for gpu in TestDevices.accelerators {
            for (index, n) in Self.lengths.enumerated() {
                let a = Self.values(n, dtype, seed: UInt64(2 * index)), b = Self.values(n, dtype, seed: UInt64(2 * index + 1))
                func run(_ device: Device) -> [[UInt32]] {
                    let x = Tensor(shape: [n], data: a, dtype: dtype, device: device)
                    let y = Tensor(shape: [n], data: b, dtype: dtype, device: device)
                    return Self.ops.map { Self.bits($0.function(x, y)) }
                }
                let expected = run(.cpu)
                var rounds = [("eager", Fusion.withElementwiseFusion(false) { run(gpu) })]
                // A pattern runs eagerly until it repeats and its kernel is built.
                for round in 0..<3 {
                    if round == 2 { (gpu.backend as! OpenCLBackend).waitForFusedBuilds() }
                    let got = LazyFusion.$queuesBuilds.withValue(true) { Fusion.withElementwiseFusion(true) { run(gpu) } }
                    if round == 2 { rounds.append(("fused", got)) }
                }
                for (path, got) in rounds {
                    for (op, pair) in zip(Self.ops, zip(got, expected)) {
                        let differing = zip(pair.0, pair.1).filter { $0 != $1 }.count
                        #expect(differing == 0, "\(op.name) in \(dtype), n \(n), \(path) on \(gpu): \(differing) elements differ from the CPU's")
                    }
                }
            }
            try gpu.synchronize()
        }
    }

    /// Positive values (no cancellation), small enough for float16 sums of 300,000.
    @Test("sums of every float storage type match Double sums over lengths, offsets and rows, on every device",
          arguments: [DType.float32, .float16, .bfloat16])
    func sums(_ dtype: DType) {
        let epsilon: Double = dtype == .float32 ? 1e-6 : (dtype == .float16 ? 0x1p-10 : 0x1p-7)
        for d in TestDevices.all {
            for n in [1, 31, 32, 33, 4095, 4096 * 9 + 17, 300_001] {
                var random = TestRandom(seed: UInt64(n))
                let x = Tensor(shape: [n + 1], data: random.floats(n + 1, 0.03125...0.125), dtype: dtype, device: d)
                let whole = x.toArray().map(Double.init)
                // The whole tensor, and a view from an odd offset (unaligned vector loads).
                for (got, exact) in [(x.sum().item(), whole.reduce(0, +)), (x[1...].sum().item(), whole.dropFirst().reduce(0, +))] {
                    #expect(abs(Double(got) - exact) <= 2 * epsilon * exact, "sum of \(n) \(dtype) on \(d): \(got), exact \(exact)")
                }
            }
            for shape in [[5, 40], [3, 50_001]] {
                var random = TestRandom(seed: 9)
                let x = Tensor(shape: shape, data: random.floats(shape[0] * shape[1], 0.03125...0.125), dtype: dtype, device: d)
                let host = x.toArray().map(Double.init), got = x.sum(dim: 1).toArray()
                for r in 0..<shape[0] {
                    let exact = host[r * shape[1]..<(r + 1) * shape[1]].reduce(0, +)
                    #expect(abs(Double(got[r]) - exact) <= 2 * epsilon * exact, "row \(r) of \(shape) \(dtype) on \(d): \(got[r]), exact \(exact)")
                }
            }
        }
    }
}
