/// The feed-forward activation of a `TransformerEncoderLayer` (`activation` in PyTorch's).
public enum TransformerActivation: String, Sendable {
    /// `relu` (PyTorch's default).
    case relu
    /// The exact `gelu`.
    case gelu
}

/// One encoder block of "Attention Is All You Need" (`torch.nn.TransformerEncoderLayer`):
/// self-attention and a two-layer feed-forward network, each with a residual connection and a
/// LayerNorm after it (or before it, with `normFirst`), dropout on each branch. Children and
/// parameters carry PyTorch's names (`self_attn`, `linear1`, `linear2`, `norm1`, `norm2`), so its
/// state dict loads as it is.
public final class TransformerEncoderLayer: Module, Layer {
    /// The self-attention (`self_attn`).
    public let selfAttn: MultiheadAttention
    /// `[dModel] -> [dimFeedforward]`.
    public let linear1: Linear
    /// `[dimFeedforward] -> [dModel]`.
    public let linear2: Linear
    /// The LayerNorms of the attention and feed-forward branches.
    public let norm1: LayerNorm, norm2: LayerNorm
    let dropout: Dropout, dropout1: Dropout, dropout2: Dropout
    let activation: TransformerActivation, normFirst: Bool

    /// A block of width `dModel` with `nhead` heads and PyTorch's defaults.
    public init(dModel: Int, nhead: Int, dimFeedforward: Int = 2048, dropout: Float = 0.1, activation: TransformerActivation = .relu,
                layerNormEps: Float = 1e-5, batchFirst: Bool = false, normFirst: Bool = false, bias: Bool = true) {
        selfAttn = MultiheadAttention(embedDim: dModel, numHeads: nhead, dropout: dropout, bias: bias, batchFirst: batchFirst)
        linear1 = Linear(dModel, dimFeedforward, bias: bias)
        linear2 = Linear(dimFeedforward, dModel, bias: bias)
        norm1 = LayerNorm(dModel, eps: layerNormEps, bias: bias)
        norm2 = LayerNorm(dModel, eps: layerNormEps, bias: bias)
        self.dropout = Dropout(dropout)
        dropout1 = Dropout(dropout)
        dropout2 = Dropout(dropout)
        self.activation = activation
        self.normFirst = normFirst
    }

    override public func namedChildren() -> [(name: String, module: Module)] {
        [("self_attn", selfAttn), ("linear1", linear1), ("dropout", dropout), ("linear2", linear2), ("norm1", norm1), ("norm2", norm2),
         ("dropout1", dropout1), ("dropout2", dropout2)]
    }

    /// The block applied to `src` (`[S, N, E]`, or `[N, S, E]` when batch first): `srcMask`
    /// and `srcKeyPaddingMask` as `MultiheadAttention`'s `attnMask` and `keyPaddingMask`,
    /// `isCausal` a causal mask.
    public func callAsFunction(_ src: Tensor, srcMask: Tensor?, srcKeyPaddingMask: Tensor? = nil, isCausal: Bool = false) -> Tensor {
        func attention(_ x: Tensor) -> Tensor {
            dropout1(selfAttn(x, x, x, keyPaddingMask: srcKeyPaddingMask, needWeights: false, attnMask: srcMask, isCausal: isCausal).output)
        }
        func feedForward(_ x: Tensor) -> Tensor {
            let hidden = linear1(x)
            return dropout2(linear2(dropout(activation == .relu ? hidden.relu() : hidden.gelu())))
        }
        if normFirst {
            let x = src + attention(norm1(src))
            return x + feedForward(norm2(x))
        }
        let x = norm1(src + attention(src))
        return norm2(x + feedForward(x))
    }

    /// The block applied to `src` without masks.
    public func callAsFunction(_ src: Tensor) -> Tensor { self(src, srcMask: nil) }
}

/// A stack of encoder blocks (`torch.nn.TransformerEncoder`), each made by `makeLayer` (PyTorch
/// copies one layer `numLayers` times; each block here is made afresh, with its own weights),
/// then an optional final `norm`. Children are `layers.0`, `layers.1`, ... and `norm`, as in
/// PyTorch's state dicts.
public final class TransformerEncoder: Module, Layer {
    /// The blocks, in order.
    public let layers: ModuleList
    /// The LayerNorm after the last block, if any.
    public let norm: LayerNorm?

    /// `numLayers` blocks from `makeLayer`, then `norm` if given.
    public init(numLayers: Int, norm: LayerNorm? = nil, makeLayer: () -> TransformerEncoderLayer) {
        check(numLayers > 0, "TransformerEncoder: numLayers must be positive, got \(numLayers)")
        layers = ModuleList((0..<numLayers).map { _ in makeLayer() })
        self.norm = norm
    }

    /// Every block applied in turn to `src`, with the same masks, then the final norm.
    public func callAsFunction(_ src: Tensor, mask: Tensor?, srcKeyPaddingMask: Tensor? = nil, isCausal: Bool = false) -> Tensor {
        var x = src
        for case let layer as TransformerEncoderLayer in layers {
            x = layer(x, srcMask: mask, srcKeyPaddingMask: srcKeyPaddingMask, isCausal: isCausal)
        }
        return norm.map { $0(x) } ?? x
    }

    /// The stack applied to `src` without masks.
    public func callAsFunction(_ src: Tensor) -> Tensor { self(src, mask: nil) }
}
