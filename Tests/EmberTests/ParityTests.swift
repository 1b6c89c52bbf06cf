import Foundation
import Testing
@testable import Ember

/// CPU/OpenCL parity on larger random inputs: odd and empty sizes, broadcasting and
/// non-contiguous views, beyond the small shapes of `OpCases`.
@Suite("Parity at odd sizes")
struct ParityTests {
    static let oddSizes = [0, 1, 7, 1_000_003]

    @Test("elementwise, reductions and softmax agree at every size", arguments: oddSizes)
    func sizes(_ n: Int) {
        var random = TestRandom(seed: UInt64(n) + 11)
        let a = random.floats(n, -3...3), b = random.floats(n, 0.5...2)
        let shape = [n]
        expectParity("exp+mul n=\(n)", inputs: [a, b], shapes: [shape, shape], gradients: n < 100) { x in (x[0].exp() * x[1]).tanh() }
        expectParity("div/sub scalar n=\(n)", inputs: [a, b], shapes: [shape, shape], gradients: false) { x in 1 - x[0] / x[1] }
        expectParity("gelu n=\(n)", inputs: [a], shapes: [shape], gradients: false) { x in x[0].gelu() }
        expectParity("where n=\(n)", inputs: [a, b], shapes: [shape, shape], gradients: false) { x in Tensor.where(x[0] > 0, x[0], x[1]) }
        expectParity("sum n=\(n)", inputs: [a], shapes: [shape], rtol: 1e-4, atol: 1e-2, gradients: false) { x in x[0].sum() }
        if n > 0 {
            expectParity("max n=\(n)", inputs: [a], shapes: [shape], gradients: false) { x in x[0].max() }
            expectParity("argmax n=\(n)", inputs: [a], shapes: [shape], gradients: false) { x in x[0].argmax().float() }
            expectParity("softmax n=\(n)", inputs: [a], shapes: [[1, n]], rtol: 1e-4, atol: 1e-7, gradients: false) { x in x[0].softmax(dim: 1) }
        }
    }

    @Test("broadcast and non-contiguous operands of a large tensor")
    func views() {
        var random = TestRandom(seed: 4)
        let a = random.floats(37 * 53 * 3), b = random.floats(53)
        expectParity("permuted + broadcast", inputs: [a, b], shapes: [[37, 53, 3], [53]], gradients: true) { x in
            x[0].permute([2, 0, 1]) * x[1] + x[0].permute([2, 0, 1]).exp()
        }
        expectParity("sliced reductions", inputs: [a], shapes: [[37, 53, 3]], rtol: 1e-4, atol: 1e-4, gradients: true) { x in
            x[0][TensorRange(1, 37, step: 3)].sum(dims: [0, 2]) + x[0].max(dim: 1).values.sum()
        }
        expectParity("softmax over a middle dim", inputs: [a], shapes: [[37, 53, 3]], gradients: true) { x in x[0].logSoftmax(dim: 1) }
        // Rows longer than one strided run (64 elements on CPU devices) and not a multiple of
        // it, with the last dim contiguous or strided, and many short rows to reduce.
        let rows = random.floats(130 * 3 * 70), mask = random.floats(70)
        expectParity("long strided rows", inputs: [rows, mask], shapes: [[130, 3, 70], [70]], gradients: true) { x in
            x[0].permute([1, 0, 2]).contiguous() * x[1] + x[0].reshape([390, 70]).T.exp().T.reshape([3, 130, 70])
        }
        expectParity("where and casts over strided rows", inputs: [rows, mask], shapes: [[130, 3, 70], [70]], gradients: false) { x in
            Tensor.where(x[0].permute([1, 0, 2]) > x[1], x[0].permute([1, 0, 2]), (x[1] * 3).int().float())
        }
        for (name, reduce) in [("sum", { (t: Tensor) in t.sum(dim: 1) }), ("max", { $0.max(dim: 1).values }), ("min", { $0.min(dim: 1).values }),
                               ("argmax", { $0.argmax(dim: 1).float() }), ("argmin", { $0.argmin(dim: 1).float() })] as [(String, (Tensor) -> Tensor)] {
            expectParity("\(name) over many short rows", inputs: [rows], shapes: [[390, 70]], rtol: 1e-5, atol: 1e-5, gradients: false) { x in reduce(x[0]) }
        }
        // Every operand layout of Ember's GEMM kernels, at sizes that leave partial blocks
        // and a K that is not a multiple of 16.
        let left = random.floats(3 * 37 * 70), right = random.floats(3 * 45 * 70)
        expectParity("matmul with a transposed right operand", inputs: [left, right], shapes: [[3, 37, 70], [3, 45, 70]],
                     rtol: 1e-4, atol: 1e-4, gradients: true) { x in x[0].matmul(x[1].transpose(1, 2)) }
        expectParity("matmul with a transposed left operand", inputs: [left, right], shapes: [[3, 70, 37], [3, 70, 45]],
                     rtol: 1e-4, atol: 1e-4, gradients: true) { x in x[0].transpose(1, 2).matmul(x[1]) }
        expectParity("matmul with both transposed", inputs: [left, right], shapes: [[3, 70, 37], [3, 45, 70]],
                     rtol: 1e-4, atol: 1e-4, gradients: true) { x in x[0].transpose(1, 2).matmul(x[1].transpose(1, 2)) }
        let big = random.floats(257 * 300)
        expectParity("matmul of transposed", inputs: [big, random.floats(257 * 40)], shapes: [[257, 300], [257, 40]],
                     rtol: 1e-3, atol: 1e-3, gradients: true) { x in x[0].T.matmul(x[1]) }
        // Products of 64 rows and more pack B on CPU devices: a weight read transposed, and B
        // as stored with rows 4 KiB or more apart (1,100 columns), forward and backward.
        expectParity("matmul packing B", inputs: [random.floats(130 * 70), random.floats(1100 * 70), random.floats(70 * 1100)],
                     shapes: [[130, 70], [1100, 70], [70, 1100]], rtol: 1e-3, atol: 1e-3, gradients: true) { x in
            x[0].matmul(x[1].T) + x[0].matmul(x[2])
        }
    }

    @Test("Ember's GEMM kernels match the CPU with A and B each as stored or transposed, B read by every path (as stored, as dot products, packed row-major and panel after panel), batched, with edge blocks")
    func gemmKernelLayouts() throws {
        for gpu in TestDevices.accelerators {
            let problems = gemmPathMismatches(on: gpu)
            #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n"))")
        }
    }

    @Test("a GEMM bias, along C's rows or its columns, is added by Ember's kernels (both layouts, every path of B, edge blocks) and by CLBlast, batched, in every storage type")
    func gemmBias() throws {
        var random = TestRandom(seed: 31)
        let (batch, m, n, k) = (2, 37, 45, 70)
        let a = Tensor(shape: [batch, m, k], data: random.floats(batch * m * k)), b = Tensor(shape: [batch, k, n], data: random.floats(batch * k * n))
        let rowBias = Tensor(random.floats(m)), columnBias = Tensor(random.floats(n))
        for gpu in TestDevices.accelerators {
            let backend = try #require(gpu.backend as? OpenCLBackend)
            for dtype in [DType.float32, .float16, .bfloat16] {
                let (ga, gbRows, gbTransposed) = (a.to(dtype).to(gpu), b.to(dtype).to(gpu), b.transpose(1, 2).contiguous().to(dtype).to(gpu))
                for perRow in [true, false] {
                    let bias = (perRow ? rowBias : columnBias).to(dtype)
                    let expected = (a.to(dtype).float().matmul(b.to(dtype).float()) * 0.5
                                    + (perRow ? bias.float().reshape([m, 1]) : bias.float())).toArray()
                    let implementations: [GEMMImplementation] = dtype == .float32 ? [.ember, .clblast] : [.ember]
                    for implementation in implementations {
                        for bTransposed in [false, true] where implementation == .ember || !bTransposed {
                            // Ember's kernels with B read by every path its layout allows.
                            let paths: [OpenCLBackend.GemmBPath?] = implementation == .clblast ? [nil]
                                : bTransposed ? [.dotProducts, .packedRows, .packedPanels] : [.asStored, .packedRows, .packedPanels]
                            for path in paths {
                                let gb = bTransposed ? gbTransposed : gbRows
                                let c = Tensor(uninitialized: [batch, m, n], dtype: dtype, device: gpu, op: "test")
                                let gpuBias = bias.to(gpu)
                                let operandA = GemmOperand(buffer: ga.storage.buffer, offset: 0, ld: k, transposed: false, batchStride: m * k, dtype: dtype)
                                let operandB = GemmOperand(buffer: gb.storage.buffer, offset: 0, ld: bTransposed ? k : n, transposed: bTransposed,
                                                           batchStride: k * n, dtype: dtype)
                                let gemmBias = GemmBias(buffer: gpuBias.storage.buffer, offset: 0, perRow: perRow)
                                if let path {
                                    backend.gemmBlocks(m: m, n: n, k: k, batch: batch, alpha: 0.5, a: operandA, b: operandB, beta: 0, bias: gemmBias,
                                                       c: c.storage.buffer, cOffset: 0, path: path)
                                } else {
                                    backend.runGEMM(implementation, m: m, n: n, k: k, batch: batch, alpha: 0.5, a: operandA, b: operandB,
                                                    beta: 0, bias: gemmBias, c: c.storage.buffer, cOffset: 0)
                                }
                                let tolerance: Float = dtype == .float32 ? 1e-4 : 2e-2
                                expectClose(c.float().toArray(), expected, rtol: tolerance, atol: tolerance,
                                            "\(implementation) on \(gpu), \(dtype), bias per row \(perRow), B transposed \(bTransposed), B read \(path.map { "\($0)" } ?? "by CLBlast")")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("random streams are identical on both devices")
    func randomParity() {
        guard let gpu = TestDevices.openCL else { return }
        for (cpuDraw, gpuDraw) in [
            ({ Tensor.rand([1001], low: -2, high: 3) }, { Tensor.rand([1001], low: -2, high: 3, device: gpu) }),
            ({ Tensor.randint(-5, 9, [1001]).float() }, { Tensor.randint(-5, 9, [1001], device: gpu).float() }),
            ({ Tensor.randn([100_001]) }, { Tensor.randn([100_001], device: gpu) }),
        ] as [(() -> Tensor, () -> Tensor)] {
            let c = Tensor.withRandomSeed(123) { cpuDraw().toArray() }
            let g = Tensor.withRandomSeed(123) { gpuDraw().toArray() }
            #expect(g.count == c.count && zip(g, c).allSatisfy { $0.bitPattern == $1.bitPattern }, "first difference at \(g.indices.first { g[$0] != c[$0] } ?? -1)")
        }
    }

    @Test("the normal transform is Box-Muller to within 2e-6, over the whole range of both words")
    func normalTransform() {
        var random = TestRandom(seed: 5)
        // The extremes of u1 (smallest, 1 - 2^-25 which rounds to 1) and every quadrant edge of u2.
        let edges: [UInt64] = [0, 1 << 40, UInt64.max, UInt64.max - (1 << 40), 1 << 62, 1 << 63, 3 << 62]
        var pairs = edges.flatMap { a in edges.map { (a, $0) } }
        for _ in 0..<200_000 { pairs.append((random.next(), random.next())) }
        var worst = 0.0
        for (a, b) in pairs {
            let u1 = (Double(a >> 40) + 0.5) * 0x1p-24, u2 = Double(b >> 40) * 0x1p-24
            let exact = (-2 * Foundation.log(Double(Float(u1)))).squareRoot() * Foundation.cos(2 * Double.pi * u2)
            let z = Double(CPUBackend.standardNormal(a, b))
            #expect(z.isFinite)
            worst = Swift.max(worst, Swift.abs(z - exact))
        }
        #expect(worst < 2e-6, "largest difference from Box-Muller in Double: \(worst)")
    }
}

/// `gemmBlocks` on `gpu` against the CPU's product for A and B each as stored or transposed,
/// with B read by every path its layout allows, batched (B per entry or shared by all), with
/// edge blocks in both directions:
/// a description of each mismatch.
func gemmPathMismatches(on gpu: Device) -> [String] {
    var random = TestRandom(seed: 29)
    let (batch, m, n, k) = (3, 37, 45, 70)
    let a = Tensor(shape: [batch, m, k], data: random.floats(batch * m * k)), b = Tensor(shape: [batch, k, n], data: random.floats(batch * k * n))
    let c0 = Tensor(shape: [batch, m, n], data: random.floats(batch * m * n))
    let expected = (a.matmul(b) * 0.5 + c0 * 2).toArray()
    let backend = gpu.backend as! OpenCLBackend
    var problems: [String] = []
    // B's first matrix broadcast to every batch entry (batch stride 0).
    let shared = (a.matmul(b[0].unsqueeze(0)) * 0.5 + c0 * 2).toArray()
    for aTransposed in [false, true] {
        for bTransposed in [false, true] {
            for bShared in [false, true] {
                for path in OpenCLBackend.GemmBPath.allCases {
                    if path == .asStored && bTransposed || path == .dotProducts && (!bTransposed || aTransposed) { continue }
                    // A transposed is stored [batch, k, m]; B transposed is stored [batch, n, k].
                    let ga = (aTransposed ? a.transpose(1, 2).contiguous() : a).to(gpu)
                    let gb = (bTransposed ? b.transpose(1, 2).contiguous() : b).to(gpu)
                    let c = c0.to(gpu)
                    backend.gemmBlocks(m: m, n: n, k: k, batch: batch, alpha: 0.5,
                                       a: GemmOperand(buffer: ga.storage.buffer, offset: 0, ld: aTransposed ? m : k, transposed: aTransposed, batchStride: m * k),
                                       b: GemmOperand(buffer: gb.storage.buffer, offset: 0, ld: bTransposed ? k : n, transposed: bTransposed,
                                                      batchStride: bShared ? 0 : k * n),
                                       beta: 2, c: c.storage.buffer, cOffset: 0, path: path)
                    if let message = mismatch(c.toArray(), bShared ? shared : expected, rtol: 1e-4, atol: 1e-4,
                                              "gemm on \(gpu), A transposed \(aTransposed), B transposed \(bTransposed), B shared \(bShared), B read \(path)") {
                        problems.append(message)
                    }
                }
            }
        }
    }
    return problems
}
