import ArgumentParser
import Ember
import Foundation

/// The flags of `ember train --model gpt`, with the defaults of nanoGPT's
/// `config/train_shakespeare_char.py` and its README's CPU settings.
struct GPTOptions: ParsableArguments {
    /// nanoGPT's peak learning rate for shakespeare_char.
    static let defaultLR: Float = 1e-3

    @Option(name: .customLong("max-iters"), help: "Training iterations (optimizer steps).") var maxIters = 2000
    @Option(name: .customLong("eval-interval"), help: "Evaluate train and validation loss every this many iterations (and after the last).") var evalInterval = 250
    @Option(name: .customLong("eval-iters"), help: "Batches per split in each evaluation.") var evalIters = 20
    @Option(name: .customLong("block-size"), help: "Context length in characters.") var blockSize = 64
    @Option(name: .customLong("n-layer"), help: "Transformer blocks.") var nLayer = 4
    @Option(name: .customLong("n-head"), help: "Attention heads.") var nHead = 4
    @Option(name: .customLong("n-embd"), help: "Embedding width.") var nEmbd = 128
    @Option(help: "Dropout probability.") var dropout: Float = 0
    @Flag(help: "Biases in Linear layers and LayerNorms (nanoGPT's bias; off by default).") var bias = false
    @Option(name: .customLong("warmup-iters"), help: "Linear warm-up iterations.") var warmupIters = 100
    @Option(name: .customLong("lr-decay-iters"), help: "Iterations of cosine decay to --min-lr (default: --max-iters).") var lrDecayIters: Int?
    @Option(name: .customLong("min-lr"), help: "Learning rate at the end of the decay.") var minLR: Float = 1e-4
    @Option(name: .customLong("grad-clip"), help: "Clip the global gradient norm to this (0: no clipping).") var gradClip: Float = 1

    /// Checks every flag; `learningRate` is the peak rate in use.
    func validate(learningRate: Float) throws {
        for (name, value) in [("--max-iters", maxIters), ("--eval-interval", evalInterval), ("--eval-iters", evalIters),
                              ("--block-size", blockSize), ("--n-layer", nLayer), ("--n-head", nHead), ("--n-embd", nEmbd)] where value <= 0 {
            throw ValidationError("\(name) must be positive, got \(value)")
        }
        guard nEmbd % nHead == 0 else { throw ValidationError("--n-embd \(nEmbd) must be a multiple of --n-head \(nHead)") }
        guard dropout >= 0 && dropout < 1 else { throw ValidationError("--dropout must be in [0, 1), got \(dropout)") }
        guard warmupIters >= 0 else { throw ValidationError("--warmup-iters must be >= 0, got \(warmupIters)") }
        guard decayIters > warmupIters else {
            throw ValidationError("--lr-decay-iters (\(decayIters)) must exceed --warmup-iters (\(warmupIters))")
        }
        guard minLR.isFinite && minLR >= 0 && minLR <= learningRate else {
            throw ValidationError("--min-lr must be a number in [0, --lr], got \(minLR)")
        }
        guard gradClip.isFinite && gradClip >= 0 else { throw ValidationError("--grad-clip must be a number >= 0, got \(gradClip)") }
    }

    /// The iteration at which the decay reaches `minLR`.
    var decayIters: Int { lrDecayIters ?? maxIters }
}

extension TrainCommand {
    /// nanoGPT's training loop on the bundled Shakespeare: AdamW with its two parameter
    /// groups (weight decay on >= 2-D parameters only), the warm-up + cosine schedule,
    /// gradient clipping, train and validation loss every `evalInterval` iterations and after
    /// the last, and the model saved (with its configuration and vocabulary) at each evaluation
    /// that improves the validation loss. Forward passes and losses run under `--precision`'s
    /// autocast, fp16 with a `GradScaler` (unscaled before clipping), as nanoGPT's.
    func runGPT(on target: Device) throws {
        let options = gpt
        let corpus = try Shakespeare.load()
        let data = corpus.dataset(blockSize: options.blockSize, seed: seed)
        let config = GPTConfig(vocabSize: corpus.tokenizer.vocabSize, blockSize: options.blockSize, nLayer: options.nLayer,
                               nHead: options.nHead, nEmbd: options.nEmbd, dropout: options.dropout, bias: options.bias)
        let net = GPT(config).to(target)
        let parameters = net.parameters()
        let peakLR = lr ?? GPTOptions.defaultLR, batch = batchSize ?? 12
        let opt = AdamW([ParamGroup(params: parameters.filter { $0.rank >= 2 }, weightDecay: weightDecay ?? 0.1),
                         ParamGroup(params: parameters.filter { $0.rank < 2 }, weightDecay: 0)],
                        lr: peakLR, betas: (0.9, 0.99))
        let schedule = WarmupCosineLR(opt, warmupIters: options.warmupIters, lrDecayIters: options.decayIters, minLR: options.minLR)
        let scaler = GradScaler(enabled: precision == .fp16)
        print("Training gpt (\(net.numParams()) parameters without wpe, \(net.parameterCount) in all; \(config.nLayer) layers, \(config.nHead) heads, n_embd \(config.nEmbd), block \(config.blockSize)) on Shakespeare: \(data.range(.train).count) train / \(data.range(.validation).count) validation characters, vocabulary \(config.vocabSize), device \(target) (\(target.info.name)), AdamW lr \(peakLR) (warm-up \(options.warmupIters), cosine to \(options.minLR) at \(options.decayIters)), batch \(batch), \(precision.summary)")

        func evaluate() -> (train: Float, validation: Float) {
            net.eval()
            defer { net.train() }
            return Tensor.noGrad {
                let losses = TextSplit.allCases.map { split in
                    (0..<options.evalIters).map { _ in
                        let (x, y) = data.getBatch(split: split, batchSize: batch, device: target)
                        return withPrecision { net.loss(x, targets: y) }.item()
                    }.reduce(0, +) / Float(options.evalIters)
                }
                return (losses[0], losses[1])
            }
        }

        let interactive = isatty(STDOUT_FILENO) != 0
        let start = Date()
        let path = save ?? "gpt.safetensors"
        var trainingSeconds = 0.0, bestValidation = Float.infinity
        for iter in 0...options.maxIters {
            if iter % options.evalInterval == 0 || iter == options.maxIters {
                let losses = evaluate()
                if interactive { print(String(repeating: " ", count: 100), terminator: "\r") }
                print(String(format: "step %5d: train loss %.4f, val loss %.4f, lr %.2e, %.1f s", iter, losses.train, losses.validation,
                             opt.lr, Date().timeIntervalSince(start)))
                if iter > 0 && losses.validation < bestValidation {
                    // As nanoGPT: the checkpoint is the model at its best validation loss so far.
                    bestValidation = losses.validation
                    try net.save(to: URL(fileURLWithPath: path), tokenizer: corpus.tokenizer)
                    print(String(format: "saved %@ (val loss %.4f)", path, losses.validation))
                }
                fflush(nil)
            }
            if iter == options.maxIters { break }
            let stepStart = Date()
            let (x, y) = data.getBatch(split: .train, batchSize: batch, device: target)
            let loss = withPrecision { net.loss(x, targets: y) }
            opt.zeroGrad()
            scaler.scale(loss).backward()
            if options.gradClip > 0 {
                // As nanoGPT: clip the true gradients, unscaled first.
                scaler.unscale(opt)
                clipGradNorm(parameters, maxNorm: options.gradClip)
            }
            scaler.step(opt)
            scaler.update()
            schedule.step()
            let value = loss.item()
            trainingSeconds += Date().timeIntervalSince(stepStart)
            if interactive {
                let perStep = trainingSeconds / Double(iter + 1)
                print(gptProgressLine(iter: iter + 1, of: options.maxIters, loss: value, msPerIter: perStep * 1e3,
                                      tokensPerSecond: Double(batch * config.blockSize) / perStep), terminator: "\r")
                fflush(nil)
            }
        }
        let perStep = trainingSeconds / Double(options.maxIters)
        print(String(format: "%d iterations: %.1f ms/iter, %.0f tokens/s", options.maxIters, perStep * 1e3,
                     Double(batch * config.blockSize) / perStep))
    }

    private func gptProgressLine(iter: Int, of total: Int, loss: Float, msPerIter: Double, tokensPerSecond: Double) -> String {
        let width = 30
        let filled = width * iter / max(total, 1)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return String(format: "iter [%@] %d/%d  loss %.4f  %.1f ms/iter  %.0f tokens/s", bar, iter, total, loss, msPerIter, tokensPerSecond)
    }
}

/// `ember sample`: text from a GPT checkpoint written by `ember train --model gpt`.
struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sample", abstract: "Generate text from a GPT checkpoint (ember train --model gpt).")

    @Option(help: "The checkpoint (safetensors with the GPT configuration and vocabulary).") var checkpoint: String
    @Option(help: "The text to continue.") var prompt = "\n"
    @Option(help: "Characters to generate.") var tokens = 300
    @Option(help: "Divide the logits by this before sampling (< 1: more conservative).") var temperature: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Sample only from the k most likely characters.") var topK: Int?
    @Option(help: "Random seed.") var seed: UInt64 = 1337
    @Option(help: "Device: cpu, opencl or opencl:N (default: EMBER_DEVICE, else the first OpenCL device).") var device: String?

    func validate() throws {
        guard tokens >= 0 else { throw ValidationError("--tokens must be >= 0, got \(tokens)") }
        guard temperature.isFinite && temperature > 0 else { throw ValidationError("--temperature must be a positive number, got \(temperature)") }
        if let topK, topK <= 0 { throw ValidationError("--top-k must be positive, got \(topK)") }
        guard !prompt.isEmpty else { throw ValidationError("--prompt must not be empty") }
    }

    func run() throws {
        let target = try selectedDevice(device)
        let (model, found) = try GPT.load(from: URL(fileURLWithPath: checkpoint))
        guard let tokenizer = found else {
            throw ValidationError("\(checkpoint) has no vocabulary in its metadata (write it with ember train --model gpt)")
        }
        let unknown = tokenizer.unknownCharacters(in: prompt)
        guard unknown.isEmpty else {
            throw ValidationError("--prompt has characters outside the model's vocabulary: \(unknown.map { "'\($0.escaped(asASCII: true))'" }.joined(separator: ", "))")
        }
        model.to(target).eval()
        Tensor.manualSeed(seed)
        let idx = Tensor(shape: [1, prompt.unicodeScalars.count], data: tokenizer.encode(prompt), device: target)
        let out = model.generate(idx, maxNewTokens: tokens, temperature: temperature, topK: topK)
        print(tokenizer.decode(out))
    }
}
