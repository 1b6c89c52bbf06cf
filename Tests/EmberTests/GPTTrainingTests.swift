import Foundation
import Testing
@testable import Ember

/// A small GPT learns the bundled Shakespeare on every device, and the devices' loss curves agree.
@Suite("GPT learning check")
struct GPTTrainingTests {
    /// The losses of `steps` nanoGPT-style steps (AdamW groups, warm-up + cosine, clip 1.0) of a
    /// tiny GPT on the first 50,000 characters of Shakespeare, from the same initial weights and
    /// batches on every device.
    static func curve(on device: Device, steps: Int) throws -> [Float] {
        let text = String(try Shakespeare.load().text.prefix(50_000))
        let tokenizer = CharTokenizer(text: text)
        let data = TextDataset(tokens: tokenizer.encode(text), blockSize: 16, seed: 7)
        let config = GPTConfig(vocabSize: tokenizer.vocabSize, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 32, bias: false)
        let model = Tensor.withRandomSeed(1) { GPT(config) }.to(device)
        let parameters = model.parameters()
        let opt = AdamW([ParamGroup(params: parameters.filter { $0.rank >= 2 }, weightDecay: 0.1),
                         ParamGroup(params: parameters.filter { $0.rank < 2 }, weightDecay: 0)], lr: 3e-3, betas: (0.9, 0.99))
        let schedule = WarmupCosineLR(opt, warmupIters: 10, lrDecayIters: steps, minLR: 1e-3)
        var losses: [Float] = []
        for _ in 0..<steps {
            let (x, y) = data.getBatch(split: .train, batchSize: 16, device: device)
            let loss = model.loss(x, targets: y)
            opt.zeroGrad()
            loss.backward()
            clipGradNorm(parameters, maxNorm: 1)
            opt.step()
            schedule.step()
            losses.append(loss.item())
        }
        return losses
    }

    @Test("a tiny GPT's loss falls from ln(vocab) to below 3.0 in 120 steps on every device; CPU and OpenCL agree step by step")
    func learns() throws {
        var curves: [[Float]] = []
        for d in TestDevices.all {
            let losses = try GPTTrainingTests.curve(on: d, steps: 120)
            let start = losses[0], end = losses.suffix(20).reduce(0, +) / 20
            // ln(62) = 4.13 at the start; the unigram entropy of the text is about 3.3, so a loss
            // below 3.0 means the model uses its context (measured: 2.85).
            #expect(abs(start - Float(Foundation.log(62.0))) < 0.1, "initial loss \(start) on \(d)")
            #expect(end < 3.0, "mean loss of the last 20 steps \(end) on \(d)")
            curves.append(losses)
        }
        if curves.count == 2 {
            // Same weights and batches: the curves differ only by float32 rounding (measured: at most
            // 5.5e-5 relative; rounding differences grow slowly through 120 Adam steps).
            let deviation = zip(curves[0], curves[1]).map { abs($0 - $1) / $0 }
            #expect(deviation.max()! < 1e-3, "max relative CPU/OpenCL loss difference \(deviation.max()!)")
        }
    }
}
