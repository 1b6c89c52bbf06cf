/// Sorting and sampling: `sort` (stable), `argsort`, `topk` and `multinomial`. The order
/// is computed on the host from the downloaded values (one transfer each way); the values
/// are then gathered on the tensor's device, so their gradient is a scatter of the indices.
extension Tensor {
    /// The permutation that sorts each row of this tensor along `d` (stable; NaN sorts as
    /// larger than every number, as in PyTorch), as an Int64 tensor shaped like this one.
    private func sortIndices(dim d: Int, descending: Bool) -> Tensor {
        let last = rank - 1
        let moved = d == last ? self : transpose(d, last)
        let n = shape[d]
        let values = moved.detach().float().toArray()
        var order = [Int64](repeating: 0, count: values.count)
        if n > 0 {
            let rows = values.count / n
            var idx = [Int](repeating: 0, count: n)
            for r in 0..<rows {
                let base = r * n
                for i in 0..<n { idx[i] = i }
                // Ranks NaN above +infinity; ties keep their original order.
                func before(_ a: Int, _ b: Int) -> Bool {
                    let x = values[base + a], y = values[base + b]
                    if x.isNaN || y.isNaN {
                        if x.isNaN == y.isNaN { return a < b }
                        return descending ? x.isNaN : y.isNaN
                    }
                    if x != y { return descending ? x > y : x < y }
                    return a < b
                }
                idx.sort(by: before)
                for i in 0..<n { order[base + i] = Int64(idx[i]) }
            }
        }
        let index = Tensor(shape: moved.shape, data: order, device: device)
        return d == last ? index : index.transpose(d, last).contiguous()
    }

    /// The values sorted along `dim` (stable: equal values keep their order) and, for each,
    /// its index in the input (`torch.sort(stable=True)`). The values' gradient flows back
    /// to the positions they came from.
    public func sort(dim: Int = -1, descending: Bool = false) -> (values: Tensor, indices: Tensor) {
        if rank == 0 { return (clone(), Tensor.zeros([], dtype: .int64, device: device)) }
        let d = Tensor.normalizeDim(dim, rank: rank, op: "sort")
        let indices = sortIndices(dim: d, descending: descending)
        return (gather(dim: d, index: indices), indices)
    }

    /// The indices that sort this tensor along `dim` (`torch.argsort`, stable), without
    /// gathering the sorted values.
    public func argsort(dim: Int = -1, descending: Bool = false) -> Tensor {
        if rank == 0 { return Tensor.zeros([], dtype: .int64, device: device) }
        return sortIndices(dim: Tensor.normalizeDim(dim, rank: rank, op: "argsort"), descending: descending)
    }

    /// The `k` largest (or smallest) elements along `dim` and their indices (`torch.topk`).
    /// They come sorted (largest first when `largest`) whether or not `sorted` is set, which
    /// PyTorch allows; ties keep the earlier index first.
    public func topk(_ k: Int, dim: Int = -1, largest: Bool = true, sorted: Bool = true) -> (values: Tensor, indices: Tensor) {
        let d = Tensor.normalizeDim(dim, rank: rank, op: "topk")
        let size = rank == 0 ? 1 : shape[d]
        check(k >= 0 && k <= size, "topk: k (\(k)) is out of range for dimension \(d) of size \(size) in a tensor of shape \(Shape.describe(shape))")
        if rank == 0 { return sort() }
        let indices = sortIndices(dim: d, descending: largest).slice(dim: d, start: 0, end: k).contiguous()
        return (gather(dim: d, index: indices), indices)
    }

    /// `numSamples` category indices per row of `probs` (1-D `[C]` or 2-D `[N, C]`; rows are
    /// non-negative weights that need not sum to 1), drawn with or without `replacement`
    /// (`torch.multinomial`). The draws use the seeded generator (`Tensor.manualSeed`,
    /// `withRandomSeed`): one uniform per sample, identical on every device, so a seed gives
    /// the same samples everywhere. Returns Int64 `[numSamples]` or `[N, numSamples]`.
    public static func multinomial(_ probs: Tensor, numSamples: Int, replacement: Bool = false) -> Tensor {
        check(probs.rank == 1 || probs.rank == 2, "multinomial: prob_dist must be 1 or 2 dim, got shape \(Shape.describe(probs.shape))")
        let categories = probs.shape[probs.rank - 1]
        let rows = probs.rank == 2 ? probs.shape[0] : 1
        check(categories > 0, "multinomial: probability tensor of shape \(Shape.describe(probs.shape)) has no categories")
        check(categories <= 1 << 24, "multinomial: number of categories cannot exceed 2^24, got \(categories)")
        check(numSamples > 0, "multinomial: cannot sample numSamples <= 0 samples, got \(numSamples)")
        check(replacement || numSamples <= categories,
              "multinomial: cannot sample numSamples (\(numSamples)) > prob_dist.size(-1) (\(categories)) samples without replacement")
        let weights = probs.detach().float().toArray()
        for v in weights where !(v >= 0 && v.isFinite) {
            fatalError("multinomial: probability tensor of shape \(Shape.describe(probs.shape)) contains either `inf`, `nan` or element < 0")
        }
        let uniforms = Tensor.rand([rows, numSamples], device: probs.device).toArray()
        var out = [Int64](repeating: 0, count: rows * numSamples)
        for r in 0..<rows {
            var w = weights[(r * categories)..<((r + 1) * categories)].map(Double.init)
            var total = w.reduce(0, +)
            check(total > 0, "multinomial: invalid multinomial distribution (sum of probabilities <= 0) in row \(r)")
            for s in 0..<numSamples {
                // The first category whose running sum exceeds u * total (zero weights are never picked).
                let target = Double(uniforms[r * numSamples + s]) * total
                var acc = 0.0, pick = -1
                for c in 0..<categories where w[c] > 0 {
                    pick = c
                    acc += w[c]
                    if acc > target { break }
                }
                if pick < 0 { pick = 0 }
                out[r * numSamples + s] = Int64(pick)
                if !replacement {
                    total -= w[pick]
                    w[pick] = 0
                    if total <= 0 && s + 1 < numSamples {
                        // Fewer positive weights than samples: the rest are the unpicked categories in index order.
                        let chosen = Set(out[(r * numSamples)...(r * numSamples + s)])
                        var rest = (0..<categories).filter { !chosen.contains(Int64($0)) }.makeIterator()
                        for t in (s + 1)..<numSamples { out[r * numSamples + t] = Int64(rest.next()!) }
                        break
                    }
                }
            }
        }
        let shape = probs.rank == 2 ? [rows, numSamples] : [numSamples]
        return Tensor(shape: shape, data: out, device: probs.device)
    }
}
