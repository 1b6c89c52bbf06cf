/// Indexing ops: slicing views, gather / scatterAdd / indexSelect, cat and stack.
/// Gradients of selections scatter-add back into zeros, so they flow only to the
/// selected elements.
extension Tensor {
    /// This tensor's elements seen as a `[outer, shape[dim], inner]` block, when its
    /// strides allow it without a copy.
    func blockView(dim: Int) -> StridedView? {
        let outerShape = Array(shape[..<dim]), innerShape = Array(shape[(dim + 1)...])
        let outer = Shape.collapse(outerShape, [Array(strides[..<dim])])
        let inner = Shape.collapse(innerShape, [Array(strides[(dim + 1)...])])
        guard outer.shape.count == 1, inner.shape.count == 1 else { return nil }
        return StridedView(buffer: storage.buffer, offset: offset,
                           shape: [Shape.count(outerShape), shape[dim], Shape.count(innerShape)],
                           strides: [outer.strides[0][0], strides[dim], inner.strides[0][0]], dtype: dtype)
    }

    /// Values along `dim` picked by `index` (`torch.gather`): `out[i][j][k] = self[i][index[i][j][k]][k]`
    /// for dim 1. `index` has this tensor's rank; its other dims may not exceed this tensor's.
    /// An index outside `0..<shape[dim]` (negative ones too, as in PyTorch) stops the program:
    /// at once on the CPU, at the next synchronisation on OpenCL.
    public func gather(dim: Int, index: Tensor) -> Tensor {
        gather(dim: dim, index: index, rule: IndexRule(op: "gather"))
    }

    /// `gather` whose out-of-range message names `rule.op` and whose `rule.ignored` index
    /// reads 0 (and gets no gradient): the building block of indexSelect, embedding and the
    /// class-index losses.
    func gather(dim: Int, index: Tensor, rule: IndexRule) -> Tensor {
        Tensor.checkSameDevice("gather", self, index)
        let index = index.indices(for: rule.op)
        let d = Tensor.normalizeDim(dim, rank: rank, op: "gather")
        check(index.rank == rank, "gather: index of shape \(Shape.describe(index.shape)) must have the rank of input \(Shape.describe(shape))")
        for i in 0..<rank where i != d && index.shape[i] > shape[i] {
            fatalError("gather: index shape \(Shape.describe(index.shape)) exceeds input shape \(Shape.describe(shape)) in dimension \(i)")
        }
        // Narrow the other dims to the index's sizes, then read the source as one block.
        var narrowed = detach()
        for i in 0..<rank where i != d && index.shape[i] < shape[i] {
            narrowed = narrowed.slice(dim: i, start: 0, end: index.shape[i])
        }
        let source = narrowed.dense
        let indexSource = index.blockView(dim: d) == nil ? index.contiguousCopy() : index
        // Elements of every dtype are copied bit for bit.
        let result = Tensor(uninitialized: index.shape, dtype: dtype, device: device, op: "gather")
        if result.count > 0 {
            let outer = shape[..<d].indices.reduce(1) { $0 * index.shape[$1] }
            let inner = ((d + 1)..<rank).reduce(1) { $0 * index.shape[$1] }
            backend.gather(source.storage.buffer, offset: source.offset, outer: outer, size: shape[d], inner: inner, dtype: dtype,
                           index: indexSource.blockView(dim: d)!, indices: rule, destination: result.storage.buffer)
        }
        guard dtype.isFloatingPoint else { return result }
        let inputShape = shape
        return result.recording("GatherBackward", inputs: [self]) {
            { g in [Tensor.zeros(inputShape, device: g.device).scatterAdd(dim: d, index: index, source: g, rule: rule)] }
        }
    }

    /// A copy of this tensor with `source` added at the positions `index` names along `dim`
    /// (`torch.scatter_add`); repeated indices accumulate. An index outside `0..<shape[dim]`
    /// stops the program, as in `gather`.
    public func scatterAdd(dim: Int, index: Tensor, source: Tensor) -> Tensor {
        scatterAdd(dim: dim, index: index, source: source, rule: IndexRule(op: "scatterAdd"))
    }

    /// `scatterAdd` whose out-of-range message names `rule.op` and whose `rule.ignored`
    /// index adds nothing.
    func scatterAdd(dim: Int, index: Tensor, source: Tensor, rule: IndexRule) -> Tensor {
        Tensor.checkSameDevice("scatterAdd", self, index)
        Tensor.checkSameDevice("scatterAdd", self, source)
        let d = Tensor.normalizeDim(dim, rank: rank, op: "scatterAdd")
        check(index.shape == source.shape, "scatterAdd: index shape \(Shape.describe(index.shape)) and source shape \(Shape.describe(source.shape)) differ")
        check(index.rank == rank, "scatterAdd: index of shape \(Shape.describe(index.shape)) must have the rank of input \(Shape.describe(shape))")
        for i in 0..<rank where i != d && index.shape[i] != shape[i] {
            fatalError("scatterAdd: index shape \(Shape.describe(index.shape)) must match input shape \(Shape.describe(shape)) outside dimension \(d)")
        }
        let index = index.indices(for: rule.op)
        let out = floatStorage.contiguousCopy()
        if source.count > 0 {
            let values = source.floatStorage.blockView(dim: d) == nil ? source.floatStorage.contiguousCopy() : source.floatStorage
            let indices = index.blockView(dim: d) == nil ? index.contiguousCopy() : index
            let outer = shape[..<d].reduce(1, *), inner = shape[(d + 1)...].reduce(1, *)
            backend.scatterAdd(values.blockView(dim: d)!, index: indices.blockView(dim: d)!, outer: outer, size: shape[d],
                               inner: inner, indices: rule, destination: out.storage.buffer)
        }
        let type = dtype.promoted(with: source.dtype)
        return out.castStorage(to: type).recording("ScatterAddBackward", inputs: [self, source]) {
            { g in [g, g.gather(dim: d, index: index, rule: rule)] }
        }
    }

    /// The entries of `index` (1-D, Int32) along `dim` (`torch.index_select`). An index
    /// outside `0..<shape[dim]` (negative ones too, as in PyTorch) stops the program, as in
    /// `gather`.
    public func indexSelect(dim: Int, index: Tensor) -> Tensor {
        indexSelect(dim: dim, index: index, op: "indexSelect")
    }

    /// `indexSelect` whose messages name `op` (`embedding`).
    func indexSelect(dim: Int, index: Tensor, op: String) -> Tensor {
        check(index.rank == 1, "\(op): index must be 1-D, got shape \(Shape.describe(index.shape))")
        let d = Tensor.normalizeDim(dim, rank: rank, op: op)
        var outShape = shape
        outShape[d] = index.count
        var alongDim = [Int](repeating: 1, count: rank)
        alongDim[d] = index.count
        return gather(dim: d, index: index.reshape(alongDim).expand(outShape), rule: IndexRule(op: op))
    }

    /// A view of `start..<end` (every `step`-th element) along `dim`. As in Python, negative
    /// bounds count from the end and bounds outside the dimension are clamped to it, so
    /// `start >= end` gives an empty dimension.
    public func slice(dim: Int, start: Int = 0, end: Int? = nil, step: Int = 1) -> Tensor {
        let d = Tensor.normalizeDim(dim, rank: rank, op: "slice")
        check(rank > 0, "slice: cannot slice a 0-d tensor")
        check(step > 0, "slice: step must be positive, got \(step)")
        let size = shape[d]
        func clamped(_ bound: Int) -> Int { Swift.min(Swift.max(bound < 0 ? bound + size : bound, 0), size) }
        let lo = clamped(start)
        let hi = Swift.max(end.map(clamped) ?? size, lo)
        var newShape = shape, newStrides = strides
        newShape[d] = (hi - lo + step - 1) / step
        newStrides[d] = strides[d] * step
        let inputShape = shape
        let outShape = newShape
        return makeView(shape: newShape, strides: newStrides, offset: offset + lo * strides[d])
            .recording("SliceBackward", inputs: [self]) {
                { g in
                    if step == 1 {
                        // The gradient between zeros: one bitwise copy per piece (`cat`).
                        let shapes = [lo, hi - lo, inputShape[d] - hi].map { n in
                            var s = inputShape
                            s[d] = n
                            return s
                        }
                        return [Tensor.tiledGradient([nil, g, nil], shapes: shapes, dim: d)]
                    }
                    var alongDim = [Int](repeating: 1, count: inputShape.count)
                    alongDim[d] = outShape[d]
                    let index = Tensor.arange(Float(lo), Float(hi), step: Float(step), dtype: .int32, device: g.device)
                        .reshape(alongDim).expand(outShape)
                    return [Tensor.zeros(inputShape, device: g.device).scatterAdd(dim: d, index: index, source: g)]
                }
            }
    }

    /// Element `index` along `dim`, removing that dim (a view).
    public func select(dim: Int, index: Int) -> Tensor {
        let d = Tensor.normalizeDim(dim, rank: rank, op: "select")
        let i = index < 0 ? index + shape[d] : index
        check(i >= 0 && i < shape[d], "index \(index) is out of bounds for dimension \(d) with size \(shape[d])")
        return slice(dim: d, start: i, end: i + 1).squeeze(d)
    }

    /// Indexes with integers (removing a dim), ranges (keeping it, clamped as in Python), one
    /// per leading dim, and `SliceSpec`'s `.ellipsis` and `.newAxis`: `x[0]`, `x[1..<3]`,
    /// `x[0, 2...]`, `x[TensorRange.all, 1]`, `x[SliceSpec.ellipsis, 0]`.
    public subscript(_ indices: any TensorIndex...) -> Tensor {
        self[indices.map(\.component)]
    }

    /// Indexes with a list of specs built at run time (`x[specs]`), as the variadic form.
    public subscript(_ specs: [SliceSpec]) -> Tensor {
        let consumed = specs.reduce(0) { n, spec in
            switch spec {
            case .index, .range, .all: n + 1
            case .ellipsis, .newAxis: n
            }
        }
        check(consumed <= rank, "index: too many indices (\(consumed)) for a tensor of rank \(rank)")
        check(specs.filter { $0 == .ellipsis }.count <= 1, "index: an index can only have a single ellipsis")
        var result = self
        var dim = 0
        for spec in specs {
            switch spec {
            case .index(let i):
                result = result.select(dim: dim, index: i)
            case .range(let lo, let hi, let step):
                result = result.slice(dim: dim, start: lo ?? 0, end: hi, step: step)
                dim += 1
            case .all:
                dim += 1
            case .ellipsis:
                dim += rank - consumed
            case .newAxis:
                result = result.unsqueeze(dim)
                dim += 1
            }
        }
        return result
    }

    /// Concatenates tensors along `dim`; all must match in the other dims and device; mixed
    /// dtypes promote (`DType.promoted(with:)`).
    public static func cat(_ tensors: [Tensor], dim: Int = 0) -> Tensor {
        check(!tensors.isEmpty, "cat: expected a non-empty list of tensors")
        let first = tensors[0]
        for (i, t) in tensors.enumerated() where t.rank == 0 {
            fatalError("cat: zero-dimensional tensor (at position \(i)) cannot be concatenated")
        }
        let d = normalizeDim(dim, rank: first.rank, op: "cat")
        for t in tensors {
            checkSameDevice("cat", first, t)
            check(t.rank == first.rank && (0..<t.rank).allSatisfy { $0 == d || t.shape[$0] == first.shape[$0] },
                  "cat: shapes \(Shape.describe(first.shape)) and \(Shape.describe(t.shape)) differ outside dimension \(d)")
        }
        var outShape = first.shape
        outShape[d] = tensors.reduce(0) { $0 + $1.shape[d] }
        // Mixed dtypes promote, as in PyTorch.
        let type = tensors.dropFirst().reduce(first.dtype) { $0.promoted(with: $1.dtype) }
        // Each input is copied once, bit for bit, into its region of the output (a strided
        // view of it, one kernel per input).
        let out = Tensor(uninitialized: outShape, dtype: type, device: first.device, op: "cat")
        var start = 0
        var ranges: [Range<Int>] = []
        for t in tensors {
            let size = t.shape[d]
            if size > 0 && t.count > 0 {
                let source = t.castStorage(to: type)
                let region = StridedView(buffer: out.storage.buffer, offset: start * out.strides[d], shape: t.shape,
                                         strides: out.strides, dtype: type)
                first.backend.copy(source.view, into: region)
            }
            ranges.append(start..<(start + size))
            start += size
        }
        return out.recording("CatBackward", inputs: tensors) {
            { g in ranges.map { g.slice(dim: d, start: $0.lowerBound, end: $0.upperBound) } }
        }
    }

    /// Stacks equally shaped tensors along a new dim.
    public static func stack(_ tensors: [Tensor], dim: Int = 0) -> Tensor {
        check(!tensors.isEmpty, "stack: expected a non-empty list of tensors")
        for t in tensors where t.shape != tensors[0].shape {
            fatalError("stack: shapes \(Shape.describe(tensors[0].shape)) and \(Shape.describe(t.shape)) differ")
        }
        return cat(tensors.map { $0.unsqueeze(dim) }, dim: dim)
    }
}

/// One entry of a subscript, as in a Python index tuple: `x[specs]` takes a list of them
/// built at run time, and the variadic `x[...]` turns each argument into one.
public enum SliceSpec: TensorIndex, Sendable, Equatable {
    /// A single position (negative counts from the end); removes the dim.
    case index(Int)
    /// `lower..<upper` every `step` (nil bounds mean the dim's start or end; bounds are
    /// clamped as in Python); keeps the dim.
    case range(lower: Int?, upper: Int?, step: Int)
    /// The whole dim (`:` in Python).
    case all
    /// As many whole dims as the other entries leave (`...` in Python).
    case ellipsis
    /// A new size-1 dim (`None` in Python).
    case newAxis

    /// `lower..<upper` every `step`.
    public static func range(_ lower: Int? = nil, _ upper: Int? = nil, step: Int = 1) -> SliceSpec {
        .range(lower: lower, upper: upper, step: step)
    }

    /// The spec itself.
    public var component: SliceSpec { self }
}

/// Anything usable inside `tensor[...]`: `Int`, Swift ranges, and `TensorRange`.
public protocol TensorIndex {
    /// The subscript entry this index stands for.
    var component: SliceSpec { get }
}

extension Int: TensorIndex {
    /// A single position.
    public var component: SliceSpec { .index(self) }
}

extension Range: TensorIndex where Bound == Int {
    /// `lower..<upper`.
    public var component: SliceSpec { .range(lower: lowerBound, upper: upperBound, step: 1) }
}

extension ClosedRange: TensorIndex where Bound == Int {
    /// `lower...upper`.
    public var component: SliceSpec { .range(lower: lowerBound, upper: upperBound + 1, step: 1) }
}

extension PartialRangeFrom: TensorIndex where Bound == Int {
    /// `lower...` to the end.
    public var component: SliceSpec { .range(lower: lowerBound, upper: nil, step: 1) }
}

extension PartialRangeUpTo: TensorIndex where Bound == Int {
    /// `..<upper` from the start.
    public var component: SliceSpec { .range(lower: nil, upper: upperBound, step: 1) }
}

extension PartialRangeThrough: TensorIndex where Bound == Int {
    /// `...upper` from the start.
    public var component: SliceSpec { .range(lower: nil, upper: upperBound + 1, step: 1) }
}

/// A slice with a step, or the whole dim: `x[TensorRange.all, TensorRange(0, 10, step: 2)]`.
public struct TensorRange: TensorIndex, Sendable {
    /// First index (nil: the start).
    public var lower: Int?
    /// One past the last index (nil: the end).
    public var upper: Int?
    /// Distance between picked indices (> 0).
    public var step: Int

    /// `lower..<upper` every `step`.
    public init(_ lower: Int? = nil, _ upper: Int? = nil, step: Int = 1) {
        self.lower = lower
        self.upper = upper
        self.step = step
    }

    /// Every index of the dim (`:` in PyTorch).
    public static let all = TensorRange()

    /// The range component.
    public var component: SliceSpec { .range(lower: lower, upper: upper, step: step) }
}
