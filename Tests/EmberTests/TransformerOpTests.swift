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
