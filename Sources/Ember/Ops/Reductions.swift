/// Reductions: sum, mean, max, min, argmax, argmin, variance, logSumExp.
/// Forward: the reduced dims are read as one contiguous `[outer, size, inner]` block (a view
/// when the layout already is, else one copy) and reduced by the backend; dims that are not
/// adjacent are reduced one adjacent run at a time.
extension Tensor {
    /// Sorted, de-duplicated, normalised dims (all dims when `dims` is empty).
    private func reductionDims(_ dims: [Int], op: String) -> [Int] {
        if dims.isEmpty { return Array(0..<rank) }
        let d = Set(dims.map { Tensor.normalizeDim($0, rank: rank, op: op) }).sorted()
        return d
    }

    /// The result shape of reducing `dims`.
    private func reducedShape(_ dims: [Int], keepDim: Bool) -> [Int] {
        var out: [Int] = []
        for i in 0..<rank {
            if dims.contains(i) { if keepDim { out.append(1) } } else { out.append(shape[i]) }
        }
        return out
    }

    /// Runs a backend reduction over `dims` (no autograd). Sum over an empty range gives 0.
    func reduceForward(_ op: ReduceOp, dims: [Int], keepDim: Bool, name: String) -> Tensor {
        let source = floatStorage
        let outShape = reducedShape(dims, keepDim: keepDim)
        let size = dims.reduce(1) { $0 * shape[$1] }
        // Reduced dims apart (a bias gradient's [N, C, L] -> [C]): reduce each run of adjacent
        // dims in turn, innermost first, instead of copying a permuted tensor; each pass
        // reads a smaller tensor than the last.
        let adjacent = dims.last! - dims.first! + 1 == dims.count
        if !adjacent && !op.producesIndices {
            var runs: [[Int]] = []
            for d in dims {
                if let last = runs.last?.last, last + 1 == d { runs[runs.count - 1].append(d) } else { runs.append([d]) }
            }
            var partial = source
            for run in runs.reversed() { partial = partial.reduceForward(op, dims: run, keepDim: true, name: name) }
            return partial.reshape(outShape)
        }
        let out = Tensor(uninitialized: outShape, dtype: op.producesIndices ? .int32 : .float32, device: device, op: name)
        if out.count == 0 { return out }
        if size == 0 {
            check(op == .sum, "\(name): cannot reduce an empty dimension of shape \(Shape.describe(shape))")
            backend.fill(out.storage.buffer, count: out.count, value: 0, dtype: .float32)
            return out
        }
        // Adjacent reduced dims of a contiguous tensor, read in place as [outer, size, inner].
        check(adjacent, "\(name): index reductions take one dim")
        let block = source.dense
        let outer = shape[..<dims.first!].reduce(1, *)
        let inner = shape[(dims.last! + 1)...].reduce(1, *)
        backend.reduce(op, block.storage.buffer, offset: block.offset, outer: outer, size: size, inner: inner,
                       destination: out.storage.buffer)
        return out
    }

    /// Sum of all elements (a 0-d tensor).
    public func sum() -> Tensor { sum(dims: [], keepDim: false) }

    /// Sum over `dim`.
    public func sum(dim: Int, keepDim: Bool = false) -> Tensor { sum(dims: [dim], keepDim: keepDim) }

    /// Sum over several dims (all when empty).
    public func sum(dims: [Int], keepDim: Bool = false) -> Tensor {
        let d = reductionDims(dims, op: "sum")
        let inputShape = shape
        let keptShape = reducedShape(d, keepDim: true)
        return reduceForward(.sum, dims: d, keepDim: keepDim, name: "sum")
            .recording("SumBackward", inputs: [self]) { { g in [g.reshape(keptShape).expand(inputShape)] } }
    }

    /// Mean of all elements.
    public func mean() -> Tensor { mean(dims: [], keepDim: false) }

    /// Mean over `dim`.
    public func mean(dim: Int, keepDim: Bool = false) -> Tensor { mean(dims: [dim], keepDim: keepDim) }

    /// Mean over several dims (all when empty).
    public func mean(dims: [Int], keepDim: Bool = false) -> Tensor {
        let d = reductionDims(dims, op: "mean")
        let n = d.reduce(1) { $0 * shape[$1] }
        return sum(dims: d, keepDim: keepDim) / Float(n)
    }

    /// Variance over `dims` (all when empty), with Bessel's correction by default
    /// (`correction: 1`), as `torch.var`.
    public func variance(dims: [Int] = [], keepDim: Bool = false, correction: Int = 1) -> Tensor {
        let d = reductionDims(dims, op: "variance")
        let n = d.reduce(1) { $0 * shape[$1] }
        let centered = self - mean(dims: d, keepDim: true)
        return (centered * centered).sum(dims: d, keepDim: keepDim) / Float(Swift.max(n - correction, 0))
    }

    /// Variance over `dim`.
    public func variance(dim: Int, keepDim: Bool = false, correction: Int = 1) -> Tensor {
        variance(dims: [dim], keepDim: keepDim, correction: correction)
    }

    /// Index of the largest element along `dim` (first on ties), as Int32; over all elements
    /// (flattened) when `dim` is nil.
    public func argmax(dim: Int? = nil, keepDim: Bool = false) -> Tensor {
        argReduce(.argmax, dim: dim, keepDim: keepDim, name: "argmax")
    }

    /// Index of the smallest element along `dim` (first on ties), as Int32.
    public func argmin(dim: Int? = nil, keepDim: Bool = false) -> Tensor {
        argReduce(.argmin, dim: dim, keepDim: keepDim, name: "argmin")
    }

    private func argReduce(_ op: ReduceOp, dim: Int?, keepDim: Bool, name: String) -> Tensor {
        guard let dim else {
            check(count > 0, "\(name): cannot reduce an empty tensor")
            return reshape([-1]).detach().reduceForward(op, dims: [0], keepDim: false, name: name)
        }
        let d = Tensor.normalizeDim(dim, rank: rank, op: name)
        check(shape[d] > 0, "\(name): cannot reduce empty dimension \(dim) of shape \(Shape.describe(shape))")
        return detach().reduceForward(op, dims: [d], keepDim: keepDim, name: name)
    }

    /// Largest element (a 0-d tensor); the gradient flows to the first maximum.
    public func max() -> Tensor { reshape([-1]).max(dim: 0) }

    /// Smallest element (a 0-d tensor); the gradient flows to the first minimum.
    public func min() -> Tensor { reshape([-1]).min(dim: 0) }

    /// Largest values along `dim`; the gradient flows only to the selected element.
    public func max(dim: Int, keepDim: Bool = false) -> Tensor { extreme(.max, .argmax, dim: dim, keepDim: keepDim, name: "MaxBackward") }

    /// Smallest values along `dim`; the gradient flows only to the selected element.
    public func min(dim: Int, keepDim: Bool = false) -> Tensor { extreme(.min, .argmin, dim: dim, keepDim: keepDim, name: "MinBackward") }

    private func extreme(_ op: ReduceOp, _ arg: ReduceOp, dim: Int, keepDim: Bool, name: String) -> Tensor {
        let d = Tensor.normalizeDim(dim, rank: rank, op: name)
        check(rank > 0 && shape[d] > 0, "\(name): cannot reduce empty dimension \(dim) of shape \(Shape.describe(shape))")
        return reduceForward(op, dims: [d], keepDim: keepDim, name: name).recording(name, inputs: [self]) {
            let index = detach().reduceForward(arg, dims: [d], keepDim: true, name: name)
            let inputShape = shape
            return { g in
                var kept = inputShape; kept[d] = 1
                return [Tensor.zeros(inputShape, device: g.device).scatterAdd(dim: d, index: index, source: g.reshape(kept))]
            }
        }
    }

    /// log(sum(exp(x))) over `dim`, computed stably.
    public func logSumExp(dim: Int, keepDim: Bool = false) -> Tensor {
        let d = Tensor.normalizeDim(dim, rank: rank, op: "logSumExp")
        let m = Tensor.noGrad { max(dim: d, keepDim: true) }
        let safe = Tensor.where(m.abs() == Float.infinity, Tensor.zeros([], device: device), m)
        let out = (self - safe).exp().sum(dim: d, keepDim: true).log() + safe
        return keepDim ? out : out.squeeze(d)
    }
}
