import Foundation
import Testing
@testable import Ember

/// float16 and bfloat16 through every op, PyTorch's type promotion, conversions between every
/// pair of dtypes bit for bit against PyTorch, and safetensors files of every dtype.
@Suite("Lower precision")
struct LowPrecisionTests {
    /// Cases whose result is Float32 by promotion: they mix in a Float32 tensor (indices
    /// converted with `.float()`, an `arange`).
    static let float32Results: Set<String> = ["min and max on ties with indices", "0-d max min dim with indices", "flip"]

    /// Tolerances against Float32 on the same (rounded) inputs: relative to each element and
    /// to the largest magnitude of the reference, for values and for gradients. Every op
    /// rounds its result to the narrow type, so a case of k ops carries k roundings.
    static func tolerance(_ dtype: DType) -> (rtol: Float, atol: Float) {
        dtype == .bfloat16 ? (4e-2, 2e-2) : (5e-3, 3e-3)
    }

    @Test("every op case in float16 and bfloat16 matches Float32 on the same inputs, values and gradients, on every device",
          arguments: OpCase.all)
    func opCases(_ op: OpCase) {
        for device in TestDevices.all {
            for dtype in [DType.float16, .bfloat16] {
                for problem in Self.narrowMismatches(op, dtype: dtype, device: device) {
                    Issue.record("\(op.name) in \(dtype) on \(device): \(problem)")
                }
            }
        }
    }

    /// Runs `op` with inputs in `dtype` and in Float32 (the same values: the inputs are rounded
    /// to `dtype` first) and lists where the result, its type, the gradients or their types
    /// differ by more than `tolerance(dtype)`.
    static func narrowMismatches(_ op: OpCase, dtype: DType, device: Device) -> [String] {
        let rounded = zip(op.inputs(), op.shapes).map { Tensor(shape: $1, data: $0, dtype: dtype).toArray() }
        func run(_ type: DType) -> (out: Tensor, grads: [Tensor?], inputs: [Tensor]) {
            let xs = zip(rounded, op.shapes).map { Tensor(shape: $1, data: $0, dtype: type, device: device, requiresGrad: true) }
            let out = op.function(xs)
            var random = TestRandom(seed: 77)
            let weights = Tensor(shape: out.shape, data: random.floats(out.count, 0.5...1.5), device: device)
            (out.float() * weights).sum().backward()
            return (out, xs.map(\.grad), xs)
        }
        let reference = run(.float32), narrow = run(dtype)
        var problems: [String] = []
        let expectedType = float32Results.contains(op.name) ? DType.float32 : dtype
        if narrow.out.dtype != expectedType { problems.append("result is \(narrow.out.dtype), expected \(expectedType)") }
        let (rtol, atol) = tolerance(dtype)
        func compare(_ actual: [Float], _ expected: [Float], scale: Float, _ what: String) {
            let largest = expected.reduce(Float(1)) { Swift.max($0, Swift.abs($1)) }
            if let m = mismatch(actual, expected, rtol: scale * rtol, atol: scale * atol * largest, what) { problems.append(m) }
        }
        compare(narrow.out.toArray(), reference.out.toArray(), scale: 1, "values")
        for (i, (g, r)) in zip(narrow.grads, reference.grads).enumerated() {
            switch (g, r) {
            case let (g?, r?):
                if g.dtype != dtype { problems.append("gradient \(i) is \(g.dtype), expected \(dtype)") }
                compare(g.toArray(), r.toArray(), scale: 2, "gradient \(i)")
            case (nil, nil): break
            default: problems.append("gradient \(i) is \(g == nil ? "missing" : "present"), Float32's is not")
            }
        }
        return problems
    }

    /// `torch.result_type` for each pair of dtypes, read off torch 2.13: `table[a][b]` is
    /// (both tensors with dimensions, `b` a 0-d tensor).
    static let promotion: [DType: [DType: (DType, DType)]] = {
        let order: [DType] = [.float32, .float16, .bfloat16, .int32, .int64, .uint8, .bool]
        let rows: [[(DType, DType)]] = [
            [(.float32, .float32), (.float32, .float32), (.float32, .float32), (.float32, .float32), (.float32, .float32), (.float32, .float32), (.float32, .float32)],
            [(.float32, .float16), (.float16, .float16), (.float32, .float16), (.float16, .float16), (.float16, .float16), (.float16, .float16), (.float16, .float16)],
            [(.float32, .bfloat16), (.float32, .bfloat16), (.bfloat16, .bfloat16), (.bfloat16, .bfloat16), (.bfloat16, .bfloat16), (.bfloat16, .bfloat16), (.bfloat16, .bfloat16)],
            [(.float32, .float32), (.float16, .float16), (.bfloat16, .bfloat16), (.int32, .int32), (.int64, .int32), (.int32, .int32), (.int32, .int32)],
            [(.float32, .float32), (.float16, .float16), (.bfloat16, .bfloat16), (.int64, .int64), (.int64, .int64), (.int64, .int64), (.int64, .int64)],
            [(.float32, .float32), (.float16, .float16), (.bfloat16, .bfloat16), (.int32, .uint8), (.int64, .uint8), (.uint8, .uint8), (.uint8, .uint8)],
            [(.float32, .float32), (.float16, .float16), (.bfloat16, .bfloat16), (.int32, .int32), (.int64, .int64), (.uint8, .uint8), (.bool, .bool)],
        ]
        var table: [DType: [DType: (DType, DType)]] = [:]
        for (a, row) in zip(order, rows) { table[a] = Dictionary(uniqueKeysWithValues: zip(order, row)) }
        return table
    }()

    @Test("add and mul of two tensors promote as torch.result_type, 0-d operands included", arguments: DType.allCases)
    func promotionTable(_ a: DType) {
        let x = Tensor(shape: [2], data: [1, 0], dtype: a)
        for b in DType.allCases {
            let (full, zeroDim) = Self.promotion[a]![b]!
            let y = Tensor(shape: [2], data: [1, 1], dtype: b), s = Tensor(shape: [], data: [1], dtype: b)
            #expect((x + y).dtype == full && (x * y).dtype == full && (y + x).dtype == full, "\(a) with \(b)")
            #expect((x + s).dtype == zeroDim && (s * x).dtype == zeroDim, "\(a) with a 0-d \(b)")
            #expect(Tensor.where(x > 0, x, y).dtype == full, "where(\(a), \(b))")
        }
    }

    @Test("a scalar keeps a tensor's type unless it needs a wider category; bool arithmetic is logical", arguments: TestDevices.all)
    func scalarsAndBools(_ d: Device) {
        let ints = Tensor(shape: [3], data: [1, 2, 3], dtype: .int32, device: d)
        #expect((ints + 2).dtype == .int32 && (ints * 2).toIntArray() == [2, 4, 6])
        #expect((ints + 0.5).dtype == .float32 && (ints + 0.5).toArray() == [1.5, 2.5, 3.5])
        #expect((ints / 2).dtype == .float32 && (ints / 2).toArray() == [0.5, 1, 1.5])
        let half = Tensor(shape: [2], data: [1, 2], dtype: .float16, device: d)
        #expect((half * 2.5).dtype == .float16 && (half * 2.5).toArray() == [2.5, 5])
        let bytes = Tensor(shape: [3], data: [250, 1, 3], dtype: .uint8, device: d)
        #expect((bytes + 10).dtype == .uint8 && (bytes + 10).toIntArray() == [4, 11, 13], "uint8 arithmetic wraps")
        let mask = Tensor([true, false, true, false], device: d), other = Tensor([true, true, false, false], device: d)
        #expect((mask + 2).dtype == .int64 && (mask + 2).toInt64Array() == [3, 2, 3, 2])
        #expect((mask * 1.5).dtype == .float32 && (mask * 1.5).toArray() == [1.5, 0, 1.5, 0])
        #expect((mask + other).dtype == .bool && (mask + other).toBoolArray() == [true, true, true, false])
        #expect((mask * other).dtype == .bool && (mask * other).toBoolArray() == [true, false, false, false])
        // Reductions of integers and masks: int64 sums (counting correct predictions), max/min in their type.
        #expect(mask.sum().dtype == .int64 && mask.sum().toInt64Array() == [2] && ints.sum(dim: 0).dtype == .int64)
        #expect(ints.max().dtype == .int32 && ints.max().toIntArray() == [3] && mask.max().dtype == .bool)
        #expect(ints.reshape([1, 3]).sum(dim: 1).toInt64Array() == [6] && ints.float().mean().item() == 2)
    }

    @Test("int64 values are exact from creation through views, copies, gather, cat and casts", arguments: TestDevices.all)
    func exactInt64(_ d: Device) {
        let big: [Int64] = [1 << 40 + 1, -(1 << 53) - 1, 1 << 62 + 3, 16_777_217]
        let x = Tensor(shape: [2, 2], data: big, device: d)
        #expect(x.dtype == .int64 && x.toInt64Array() == big)
        #expect(x.T.contiguous().T.toInt64Array() == big && x.flatten().flip(dims: [0]).toInt64Array() == big.reversed())
        #expect(Tensor.cat([x, x], dim: 0).toInt64Array() == big + big && Tensor.cat([x, x.T], dim: 1).toInt64Array()
                    == [big[0], big[1], big[0], big[2], big[2], big[3], big[1], big[3]])
        let index = Tensor(shape: [2], data: [1, 0] as [Int32], device: d)
        #expect(x.indexSelect(dim: 0, index: index).toInt64Array() == Array(big[2...]) + Array(big[..<2]))
        #expect(x.gather(dim: 1, index: Tensor(shape: [2, 1], data: [1, 0] as [Int32], device: d)).toInt64Array() == [big[1], big[2]])
        #expect(x.int().toIntArray() == big.map { Int32(truncatingIfNeeded: $0) }, "int64 to int32 wraps")
        #expect(x.float().toArray() == big.map { Float($0) }, "int64 to Float32 rounds once")
    }

    @Test("integer arithmetic, comparisons and reductions are exact past 2^24 and wrap as PyTorch's", arguments: TestDevices.all)
    func exactIntegerArithmetic(_ d: Device) {
        // Neighbours above 2^24 that Float32 cannot tell apart, 2^53 + 1, and values whose
        // products and sums overflow Int64 (PyTorch's integer ops wrap, as &+ and &* do).
        let a: [Int64] = [16_777_217, 1 << 53 + 1, -(1 << 40) - 3, 1 << 62, Int64.max, 7]
        let b: [Int64] = [16_777_216, 3, 1 << 31, 4, 1, -7]
        let x = Tensor(shape: [6], data: a, device: d), y = Tensor(shape: [6], data: b, device: d)
        func each(_ f: (Int64, Int64) -> Int64) -> [Int64] { zip(a, b).map(f) }
        #expect((x + y).dtype == .int64 && (x + y).toInt64Array() == each { $0 &+ $1 })
        #expect((x - y).toInt64Array() == each { $0 &- $1 } && (x * y).toInt64Array() == each { $0 &* $1 })
        #expect(x.maximum(y).toInt64Array() == each { Swift.max($0, $1) } && x.minimum(y).toInt64Array() == each { Swift.min($0, $1) })
        #expect((-x).toInt64Array() == a.map { 0 &- $0 } && x.abs().toInt64Array() == a.map { $0 < 0 ? 0 &- $0 : $0 })
        #expect(x.sign().toInt64Array() == [1, 1, -1, 1, 1, 1] && (-x).relu().toInt64Array() == [0, 0, (1 << 40) + 3, 0, 0, 0])
        #expect(x.square().toInt64Array() == a.map { $0 &* $0 } && x.pow(2).toInt64Array() == a.map { $0 &* $0 })
        #expect((x == y).toBoolArray() == [false, false, false, false, false, false])
        #expect((x > y).toBoolArray() == [true, true, false, true, true, true] && (x <= y).toBoolArray() == [false, false, true, false, false, false])
        #expect((x != x + 1).toBoolArray().allSatisfy { $0 } && (x >= x).toBoolArray().allSatisfy { $0 })
        // Integral constants stay exact; broadcasting reads each operand as the result's shape.
        #expect((x + 1).toInt64Array() == a.map { $0 &+ 1 } && (x * -2).toInt64Array() == a.map { $0 &* -2 })
        let column = Tensor(shape: [2, 1], data: [1 << 40, -1] as [Int64], device: d)
        #expect((column + x).shape == [2, 6] && (column + x).toInt64Array() == a.map { $0 &+ (1 << 40) } + a.map { $0 &- 1 })
        #expect((x.reshape([2, 3]).T == x.reshape([2, 3]).T).toBoolArray().allSatisfy { $0 }, "a transposed view")
        // Mixed integer types promote, then wrap in the result's type.
        let i32 = Tensor(shape: [2], data: [Int32.max, -5] as [Int32], device: d)
        #expect((i32 + 1).dtype == .int32 && (i32 + 1).toIntArray() == [Int32.min, -4])
        #expect((i32 * Tensor(shape: [2], data: [3, 1 << 33] as [Int64], device: d)).toInt64Array() == [Int64(Int32.max) * 3, -5 << 33])
        let bytes = Tensor([250, 3] as [UInt8], device: d)
        #expect((bytes + 10).dtype == .uint8 && (bytes + 10).toInt64Array() == [4, 13] && (bytes - 4).toInt64Array() == [246, 255])
        // Reductions: Int64 sums, maxima, minima and indices of the exact values.
        let m = Tensor(shape: [2, 3], data: [1 << 40, 1, 1 << 40, 16_777_216, 16_777_217, -3] as [Int64], device: d)
        let total: Int64 = (1 << 41) + 1 + 33_554_433 - 3
        #expect(m.sum().dtype == .int64 && m.sum().toInt64Array() == [total])
        let rowSums: [Int64] = [(1 << 41) + 1, 33_554_430], columnSums: [Int64] = [(1 << 40) + 16_777_216, 16_777_218, (1 << 40) - 3]
        #expect(m.sum(dim: 1).toInt64Array() == rowSums && m.sum(dim: 0).toInt64Array() == columnSums)
        #expect(m.max(dim: 1).values.toInt64Array() == [1 << 40, 16_777_217] && m.max(dim: 1).indices.toInt64Array() == [0, 1])
        #expect(m.argmax().toInt64Array() == [0] && m.argmin(dim: 0).toInt64Array() == [1, 0, 1] && m.min().toInt64Array() == [-3])
        let cube = Tensor(shape: [2, 2, 2], data: (0..<8).map { Int64($0) << 30 } as [Int64], device: d)
        let apart: [Int64] = [10 << 30, 18 << 30]
        #expect(cube.sum(dims: [0, 2]).toInt64Array() == apart, "dims apart")
        #expect((i32.max().dtype, i32.sum().dtype) == (.int32, .int64) && i32.sum().toInt64Array() == [Int64(Int32.max) - 5])
        #expect(Tensor([true, false, true], device: d).sum().toInt64Array() == [2] && Tensor([true, false], device: d).max().toBoolArray() == [true])
        let empty = Tensor(shape: [0, 2], data: [] as [Int64], device: d)
        #expect(empty.sum(dim: 0).toInt64Array() == [0, 0] && empty.sum(dim: 1).shape == [0])
        // Selections, clamps and running sums keep the values and PyTorch's types.
        let mask = Tensor([true, false, true, false, true, false], device: d)
        let picked = Tensor.where(mask, x, y)
        #expect(picked.dtype == .int64 && picked.toInt64Array() == zip(a, b).enumerated().map { $0.offset % 2 == 0 ? $0.element.0 : $0.element.1 })
        #expect(Tensor.where(mask, x, 0).toInt64Array() == a.enumerated().map { $0.offset % 2 == 0 ? $0.element : 0 })
        #expect(Tensor.where(Tensor([false, true], device: d), i32, Tensor(shape: [1], data: [Int32.min] as [Int32], device: d)).toIntArray() == [Int32.min, -5])
        #expect(x.reshape([2, 3]).tril().toInt64Array() == [a[0], 0, 0, a[3], a[4], 0])
        let clamped = x.clamp(min: -16_777_216, max: 1_099_511_627_776)
        #expect(clamped.dtype == .int64 && clamped.toInt64Array() == a.map { Swift.min(Swift.max($0, -16_777_216), 1 << 40) })
        #expect(i32.clamp(min: 0).dtype == .int32 && i32.clamp(min: 0).toIntArray() == [Int32.max, 0] && i32.clamp(max: 0.5).dtype == .float32)
        let running = Tensor(shape: [2, 3], data: [16_777_216, 1, 1, 1 << 40, -1, 2] as [Int64], device: d)
        let sums: [Int64] = [16_777_216, 16_777_217, 16_777_218, 1 << 40, (1 << 40) - 1, (1 << 40) + 1]
        #expect(running.cumsum(dim: 1).dtype == .int64 && running.cumsum(dim: 1).toInt64Array() == sums)
        #expect(i32.cumsum(dim: 0).dtype == .int64 && i32.cumsum(dim: 0).toInt64Array() == [Int64(Int32.max), Int64(Int32.max) - 5])
        #expect(mask.cumsum(dim: 0).toInt64Array() == [1, 1, 2, 2, 3, 3])
        // Python's % and // (torch.remainder, torch.floor_divide): the divisor's sign.
        let p = Tensor(shape: [5], data: [-7, 7, -7, 7, Int64.min] as [Int64], device: d)
        let q = Tensor(shape: [5], data: [3, 3, -3, -3, -1] as [Int64], device: d)
        #expect((p % q).dtype == .int64 && (p % q).toInt64Array() == [2, 1, -1, -2, 0])
        #expect(p.floorDivide(q).toInt64Array() == [-3, 2, 2, -3, Int64.min] && (x % 1000).toInt64Array() == a.map { (($0 % 1000) + 1000) % 1000 })
        #expect((i32 % 10).dtype == .int32 && (i32 % 10).toIntArray() == [7, 5] && i32.floorDivide(10).toIntArray() == [214_748_364, -1])
    }

    @Test("float remainder and floor division follow PyTorch's, signs, zeros and infinities included", arguments: TestDevices.all)
    func floatRemainder(_ d: Device) {
        // torch.remainder(tensor([-3., 5.5, 7, -0.5]), tensor([2., -2, 0, 4])) = [1, -0.5, nan, 3.5];
        // torch.floor_divide of the same = [-2, -3, inf, -1]; 0.5 // -2 = -1 and 0.5 // 2 = 0.
        let a = Tensor([-3, 5.5, 7, -0.5], device: d), b = Tensor([2, -2, 0, 4], device: d)
        let r = (a % b).toArray(), f = a.floorDivide(b).toArray()
        #expect(r[0] == 1 && r[1] == -0.5 && r[2].isNaN && r[3] == 3.5)
        #expect(f == [-2, -3, .infinity, -1])
        #expect(Tensor([0.5, 0.5, -0.25], device: d).floorDivide(Tensor([-2, 2, 8], device: d)).toArray().map(\.sign) == [.minus, .plus, .minus])
        #expect((Tensor([-1.25, 7.5], device: d) % 2.5).toArray() == [1.25, 0] && Tensor([-1.25, 7.5], device: d).floorDivide(2.5).toArray() == [-1, 3])
    }

    @Test("bool tensors: logical ops, ~ & | ^, and the errors PyTorch gives for - on masks", arguments: TestDevices.all)
    func logicalOps(_ d: Device) async {
        let a = Tensor([true, false, true, false], device: d), b = Tensor([true, true, false, false], device: d)
        #expect((~a).toBoolArray() == [false, true, false, true] && (a & b).toBoolArray() == [true, false, false, false])
        #expect((a | b).toBoolArray() == [true, true, true, false] && (a ^ b).toBoolArray() == [false, true, true, false])
        let x = Tensor([0, 2, -1, 0], device: d)
        #expect(x.logicalNot().toBoolArray() == [true, false, false, true] && x.logicalAnd(a).toBoolArray() == [false, false, true, false])
        #expect(x.logicalOr(b).dtype == .bool && x.logicalXor(b).toBoolArray() == [true, false, true, false])
        #expect(a.maximum(b).dtype == .bool && a.minimum(b).toBoolArray() == [true, false, false, false])
        let ints = Tensor(shape: [2], data: [-3, 4] as [Int32], device: d)
        #expect((-ints).dtype == .int32 && (-ints).toIntArray() == [3, -4] && ints.abs().toIntArray() == [3, 4] && ints.relu().dtype == .int32)
        #expect(ints.exp().dtype == .float32)
        await #expect(processExitsWith: .failure) { _ = Tensor([true]) - Tensor([false]) }
        await #expect(processExitsWith: .failure) { _ = -Tensor([true]) }
    }

    /// PyTorch's conversions, from `Fixtures/dtypes.safetensors` (`make_dtype_fixture.py`).
    static let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/dtypes.safetensors")

    /// The tensors of that file, as Ember reads them.
    nonisolated(unsafe) static let fixture: StateDict = {
        try! SafeTensors.read(from: fixtureURL)
    }()

    @Test("every conversion between two dtypes gives PyTorch's bits, on every device", arguments: TestDevices.all)
    func conversions(_ d: Device) {
        let pairs = Self.fixture.keys.filter { $0.contains("_to_") }.sorted()
        #expect(pairs.count > 30, "the fixture holds PyTorch's conversions")
        for key in pairs {
            let parts = key.components(separatedBy: "_to_")
            let source = Self.fixture[parts[0]]!.to(d), expected = Self.fixture[key]!
            let converted = source.to(expected.dtype)
            #expect(converted.dtype == expected.dtype && converted.device == d)
            let got = converted.hostBytes(), want = expected.hostBytes(), width = expected.dtype.byteSize
            for i in 0..<expected.count where got[i * width..<(i + 1) * width] != want[i * width..<(i + 1) * width] {
                // NaN payloads are not part of the contract: any NaN matches any NaN.
                if expected.dtype.isFloatingPoint, converted[i].item().isNaN, expected[i].item().isNaN { continue }
                Issue.record("\(key) on \(d): element \(i) (\(source[i].toArray()[0])) gives \(converted[i].toArray()[0]), PyTorch \(expected[i].toArray()[0])")
            }
        }
    }

    @Test("float16 subnormals survive reductions and elementwise ops on every device", arguments: TestDevices.all)
    func halfSubnormals(_ d: Device) {
        let values: [Float] = [5.96e-8, 1e-6, 3e-5, -2e-5, 6e-5, -5.96e-8, 0, 2e-6]
        let x = Tensor(shape: [8], data: values, dtype: .float16, device: d), exact = x.toArray()
        #expect(exact[0] == 0x1p-24 && exact[2] != 0, "the inputs are half subnormals")
        let sum = Tensor(shape: [], data: [Float(exact.map(Double.init).reduce(0, +))], dtype: .float16).item()
        #expect(x.sum().item() == sum && sum != 0)
        #expect(x.max().item() == exact[4] && x.min(dim: 0).values.item() == exact[3])
        #expect((x * 1).toArray() == exact && (x + x).toArray() == exact.map { 2 * $0 } && x.abs().toArray() == exact.map(Swift.abs))
    }

    @Test("16-bit matmul in every operand layout equals the Float32 product of the same values, rounded once, on every device",
          arguments: [DType.float16, .bfloat16])
    func narrowMatmul(_ dtype: DType) {
        var random = TestRandom(seed: 8)
        let left = random.floats(3 * 37 * 70), right = random.floats(3 * 45 * 70)
        for d in TestDevices.all {
            let a = Tensor(shape: [3, 37, 70], data: left, dtype: dtype, device: d), b = Tensor(shape: [3, 45, 70], data: right, dtype: dtype, device: d)
            let at = a.transpose(1, 2).contiguous().transpose(1, 2), bt = b.transpose(1, 2).contiguous()
            for (name, x, y) in [("as stored", a, bt), ("right transposed", a, b.transpose(1, 2)), ("left transposed", at, bt),
                                 ("both transposed", at, b.transpose(1, 2)), ("broadcast batch", a[0], bt)] {
                let product = x.matmul(y)
                let reference = x.float().matmul(y.float()).to(dtype).toArray()
                #expect(product.dtype == dtype, "\(name) on \(d)")
                if let m = mismatch(product.toArray(), reference, rtol: dtype == .bfloat16 ? 8e-3 : 1e-3, atol: 1e-3, "\(dtype) \(name) on \(d)") {
                    Issue.record(Comment(rawValue: m))
                }
            }
        }
    }

    @Test("a 16-bit matmul makes no Float32 copies of its operands or of its result, in one kernel")
    func narrowMatmulMemory() async {
        // In a process of its own: the peak counts every allocation on the device, and other
        // tests allocate on it in parallel.
        await #expect(processExitsWith: .success) {
            for d in TestDevices.all {
                let a = Tensor.randn([256, 256], device: d).bfloat16(), b = Tensor.randn([256, 256], device: d).bfloat16()
                try d.synchronize()
                d.resetPeakMemory()
                let before = d.stats.liveBytes, launches = d.stats.kernelLaunches
                let product = a.matmul(b)
                try d.synchronize()
                // The bfloat16 result only (128 KiB): no Float32 accumulator (256 KiB more)
                // and no Float32 copies of the operands.
                let peak = d.stats.peakLiveBytes - before
                precondition(product.dtype == .bfloat16, "\(d): a \(product.dtype) product")
                precondition(peak <= 256 * 256 * 2, "\(d): peak \(peak) bytes above the operands")
                precondition(d.stats.kernelLaunches - launches == 1, "\(d): \(d.stats.kernelLaunches - launches) launches")
            }
        }
    }

    /// Window geometries of the column tests: padding, stride, dilation, a 1 x 1 kernel, and a
    /// row wider than col2im's 64-pixel chunks on OpenCL.
    static let columnCases: [(input: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int))] = [
        ([2, 3, 7, 6], (3, 3), (1, 1), (1, 1), (1, 1)),
        ([1, 2, 9, 8], (3, 2), (2, 3), (2, 1), (1, 2)),
        ([2, 4, 5, 5], (1, 1), (1, 1), (0, 0), (1, 1)),
        ([1, 2, 4, 70], (2, 5), (1, 2), (1, 3), (2, 1)),
    ]

    @Test("16-bit im2col copies elements bit for bit and col2im rounds each pixel's Float32 sum once, on every device",
          arguments: [DType.float16, .bfloat16])
    func narrowColumns(_ dtype: DType) {
        var random = TestRandom(seed: 12)
        for (i, c) in Self.columnCases.enumerated() {
            // A slice with an offset (batch 1 onwards), signed zeros and infinities among the values.
            let shape = [c.input[0] + 1] + c.input.dropFirst()
            var values = random.floats(Shape.count(shape), -3...3)
            values[Shape.count(Array(shape.dropFirst())) + 1] = -0.0
            values[values.count - 2] = .infinity
            for d in TestDevices.all {
                let x = Tensor(shape: shape, data: values, dtype: dtype, device: d)[1...]
                let g = x.windowGeometry("test", kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation)
                let columns = x.im2col(g)
                #expect(columns.dtype == dtype, "case \(i) on \(d)")
                #expect(columns.hostBytes() == x.float().im2col(g).to(dtype).hostBytes(), "im2col case \(i) in \(dtype) on \(d)")
                // Columns with an offset too; Float32 sums in the same tap order, rounded once.
                let k = g.channels * g.kernelH * g.kernelW, l = g.outHeight * g.outWidth
                let cols = Tensor(shape: [g.batch + 1, k, l], data: random.floats((g.batch + 1) * k * l, -2...2), dtype: dtype, device: d)[1...]
                let folded = cols.col2im(g)
                #expect(folded.dtype == dtype && folded.shape == [g.batch, g.channels, g.height, g.width])
                #expect(folded.hostBytes() == cols.float().col2im(g).to(dtype).hostBytes(), "col2im case \(i) in \(dtype) on \(d)")
                if dtype == .bfloat16 && i == 0 {
                    // Integer input still unfolds into Float32 columns.
                    let ints = x.int()
                    #expect(ints.im2col(g).dtype == .float32 && ints.im2col(g).toArray() == ints.float().im2col(g).toArray())
                }
            }
        }
    }

    @Test("16-bit max pooling picks the Float32 maxima bit for bit and its backward rounds each pixel's Float32 sum once, on every device",
          arguments: [DType.float16, .bfloat16])
    func narrowMaxPool(_ dtype: DType) {
        var random = TestRandom(seed: 13)
        // Overlapping windows (summed gradients), disjoint ones, and a long dilated row (SIMD lanes).
        let cases: [(input: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int))] = [
            ([2, 3, 7, 6], (3, 3), (1, 1), (1, 1), (1, 1)),
            ([2, 4, 8, 8], (2, 2), (2, 2), (0, 0), (1, 1)),
            ([1, 2, 5, 70], (2, 4), (1, 2), (1, 2), (2, 1)),
        ]
        for (i, c) in cases.enumerated() {
            // A slice with an offset; ties, a NaN, signed zeros and an infinity among the values.
            let shape = [c.input[0] + 1] + c.input.dropFirst()
            var values = random.floats(Shape.count(shape), -3...3).map { ($0 * 4).rounded() / 4 }
            let plane = Shape.count(Array(shape.dropFirst()))
            (values[plane + 1], values[plane + 2], values[plane + 9], values[values.count - 2]) = (-0.0, .nan, 0.0, .infinity)
            let grads = random.floats(Shape.count(c.input), -2...2)
            for d in TestDevices.all {
                let x = Tensor(shape: shape, data: values, dtype: dtype, device: d, requiresGrad: true)
                let wide = Tensor(shape: shape, data: x.float().toArray(), device: d, requiresGrad: true)
                let out = x[1...].maxPool2d(kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation)
                let reference = wide[1...].maxPool2d(kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation)
                #expect(out.dtype == dtype, "case \(i) on \(d)")
                #expect(out.hostBytes() == reference.to(dtype).hostBytes(), "maxPool2d case \(i) in \(dtype) on \(d)")
                let g = Tensor(shape: out.shape, data: Array(grads.prefix(out.count)), dtype: dtype, device: d)
                (out * g).float().sum().backward()
                (reference * g.float()).sum().backward()
                #expect(x.grad?.dtype == dtype, "case \(i) on \(d)")
                #expect(x.grad?.hostBytes() == wide.grad?.to(dtype).hostBytes(), "maxPool2d backward case \(i) in \(dtype) on \(d)")
            }
        }
    }

    @Test("a bfloat16 im2col is one kernel over bfloat16 bytes and a bfloat16 conv2d makes no Float32 copy of its input or columns")
    func narrowConvolutionMemory() async {
        // In a process of its own: the counters and the peak count every kernel and allocation
        // on the device, and other tests run in parallel.
        await #expect(processExitsWith: .success) {
            for d in TestDevices.all {
                let x = Tensor.randn([2, 4, 17, 17], device: d).bfloat16(), w = Tensor.randn([8, 4, 2, 2], device: d).bfloat16()
                let g = x.windowGeometry("test", kernel: (2, 2), stride: (1, 1), padding: (0, 0), dilation: (1, 1))
                try d.synchronize()
                let before = d.stats
                let columns = x.im2col(g)
                try d.synchronize()
                let after = d.stats
                precondition(columns.dtype == .bfloat16, "\(d): \(columns.dtype) columns")
                precondition(after.kernelLaunches - before.kernelLaunches == 1, "\(d): \(after.kernelLaunches - before.kernelLaunches) launches")
                precondition(after.bytesMoved - before.bytesMoved == Traffic.columns(g, .bfloat16),
                             "\(d): \(after.bytesMoved - before.bytesMoved) bytes moved, expected \(Traffic.columns(g, .bfloat16))")
                // The forward pass: bfloat16 columns (16 KiB), the GEMM's Float32 result (16 KiB)
                // and the bfloat16 output (8 KiB) at most; a Float32 copy of the input (9 KiB)
                // and of the columns (32 KiB) would come on top.
                d.resetPeakMemory()
                let live = d.stats.liveBytes
                let out = x.conv2d(weight: w)
                try d.synchronize()
                let peak = d.stats.peakLiveBytes - live
                precondition(out.dtype == .bfloat16 && out.shape == [2, 8, 16, 16])
                precondition(peak <= 40 * 1024, "\(d): peak \(peak) bytes above the inputs")
                _ = (columns, out)
            }
        }
    }

    /// The tensors of a safetensors file as (dtype name, shape, data bytes), read with a
    /// parser of the format written here, independent of Ember's reader.
    static func rawTensors(_ url: URL) throws -> [String: (dtype: String, shape: [Int], bytes: Data)] {
        let file = try Data(contentsOf: url)
        let headerSize = file.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        let header = try JSONSerialization.jsonObject(with: file.subdata(in: 8..<8 + Int(headerSize))) as! [String: Any]
        var out: [String: (String, [Int], Data)] = [:]
        for (name, entry) in header where name != "__metadata__" {
            let e = entry as! [String: Any], offsets = e["data_offsets"] as! [Int]
            out[name] = (e["dtype"] as! String, e["shape"] as! [Int], file.subdata(in: 8 + Int(headerSize) + offsets[0]..<8 + Int(headerSize) + offsets[1]))
        }
        return out
    }

    @Test("a file of every dtype written by Python's safetensors reads exactly and writes back byte for byte")
    func safetensorsEveryDType() throws {
        let python = try Self.rawTensors(Self.fixtureURL)
        let names: [DType: String] = [.float32: "F32", .float16: "F16", .bfloat16: "BF16", .int32: "I32", .int64: "I64", .uint8: "U8", .bool: "BOOL"]
        #expect(Set(python.values.map(\.dtype)) == Set(names.values))
        for (name, tensor) in Self.fixture {
            let raw = python[name]!
            #expect(names[tensor.dtype] == raw.dtype && tensor.shape == raw.shape, "\(name)")
            #expect(Data(tensor.hostBytes()) == raw.bytes, "\(name) reads its bytes unchanged")
        }
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("ember-dtypes-\(getpid()).safetensors")
        defer { try? FileManager.default.removeItem(at: copy) }
        try SafeTensors.write(Self.fixture, to: copy)
        let written = try Self.rawTensors(copy)
        #expect(written.count == python.count)
        for (name, raw) in python {
            #expect(written[name]?.dtype == raw.dtype && written[name]?.shape == raw.shape && written[name]?.bytes == raw.bytes, "\(name) written back")
        }
        // The matrices on every device, back and forth.
        for d in TestDevices.all {
            for name in python.keys where name.hasPrefix("matrix_") {
                let t = Self.fixture[name]!
                #expect(t.to(d).T.contiguous().T.hostBytes() == t.hostBytes(), "\(name) through \(d)")
            }
        }
    }

    @Test("int64 indices and labels give what int32 ones do", arguments: TestDevices.all)
    func int64Indices(_ d: Device) {
        var random = TestRandom(seed: 3)
        let x = Tensor(shape: [4, 5], data: random.floats(20), device: d)
        let index32 = Tensor(shape: [4, 2], data: [0, 4, 3, 3, 1, 0, 2, 1] as [Int32], device: d), index64 = index32.long()
        #expect(index64.dtype == .int64)
        #expect(x.gather(dim: 1, index: index64).toArray() == x.gather(dim: 1, index: index32).toArray())
        #expect(x.indexSelect(dim: 1, index: index64[0]).toArray() == x.indexSelect(dim: 1, index: index32[0]).toArray())
        let source = Tensor(shape: [4, 2], data: random.floats(8), device: d)
        #expect(x.scatterAdd(dim: 1, index: index64, source: source).toArray() == x.scatterAdd(dim: 1, index: index32, source: source).toArray())
        let labels = Tensor(shape: [4], data: [4, 0, 2, 1] as [Int32], device: d)
        #expect(crossEntropy(x, labels.long()).item() == crossEntropy(x, labels).item())
        let embedding = Tensor.withRandomSeed(1) { Embedding(5, 3) }.to(d)
        #expect(embedding(index64).toArray() == embedding(index32).toArray())
    }
}
