/// Multi-head attention (`torch.nn.MultiheadAttention`): packed input projections
/// `in_proj_weight` `[3E, E]` / `in_proj_bias` `[3E]`, `numHeads` heads of `E / numHeads`
/// dims through `scaledDotProductAttention`, and the output projection `out_proj`. The
/// parameter names and layouts are PyTorch's, so its state dict loads as it is.
public final class MultiheadAttention: Module {
    /// The query, key and value projections stacked: `[3 * embedDim, embedDim]`.
    @Parameter public var inProjWeight: Tensor
    /// Their biases `[3 * embedDim]`, or nil.
    @OptionalParameter public var inProjBias: Tensor?
    /// The output projection (`out_proj` in state dicts).
    public let outProj: Linear
    /// Model width and number of heads.
    public let embedDim: Int, numHeads: Int
    /// Dropout probability on the attention weights while training.
    public let dropout: Float
    /// Whether inputs and outputs are `[N, L, E]` (otherwise `[L, N, E]`, PyTorch's default).
    public let batchFirst: Bool

    /// A layer with PyTorch's initialisation: Xavier-uniform `in_proj_weight`, zero biases,
    /// the output projection as a `Linear` with its bias zeroed.
    public init(embedDim: Int, numHeads: Int, dropout: Float = 0, bias: Bool = true, batchFirst: Bool = false) {
        check(embedDim > 0 && numHeads > 0, "MultiheadAttention: embedDim and numHeads must be positive, got \(embedDim) and \(numHeads)")
        check(embedDim % numHeads == 0, "MultiheadAttention: embedDim (\(embedDim)) must be divisible by numHeads (\(numHeads))")
        check(dropout >= 0 && dropout <= 1, "MultiheadAttention: dropout must be in [0, 1], got \(dropout)")
        self.embedDim = embedDim
        self.numHeads = numHeads
        self.dropout = dropout
        self.batchFirst = batchFirst
        _inProjWeight = Parameter(wrappedValue: Init.xavierUniform(Tensor.zeros([3 * embedDim, embedDim])), name: "in_proj_weight")
        _inProjBias = OptionalParameter(wrappedValue: bias ? Tensor.zeros([3 * embedDim]) : nil, name: "in_proj_bias")
        outProj = Linear(embedDim, embedDim, bias: bias)
        super.init()
        if let b = outProj.bias { Init.zeros(b) }
    }

    /// The output projection under PyTorch's name.
    public override func namedChildren() -> [(name: String, module: Module)] {
        [("out_proj", outProj)]
    }

    /// Attention of `query` `[L, N, E]` over `key` / `value` `[S, N, E]` (`[N, L, E]` and
    /// `[N, S, E]` when `batchFirst`; unbatched `[L, E]` / `[S, E]` also work), as PyTorch's
    /// forward: `keyPaddingMask` `[N, S]` (true or -infinity = ignore that key), `attnMask`
    /// `[L, S]` or `[N * numHeads, L, S]` (true = not allowed, or added when Float),
    /// `isCausal` a causal mask (joined with `keyPaddingMask`; when `attnMask` is also passed,
    /// PyTorch's hint that it is causal, and `attnMask` is used as given). Returns the output and, when `needWeights`, the attention weights
    /// `[N, L, S]` averaged over heads (`[N, numHeads, L, S]` otherwise).
    public func callAsFunction(_ query: Tensor, _ key: Tensor, _ value: Tensor, keyPaddingMask: Tensor? = nil,
                               needWeights: Bool = true, attnMask: Tensor? = nil, averageAttnWeights: Bool = true,
                               isCausal: Bool = false) -> (output: Tensor, weights: Tensor?) {
        let op = "MultiheadAttention"
        let shapes = "query \(Shape.describe(query.shape)), key \(Shape.describe(key.shape)), value \(Shape.describe(value.shape))"
        check(query.rank == key.rank && key.rank == value.rank && (query.rank == 2 || query.rank == 3),
              "\(op): expected query, key and value of rank 3 (or 2 unbatched), got \(shapes)")
        let unbatched = query.rank == 2
        func sequenceFirst(_ x: Tensor) -> Tensor { unbatched ? x.unsqueeze(1) : (batchFirst ? x.transpose(0, 1) : x) }
        let q = sequenceFirst(query), k = sequenceFirst(key), v = sequenceFirst(value)
        let l = q.shape[0], n = q.shape[1], s = k.shape[0]
        check(q.shape[2] == embedDim && k.shape[2] == embedDim && v.shape[2] == embedDim,
              "\(op): expected inputs ending in embedDim \(embedDim), got \(shapes)")
        check(k.shape[1] == n && v.shape[1] == n && v.shape[0] == s, "\(op): batch or key/value lengths differ, got \(shapes)")

        let w = inProjWeight.chunk(3, dim: 0), b = inProjBias?.chunk(3, dim: 0)
        let h = numHeads, d = embedDim / numHeads
        func heads(_ x: Tensor, _ i: Int, _ length: Int) -> Tensor {
            let projected = x.matmul(w[i].T)
            return (b.map { projected + $0[i] } ?? projected).reshape([length, n, h, d]).permute([1, 2, 0, 3])
        }
        let qh = heads(q, 0, l), kh = heads(k, 1, s), vh = heads(v, 2, s)

        // isCausal alone is the causal mask (made explicit to join a padding mask); beside an
        // attnMask it is PyTorch's hint that attnMask is causal.
        let causalMask = isCausal && attnMask == nil && keyPaddingMask != nil
            ? Tensor.ones([l, s], device: q.device).triu(diagonal: 1) != 0 : nil
        let mask = combinedMask(attnMask: attnMask ?? causalMask, keyPaddingMask: keyPaddingMask, n: n, l: l, s: s, shapes: shapes)
        let causal = isCausal && mask == nil
        let p: Float = isTraining ? dropout : 0
        let scale = 1 / Float(d).squareRoot()
        var weights: Tensor?
        let attended: Tensor
        if needWeights {
            var wts = Tensor.composedWeights(query: qh, key: kh, attnMask: mask, isCausal: causal, scale: scale)
            weights = averageAttnWeights ? wts.mean(dim: 1) : wts
            if p > 0 { wts = wts.dropout(p: p) }
            attended = wts.matmul(vh)
        } else {
            attended = scaledDotProductAttention(query: qh, key: kh, value: vh, attnMask: mask, dropoutP: p, isCausal: causal)
        }
        var out = outProj(attended.permute([2, 0, 1, 3]).reshape([l, n, embedDim]))
        if unbatched {
            out = out.squeeze(1)
            weights = weights?.squeeze(0)
        } else if batchFirst {
            out = out.transpose(0, 1)
        }
        return (out, weights)
    }

    /// The masks as one `scaledDotProductAttention` mask over `[N, H, L, S]` (true = attend, or
    /// additive): PyTorch's boolean masks mean "ignore", so they are inverted; two masks are
    /// added as Float ones.
    private func combinedMask(attnMask: Tensor?, keyPaddingMask: Tensor?, n: Int, l: Int, s: Int, shapes: String) -> Tensor? {
        let op = "MultiheadAttention"
        var masks: [Tensor] = []
        if let attnMask {
            check(attnMask.shape == [l, s] || attnMask.shape == [n * numHeads, l, s],
                  "\(op): attnMask of shape \(Shape.describe(attnMask.shape)) should be [\(l), \(s)] or [\(n * numHeads), \(l), \(s)] (\(shapes))")
            masks.append(attnMask.rank == 3 ? attnMask.reshape([n, numHeads, l, s]) : attnMask)
        }
        if let keyPaddingMask {
            check(keyPaddingMask.shape == [n, s] || (n == 1 && keyPaddingMask.shape == [s]),
                  "\(op): keyPaddingMask of shape \(Shape.describe(keyPaddingMask.shape)) should be [\(n), \(s)] (\(shapes))")
            masks.append(keyPaddingMask.reshape([n, 1, 1, s]))
        }
        for m in masks { check(m.dtype == .bool || m.dtype.isFloatingPoint, "\(op): masks must be bool or float, got \(m.dtype)") }
        if masks.count == 1 {
            let m = masks[0]
            return m.dtype == .bool ? (m.float() == 0) : m
        }
        if masks.isEmpty { return nil }
        let additive = masks.map { $0.dtype == .bool ? Tensor.where($0, Tensor.full([], -Float.infinity, device: $0.device), 0) : $0 }
        return additive[0] + additive[1]
    }
}
