/// Reductions: sum, mean, max, min, argmax, argmin, variance, std, logSumExp.
/// Forward: the reduced dims are read as one contiguous `[outer, size, inner]` block (a view
/// when the layout already is, else one copy) and reduced by the backend; dims that are not
/// adjacent are reduced one adjacent run at a time.
extension Tensor {
    /// Sorted, de-duplicated, normalised dims (all dims when `dims` is empty). A 0-d tensor
    /// accepts dim 0 and -1 (as PyTorch) and has no dims to reduce.
    private func reductionDims(_ dims: [Int], op: String) -> [Int] {
        if dims.isEmpty { return Array(0..<rank) }
        let d = Set(dims.map { Tensor.normalizeDim($0, rank: rank, op: op) }).sorted()
        return rank == 0 ? [] : d
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
    /// No dims (a 0-d tensor's) leaves every element alone: a copy, or index 0.
    func reduceForward(_ op: ReduceOp, dims: [Int], keepDim: Bool, name: String) -> Tensor {
        // Float types are read in their own storage type and accumulate in Float32; narrow
        // results are rounded back to their type. Integers and bools reduce exactly in Int64
        // into PyTorch's result types: int64 sums, max and min in their own type. Indices are
        // int64 (the float reductions write Int32 positions, widened here).
        let exact = !dtype.isFloatingPoint
        let source = exact ? castStorage(to: .int64) : self
        let resultType: DType = op.producesIndices ? .int64 : (dtype.isFloatingPoint ? dtype : (op == .sum ? .int64 : dtype))
        let outShape = reducedShape(dims, keepDim: keepDim)
        if dims.isEmpty {
            if op.producesIndices { return Tensor.zeros(outShape, dtype: .int64, device: device) }
            // A fresh tensor either way: a converted one is already a copy.
            return resultType == dtype ? contiguousCopy() : castStorage(to: resultType)
        }
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
            // Passes after the first accumulate in Float32 (or Int64) too.
            var partial = source.dtype.isReducedFloat ? source.floatStorage : source
            for run in runs.reversed() { partial = partial.reduceForward(op, dims: run, keepDim: true, name: name) }
            return partial.reshape(outShape).castStorage(to: resultType)
        }
        let written: DType = exact ? .int64 : (op.producesIndices ? .int32 : .float32)
        let out = Tensor(uninitialized: outShape, dtype: written, device: device, op: name)
        if out.count == 0 { return out.castStorage(to: resultType) }
        if size == 0 {
            check(op == .sum, "\(name): cannot reduce an empty dimension of shape \(Shape.describe(shape))")
            backend.fill(out.storage.buffer, count: out.count, value: 0, dtype: written)
            return out.castStorage(to: resultType)
        }
        // Adjacent reduced dims of a contiguous tensor, read in place as [outer, size, inner].
        check(adjacent, "\(name): index reductions take one dim")
        let block = source.dense
        let outer = shape[..<dims.first!].reduce(1, *)
        let inner = shape[(dims.last! + 1)...].reduce(1, *)
        if exact {
            backend.integerReduce(op, block.storage.buffer, offset: block.offset, outer: outer, size: size, inner: inner,
                                  destination: out.storage.buffer)
        } else {
            backend.reduce(op, block.storage.buffer, offset: block.offset, outer: outer, size: size, inner: inner,
                           dtype: block.dtype, destination: out.storage.buffer)
        }
        return out.castStorage(to: resultType)
    }

    /// Sum of all elements (a 0-d tensor).
    public func sum() -> Tensor { sum(dims: [], keepDim: false) }

    /// Sum over `dim`.
    public func sum(dim: Int, keepDim: Bool = false) -> Tensor { sum(dims: [dim], keepDim: keepDim) }

    /// Sum over several dims (all when empty). Float32 under `Tensor.autocast` (and so is `mean`).
    public func sum(dims: [Int], keepDim: Bool = false) -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.sum(dims: dims, keepDim: keepDim) }
        let d = reductionDims(dims, op: "sum")
        let inputShape = shape
        let keptShape = reducedShape(d, keepDim: true)
        return reduceForward(.sum, dims: d, keepDim: keepDim, name: "sum")
            .recording("SumBackward", inputs: [self]) { { g in [g.reshape(keptShape).expand(inputShape)] } }
    }

    /// True when any element is non-zero (NaN counts as non-zero), as a 0-d `.bool` tensor.
    public func any() -> Tensor { any(dims: [], keepDim: false) }

    /// Whether any element along `dim` is non-zero, as a `.bool` tensor.
    public func any(dim: Int, keepDim: Bool = false) -> Tensor { any(dims: [dim], keepDim: keepDim) }

    /// Whether any element over `dims` (all when empty) is non-zero, as a `.bool` tensor
    /// (`torch.any`).
    public func any(dims: [Int], keepDim: Bool = false) -> Tensor {
        (self != 0).sum(dims: reductionDims(dims, op: "any"), keepDim: keepDim) > 0
    }

    /// True when every element is non-zero, as a 0-d `.bool` tensor (true for no elements).
    public func all() -> Tensor { all(dims: [], keepDim: false) }

    /// Whether every element along `dim` is non-zero, as a `.bool` tensor.
    public func all(dim: Int, keepDim: Bool = false) -> Tensor { all(dims: [dim], keepDim: keepDim) }

    /// Whether every element over `dims` (all when empty) is non-zero, as a `.bool` tensor
    /// (`torch.all`).
    public func all(dims: [Int], keepDim: Bool = false) -> Tensor {
        (self == 0).sum(dims: reductionDims(dims, op: "all"), keepDim: keepDim) == 0
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
    /// (`correction: 1`), as `torch.var`; n <= correction gives NaN (or inf), as PyTorch.
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

    /// Variance with `unbiased` (correction 1) or biased (correction 0) normalisation, as
    /// `torch.var(x, dim, unbiased)`.
    public func variance(dims: [Int] = [], keepDim: Bool = false, unbiased: Bool) -> Tensor {
        variance(dims: dims, keepDim: keepDim, correction: unbiased ? 1 : 0)
    }

    /// Variance over `dim`, unbiased or biased.
    public func variance(dim: Int, keepDim: Bool = false, unbiased: Bool) -> Tensor {
        variance(dims: [dim], keepDim: keepDim, correction: unbiased ? 1 : 0)
    }

    /// Standard deviation over `dims` (all when empty): the square root of `variance`, as
    /// `torch.std`. As PyTorch, the gradient is 0 where the deviation is 0 (not NaN).
    public func std(dims: [Int] = [], keepDim: Bool = false, correction: Int = 1) -> Tensor {
        variance(dims: dims, keepDim: keepDim, correction: correction).rootWithZeroGradientAtZero("StdBackward")
    }

    /// The square root of this non-negative tensor, with gradient 0 where the root is 0
    /// (not NaN), as PyTorch's std and norm backward.
    private func rootWithZeroGradientAtZero(_ node: String) -> Tensor {
        let y = unaryForward(.sqrt)
        return y.recording(node, inputs: [self]) {
            let saved = SavedTensor(y.detach(), op: node), input = SavedTensor(self, op: node)
            return { g in
                let s = GradMode.enabled ? input.value.sqrt() : saved.value
                return [Tensor.where(s == 0, Tensor.zeros([], device: g.device), g / (2 * s))]
            }
        }
    }

    /// The vector `p`-norm over `dims` (all when empty), as `torch.linalg.vector_norm` and
    /// `Tensor.norm`: (Σ|x|^p)^(1/p), the largest |x| for `p` infinity. The 2-norm's gradient
    /// is 0 where the norm is 0, as PyTorch's. float16 and bfloat16 compute in Float32 and
    /// round back.
    public func norm(p: Float = 2, dims: [Int] = [], keepDim: Bool = false) -> Tensor {
        check(p > 0, "norm: p must be positive (or infinity), got \(p)")
        if dtype.isReducedFloat { return to(.float32).norm(p: p, dims: dims, keepDim: keepDim).to(dtype) }
        let d = reductionDims(dims, op: "norm")
        switch p {
        case 2: return square().sum(dims: d, keepDim: keepDim).rootWithZeroGradientAtZero("LinalgVectorNormBackward")
        case 1: return abs().sum(dims: d, keepDim: keepDim)
        case .infinity: return abs().amax(dims: d, keepDim: keepDim)
        default: return abs().pow(p).sum(dims: d, keepDim: keepDim).pow(1 / p)
        }
    }

    /// The largest values over `dims` (all when empty), as `torch.amax`: the gradient is shared
    /// evenly by the elements that tie for the maximum.
    public func amax(dims: [Int] = [], keepDim: Bool = false) -> Tensor { tiedExtreme(.max, dims: dims, keepDim: keepDim, name: "amax") }

    /// The smallest values over `dims` (all when empty), as `torch.amin`, ties sharing the gradient.
    public func amin(dims: [Int] = [], keepDim: Bool = false) -> Tensor { tiedExtreme(.min, dims: dims, keepDim: keepDim, name: "amin") }

    /// amax/amin: the reduced dims moved last and flattened for one max (or min); the
    /// backward gives each tying element its share of the gradient.
    private func tiedExtreme(_ op: ReduceOp, dims: [Int], keepDim: Bool, name: String) -> Tensor {
        let d = reductionDims(dims, op: name)
        check(d.allSatisfy { shape[$0] > 0 }, "\(name): cannot reduce an empty dimension of shape \(Shape.describe(shape))")
        let kept = (0..<rank).filter { !d.contains($0) }, keptShape = reducedShape(d, keepDim: true)
        let rows = detach().permute(kept + d).reshape(kept.map { shape[$0] } + [-1])
        let extreme = (op == .max ? rows.max(dim: -1) : rows.min(dim: -1)).values.reshape(keptShape)
        let node = name == "amax" ? "AmaxBackward" : "AminBackward"
        return extreme.reshape(reducedShape(d, keepDim: keepDim)).recording(node, inputs: [self]) {
            let x = SavedTensor(self, op: node)
            return { g in
                let ties = (x.value == extreme).to(g.dtype)
                return [g.reshape(keptShape) * ties / ties.sum(dims: d, keepDim: true)]
            }
        }
    }

    /// The lower median of all elements (a 0-d tensor), as `torch.median()`; the gradient
    /// flows to that element.
    public func median() -> Tensor { reshape([-1]).median(dim: 0).values }

    /// The lower median along `dim` and its Int64 position, as `torch.median(x, dim)`; the
    /// gradient flows to the selected element.
    public func median(dim: Int, keepDim: Bool = false) -> (values: Tensor, indices: Tensor) {
        let d = Tensor.normalizeDim(dim, rank: Swift.max(rank, 1), op: "median")
        check(rank == 0 || shape[d] > 0, "median: cannot reduce empty dimension \(dim) of shape \(Shape.describe(shape))")
        if rank == 0 { return (clone(), Tensor.zeros([], dtype: .int64, device: device)) }
        let middle = (shape[d] - 1) / 2
        let indices = argsort(dim: d).slice(dim: d, start: middle, end: middle + 1)
        let values = gather(dim: d, index: indices)
        return keepDim ? (values, indices) : (values.squeeze(d), indices.squeeze(d))
    }

    /// The vector `p`-norm along `dim`.
    public func norm(p: Float = 2, dim: Int, keepDim: Bool = false) -> Tensor { norm(p: p, dims: [dim], keepDim: keepDim) }

    /// Standard deviation over `dim`.
    public func std(dim: Int, keepDim: Bool = false, correction: Int = 1) -> Tensor {
        std(dims: [dim], keepDim: keepDim, correction: correction)
    }

    /// Standard deviation, unbiased (correction 1) or biased (correction 0).
    public func std(dims: [Int] = [], keepDim: Bool = false, unbiased: Bool) -> Tensor {
        std(dims: dims, keepDim: keepDim, correction: unbiased ? 1 : 0)
    }

    /// Standard deviation over `dim`, unbiased or biased.
    public func std(dim: Int, keepDim: Bool = false, unbiased: Bool) -> Tensor {
        std(dims: [dim], keepDim: keepDim, correction: unbiased ? 1 : 0)
    }

    /// Index of the largest element along `dim` (first on ties), as Int64 (PyTorch's index
    /// type); over all elements (flattened) when `dim` is nil.
    public func argmax(dim: Int? = nil, keepDim: Bool = false) -> Tensor {
        argReduce(.argmax, dim: dim, keepDim: keepDim, name: "argmax")
    }

    /// Index of the smallest element along `dim` (first on ties), as Int64.
    public func argmin(dim: Int? = nil, keepDim: Bool = false) -> Tensor {
        argReduce(.argmin, dim: dim, keepDim: keepDim, name: "argmin")
    }

    private func argReduce(_ op: ReduceOp, dim: Int?, keepDim: Bool, name: String) -> Tensor {
        guard let dim else {
            check(count > 0, "\(name): cannot reduce an empty tensor")
            return reshape([-1]).detach().reduceForward(op, dims: [0], keepDim: false, name: name)
        }
        let d = reductionDims([dim], op: name)
        check(d.allSatisfy { shape[$0] > 0 }, "\(name): cannot reduce empty dimension \(dim) of shape \(Shape.describe(shape))")
        return detach().reduceForward(op, dims: d, keepDim: keepDim, name: name)
    }

    /// Largest element (a 0-d tensor); the gradient flows to the first maximum.
    public func max() -> Tensor {
        reshape([-1]).extremeValues(.max, .argmax, dims: [0], keepDim: false, name: "max", node: "MaxBackward", index: nil)
    }

    /// Smallest element (a 0-d tensor); the gradient flows to the first minimum.
    public func min() -> Tensor {
        reshape([-1]).extremeValues(.min, .argmin, dims: [0], keepDim: false, name: "min", node: "MinBackward", index: nil)
    }

    /// Largest values along `dim` and their Int64 positions (the first on ties), as
    /// `torch.max(x, dim)`; the gradient flows only to the selected element.
    public func max(dim: Int, keepDim: Bool = false) -> (values: Tensor, indices: Tensor) {
        extreme(.max, .argmax, dim: dim, keepDim: keepDim, name: "max", node: "MaxBackward")
    }

    /// Smallest values along `dim` and their Int64 positions (the first on ties), as
    /// `torch.min(x, dim)`; the gradient flows only to the selected element.
    public func min(dim: Int, keepDim: Bool = false) -> (values: Tensor, indices: Tensor) {
        extreme(.min, .argmin, dim: dim, keepDim: keepDim, name: "min", node: "MinBackward")
    }

    private func extreme(_ op: ReduceOp, _ arg: ReduceOp, dim: Int, keepDim: Bool, name: String, node: String) -> (values: Tensor, indices: Tensor) {
        let d = reductionDims([dim], op: name)
        check(d.allSatisfy { shape[$0] > 0 }, "\(name): cannot reduce empty dimension \(dim) of shape \(Shape.describe(shape))")
        let index = detach().reduceForward(arg, dims: d, keepDim: true, name: name)
        let values = extremeValues(op, arg, dims: d, keepDim: keepDim, name: name, node: node, index: index)
        return (values, keepDim ? index : index.reshape(reducedShape(d, keepDim: false)))
    }

    /// The max/min values over `dims` (at most one), recording a backward that scatters the
    /// gradient to `index` (kept dims), which is computed only when a graph is recorded if nil.
    private func extremeValues(_ op: ReduceOp, _ arg: ReduceOp, dims d: [Int], keepDim: Bool, name: String, node: String,
                               index: Tensor?) -> Tensor {
        reduceForward(op, dims: d, keepDim: keepDim, name: name).recording(node, inputs: [self]) {
            let index = index ?? detach().reduceForward(arg, dims: d, keepDim: true, name: name)
            let inputShape = shape
            return { g in
                guard let d = d.first else { return [g] }
                var kept = inputShape; kept[d] = 1
                return [Tensor.zeros(inputShape, device: g.device).scatterAdd(dim: d, index: index, source: g.reshape(kept))]
            }
        }
    }

    /// log(sum(exp(x))) over `dim`, computed stably.
    public func logSumExp(dim: Int, keepDim: Bool = false) -> Tensor { logSumExp(dims: [dim], keepDim: keepDim) }

    /// log(sum(exp(x))) over several dims (all when empty), computed stably: the maximum is
    /// subtracted first (and infinite maxima are left alone, so all -inf gives -inf). Float32
    /// under `Tensor.autocast`.
    public func logSumExp(dims: [Int], keepDim: Bool = false) -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.logSumExp(dims: dims, keepDim: keepDim) }
        let d = reductionDims(dims, op: "logSumExp")
        let m = Tensor.noGrad { reduceForward(.max, dims: d, keepDim: true, name: "logSumExp") }
        let safe = Tensor.where(m.abs() == Float.infinity, 0, m)
        let out = (self - safe).exp().sum(dims: d, keepDim: true).log() + safe
        return keepDim ? out : out.reshape(reducedShape(d, keepDim: false))
    }
}
