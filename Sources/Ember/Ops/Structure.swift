/// Structural ops around attention: triangular parts (`tril`, `triu`), `maskedFill`,
/// `split`/`chunk` (views), `cumsum` and `flip`. Each is composed from existing ops, so its
/// gradient follows from theirs: masked-out or filled positions get a zero gradient, the
/// pieces of a split are slices, cumsum's gradient is the reverse cumsum, flip's is a flip.
extension Tensor {
    /// Keeps the elements with `column - row` on the kept side of `diagonal` on the last two
    /// dims (batched over the others) and zeroes the rest.
    private func triangle(_ op: String, diagonal: Int, lower: Bool) -> Tensor {
        check(rank >= 2, "\(op): input tensor must have at least 2 dimensions, got shape \(Shape.describe(shape))")
        let rows = shape[rank - 2], cols = shape[rank - 1]
        if count == 0 { return clone() }
        let c = Tensor.arange(0, Float(cols), device: device).reshape([1, cols])
        let r = Tensor.arange(0, Float(rows), device: device).reshape([rows, 1])
        let keep = lower ? (c - r) <= Float(diagonal) : (c - r) >= Float(diagonal)
        return Tensor.where(keep, self, 0)
    }

    /// The lower triangle of the last two dims (`torch.tril`): elements with
    /// `column - row <= diagonal` are kept, the others are zero.
    public func tril(diagonal: Int = 0) -> Tensor { triangle("tril", diagonal: diagonal, lower: true) }

    /// The upper triangle of the last two dims (`torch.triu`): elements with
    /// `column - row >= diagonal` are kept, the others are zero.
    public func triu(diagonal: Int = 0) -> Tensor { triangle("triu", diagonal: diagonal, lower: false) }

    /// `value` where the boolean `mask` (broadcast to this tensor's shape) is true, this
    /// tensor elsewhere (`torch.Tensor.masked_fill`); no gradient flows to filled positions.
    public func maskedFill(_ mask: Tensor, _ value: Float) -> Tensor {
        Tensor.checkSameDevice("maskedFill", self, mask)
        check(mask.dtype == .bool, "maskedFill: only boolean masks are supported, but got mask with dtype \(mask.dtype)")
        check(Shape.broadcast(mask.shape, shape) == shape,
              "maskedFill: mask of shape \(Shape.describe(mask.shape)) cannot be broadcast to the input's shape \(Shape.describe(shape))")
        return Tensor.where(mask, Tensor.full([], value, dtype: dtype, device: device), self)
    }

    /// Views of consecutive pieces of `size` elements along `dim` (`torch.split`); the last
    /// piece is smaller when `size` does not divide the dim. No data is copied.
    public func split(_ size: Int, dim: Int = 0) -> [Tensor] {
        check(rank > 0, "split: expected a tensor with at least one dimension, got a 0-d tensor")
        let d = Tensor.normalizeDim(dim, rank: rank, op: "split")
        let n = shape[d]
        check(size >= 0, "split: split_size must be non-negative, got \(size)")
        check(size > 0 || n == 0, "split: split_size can only be 0 if dimension size is 0, but got dimension size of \(n)")
        if n == 0 { return [self.slice(dim: d, start: 0, end: 0)] }
        return pieces(stride(from: 0, to: n, by: size).map { $0..<Swift.min($0 + size, n) }, dim: d, op: "SplitBackward")
    }

    /// Views of consecutive pieces with the given sizes along `dim` (`torch.split` with a
    /// list); the sizes must add up to the dim's size.
    public func split(_ sizes: [Int], dim: Int = 0) -> [Tensor] {
        check(rank > 0, "split: expected a tensor with at least one dimension, got a 0-d tensor")
        let d = Tensor.normalizeDim(dim, rank: rank, op: "split")
        check(sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == shape[d],
              "split: split sizes \(sizes) expect to sum exactly to \(shape[d]) (input tensor's size at dimension \(d)), but got sum \(sizes.reduce(0, +))")
        var start = 0
        return pieces(sizes.map { s in
            defer { start += s }
            return start..<start + s
        }, dim: d, op: "SplitWithSizesBackward")
    }

    /// Views of the consecutive `ranges` along `d`, which tile it, recorded as the outputs of
    /// one node `op` (as PyTorch's): its backward concatenates the pieces' gradients, with
    /// zeros for pieces no gradient reached, in one copy.
    private func pieces(_ ranges: [Range<Int>], dim d: Int, op: String) -> [Tensor] {
        let views = ranges.map { range in
            var pieceShape = shape
            pieceShape[d] = range.count
            return makeView(shape: pieceShape, strides: strides, offset: offset + range.lowerBound * strides[d])
        }
        // The join keeps the pieces' shapes, not the pieces: they hold the node that holds it.
        let shapes = views.map(\.shape)
        return Tensor.recording(op, outputs: views, inputs: [self], join: { Tensor.tiledGradient($0, shapes: shapes, dim: d) },
                                rule: { [$0] })
    }

    /// The gradient of a tensor whose consecutive pieces along `d` have `shapes` and
    /// gradients `grads` (nil where none flowed: zeros), as one `cat`; at least one is given.
    /// The backward of `split`'s pieces and of a slice.
    static func tiledGradient(_ grads: [Tensor?], shapes: [[Int]], dim d: Int) -> Tensor {
        let given = grads.first { $0 != nil }!!
        let parts = zip(grads, shapes).compactMap { grad, shape in
            Shape.count(shape) == 0 ? nil : grad ?? Tensor.zeros(shape, dtype: given.dtype, device: given.device)
        }
        guard !parts.isEmpty else { return given }
        return parts.count == 1 ? parts[0] : Tensor.cat(parts, dim: d)
    }

    /// The views along `dim`, that dim removed from each (`torch.unbind`).
    public func unbind(dim: Int = 0) -> [Tensor] {
        check(rank > 0, "unbind: expected a tensor with at least one dimension, got a 0-d tensor")
        let d = Tensor.normalizeDim(dim, rank: rank, op: "unbind")
        return (0..<shape[d]).map { select(dim: d, index: $0) }
    }

    /// At most `n` views along `dim` of `ceil(size / n)` elements each (`torch.chunk`); the last
    /// may be smaller and there may be fewer than `n` pieces.
    public func chunk(_ n: Int, dim: Int = 0) -> [Tensor] {
        check(rank > 0, "chunk: expected a tensor with at least one dimension, got a 0-d tensor")
        check(n > 0, "chunk: number of chunks must be greater than 0, got \(n)")
        let d = Tensor.normalizeDim(dim, rank: rank, op: "chunk")
        let size = shape[d]
        if size == 0 { return (0..<n).map { _ in slice(dim: d, start: 0, end: 0) } }
        return split((size + n - 1) / n, dim: d)
    }

    /// Running sums along `dim` (`torch.cumsum`); integer and bool inputs give exact Int64
    /// sums. Float32 under `Tensor.autocast`.
    public func cumsum(dim: Int) -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.cumsum(dim: dim) }
        let d = Tensor.normalizeDim(dim, rank: rank, op: "cumsum")
        if let narrow = viaFloat32({ $0.cumsum(dim: d) }) { return narrow }
        // Integers and bools sum exactly into int64, as PyTorch's.
        let type: DType = dtype.isFloatingPoint ? .float32 : .int64
        if rank == 0 || count == 0 { return dtype == .float32 ? self * 1 : (dtype == type ? contiguousCopy() : castStorage(to: type)) }
        // Hillis–Steele scan: after the step with shift s, each element holds the sum of the
        // 2s elements ending at it.
        var x = castStorage(to: type)
        let n = shape[d]
        var s = 1
        while s < n {
            var padShape = x.shape
            padShape[d] = s
            let shifted = Tensor.cat([Tensor.zeros(padShape, dtype: type, device: device), x.slice(dim: d, start: 0, end: n - s)], dim: d)
            x = x + shifted
            s *= 2
        }
        return x
    }

    /// The elements in reverse order along each of `dims` (`torch.flip`; a copy).
    public func flip(dims: [Int]) -> Tensor {
        let ds = dims.map { Tensor.normalizeDim($0, rank: rank, op: "flip") }
        check(Set(ds).count == ds.count, "flip: dims \(dims) has duplicates")
        var x = self
        for d in ds where rank > 0 && shape[d] > 1 {
            let n = shape[d]
            x = x.indexSelect(dim: d, index: Tensor.arange(Float(n - 1), -1, step: -1, dtype: .int32, device: device))
        }
        return x === self ? clone() : x
    }
}

// MARK: - Padding

/// How `pad` fills the border (`mode` in `torch.nn.functional.pad`).
public enum PaddingMode: String, Sendable {
    /// A constant `value`.
    case constant
    /// The input mirrored about its edge element, which is not repeated.
    case reflect
    /// The edge element repeated.
    case replicate
    /// The input wrapped around.
    case circular
}

/// `x` padded as `torch.nn.functional.pad`: `padding` holds (before, after) pairs for the
/// last dim, then the one before it, and so on; a negative amount crops. `.constant` fills
/// with `value`; `.reflect` needs each amount below the dim's size, `.circular` at most it.
/// Differentiable: the border's gradient flows back to the elements it copies.
public func pad(_ x: Tensor, _ padding: [Int], mode: PaddingMode = .constant, value: Float = 0) -> Tensor {
    check(padding.count % 2 == 0 && padding.count / 2 <= x.rank,
          "pad: padding \(padding) must be pairs for at most the input's \(x.rank) dims (shape \(Shape.describe(x.shape)))")
    var out = x
    for pair in 0..<(padding.count / 2) {
        let d = x.rank - 1 - pair, (before, after) = (padding[2 * pair], padding[2 * pair + 1])
        let size = out.shape[d]
        if mode == .constant {
            check(size - Swift.max(-before, 0) - Swift.max(-after, 0) >= 0,
                  "pad: cropping \(padding) is more than dim \(d) of shape \(Shape.describe(x.shape)) holds")
            out = out.slice(dim: d, start: Swift.max(-before, 0), end: size - Swift.max(-after, 0))
            func border(_ amount: Int) -> [Tensor] {
                guard amount > 0 else { return [] }
                var shape = out.shape
                shape[d] = amount
                return [Tensor.full(shape, value, dtype: out.dtype, device: out.device)]
            }
            if before > 0 || after > 0 { out = Tensor.cat(border(before) + [out] + border(after), dim: d) }
            continue
        }
        check(before >= 0 && after >= 0, "pad: \(mode.rawValue) padding must be >= 0, got \(padding)")
        switch mode {
        case .reflect:
            check(before < size && after < size,
                  "pad: reflect padding \(padding) must be less than the size of dim \(d) of shape \(Shape.describe(x.shape))")
        case .circular:
            check(before <= size && after <= size,
                  "pad: circular padding \(padding) must be at most the size of dim \(d) of shape \(Shape.describe(x.shape))")
        default:
            check(size > 0, "pad: replicate padding needs a non-empty dim \(d), got shape \(Shape.describe(x.shape))")
        }
        let sources: [Int64] = (-before..<(size + after)).map { i in
            switch mode {
            case .reflect: return Int64(i < 0 ? -i : (i >= size ? 2 * (size - 1) - i : i))
            case .circular: return Int64((i % size + size) % size)
            default: return Int64(Swift.min(Swift.max(i, 0), size - 1))
            }
        }
        out = out.indexSelect(dim: d, index: Tensor(shape: [sources.count], data: sources, device: out.device))
    }
    return out
}