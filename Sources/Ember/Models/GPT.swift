import Foundation

/// The size of a `GPT` (nanoGPT's `GPTConfig`; the defaults are GPT-2 small's).
public struct GPTConfig: Equatable, Sendable {
    /// Tokens in the vocabulary.
    public var vocabSize: Int
    /// The longest context (positions in `wpe`).
    public var blockSize: Int
    /// Transformer blocks.
    public var nLayer: Int
    /// Attention heads per block (`nEmbd` must be a multiple).
    public var nHead: Int
    /// The embedding width.
    public var nEmbd: Int
    /// Dropout probability after the embeddings, on the attention weights and on each residual branch.
    public var dropout: Float
    /// Whether Linear layers and LayerNorms have biases (nanoGPT's `bias`; its training default is false).
    public var bias: Bool

    /// A configuration; stops unless every size is positive, `nEmbd` divides into `nHead`
    /// heads and `dropout` is in [0, 1).
    public init(vocabSize: Int = 50304, blockSize: Int = 1024, nLayer: Int = 12, nHead: Int = 12, nEmbd: Int = 768,
                dropout: Float = 0, bias: Bool = true) {
        check(vocabSize > 0 && blockSize > 0 && nLayer > 0 && nHead > 0 && nEmbd > 0,
              "GPTConfig: sizes must be positive, got vocabSize \(vocabSize), blockSize \(blockSize), nLayer \(nLayer), nHead \(nHead), nEmbd \(nEmbd)")
        check(nEmbd % nHead == 0, "GPTConfig: nEmbd (\(nEmbd)) is not a multiple of nHead (\(nHead))")
        check(dropout >= 0 && dropout < 1, "GPTConfig: dropout must be in [0, 1), got \(dropout)")
        self.vocabSize = vocabSize
        self.blockSize = blockSize
        self.nLayer = nLayer
        self.nHead = nHead
        self.nEmbd = nEmbd
        self.dropout = dropout
        self.bias = bias
    }

    /// The configuration as nanoGPT's names (`vocab_size`, `n_layer`, ...) and decimal
    /// values, as checkpoints store it in their metadata.
    public var metadata: [String: String] {
        ["vocab_size": "\(vocabSize)", "block_size": "\(blockSize)", "n_layer": "\(nLayer)", "n_head": "\(nHead)",
         "n_embd": "\(nEmbd)", "dropout": "\(dropout)", "bias": bias ? "true" : "false"]
    }

    /// The configuration stored in checkpoint metadata by `metadata`; throws when a field is
    /// missing or malformed (`path` names the file in the error).
    public init(metadata: [String: String], path: String) throws {
        func int(_ key: String) throws -> Int {
            guard let text = metadata[key], let value = Int(text), value > 0 else {
                throw EmberError.invalidFile(path: path, reason: "metadata \(key) is \(metadata[key].map { "'\($0)'" } ?? "missing"), expected a positive integer")
            }
            return value
        }
        let (vocab, block, layers, heads, embd) = (try int("vocab_size"), try int("block_size"), try int("n_layer"), try int("n_head"), try int("n_embd"))
        guard embd % heads == 0 else {
            throw EmberError.invalidFile(path: path, reason: "metadata n_embd \(embd) is not a multiple of n_head \(heads)")
        }
        guard let dropout = metadata["dropout"].flatMap(Float.init), dropout >= 0, dropout < 1 else {
            throw EmberError.invalidFile(path: path, reason: "metadata dropout is \(metadata["dropout"].map { "'\($0)'" } ?? "missing"), expected a number in [0, 1)")
        }
        guard let bias = metadata["bias"], bias == "true" || bias == "false" else {
            throw EmberError.invalidFile(path: path, reason: "metadata bias is \(metadata["bias"].map { "'\($0)'" } ?? "missing"), expected true or false")
        }
        self.init(vocabSize: vocab, blockSize: block, nLayer: layers, nHead: heads, nEmbd: embd, dropout: dropout, bias: bias == "true")
    }
}

/// Multi-head causal self-attention as nanoGPT's: one `c_attn` projection to queries, keys
/// and values, `scaledDotProductAttention(isCausal: true)`, and the output projection `c_proj`.
public final class CausalSelfAttention: Module, Layer {
    /// `[nEmbd] -> [3 nEmbd]`: queries, keys and values side by side.
    public let cAttn: Linear
    /// `[nEmbd] -> [nEmbd]`: the output projection.
    public let cProj: Linear
    let residDropout: Dropout
    let nHead: Int, dropout: Float

    /// The attention of a block of `config`.
    public init(_ config: GPTConfig) {
        cAttn = Linear(config.nEmbd, 3 * config.nEmbd, bias: config.bias)
        cProj = Linear(config.nEmbd, config.nEmbd, bias: config.bias)
        residDropout = Dropout(config.dropout)
        nHead = config.nHead
        dropout = config.dropout
    }

    override public func namedChildren() -> [(name: String, module: Module)] {
        [("c_attn", cAttn), ("c_proj", cProj), ("resid_dropout", residDropout)]
    }

    /// `[B, T, C] -> [B, T, C]`, position `t` attending to positions `0...t`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        check(x.rank == 3, "CausalSelfAttention: expected input [B, T, C], got \(Shape.describe(x.shape))")
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        let heads = cAttn(x).split(c, dim: 2).map { $0.reshape([b, t, nHead, c / nHead]).transpose(1, 2) }
        let y = scaledDotProductAttention(query: heads[0], key: heads[1], value: heads[2],
                                          dropoutP: isTraining ? dropout : 0, isCausal: true)
        return residDropout(cProj(y.transpose(1, 2).reshape([b, t, c])))
    }
}

/// The feed-forward part of a block: `c_fc` to 4 `nEmbd`, exact GELU, `c_proj` back.
public final class GPTMLP: Module, Layer {
    /// `[nEmbd] -> [4 nEmbd]`.
    public let cFc: Linear
    /// `[4 nEmbd] -> [nEmbd]`.
    public let cProj: Linear
    let gelu = GELU()
    let dropout: Dropout

    /// The MLP of a block of `config`.
    public init(_ config: GPTConfig) {
        cFc = Linear(config.nEmbd, 4 * config.nEmbd, bias: config.bias)
        cProj = Linear(4 * config.nEmbd, config.nEmbd, bias: config.bias)
        dropout = Dropout(config.dropout)
    }

    override public func namedChildren() -> [(name: String, module: Module)] {
        [("c_fc", cFc), ("gelu", gelu), ("c_proj", cProj), ("dropout", dropout)]
    }

    /// `[..., C] -> [..., C]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { dropout(cProj(gelu(cFc(x)))) }
}

/// A pre-LayerNorm transformer block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
public final class GPTBlock: Module, Layer {
    /// The LayerNorm before attention.
    public let ln1: LayerNorm
    /// Causal self-attention.
    public let attn: CausalSelfAttention
    /// The LayerNorm before the MLP.
    public let ln2: LayerNorm
    /// The feed-forward network.
    public let mlp: GPTMLP

    /// A block of `config`.
    public init(_ config: GPTConfig) {
        ln1 = LayerNorm(config.nEmbd, bias: config.bias)
        attn = CausalSelfAttention(config)
        ln2 = LayerNorm(config.nEmbd, bias: config.bias)
        mlp = GPTMLP(config)
    }

    override public func namedChildren() -> [(name: String, module: Module)] {
        [("ln_1", ln1), ("attn", attn), ("ln_2", ln2), ("mlp", mlp)]
    }

    /// `[B, T, C] -> [B, T, C]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = x + attn(ln1(x))
        return h + mlp(ln2(h))
    }
}

/// nanoGPT's GPT (Karpathy's `model.py`): token and position embeddings, `nLayer`
/// pre-LayerNorm blocks of causal self-attention and a GELU MLP, a final LayerNorm, and a
/// language-model head tied to the token embedding.
///
/// Parameters are named as nanoGPT's (`transformer.wte.weight`, `transformer.h.0.attn.c_attn.weight`,
/// `transformer.ln_f.weight`, `lm_head.weight`, ...), and `stateDict()` lists the tied weight under
/// both of its names as PyTorch's `state_dict()` does, so a nanoGPT checkpoint exported to
/// safetensors loads with `loadStateDict` (its `lm_head.weight` must equal `transformer.wte.weight`)
/// and Ember's checkpoints load in nanoGPT. Initialisation is nanoGPT's: N(0, 0.02) for Linear and
/// Embedding weights, N(0, 0.02 / sqrt(2 nLayer)) for the residual projections (`c_proj`), zero
/// biases, LayerNorm weights 1.
public final class GPT: Module {
    /// The configuration.
    public let config: GPTConfig
    /// Token embedding `[vocabSize, nEmbd]` (its weight is also `lmHead`'s).
    public let wte: Embedding
    /// Position embedding `[blockSize, nEmbd]`.
    public let wpe: Embedding
    /// The blocks.
    public let blocks: ModuleList
    /// The final LayerNorm.
    public let lnF: LayerNorm
    /// `[nEmbd] -> [vocabSize]`, without bias, weight tied to `wte`.
    public let lmHead: Linear
    let drop: Dropout
    /// nanoGPT's `transformer` ModuleDict, which names the children.
    private let transformer: ModuleDict

    /// A freshly initialised model of `config` (drawn from the seeded generator).
    public init(_ config: GPTConfig) {
        self.config = config
        wte = Embedding(config.vocabSize, config.nEmbd)
        wpe = Embedding(config.blockSize, config.nEmbd)
        drop = Dropout(config.dropout)
        blocks = ModuleList((0..<config.nLayer).map { _ in GPTBlock(config) })
        lnF = LayerNorm(config.nEmbd, bias: config.bias)
        lmHead = Linear(config.nEmbd, config.vocabSize, bias: false)
        transformer = ModuleDict([("wte", wte), ("wpe", wpe), ("drop", drop), ("h", blocks), ("ln_f", lnF)])
        super.init()
        lmHead.weight = wte.weight
        Tensor.noGrad {
            for module in modules() {
                if let linear = module as? Linear {
                    Init.normal(linear.weight, std: 0.02)
                    if let bias = linear.bias { Init.zeros(bias) }
                } else if let embedding = module as? Embedding {
                    Init.normal(embedding.weight, std: 0.02)
                }
            }
            let residualStd = 0.02 / Float(2 * config.nLayer).squareRoot()
            for case let block as GPTBlock in blocks {
                Init.normal(block.attn.cProj.weight, std: residualStd)
                Init.normal(block.mlp.cProj.weight, std: residualStd)
            }
        }
    }

    override public func namedChildren() -> [(name: String, module: Module)] {
        [("transformer", transformer), ("lm_head", lmHead)]
    }

    /// Parameters by nanoGPT's names, the tied embedding under both `transformer.wte.weight`
    /// and `lm_head.weight` (as PyTorch's `state_dict()` lists it).
    override public func stateDict() -> StateDict {
        let own = super.stateDict()
        guard own["lm_head.weight"] == nil else { return own }
        return StateDict(own.map { ($0.name, $0.tensor) } + [("lm_head.weight", lmHead.weight)])
    }

    /// The number of parameters, each tensor once; without `wpe` when `nonEmbedding`
    /// (nanoGPT's `get_num_params()`, which counts the tied `wte` as the head's).
    public func numParams(nonEmbedding: Bool = true) -> Int {
        parameterCount - (nonEmbedding ? wpe.weight.count : 0)
    }

    /// The last hidden states `[B, T, nEmbd]` (after `ln_f`) of Int32 tokens `[B, T]`, `T <= blockSize`.
    public func hidden(_ idx: Tensor) -> Tensor {
        check(idx.rank == 2 && !idx.dtype.isFloatingPoint && idx.dtype != .bool,
              "GPT: expected integer tokens [B, T], got \(idx.dtype) \(Shape.describe(idx.shape))")
        let t = idx.shape[1]
        check(t >= 1 && t <= config.blockSize, "GPT: cannot forward a sequence of length \(t), block size is only \(config.blockSize)")
        // Positions in the tokens' integer type: Int32 tokens then need no Int64 arange, nor
        // the embedding its cast back to Int32 indices (two kernels each step).
        let positions = Tensor.arange(0, Float(t), dtype: idx.dtype, device: idx.device)
        var x = drop(wte(idx) + wpe(positions))
        for case let block as GPTBlock in blocks { x = block(x) }
        return lnF(x)
    }

    /// Logits `[B, T, vocabSize]` of Int32 tokens `[B, T]`.
    public func callAsFunction(_ idx: Tensor) -> Tensor { lmHead(hidden(idx)) }

    /// The mean cross entropy of predicting `targets` `[B, T]` from `idx` `[B, T]` (nanoGPT's
    /// `forward(idx, targets)` loss).
    public func loss(_ idx: Tensor, targets: Tensor) -> Tensor {
        check(targets.shape == idx.shape, "GPT.loss: targets \(Shape.describe(targets.shape)) and tokens \(Shape.describe(idx.shape)) differ")
        let logits = self(idx)
        return crossEntropy(logits.reshape([-1, config.vocabSize]), targets.reshape([-1]))
    }

    /// `idx` `[B, T]` followed by `maxNewTokens` sampled tokens (nanoGPT's `generate`): each
    /// step feeds the last `blockSize` tokens, divides the last position's logits by
    /// `temperature`, keeps the `topK` largest when given, and draws the next token with
    /// `Tensor.multinomial` from the seeded generator. Runs without recording a graph; call
    /// `eval()` first to turn dropout off.
    public func generate(_ idx: Tensor, maxNewTokens: Int, temperature: Float = 1, topK: Int? = nil) -> Tensor {
        check(maxNewTokens >= 0, "GPT.generate: maxNewTokens must be >= 0, got \(maxNewTokens)")
        check(temperature.isFinite && temperature > 0, "GPT.generate: temperature must be a positive number, got \(temperature)")
        check(topK.map { $0 > 0 } ?? true, "GPT.generate: topK must be positive, got \(topK ?? 0)")
        return Tensor.noGrad {
            var tokens = idx
            for _ in 0..<maxNewTokens {
                let t = tokens.shape[1]
                let context = t <= config.blockSize ? tokens : tokens.slice(dim: 1, start: t - config.blockSize)
                let last = hidden(context).select(dim: 1, index: context.shape[1] - 1)
                var logits = lmHead(last) / temperature
                if let topK, topK < config.vocabSize {
                    let kth = logits.topk(topK, dim: -1).values.slice(dim: 1, start: topK - 1)
                    logits = logits.maskedFill(logits < kth, -Float.infinity)
                }
                let next = Tensor.multinomial(logits.softmax(dim: -1), numSamples: 1)
                tokens = Tensor.cat([tokens, next.to(tokens.device)], dim: 1)
            }
            return tokens
        }
    }

    /// Saves the state dict with the configuration (and, when given, the tokenizer's
    /// vocabulary as `vocabulary`) in the safetensors metadata.
    public func save(to url: URL, tokenizer: CharTokenizer?) throws {
        var metadata = config.metadata.merging(["format": "pt"]) { a, _ in a }
        if let tokenizer { metadata["vocabulary"] = tokenizer.vocabularyString }
        try SafeTensors.write(stateDict(), to: url, metadata: metadata)
    }

    /// A model made from a checkpoint written by `save(to:tokenizer:)`, and its tokenizer when
    /// the file has one (whose size must be the model's vocabulary).
    public static func load(from url: URL) throws -> (model: GPT, tokenizer: CharTokenizer?) {
        let metadata = try SafeTensors.metadata(from: url)
        let config = try GPTConfig(metadata: metadata, path: url.path)
        var tokenizer: CharTokenizer?
        if let vocabulary = metadata["vocabulary"] {
            let scalars = Array(vocabulary.unicodeScalars)
            guard scalars.count == config.vocabSize, Set(scalars).count == scalars.count else {
                throw EmberError.invalidFile(path: url.path, reason: "metadata vocabulary has \(scalars.count) characters (\(Set(scalars).count) distinct) for vocab_size \(config.vocabSize)")
            }
            tokenizer = CharTokenizer(vocabulary: scalars)
        }
        let model = GPT(config)
        try model.load(from: url)
        return (model, tokenizer)
    }
}
