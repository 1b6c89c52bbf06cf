/// Views and shape ops: reshape, permute, transpose, squeeze/unsqueeze, expand, flatten,
/// contiguous. Views share storage with their input; their gradients are views too.
extension Tensor {
    /// Normalises a possibly negative dimension index for a tensor of `rank` dims. As in
    /// PyTorch, a 0-d tensor accepts dim 0 and -1 (both give 0).
    static func normalizeDim(_ dim: Int, rank: Int, op: String) -> Int {
        let d = dim < 0 ? dim + Swift.max(rank, 1) : dim
        check(d >= 0 && d < Swift.max(rank, 1), "\(op): dimension \(dim) out of range for a tensor of rank \(rank)")
        return d
    }

    /// Resolves one `-1` in a requested shape against `count` elements.
    private static func resolveShape(_ requested: [Int], count: Int, op: String, from shape: [Int]) -> [Int] {
        var result = requested
        let inferred = requested.indices.filter { requested[$0] == -1 }
        check(inferred.count <= 1, "\(op): only one dimension can be -1, got \(Shape.describe(requested))")
        for d in requested where d < -1 {
            fatalError("\(op): invalid size \(d) in \(Shape.describe(requested))")
        }
        if let i = inferred.first {
            let known = requested.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            check(known > 0 && count % known == 0,
                  "\(op): shape \(Shape.describe(requested)) is invalid for input of shape \(Shape.describe(shape)) (\(count) elements)")
            result[i] = count / known
        }
        check(Shape.count(result) == count,
              "\(op): shape \(Shape.describe(requested)) is invalid for input of shape \(Shape.describe(shape)) (\(count) elements)")
        return result
    }

    /// Strides that view this tensor as `newShape` without copying, or nil when impossible.
    private func viewStrides(_ newShape: [Int]) -> [Int]? {
        if isContiguous || count == 0 { return Shape.contiguousStrides(newShape) }
        // Walk groups of old dims that map onto groups of new dims (as PyTorch's view does).
        let old = zip(shape, strides).filter { $0.0 != 1 }
        var newStrides = [Int](repeating: 0, count: newShape.count)
        var oi = 0, ni = 0
        while ni < newShape.count {
            if newShape[ni] == 1 { newStrides[ni] = 1; ni += 1; continue }
            guard oi < old.count else { return nil }
            // Gather old dims until their product matches the new group's product.
            var oldProduct = old[oi].0, newProduct = newShape[ni]
            var oldEnd = oi, newEnd = ni
            while oldProduct != newProduct {
                if oldProduct < newProduct {
                    oldEnd += 1
                    guard oldEnd < old.count else { return nil }
                    guard old[oldEnd - 1].1 == old[oldEnd].1 * old[oldEnd].0 else { return nil }
                    oldProduct *= old[oldEnd].0
                } else {
                    newEnd += 1
                    guard newEnd < newShape.count else { return nil }
                    newProduct *= newShape[newEnd]
                }
            }
            var stride = old[oldEnd].1
            var k = newEnd
            while k >= ni {
                newStrides[k] = stride
                stride *= newShape[k]
                k -= 1
            }
            oi = oldEnd + 1
            ni = newEnd + 1
        }
        return oi == old.count ? newStrides : nil
    }

    /// The same elements with a new shape (one dimension may be -1). A view when the
    /// layout allows it, otherwise a copy.
    public func reshape(_ newShape: [Int]) -> Tensor {
        let target = Tensor.resolveShape(newShape, count: count, op: "reshape", from: shape)
        if let s = viewStrides(target) { return reshapedView(target, strides: s) }
        return contiguous().reshapedView(target, strides: Shape.contiguousStrides(target))
    }

    /// Like `reshape`, but stops with a message when a copy would be needed.
    public func view(_ newShape: [Int]) -> Tensor {
        let target = Tensor.resolveShape(newShape, count: count, op: "view", from: shape)
        guard let s = viewStrides(target) else {
            fatalError("view: size \(Shape.describe(target)) is not compatible with input of shape \(Shape.describe(shape)) and strides \(Shape.describe(strides)); use reshape(_:)")
        }
        return reshapedView(target, strides: s)
    }

    private func reshapedView(_ target: [Int], strides newStrides: [Int]) -> Tensor {
        let inputShape = shape
        return makeView(shape: target, strides: newStrides, offset: offset)
            .recording("ViewBackward", inputs: [self]) { { g in [g.reshape(inputShape)] } }
    }

    /// Flattens dims `start...end` into one.
    public func flatten(start: Int = 0, end: Int = -1) -> Tensor {
        let s = Tensor.normalizeDim(start, rank: rank, op: "flatten")
        let e = Tensor.normalizeDim(end, rank: rank, op: "flatten")
        if rank == 0 { return reshape([1]) }
        check(s <= e, "flatten: start dim \(start) comes after end dim \(end)")
        let merged = shape[s...e].reduce(1, *)
        return reshape(Array(shape[..<s]) + [merged] + Array(shape[(e + 1)...]))
    }

    /// Reorders the dimensions: result dim i is input dim `dims[i]`.
    public func permute(_ dims: [Int]) -> Tensor {
        check(dims.count == rank, "permute: \(dims) has \(dims.count) dims, tensor of shape \(Shape.describe(shape)) has \(rank)")
        let d = dims.map { Tensor.normalizeDim($0, rank: rank, op: "permute") }
        check(Set(d).count == rank, "permute: \(dims) repeats a dimension")
        var inverse = [Int](repeating: 0, count: rank)
        for (i, v) in d.enumerated() { inverse[v] = i }
        return makeView(shape: d.map { shape[$0] }, strides: d.map { strides[$0] }, offset: offset)
            .recording("PermuteBackward", inputs: [self]) { { g in [g.permute(inverse)] } }
    }

    /// Swaps two dimensions (a 0-d tensor accepts dims 0 and -1 and stays as it is).
    public func transpose(_ dim0: Int, _ dim1: Int) -> Tensor {
        var order = Array(0..<rank)
        let a = Tensor.normalizeDim(dim0, rank: rank, op: "transpose")
        let b = Tensor.normalizeDim(dim1, rank: rank, op: "transpose")
        if rank > 0 { order.swapAt(a, b) }
        return permute(order)
    }

    /// The transpose of a 2-D tensor (`t()` in PyTorch).
    public var T: Tensor {
        check(rank == 2, "T: expected a 2-D tensor, got shape \(Shape.describe(shape))")
        return transpose(0, 1)
    }

    /// Removes every size-1 dimension, or only `dim` when given (if it has size 1). A 0-d
    /// tensor stays 0-d.
    public func squeeze(_ dim: Int? = nil) -> Tensor {
        if let dim {
            let d = Tensor.normalizeDim(dim, rank: rank, op: "squeeze")
            if rank == 0 || shape[d] != 1 { return self }
            var s = shape; s.remove(at: d)
            return reshape(s)
        }
        return reshape(shape.filter { $0 != 1 })
    }

    /// Inserts a size-1 dimension at `dim` (negative counts from the end, like PyTorch).
    public func unsqueeze(_ dim: Int) -> Tensor {
        let d = dim < 0 ? dim + rank + 1 : dim
        check(d >= 0 && d <= rank, "unsqueeze: dimension \(dim) out of range for a tensor of rank \(rank)")
        var s = shape; s.insert(1, at: d)
        return reshape(s)
    }

    /// A broadcast view of this tensor as `newShape` (-1 keeps a dimension); no copy.
    public func expand(_ newShape: [Int]) -> Tensor {
        check(newShape.count >= rank, "expand: cannot expand shape \(Shape.describe(shape)) to \(Shape.describe(newShape))")
        let lead = newShape.count - rank
        var target = newShape
        for i in 0..<rank {
            if target[lead + i] == -1 { target[lead + i] = shape[i] }
            check(shape[i] == target[lead + i] || shape[i] == 1,
                  "expand: cannot expand shape \(Shape.describe(shape)) to \(Shape.describe(newShape))")
        }
        for d in target where d < 0 { fatalError("expand: invalid size in \(Shape.describe(newShape))") }
        let inputShape = shape
        return makeView(shape: target, strides: Shape.broadcastStrides(shape: shape, strides: strides, to: target), offset: offset)
            .recording("ExpandBackward", inputs: [self]) { { g in [g.sumTo(inputShape)] } }
    }

    /// Dim `dim` split into `sizes` (one may be -1), as `torch.Tensor.unflatten`: a view.
    public func unflatten(dim: Int, sizes: [Int]) -> Tensor {
        let d = Tensor.normalizeDim(dim, rank: rank, op: "unflatten")
        check(!sizes.isEmpty && (sizes.contains(-1) || sizes.reduce(1, *) == shape[d]),
              "unflatten: sizes \(sizes) do not multiply to dim \(dim)'s size \(shape[d]) (shape \(Shape.describe(shape)))")
        return reshape(Array(shape[..<d]) + sizes + Array(shape[(d + 1)...]))
    }

    /// `[*, C·r², H, W]` rearranged to `[*, C, H·r, W·r]`, as `torch.nn.functional.pixel_shuffle`
    /// (sub-pixel upsampling): a reshape, a permute and a copy.
    public func pixelShuffle(upscaleFactor r: Int) -> Tensor {
        check(rank >= 3 && r > 0 && shape[rank - 3] % (r * r) == 0,
              "pixelShuffle: expected [*, C·\(r)², H, W] with channels divisible by \(r * r), got \(Shape.describe(shape))")
        let lead = Array(shape.dropLast(3)), (c, h, w) = (shape[rank - 3] / (r * r), shape[rank - 2], shape[rank - 1])
        let n = lead.count
        return reshape(lead + [c, r, r, h, w]).permute(Array(0..<n) + [n, n + 3, n + 1, n + 4, n + 2]).reshape(lead + [c, h * r, w * r])
    }

    /// `[*, C, H·r, W·r]` rearranged to `[*, C·r², H, W]`, as `torch.nn.functional.pixel_unshuffle`
    /// (pixelShuffle's inverse).
    public func pixelUnshuffle(downscaleFactor r: Int) -> Tensor {
        check(rank >= 3 && r > 0 && shape[rank - 2] % r == 0 && shape[rank - 1] % r == 0,
              "pixelUnshuffle: expected [*, C, H, W] with height and width divisible by \(r), got \(Shape.describe(shape))")
        let lead = Array(shape.dropLast(3)), (c, h, w) = (shape[rank - 3], shape[rank - 2] / r, shape[rank - 1] / r)
        let n = lead.count
        return reshape(lead + [c, h, r, w, r]).permute(Array(0..<n) + [n, n + 2, n + 4, n + 1, n + 3]).reshape(lead + [c * r * r, h, w])
    }

    /// This tensor tiled `sizes[i]` times along each dim, as `torch.Tensor.repeat`: `sizes`
    /// has at least `rank` entries, and extra leading ones add dims. A copy (an expanded view
    /// reshaped), whose gradient sums the tiles.
    public func `repeat`(_ sizes: [Int]) -> Tensor {
        check(sizes.count >= rank,
              "repeat: number of repeat dims \(sizes.count) can not be smaller than number of tensor dims \(rank) (shape \(Shape.describe(shape)))")
        check(sizes.allSatisfy { $0 >= 0 }, "repeat: repeats must be non-negative, got \(sizes)")
        let padded = [Int](repeating: 1, count: sizes.count - rank) + shape
        let interleaved = zip(sizes, padded).flatMap { [1, $1] }, tiled = zip(sizes, padded).flatMap { [$0, $1] }
        return reshape(interleaved).expand(tiled).reshape(zip(sizes, padded).map { $0 * $1 })
    }

    /// A tensor with the same values laid out densely (self when already contiguous).
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        return contiguousCopy().recording("CloneBackward", inputs: [self]) { { g in [g] } }
    }

    /// A contiguous copy that owns new storage (differentiable).
    public func clone() -> Tensor {
        contiguousCopy().recording("CloneBackward", inputs: [self]) { { g in [g] } }
    }
}
