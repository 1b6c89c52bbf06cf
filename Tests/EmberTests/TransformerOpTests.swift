import Foundation
import Testing
@testable import Ember

/// Hand-worked values of the ops around attention, on every device.
@Suite("Transformer ops: forward values")
struct TransformerOpTests {
    static let devices = TestDevices.all

    func square(_ device: Device) -> Tensor {
        Tensor(shape: [3, 3], data: [1, 2, 3, 4, 5, 6, 7, 8, 9], device: device)
    }

    @Test("tril and triu keep the triangles of the last two dims, batched", arguments: devices)
    func triangles(_ device: Device) {
        let x = square(device)
        #expect(x.tril().toArray() == [1, 0, 0, 4, 5, 0, 7, 8, 9])
        #expect(x.tril(diagonal: -1).toArray() == [0, 0, 0, 4, 0, 0, 7, 8, 0])
        #expect(x.triu(diagonal: 1).toArray() == [0, 2, 3, 0, 0, 6, 0, 0, 0])
        #expect(x.triu(diagonal: -1).toArray() == [1, 2, 3, 4, 5, 6, 0, 8, 9])
        let batched = Tensor.ones([2, 2, 3], device: device).tril()
        #expect(batched.toArray() == [1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
        let ints = Tensor(shape: [2, 2], data: [Int32(1), 2, 3, 4], device: device).triu()
        #expect(ints.dtype == .int32 && ints.toIntArray() == [1, 2, 0, 4])
    }

    @Test("maskedFill fills where the broadcast mask is true and blocks the gradient there", arguments: devices)
    func maskedFill(_ device: Device) {
        let x = Tensor(shape: [2, 2], data: [1, 2, 3, 4], device: device, requiresGrad: true)
        let mask = Tensor(shape: [2], data: [0, 1], device: device).bool()
        let y = x.maskedFill(mask, -9)
        #expect(y.toArray() == [1, -9, 3, -9])
        y.sum().backward()
        #expect(x.grad?.toArray() == [1, 0, 1, 0])
    }

    @Test("split and chunk give views with PyTorch's piece sizes", arguments: devices)
    func splitAndChunk(_ device: Device) {
        let x = Tensor.arange(0, 10, device: device).reshape([2, 5])
        let pieces = x.split(2, dim: 1)
        #expect(pieces.map(\.shape) == [[2, 2], [2, 2], [2, 1]])
        #expect(pieces[2].toArray() == [4, 9])
        #expect(pieces.allSatisfy { $0.storage === x.storage })
        #expect(x.split([1, 4], dim: 1).map(\.shape) == [[2, 1], [2, 4]])
        #expect(x.chunk(3, dim: 1).map(\.shape) == [[2, 2], [2, 2], [2, 1]])
        // torch.arange(6).chunk(4) gives three pieces of 2.
        #expect(Tensor.arange(0, 6, device: device).chunk(4).map(\.shape) == [[2], [2], [2]])
        #expect(x.chunk(2, dim: 0)[1].toArray() == [5, 6, 7, 8, 9])
        #expect(Tensor.zeros([0, 2], device: device).chunk(3).map(\.shape) == [[0, 2], [0, 2], [0, 2]])
    }

    @Test("split's pieces are the outputs of one node, whose backward concatenates their gradients", arguments: devices)
    func splitBackwardNode(_ device: Device) {
        let x = Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6], device: device, requiresGrad: true)
        let p = x.split(1, dim: 1)
        #expect(p.map(\.gradFnName) == ["SplitBackward", "SplitBackward", "SplitBackward"])
        #expect(x.split([2, 0, 1], dim: 1).map(\.gradFnName) == Array(repeating: "SplitWithSizesBackward", count: 3))
        #expect(Tensor.zeros([0], device: device, requiresGrad: true).split([]).isEmpty)
        p[1].retainGrad()
        p[2].retainGrad()
        // Piece 0 is used twice, piece 1 not at all.
        let y = (p[0] * 2 + p[2] * p[2] + p[0]).sum()
        y.backward(retainGraph: true)
        #expect(x.grad?.toArray() == [3, 0, 6, 3, 0, 12])
        #expect(p[2].grad?.toArray() == [6, 12])
        #expect(p[1].grad == nil)
        #expect(p[0].grad == nil)
        // The gradients of a piece and of the input, returned instead of accumulated.
        let g = Tensor.grad(of: y, wrt: [p[2], x, p[0]])
        #expect(g[0]?.toArray() == [6, 12])
        #expect(g[1]?.toArray() == [3, 0, 6, 3, 0, 12])
        #expect(g[2]?.toArray() == [3, 3])
        #expect(x.grad?.toArray() == [3, 0, 6, 3, 0, 12])
        // A second order through the join: d/dx sum(d(sum(p0^3))/dx) = 6 x on column 0.
        let first = Tensor.grad(of: x.split([1, 2], dim: 1)[0].pow(3).sum(), wrt: [x], createGraph: true)[0]!
        #expect(first.toArray() == [3, 0, 0, 48, 0, 0])
        x.zeroGrad()
        first.sum().backward()
        #expect(x.grad?.toArray() == [6, 0, 0, 24, 0, 0])
        // The node and its pieces are freed with the last reference to a piece (no cycle).
        weak var piece: Tensor?
        do {
            let pieces = x.split(2, dim: 1)
            piece = pieces[1]
            _ = pieces[0].sum()
        }
        #expect(piece == nil)
    }

    @Test("cumsum and flip", arguments: devices)
    func cumsumAndFlip(_ device: Device) {
        let x = Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6], device: device)
        #expect(x.cumsum(dim: 1).toArray() == [1, 3, 6, 4, 9, 15])
        #expect(x.cumsum(dim: 0).toArray() == [1, 2, 3, 5, 7, 9])
        #expect(Tensor(shape: [3], data: [Int32(1), 2, 3], device: device).cumsum(dim: 0).toIntArray() == [1, 3, 6])
        #expect(x.flip(dims: [1]).toArray() == [3, 2, 1, 6, 5, 4])
        #expect(x.flip(dims: [0, 1]).toArray() == [6, 5, 4, 3, 2, 1])
        // The gradient of cumsum is the reverse cumsum of the output gradient.
        let v = Tensor(shape: [4], data: [1, 1, 1, 1], device: device, requiresGrad: true)
        (v.cumsum(dim: 0) * Tensor(shape: [4], data: [1, 2, 3, 4], device: device)).sum().backward()
        #expect(v.grad?.toArray() == [10, 9, 7, 4])
    }

    @Test("sort is stable, argsort and topk pick the first of ties", arguments: devices)
    func sorting(_ device: Device) {
        let x = Tensor(shape: [4], data: [3, 1, 2, 1], device: device)
        let up = x.sort()
        #expect(up.values.toArray() == [1, 1, 2, 3] && up.indices.toIntArray() == [1, 3, 2, 0])
        let down = x.sort(descending: true)
        #expect(down.values.toArray() == [3, 2, 1, 1] && down.indices.toIntArray() == [0, 2, 1, 3])
        #expect(x.argsort().toIntArray() == [1, 3, 2, 0])
        let m = Tensor(shape: [2, 3], data: [1, 5, 3, 5, 0, 5], device: device)
        let top = m.topk(2, dim: 1)
        #expect(top.values.toArray() == [5, 3, 5, 5] && top.indices.toIntArray() == [1, 2, 0, 2])
        let low = m.topk(1, dim: 0, largest: false)
        #expect(low.values.toArray() == [1, 0, 3] && low.indices.toIntArray() == [0, 1, 0])
        let nan = Tensor(shape: [3], data: [1, .nan, 0], device: device).sort()
        #expect(nan.indices.toIntArray() == [2, 0, 1])
        // The gradient of the values goes back to the positions they came from.
        let g = Tensor(shape: [3], data: [2, 9, 4], device: device, requiresGrad: true)
        (g.topk(2).values * Tensor(shape: [2], data: [10, 1], device: device)).sum().backward()
        #expect(g.grad?.toArray() == [0, 10, 1])
    }

    @Test("multinomial draws the same samples on every device for one seed")
    func multinomialSeeded() {
        let probs = [Float](arrayLiteral: 0.1, 0.2, 0.3, 0.4, 1, 0, 0, 3)
        let draws = TestDevices.all.map { device in
            Tensor.withRandomSeed(7) {
                Tensor.multinomial(Tensor(shape: [2, 4], data: probs, device: device), numSamples: 50, replacement: true).toIntArray()
            }
        }
        #expect(draws.allSatisfy { $0 == draws[0] })
        // Zero-weight categories are never drawn.
        #expect(draws[0][50...].allSatisfy { $0 == 0 || $0 == 3 })
    }

    @Test("multinomial follows the weights, and without replacement draws distinct categories", arguments: devices)
    func multinomialDistribution(_ device: Device) {
        let samples = Tensor.withRandomSeed(3) {
            Tensor.multinomial(Tensor(shape: [2], data: [1, 3], device: device), numSamples: 4000, replacement: true).toIntArray()
        }
        let ones = Double(samples.filter { $0 == 1 }.count) / 4000
        #expect(Swift.abs(ones - 0.75) < 0.03)
        let distinct = Tensor.withRandomSeed(4) {
            Tensor.multinomial(Tensor(shape: [2, 5], data: [1, 2, 3, 4, 5, 0, 0, 1, 0, 2], device: device), numSamples: 5).toIntArray()
        }
        #expect(Set(distinct[0..<5]).count == 5 && Set(distinct[5...]).count == 5)
        #expect(Set(distinct[5..<7]) == [2, 4])
    }

    @Test("scaledDotProductAttention matches hand-worked values", arguments: devices)
    func attentionValues(_ device: Device) {
        let q = Tensor(shape: [1, 2], data: [1, 0], device: device)
        let k = Tensor(shape: [2, 2], data: [1, 0, 0, 1], device: device)
        let v = Tensor(shape: [2, 2], data: [1, 2, 3, 4], device: device)
        // softmax([1/sqrt(2), 0]) = [0.66976, 0.33024].
        expectClose(scaledDotProductAttention(query: q, key: k, value: v).toArray(), [1.6604769, 2.6604769])
        // Causal: query 0 sees key 0 only.
        expectClose(scaledDotProductAttention(query: q, key: k, value: v, isCausal: true).toArray(), [1, 2])
        let mask = Tensor(shape: [1, 2], data: [0, 1], device: device).bool()
        expectClose(scaledDotProductAttention(query: q, key: k, value: v, attnMask: mask).toArray(), [3, 4])
        // An additive mask of log(3) on key 1 with scale 0: weights [1/4, 3/4].
        let additive = Tensor(shape: [2], data: [0, Float(Foundation.log(3.0))], device: device)
        expectClose(scaledDotProductAttention(query: q, key: k, value: v, attnMask: additive, scale: 0).toArray(), [2.5, 3.5])
    }
}

/// Messages of misused transformer ops.
@Suite("Transformer ops: errors")
struct TransformerOpErrorTests {
    /// Each misuse and the message it must print.
    static let misuses: [(message: String, body: @Sendable () -> Void)] = [
        ("tril: input tensor must have at least 2 dimensions, got shape [3]", { _ = Tensor.zeros([3]).tril() }),
        ("maskedFill: only boolean masks are supported", { _ = Tensor.zeros([2]).maskedFill(Tensor.zeros([2]), 1) }),
        ("maskedFill: mask of shape [3] cannot be broadcast to the input's shape [2]", {
            _ = Tensor.zeros([2]).maskedFill(Tensor.zeros([3]).bool(), 1)
        }),
        ("split: split_size can only be 0 if dimension size is 0, but got dimension size of 4", { _ = Tensor.zeros([4]).split(0) }),
        ("chunk: number of chunks must be greater than 0, got 0", { _ = Tensor.zeros([4]).chunk(0) }),
        ("topk: k (4) is out of range for dimension 0 of size 3", { _ = Tensor.zeros([3]).topk(4) }),
        ("multinomial: cannot sample numSamples (3) > prob_dist.size(-1) (2) samples without replacement", {
            _ = Tensor.multinomial(Tensor.ones([2]), numSamples: 3)
        }),
        ("multinomial: probability tensor of shape [2] contains either `inf`, `nan` or element < 0", {
            _ = Tensor.multinomial(Tensor(shape: [2], data: [1, -1]), numSamples: 1)
        }),
        ("multinomial: invalid multinomial distribution (sum of probabilities <= 0)", {
            _ = Tensor.multinomial(Tensor.zeros([2]), numSamples: 1)
        }),
        ("scaledDotProductAttention: query and key must have the same embedding size, got query [2, 3], key [2, 4], value [2, 4]", {
            _ = scaledDotProductAttention(query: Tensor.zeros([2, 3]), key: Tensor.zeros([2, 4]), value: Tensor.zeros([2, 4]))
        }),
        ("scaledDotProductAttention: explicit attnMask should not be set when isCausal is true", {
            _ = scaledDotProductAttention(query: Tensor.zeros([2, 3]), key: Tensor.zeros([2, 3]), value: Tensor.zeros([2, 3]),
                                          attnMask: Tensor.zeros([2, 2]), isCausal: true)
        }),
    ]

    @Test("misuse stops with a message naming the op and the shapes", arguments: 0..<misuses.count)
    func message(_ index: Int) async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { [index] in
            TransformerOpErrorTests.misuses[index].body()
        }
        #expect(stderrText(result).contains(Self.misuses[index].message), "\(Self.misuses[index].message)")
    }
}

/// The fused attention kernels against the composed ops (matmul, mask, softmax, dropout,
/// matmul), values and gradients, on every device and both kernel variants' shapes.
@Suite("Attention: fused against composed")
struct FusedAttentionTests {
    struct Setup: Sendable, CustomTestStringConvertible {
        let name: String
        let q: [Int], k: [Int], v: [Int]
        var mask: [Int]? = nil
        var boolMask = false
        var causal = false
        var dropout: Float = 0
        var testDescription: String { name }
    }

    static let setups: [Setup] = [
        Setup(name: "plain, 2 batch dims, long rows", q: [2, 3, 5, 40], k: [2, 3, 37, 40], v: [2, 3, 37, 6]),
        Setup(name: "causal", q: [2, 2, 33, 8], k: [2, 2, 33, 8], v: [2, 2, 33, 8], causal: true),
        Setup(name: "causal L > S, shared keys", q: [3, 7, 4], k: [1, 5, 4], v: [5, 3], causal: true),
        Setup(name: "padding mask [B, 1, 1, S] with a fully masked batch", q: [2, 3, 4, 8], k: [2, 3, 6, 8], v: [2, 3, 6, 5],
              mask: [2, 1, 1, 6], boolMask: true),
        Setup(name: "float mask [H, L, S] with gradient", q: [2, 3, 4, 8], k: [2, 3, 6, 8], v: [2, 3, 6, 5], mask: [3, 4, 6]),
        Setup(name: "dropout", q: [2, 9, 8], k: [2, 9, 8], v: [2, 9, 4], causal: true, dropout: 0.3),
        Setup(name: "flash shapes: causal, head dim 32", q: [2, 2, 37, 32], k: [2, 2, 37, 32], v: [2, 2, 37, 32], causal: true),
        Setup(name: "flash shapes: L < S, broadcast batch, head dim 16", q: [3, 5, 16], k: [1, 19, 16], v: [3, 19, 16]),
        Setup(name: "flash shapes: causal L > S, head dim 48", q: [2, 9, 48], k: [2, 4, 48], v: [2, 4, 48], causal: true),
    ]

    /// Output and gradients of every input (and of a float mask), through `path`.
    enum Path { case composed, matmul, flash }

    static func run(_ s: Setup, device: Device, fused: Bool) -> [[Float]] {
        run(s, device: device, path: fused ? .flash : .composed)
    }

    /// Output and gradients through one path (`.flash` takes the device's flash kernels where
    /// they apply, the GEMM path elsewhere).
    static func run(_ s: Setup, device: Device, path: Path) -> [[Float]] {
        Tensor.withRandomSeed(11) {
            let q = Tensor.randn(s.q, device: device, requiresGrad: true)
            let k = Tensor.randn(s.k, device: device, requiresGrad: true)
            let v = Tensor.randn(s.v, device: device, requiresGrad: true)
            var mask: Tensor? = nil
            if let shape = s.mask {
                if s.boolMask {
                    var bits = (0..<Shape.count(shape)).map { Float($0 % 3 == 0 ? 0 : 1) }
                    for j in 0..<shape.last! { bits[j] = 0 }  // batch 0: every key masked
                    mask = Tensor(shape: shape, data: bits, device: device).bool()
                } else {
                    mask = Tensor.randn(shape, device: device, requiresGrad: true)
                }
            }
            let scale = 1 / Float(s.q.last!).squareRoot()
            let out = path == .composed
                ? Tensor.composedAttention(query: q, key: k, value: v, attnMask: mask, dropoutP: s.dropout, isCausal: s.causal, scale: scale)
                : Tensor.fusedAttention(query: q, key: k, value: v, attnMask: mask, dropoutP: s.dropout, isCausal: s.causal, scale: scale,
                                        allowFlash: path == .flash, forceFlash: path == .flash)
            let weight = Tensor.randn(out.shape, device: device)
            (out * weight).sum().backward()
            var results = [out.toArray(), q.grad!.toArray(), k.grad!.toArray(), v.grad!.toArray()]
            if let mask, mask.requiresGrad { results.append(mask.grad!.toArray()) }
            return results
        }
    }

    @Test("values and gradients agree", arguments: setups)
    func agree(_ setup: Setup) {
        for device in TestDevices.all {
            let composed = Self.run(setup, device: device, path: .composed)
            for path in [Path.matmul, .flash] {
                let fused = Self.run(setup, device: device, path: path)
                #expect(fused.count == composed.count)
                for (i, (a, b)) in zip(fused, composed).enumerated() {
                    #expect(a.allSatisfy { $0.isFinite }, "\(setup.name) on \(device) via \(path): result \(i) not finite")
                    expectClose(a, b, rtol: 1e-4, atol: 1e-5, "\(setup.name) on \(device) via \(path): result \(i)")
                }
            }
        }
    }

    @Test("the GPU variants of the attention kernels agree with the composed ops on the CPU")
    func gpuVariants() async {
        await #expect(processExitsWith: .success) {
            guard let gpu = gpuKernelVariantDevice() else { return }
            for setup in FusedAttentionTests.setups {
                let fused = FusedAttentionTests.run(setup, device: gpu, fused: true)
                let composed = FusedAttentionTests.run(setup, device: .cpu, fused: false)
                for (a, b) in zip(fused, composed) {
                    precondition(isClose(a, b, rtol: 1e-4, atol: 1e-5), "\(setup.name): GPU kernels differ from the composed ops")
                }
            }
        }
    }

    @Test("the OpenCL CPU device has flash kernels for head dims that are multiples of 16, taken for large blocks")
    func flashChosen() throws {
        guard let gpu = TestDevices.openCL, let flash = gpu.backend as? FlashAttentionBackend, (gpu.backend as! OpenCLBackend).isCPU else { return }
        #expect(flash.flashAttentionApplies(dim: 32) && !flash.flashAttentionApplies(dim: 24))
        #expect(!flash.prefersFlashAttention(batch: 48, rows: 256, cols: 256, dim: 32))
        #expect(flash.prefersFlashAttention(batch: 48, rows: 2048, cols: 2048, dim: 32))
    }

    @Test("a query with every key masked gets zero output, as in PyTorch", arguments: TestDevices.all)
    func fullyMasked(_ device: Device) {
        let q = Tensor.ones([2, 2], device: device), k = Tensor.ones([2, 2], device: device)
        let v = Tensor(shape: [2, 2], data: [1, 2, 3, 4], device: device)
        let mask = Tensor(shape: [2, 2], data: [1, 1, 0, 0], device: device).bool()
        // torch 2.13: F.scaled_dot_product_attention gives [[2, 3], [0, 0]].
        #expect(scaledDotProductAttention(query: q, key: k, value: v, attnMask: mask).toArray() == [2, 3, 0, 0])
    }

    @Test("second-order gradients through the fused op match the composed ones", arguments: TestDevices.all)
    func secondOrder(_ device: Device) {
        func hessianVector(fused: Bool) -> [Float] {
            Tensor.withRandomSeed(5) {
                let q = Tensor.randn([2, 3, 4], device: device, requiresGrad: true)
                let k = Tensor.randn([2, 3, 4], device: device), v = Tensor.randn([2, 3, 4], device: device)
                let out = fused ? Tensor.fusedAttention(query: q, key: k, value: v, attnMask: nil, dropoutP: 0, isCausal: true, scale: 0.5)
                                : Tensor.composedAttention(query: q, key: k, value: v, attnMask: nil, dropoutP: 0, isCausal: true, scale: 0.5)
                let g = Tensor.grad(of: out.square().sum(), wrt: [q], createGraph: true)[0]!
                return Tensor.grad(of: g.square().sum(), wrt: [q])[0]!.toArray()
            }
        }
        expectClose(hessianVector(fused: true), hessianVector(fused: false), rtol: 1e-4, atol: 1e-5)
    }
}

/// `MultiheadAttention` against `torch.nn.MultiheadAttention` (Fixtures/make_mha_fixture.py).
@Suite("MultiheadAttention")
struct MultiheadAttentionTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/mha.safetensors")

    @Test("parameter names are PyTorch's", arguments: [true, false])
    func names(_ bias: Bool) {
        let mha = MultiheadAttention(embedDim: 8, numHeads: 2, bias: bias)
        let expected = bias ? ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"] : ["in_proj_weight", "out_proj.weight"]
        #expect(mha.stateDict().map(\.name) == expected)
        #expect(mha.inProjWeight.shape == [24, 8] && mha.outProj.weight.shape == [8, 8])
    }

    @Test("a PyTorch state dict loads and gives PyTorch's outputs", arguments: TestDevices.all)
    func matchesTorch(_ device: Device) throws {
        let file = try SafeTensors.read(from: Self.fixture)
        let t = Dictionary(uniqueKeysWithValues: file.map { ($0.name, $0.tensor.to(device)) })
        let mha = MultiheadAttention(embedDim: 8, numHeads: 2).to(device)
        try mha.loadStateDict(StateDict(["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"].map { ($0, t[$0]!) }))
        mha.eval()
        let q = t["query"]!, k = t["key"]!, v = t["value"]!
        let plain = mha(q, k, v)
        expectClose(plain.output.toArray(), t["plain.output"]!.toArray(), rtol: 1e-5, atol: 1e-5)
        expectClose(plain.weights!.toArray(), t["plain.weights"]!.toArray(), rtol: 1e-5, atol: 1e-5)
        let padding = t["key_padding_mask"]!.bool(), mask = t["attn_mask"]!.bool()
        let masked = mha(q, k, v, keyPaddingMask: padding, needWeights: false, attnMask: mask)
        #expect(masked.weights == nil)
        expectClose(masked.output.toArray(), t["masked.output"]!.toArray(), rtol: 1e-5, atol: 1e-5)
        let perHead = mha(q, k, v, keyPaddingMask: padding, attnMask: mask, averageAttnWeights: false).weights!
        expectClose(perHead.toArray(), t["masked.weights_per_head"]!.toArray(), rtol: 1e-5, atol: 1e-5)
        let causal = mha(q, q, q, needWeights: false, isCausal: true).output
        expectClose(causal.toArray(), t["causal.output"]!.toArray(), rtol: 1e-5, atol: 1e-5)
        // batchFirst takes [N, L, E] and gives the same numbers transposed.
        let first = MultiheadAttention(embedDim: 8, numHeads: 2, batchFirst: true).to(device)
        try first.loadStateDict(mha.stateDict())
        let out = first(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), needWeights: false).output
        expectClose(out.transpose(0, 1).contiguous().toArray(), t["plain.output"]!.toArray(), rtol: 1e-5, atol: 1e-5)
    }

    @Test("gradients reach every parameter")
    func gradients() {
        let mha = Tensor.withRandomSeed(2) { MultiheadAttention(embedDim: 4, numHeads: 2) }
        let x = Tensor.withRandomSeed(3) { Tensor.randn([5, 3, 4]) }
        mha(x, x, x, needWeights: false, isCausal: true).output.square().sum().backward()
        #expect(mha.parameters().allSatisfy { $0.grad != nil && $0.grad!.toArray().contains { $0 != 0 } })
    }
}

extension MultiheadAttentionTests {
    @Test("isCausal with only a key padding mask is the causal mask joined with it, weights included", arguments: TestDevices.all)
    func causalWithPadding(_ device: Device) {
        let mha = MultiheadAttention(embedDim: 8, numHeads: 2).to(device)
        let x = Tensor.withRandomSeed(6) { Tensor.randn([4, 2, 8], device: device) }
        let padding = Tensor([[false, false, true, false], [false, false, false, true]], device: device)
        let causal = Tensor.ones([4, 4], device: device).triu(diagonal: 1) != 0
        for needWeights in [false, true] {
            let hinted = mha(x, x, x, keyPaddingMask: padding, needWeights: needWeights, isCausal: true)
            let explicit = mha(x, x, x, keyPaddingMask: padding, needWeights: needWeights, attnMask: causal)
            expectClose(hinted.output.toArray(), explicit.output.toArray(), "needWeights \(needWeights)")
            if needWeights { expectClose(hinted.weights!.toArray(), explicit.weights!.toArray()) }
        }
    }
}

@Suite("TransformerEncoder")
struct TransformerEncoderTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/transformer.safetensors")

    /// The fixture's stack under `prefix`: post-norm ReLU blocks, or pre-norm GELU ones.
    static func encoder(preNorm: Bool) -> TransformerEncoder {
        TransformerEncoder(numLayers: 2, norm: LayerNorm(8)) {
            TransformerEncoderLayer(dModel: 8, nhead: 2, dimFeedforward: 16, dropout: 0, activation: preNorm ? .gelu : .relu,
                                    batchFirst: true, normFirst: preNorm)
        }
    }

    @Test("a PyTorch state dict loads under its names and gives PyTorch's outputs and input gradient, post- and pre-norm",
          arguments: TestDevices.all)
    func matchesTorch(_ device: Device) throws {
        let file = try SafeTensors.read(from: Self.fixture)
        let t = Dictionary(uniqueKeysWithValues: file.map { ($0.name, $0.tensor.to(device)) })
        for (prefix, preNorm) in [("post.", false), ("pre.", true)] {
            let encoder = Self.encoder(preNorm: preNorm).to(device)
            let names = encoder.stateDict().map(\.name)
            #expect(Set(names) == Set(t.keys.filter { $0.hasPrefix(prefix) && !$0.hasSuffix("output") && !$0.hasSuffix("src_grad") }
                .map { String($0.dropFirst(prefix.count)) }), "\(prefix) names")
            try encoder.loadStateDict(StateDict(names.map { ($0, t[prefix + $0]!) }))
            encoder.eval()
            let src = t["src"]!.detach().requiresGrad(true)
            // nn.Transformer.generate_square_subsequent_mask(5) for the post-norm stack, as the fixture's.
            let causal = Tensor.full([5, 5], -Float.infinity, device: device).triu(diagonal: 1)
            let out = encoder(src, mask: preNorm ? nil : causal, srcKeyPaddingMask: t["key_padding_mask"]!.bool())
            expectClose(out.toArray(), t[prefix + "output"]!.toArray(), rtol: 1e-4, atol: 1e-5, "\(prefix) output")
            (out * t["upstream"]!).sum().backward()
            expectClose(src.grad!.toArray(), t[prefix + "src_grad"]!.toArray(), rtol: 1e-4, atol: 1e-5, "\(prefix) gradient")
            if !preNorm {
                // isCausal alone is the same causal mask, joined with the padding mask.
                let hinted = encoder(src, mask: nil, srcKeyPaddingMask: t["key_padding_mask"]!.bool(), isCausal: true)
                expectClose(hinted.toArray(), t[prefix + "output"]!.toArray(), rtol: 1e-4, atol: 1e-5, "\(prefix) isCausal")
            }
        }
    }

    @Test("each block has its own weights, and a sequence-first block computes the batch-first numbers transposed")
    func layout() {
        let encoder = Self.encoder(preNorm: false)
        #expect(encoder.layers.count == 2 && encoder.stateDict().map(\.name).first == "layers.0.self_attn.in_proj_weight")
        let first = encoder.layers[0] as! TransformerEncoderLayer, second = encoder.layers[1] as! TransformerEncoderLayer
        #expect(first.linear1.weight.toArray() != second.linear1.weight.toArray())
        let sequenceFirst = TransformerEncoderLayer(dModel: 8, nhead: 2, dimFeedforward: 16, dropout: 0)
        try? sequenceFirst.loadStateDict(first.stateDict())
        let x = Tensor.withRandomSeed(4) { Tensor.randn([3, 5, 8]) }
        expectClose(sequenceFirst(x.transpose(0, 1)).transpose(0, 1).toArray(), first(x).toArray(), atol: 1e-5)
    }
}
