import Foundation

/// Scaled dot-product attention (`torch.nn.functional.scaled_dot_product_attention`):
/// `softmax(Q K^T * scale + mask) V` over `[..., L, E]` queries, `[..., S, E]` keys and
/// `[..., S, Ev]` values (leading dims broadcast), giving `[..., L, Ev]`.
///
/// `attnMask` is boolean (true = attend) or an additive Float mask, broadcast to
/// `[..., L, S]`; `isCausal` masks key `j > i` for query `i` (the top-left causal mask, as
/// PyTorch does) and excludes `attnMask`. `scale` defaults to `1 / sqrt(E)`. When `dropoutP`
/// is above 0 the attention weights are dropped with Ember's seeded generator (pass 0 in
/// evaluation, as PyTorch's modules do). A query whose keys are all masked gets zero weights
/// (an output of 0), as in PyTorch.
///
/// Forward and backward are fused: one batched GEMM for the scores, one kernel that scales,
/// masks (causal by index, a mask through its broadcast strides) and normalises each row,
/// one GEMM with the values; backward recomputes nothing and runs the matching softmax
/// backward kernel between four GEMMs. Under `Tensor.autocast` query, key and value are cast to its
/// type.
public func scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor, attnMask: Tensor? = nil,
                                      dropoutP: Float = 0, isCausal: Bool = false, scale: Float? = nil) -> Tensor {
    let (query, key, value) = Autocast.lowPrecision(query, key, value) ?? (query, key, value)
    return Tensor.attention(query: query, key: key, value: value, attnMask: attnMask, dropoutP: dropoutP, isCausal: isCausal, scale: scale)
}

extension Tensor {
    /// `scaledDotProductAttention` past autocast: float16 / bfloat16 inputs run the fused
    /// kernels (which read Float32) on widened copies (a float mask too), and the output is
    /// rounded to the inputs' promoted type.
    static func attention(query: Tensor, key: Tensor, value: Tensor, attnMask: Tensor?, dropoutP: Float, isCausal: Bool,
                          scale: Float?) -> Tensor {
        let type = query.dtype.promoted(with: key.dtype).promoted(with: value.dtype)
        if type.isFloatingPoint && ([query, key, value] + [attnMask].compactMap { $0 }).contains(where: { $0.dtype.isReducedFloat }) {
            // A float mask widens with the inputs (differentiably: its gradient flows back in its type).
            let mask = attnMask.map { $0.dtype.isReducedFloat ? $0.to(.float32) : $0 }
            return attention(query: query.to(.float32), key: key.to(.float32), value: value.to(.float32), attnMask: mask,
                             dropoutP: dropoutP, isCausal: isCausal, scale: scale).to(type)
        }
        let geometry = AttentionGeometry(query: query, key: key, value: value, attnMask: attnMask, dropoutP: dropoutP, isCausal: isCausal)
        // While the device still compiles the fused kernels, the composed ops compute the same.
        guard query.backend.kernelsReady(.attention, dtype: .float32) else {
            return composedAttention(query: query, key: key, value: value, attnMask: attnMask, dropoutP: dropoutP,
                                     isCausal: isCausal, scale: scale ?? geometry.defaultScale)
        }
        return fusedAttention(query: query, key: key, value: value, attnMask: attnMask, dropoutP: dropoutP,
                              isCausal: isCausal, scale: scale ?? geometry.defaultScale)
    }
}

/// The checked shapes of one attention call.
struct AttentionGeometry {
    let queryLength: Int, keyLength: Int, embed: Int

    var defaultScale: Float { 1 / Float(embed).squareRoot() }

    init(query: Tensor, key: Tensor, value: Tensor, attnMask: Tensor?, dropoutP: Float, isCausal: Bool) {
        let op = "scaledDotProductAttention"
        Tensor.checkSameDevice(op, query, key)
        Tensor.checkSameDevice(op, query, value)
        let shapes = "query \(Shape.describe(query.shape)), key \(Shape.describe(key.shape)), value \(Shape.describe(value.shape))"
        check(query.rank >= 2 && key.rank >= 2 && value.rank >= 2, "\(op): expected inputs of at least 2 dimensions, got \(shapes)")
        check(query.dtype == .float32 && key.dtype == .float32 && value.dtype == .float32,
              "\(op): expected float32 query, key and value, got \(query.dtype), \(key.dtype) and \(value.dtype)")
        queryLength = query.shape[query.rank - 2]
        keyLength = key.shape[key.rank - 2]
        embed = query.shape[query.rank - 1]
        check(key.shape[key.rank - 1] == embed, "\(op): query and key must have the same embedding size, got \(shapes)")
        check(value.shape[value.rank - 2] == keyLength, "\(op): key and value must have the same sequence length, got \(shapes)")
        let batch = [query, key, value].map { Array($0.shape.dropLast(2)) }
        check(Shape.broadcast(Shape.broadcast(batch[0], batch[1]) ?? [-1], batch[2]) != nil,
              "\(op): batch dimensions cannot be broadcast together, got \(shapes)")
        check(dropoutP >= 0 && dropoutP <= 1, "\(op): dropoutP must be in [0, 1], got \(dropoutP)")
        if let attnMask {
            Tensor.checkSameDevice(op, query, attnMask)
            check(!isCausal, "\(op): explicit attnMask should not be set when isCausal is true")
            check(Shape.broadcast(attnMask.shape, [queryLength, keyLength]).map { Array($0.suffix(2)) } == [queryLength, keyLength],
                  "\(op): attnMask of shape \(Shape.describe(attnMask.shape)) cannot be broadcast to [\(queryLength), \(keyLength)] (\(shapes))")
            check(attnMask.dtype == .bool || attnMask.dtype.isFloatingPoint, "\(op): attnMask must be bool or float, got \(attnMask.dtype)")
        }
    }
}

extension Tensor {
    /// Attention from separate ops: matmul, mask, softmax, dropout, matmul (autograd from
    /// theirs). The reference the fused path is tested against.
    static func composedAttention(query: Tensor, key: Tensor, value: Tensor, attnMask: Tensor?, dropoutP: Float,
                                  isCausal: Bool, scale: Float) -> Tensor {
        var weights = composedWeights(query: query, key: key, attnMask: attnMask, isCausal: isCausal, scale: scale)
        if dropoutP > 0 { weights = weights.dropout(p: dropoutP) }
        return weights.matmul(value)
    }

    /// `softmax(Q K^T * scale + mask)` from separate (differentiable) ops, with zero weights
    /// for queries whose keys are all masked.
    static func composedWeights(query: Tensor, key: Tensor, attnMask: Tensor?, isCausal: Bool, scale: Float) -> Tensor {
        let l = query.shape[query.rank - 2], s = key.shape[key.rank - 2]
        var scores = query.matmul(key.transpose(-2, -1)) * scale
        if isCausal {
            let c = Tensor.arange(0, Float(s), device: query.device).reshape([1, s])
            let r = Tensor.arange(0, Float(l), device: query.device).reshape([l, 1])
            scores = scores.maskedFill(c > r, -Float.infinity)
        }
        guard let attnMask else { return scores.softmax(dim: -1) }
        scores = attnMask.dtype == .bool ? scores.maskedFill(attnMask.floatStorage == 0, -Float.infinity) : scores + attnMask
        let weights = scores.softmax(dim: -1)
        return weights.maskedFill(weights != weights, 0)
    }

    /// The dropout multiplier of the attention weights: `keep / (1 - p)`, drawn as `dropout`
    /// draws it (so the fused and composed paths drop the same weights for one seed).
    private static func dropoutScale(_ shape: [Int], p: Float, device: Device) -> Tensor {
        let keep = (Tensor.rand(shape, device: device) >= p).float()
        return p == 1 ? keep * 0 : keep * (1 / (1 - p))
    }

    /// An additive mask (`bool` becomes 0 / -infinity in its own shape) as the kernel's
    /// `[b0, b1, L, S]` broadcast view of the scores' batch.
    private static func attentionMaskView(_ attnMask: Tensor, scoresShape: [Int]) -> StridedView {
        let additive = attnMask.dtype == .bool
            ? Tensor.where(attnMask, Tensor.zeros([], device: attnMask.device), -Float.infinity) : attnMask.detach().floatStorage
        var view = additive.broadcastView(to: scoresShape)
        let n = scoresShape.count
        let batchShape = Array(scoresShape.dropLast(2))
        let collapsed = Shape.collapse(batchShape, [Array(view.strides.dropLast(2))])
        let tail = Array(view.strides.suffix(2))
        switch collapsed.shape.count {
        case 0: return StridedView(buffer: view.buffer, offset: view.offset, shape: [1, 1] + scoresShape.suffix(2), strides: [0, 0] + tail, dtype: .float32)
        case 1: return StridedView(buffer: view.buffer, offset: view.offset, shape: [1, collapsed.shape[0]] + scoresShape.suffix(2),
                                   strides: [0, collapsed.strides[0][0]] + tail, dtype: .float32)
        case 2: return StridedView(buffer: view.buffer, offset: view.offset, shape: collapsed.shape + scoresShape.suffix(2),
                                   strides: collapsed.strides[0] + tail, dtype: .float32)
        default:
            // Batch dims that do not collapse to two: expand the mask once.
            let dense = additive.expand(scoresShape).contiguousCopy()
            view = StridedView(buffer: dense.storage.buffer, offset: 0, shape: [1, Shape.count(batchShape)] + scoresShape.suffix(2),
                               strides: [0, scoresShape[n - 2] * scoresShape[n - 1], scoresShape[n - 1], 1], dtype: .float32)
            return view
        }
    }

    /// Attention through the fused row kernels (see `scaledDotProductAttention`); the backward
    /// rule uses the saved weights and, under a created graph, differentiable ops instead.
    /// `allowFlash: false` keeps to the GEMM + row-kernel path; `forceFlash` takes the flash
    /// kernels wherever the device has them and they apply (tests compare the paths).
    static func fusedAttention(query: Tensor, key: Tensor, value: Tensor, attnMask: Tensor?, dropoutP: Float,
                               isCausal: Bool, scale: Float, allowFlash: Bool = true, forceFlash: Bool = false) -> Tensor {
        let queries = query.shape[query.rank - 2], keys = key.shape[key.rank - 2], dim = query.shape[query.rank - 1]
        if allowFlash && attnMask == nil && dropoutP == 0 && value.shape.last == dim && queries > 0 && keys > 0,
           let flash = query.backend as? FlashAttentionBackend, flash.flashAttentionApplies(dim: dim),
           let batchShape = Shape.broadcast(Shape.broadcast(Array(query.shape.dropLast(2)), Array(key.shape.dropLast(2))) ?? [],
                                            Array(value.shape.dropLast(2))),
           forceFlash || flash.prefersFlashAttention(batch: Shape.count(batchShape), rows: queries, cols: keys, dim: dim) {
            return flashAttention(query: query, key: key, value: value, isCausal: isCausal, scale: scale, backend: flash)
        }
        // Dense copies of views (heads split from one projection) made once serve the
        // forward's two GEMMs and the backward's three.
        let q = query.detach().dense, k = key.detach().dense, v = value.detach().dense
        let scores = matmulForward(q, k.transpose(-2, -1))
        let shape = scores.shape, n = shape.count
        let rows = shape[n - 2], cols = shape[n - 1], batch = Shape.count(Array(shape.dropLast(2)))
        let weights = Tensor(uninitialized: shape, device: query.device, op: "scaledDotProductAttention")
        if weights.count > 0 {
            let mask = attnMask.map { attentionMaskView($0, scoresShape: shape) }
            query.backend.attentionSoftmax(scores.storage.buffer, batch: batch, rows: rows, cols: cols, scale: scale, causal: isCausal,
                                           mask: mask, destination: weights.storage.buffer)
        }
        let drop = dropoutP > 0 ? dropoutScale(shape, p: dropoutP, device: query.device) : nil
        let dropped = drop.map { weights * $0 } ?? weights
        let out = matmulForward(dropped, v)
        let gradMask = attnMask.flatMap { $0.dtype == .float32 ? $0 : nil }
        return out.recording("ScaledDotProductAttentionBackward", inputs: [query, key, value] + (gradMask.map { [$0] } ?? [])) {
            let sq = SavedTensor(query, op: "ScaledDotProductAttentionBackward")
            let sk = SavedTensor(key, op: "ScaledDotProductAttentionBackward")
            let sv = SavedTensor(value, op: "ScaledDotProductAttentionBackward")
            let shapes = (q: query.shape, k: key.shape, v: value.shape, mask: attnMask?.shape ?? [])
            return { g in
                // Reading the saved inputs checks that none was modified in place since.
                let (query, key, value) = (sq.value, sk.value, sv.value)
                if GradMode.enabled {
                    return differentiableGradients(g, query: query, key: key, value: value, attnMask: attnMask, drop: drop, isCausal: isCausal,
                                                   scale: scale, maskGradient: gradMask != nil)
                }
                let gd = g.dense
                var dp = matmulForward(gd, v.transpose(-2, -1)).sumTo(shape)
                if let drop { dp = dp * drop }
                let dpd = dp.dense
                let ds = Tensor(uninitialized: shape, device: g.device, op: "ScaledDotProductAttentionBackward")
                if ds.count > 0 {
                    g.backend.attentionSoftmaxBackward(weights.storage.buffer, gradient: dpd.storage.buffer, batch: batch, rows: rows,
                                                       cols: cols, scale: scale, causal: isCausal, destination: ds.storage.buffer)
                }
                let dq = matmulForward(ds, k).sumTo(shapes.q)
                let dk = matmulForward(ds.transpose(-2, -1), q).sumTo(shapes.k)
                let dv = matmulForward(dropped.transpose(-2, -1), gd).sumTo(shapes.v)
                guard gradMask != nil else { return [dq, dk, dv] }
                let raw = Tensor(uninitialized: shape, device: g.device, op: "ScaledDotProductAttentionBackward")
                if raw.count > 0 {
                    g.backend.attentionSoftmaxBackward(weights.storage.buffer, gradient: dpd.storage.buffer, batch: batch, rows: rows,
                                                       cols: cols, scale: 1, causal: isCausal, destination: raw.storage.buffer)
                }
                return [dq, dk, dv, raw.sumTo(shapes.mask)]
            }
        }
    }

    /// Attention's input gradients (and an additive mask's) in differentiable ops, for
    /// higher-order gradients through the fused paths.
    private static func differentiableGradients(_ g: Tensor, query q: Tensor, key k: Tensor, value v: Tensor, attnMask: Tensor?,
                                                drop: Tensor?, isCausal: Bool, scale: Float, maskGradient: Bool) -> [Tensor?] {
        let p = composedWeights(query: q, key: k, attnMask: attnMask, isCausal: isCausal, scale: scale)
        let pd = drop.map { p * $0 } ?? p
        var dp = g.matmul(v.transpose(-2, -1)).sumTo(p.shape)
        if let drop { dp = dp * drop }
        let ds = p * (dp - (p * dp).sum(dim: -1, keepDim: true))
        return [(ds.matmul(k) * scale).sumTo(q.shape), (ds.transpose(-2, -1).matmul(q) * scale).sumTo(k.shape),
                pd.transpose(-2, -1).matmul(g).sumTo(v.shape)] + (maskGradient ? [ds.sumTo(attnMask!.shape)] : [])
    }

    /// Attention through a backend's flash kernels (no mask but `isCausal`, no dropout, value
    /// dim equal to the head dim): inputs expanded to their common batch and made contiguous,
    /// the output and per-row log-sum-exp saved for the backward kernels.
    static func flashAttention(query: Tensor, key: Tensor, value: Tensor, isCausal: Bool, scale: Float,
                               backend flash: FlashAttentionBackend) -> Tensor {
        let op = "scaledDotProductAttention"
        let batchShape = Shape.broadcast(Shape.broadcast(Array(query.shape.dropLast(2)), Array(key.shape.dropLast(2)))!,
                                         Array(value.shape.dropLast(2)))!
        // The kernels read whole buffers from element 0.
        func packed(_ t: Tensor) -> Tensor { t.isContiguous && t.offset == 0 ? t : t.contiguousCopy() }
        func dense(_ t: Tensor) -> Tensor { packed(t.detach().expand(batchShape + t.shape.suffix(2))) }
        let q = dense(query), k = dense(key), v = dense(value)
        let rows = q.shape[q.rank - 2], cols = k.shape[k.rank - 2], dim = q.shape[q.rank - 1]
        let batch = Shape.count(batchShape)
        let out = Tensor(uninitialized: q.shape, device: query.device, op: op)
        let lse = Tensor(uninitialized: batchShape + [rows], device: query.device, op: op)
        flash.flashAttentionForward(query: q.storage.buffer, key: k.storage.buffer, value: v.storage.buffer, batch: batch, rows: rows,
                                    cols: cols, dim: dim, scale: scale, causal: isCausal, output: out.storage.buffer, lse: lse.storage.buffer)
        let saved = out.detach()
        return out.recording("ScaledDotProductAttentionBackward", inputs: [query, key, value]) {
            let sq = SavedTensor(query, op: "ScaledDotProductAttentionBackward")
            let sk = SavedTensor(key, op: "ScaledDotProductAttentionBackward")
            let sv = SavedTensor(value, op: "ScaledDotProductAttentionBackward")
            return { g in
                let query = sq.value, key = sk.value, value = sv.value
                if GradMode.enabled {
                    return differentiableGradients(g, query: query, key: key, value: value, attnMask: nil, drop: nil, isCausal: isCausal,
                                                   scale: scale, maskGradient: false)
                }
                let gd = packed(g)
                let delta = Tensor(uninitialized: lse.shape, device: g.device, op: op)
                let dq = Tensor(uninitialized: q.shape, device: g.device, op: op)
                let dk = Tensor(uninitialized: k.shape, device: g.device, op: op)
                let dv = Tensor(uninitialized: v.shape, device: g.device, op: op)
                flash.flashAttentionBackward(query: q.storage.buffer, key: k.storage.buffer, value: v.storage.buffer,
                                             output: saved.storage.buffer, gradient: gd.storage.buffer, lse: lse.storage.buffer,
                                             batch: batch, rows: rows, cols: cols, dim: dim, scale: scale, causal: isCausal,
                                             delta: delta.storage.buffer, queryGradient: dq.storage.buffer,
                                             keyGradient: dk.storage.buffer, valueGradient: dv.storage.buffer)
                return [dq.sumTo(query.shape), dk.sumTo(key.shape), dv.sumTo(value.shape)]
            }
        }
    }
}
