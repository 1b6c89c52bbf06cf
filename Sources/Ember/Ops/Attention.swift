import Foundation

/// Scaled dot-product attention (`torch.nn.functional.scaled_dot_product_attention`):
/// `softmax(Q K^T * scale + mask) V` over `[..., L, E]` queries, `[..., S, E]` keys and
/// `[..., S, Ev]` values (leading dims broadcast), giving `[..., L, Ev]`.
///
/// `attnMask` is boolean (true = attend) or an additive Float mask, broadcast to
/// `[..., L, S]`; `isCausal` masks key `j > i` for query `i` (the top-left causal mask, as
/// PyTorch does) and excludes `attnMask`. `scale` defaults to `1 / sqrt(E)`. When `dropoutP`
/// is above 0 the attention weights are dropped with Ember's seeded generator (pass 0 in
/// evaluation, as PyTorch's modules do). A row whose keys are all masked gives NaN, as in
/// PyTorch's math path.
public func scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor, attnMask: Tensor? = nil,
                                      dropoutP: Float = 0, isCausal: Bool = false, scale: Float? = nil) -> Tensor {
    let geometry = AttentionGeometry(query: query, key: key, value: value, attnMask: attnMask, dropoutP: dropoutP, isCausal: isCausal)
    return Tensor.composedAttention(query: query, key: key, value: value, attnMask: attnMask, dropoutP: dropoutP,
                                    isCausal: isCausal, scale: scale ?? geometry.defaultScale)
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
            check(attnMask.dtype != .int32, "\(op): attnMask must be bool or float32, got \(attnMask.dtype)")
        }
    }
}

extension Tensor {
    /// Attention from separate ops: matmul, mask, softmax, dropout, matmul (autograd from
    /// theirs). The reference the fused path is tested against.
    static func composedAttention(query: Tensor, key: Tensor, value: Tensor, attnMask: Tensor?, dropoutP: Float,
                                  isCausal: Bool, scale: Float) -> Tensor {
        let l = query.shape[query.rank - 2], s = key.shape[key.rank - 2]
        var scores = query.matmul(key.transpose(-2, -1)) * scale
        if isCausal {
            let c = Tensor.arange(0, Float(s), device: query.device).reshape([1, s])
            let r = Tensor.arange(0, Float(l), device: query.device).reshape([l, 1])
            scores = scores.maskedFill(c > r, -Float.infinity)
        }
        if let attnMask {
            scores = attnMask.dtype == .bool ? scores.maskedFill(attnMask.floatStorage == 0, -Float.infinity) : scores + attnMask
        }
        var weights = scores.softmax(dim: -1)
        if dropoutP > 0 { weights = weights.dropout(p: dropoutP) }
        return weights.matmul(value)
    }
}
