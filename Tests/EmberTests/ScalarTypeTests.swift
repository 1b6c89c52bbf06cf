import Foundation
import Testing
@testable import Ember

/// Python-like scalar types: literals, typed arrays and `Double` scalars resolve as a PyTorch
/// user expects. Most of this file is a compile test: every expression below must type-check
/// without ambiguity, and the values confirm which overload was chosen.
@Suite("Scalar types")
struct ScalarTypeTests {
    @Test("integer literals give Float32 in both initialisers; Int32 arrays and dtype: .int32 give Int32")
    func literalDTypes() {
        #expect(Tensor(shape: [2], data: [1, 2]).dtype == .float32)
        #expect(Tensor(shape: [2], data: [1, 2], device: .cpu).dtype == .float32)
        #expect(Tensor(shape: [2], data: [1, 2], dtype: .int32).dtype == .int32)
        #expect(Tensor(shape: [2], data: [1, 2], dtype: .int32).toIntArray() == [1, 2])
        #expect(Tensor(shape: [2], data: [1.5, 2]).dtype == .float32)
        let ints: [Int32] = [3, 4]
        #expect(Tensor(shape: [2], data: ints).dtype == .int32)
        #expect(Tensor([1, 2]).dtype == .float32 && Tensor([[1, 2], [3, 4]]).dtype == .float32)
        #expect(Tensor(ints).dtype == .int32 && Tensor([ints, ints]).dtype == .int32)
        #expect(Tensor([1, 2], dtype: .int32).dtype == .int32)
        #expect(Tensor(ints, dtype: .float32).dtype == .float32)
        #expect(Tensor([true, false]).dtype == .bool && Tensor(2.5).dtype == .float32 && Tensor(7).dtype == .float32)
        let n: Int = 3
        #expect(Tensor([n, n]).dtype == .float32)
        #expect(Tensor(Int32(5)).dtype == .int32)
    }

    @Test("Float and Double scalars combine with tensors on either side", arguments: TestDevices.all)
    func scalarOperators(_ d: Device) {
        let x = Tensor([1, 2, 4], device: d)
        let s: Double = 2, f: Float = 2
        // Literals stay unambiguous.
        #expect((x * 2).toArray() == [2, 4, 8] && (2 * x).toArray() == [2, 4, 8])
        #expect((x * 0.5).toArray() == [0.5, 1, 2] && (0.5 * x).toArray() == [0.5, 1, 2])
        #expect((x + 1 - 0.5).toArray() == [1.5, 2.5, 4.5] && (x / 2).toArray() == [0.5, 1, 2])
        // Float variables.
        #expect((x + f).toArray() == [3, 4, 6] && (f + x).toArray() == [3, 4, 6])
        #expect((x - f).toArray() == [-1, 0, 2] && (f - x).toArray() == [1, 0, -2])
        #expect((x * f).toArray() == [2, 4, 8] && (f * x).toArray() == [2, 4, 8])
        #expect((x / f).toArray() == [0.5, 1, 2] && (f / x).toArray() == [2, 1, 0.5])
        // Double variables.
        #expect((x + s).toArray() == [3, 4, 6] && (s + x).toArray() == [3, 4, 6])
        #expect((x - s).toArray() == [-1, 0, 2] && (s - x).toArray() == [1, 0, -2])
        #expect((x * s).toArray() == [2, 4, 8] && (s * x).toArray() == [2, 4, 8])
        #expect((x / s).toArray() == [0.5, 1, 2] && (s / x).toArray() == [2, 1, 0.5])
        #expect((x * Double.pi).dtype == .float32)
        // Comparisons with either scalar type, on either side.
        #expect((x == s).toBoolArray() == [false, true, false] && (x != s).toBoolArray() == [true, false, true])
        #expect((x < s).toBoolArray() == [true, false, false] && (x <= s).toBoolArray() == [true, true, false])
        #expect((x > s).toBoolArray() == [false, false, true] && (x >= s).toBoolArray() == [false, true, true])
        #expect((s < x).toBoolArray() == [false, false, true] && (f <= x).toBoolArray() == [false, true, true])
        #expect((s > x).toBoolArray() == [true, false, false] && (f >= x).toBoolArray() == [true, true, false])
        #expect((s == x).toBoolArray() == [false, true, false] && (f != x).toBoolArray() == [true, false, true])
        #expect((x > 1).toBoolArray() == [false, true, true] && (x == 2.0).toBoolArray() == [false, true, false])
        #expect((1 < x).toBoolArray() == [false, true, true])
        // Mixed expressions of the kinds the library and its tests write.
        let y = (x + 2) * 3 - 1 + 2 / x - (1 - x) / 4
        expectClose(y.toArray(), [10, 12.25, 18.25])
        let z = x * s + f * x - 0.5 * x / s
        expectClose(z.toArray(), [3.75, 7.5, 15])
        // Gradients through Double scalars.
        let w = Tensor([1, 2], device: d, requiresGrad: true)
        (w * s + s / w - (s - w)).sum().backward()
        expectClose(w.grad!.toArray(), [1, 2.5])
    }

    @Test("allclose and isclose follow PyTorch's defaults and rules", arguments: TestDevices.all)
    func closeness(_ d: Device) {
        let a = Tensor([1, 2, Float.infinity, -.infinity, .nan, 0], device: d)
        let b = Tensor([1 + 1e-6, 2.1, Float.infinity, .infinity, .nan, 1e-9], device: d)
        let close = a.isclose(b)
        #expect(close.dtype == .bool && close.shape == [6])
        #expect(close.toBoolArray() == [true, false, true, false, false, true])
        #expect(a.isclose(b, equalNan: true).toBoolArray() == [true, false, true, false, true, true])
        #expect(a.isclose(b, rtol: 0.1).toBoolArray() == [true, true, true, false, false, true])
        #expect(Tensor([1e-9], device: d).isclose(Tensor([0], device: d), rtol: 0, atol: 0).toBoolArray() == [false])
        #expect(Tensor([1, 2], device: d).allclose(Tensor([1, 2 + 1e-5], device: d)))
        #expect(!Tensor([1, 2], device: d).allclose(Tensor([1, 2.001], device: d)))
        #expect(Tensor([1, 2], device: d).allclose(Tensor([1, 2.001], device: d), atol: 1e-2))
        #expect(!Tensor([Float.nan], device: d).allclose(Tensor([Float.nan], device: d)))
        #expect(Tensor([Float.nan], device: d).allclose(Tensor([Float.nan], device: d), equalNan: true))
        #expect(Tensor([[1, 1], [1, 1]], device: d).allclose(Tensor([1], device: d)))
        #expect(Tensor([1, 2], dtype: .int32, device: d).allclose(Tensor([1, 2], device: d)))
        #expect(Tensor.zeros([0], device: d).allclose(Tensor.zeros([0], device: d)))
    }
}
