import Ember
import Foundation

extension Workloads {
    /// The GPT training step of `../shared/peers/gpt_peers.py`: nanoGPT's shakespeare_char model
    /// in its CPU size (4 layers, 4 heads, n_embd 128, block 64, batch 12, vocab 65, no biases,
    /// tied head), AdamW (lr 1e-3, betas (0.9, 0.99)) with nanoGPT's two groups and the global
    /// gradient norm clipped to 1.0, on eight random-token batches cycled. The first step of a
    /// fresh model is timed alone (kernel compilation, allocation), then the steady state.
    func gpt(_ device: Device, filter: (String) -> Bool) {
        guard filter("GPT step") else { return }
        let step = gptStep(device), tokens = 12 * 64
        try? device.synchronize()
        device.resetPeakMemory()
        let timing = timer.time(on: device, step)
        report("GPT step first (nanoGPT shakespeare_char CPU config)", device, (timing.first, [timing.first]), unit: "s",
               higherIsBetter: false) { $0 }
        report("GPT step (nanoGPT shakespeare_char CPU config)", device, timing, unit: "ms/step", higherIsBetter: false,
               note: String(format: "%.0f tokens/s; ", Double(tokens) / timing.times.median) + memoryNote(device)) { $0 * 1e3 }
    }

    /// One training step of a fresh GPT of that configuration on `device` per call.
    func gptStep(_ device: Device) -> () -> Void {
        Tensor.manualSeed(0)
        let (_, train) = BenchModels.gptTraining(device)
        let stream = TextDataset(tokens: Tensor.randint(0, 65, [100_000]).toIntArray(), blockSize: 64, seed: 0)
        let batches = (0..<8).map { _ in stream.getBatch(split: .train, batchSize: 12, device: device) }
        var next = 0
        return {
            let (x, y) = batches[next % batches.count]
            next += 1
            _ = train(x, y)
        }
    }
}

extension BenchModels {
    /// The "GPT step" rows' model on `device` (nanoGPT's shakespeare_char CPU size, no biases,
    /// tied head) and its training step on a batch of tokens and targets: forward, backward,
    /// the global gradient norm clipped to 1.0 and AdamW (lr 1e-3, betas (0.9, 0.99)) with
    /// nanoGPT's two groups. The step returns the loss.
    static func gptTraining(_ device: Device) -> (model: GPT, step: (_ tokens: Tensor, _ targets: Tensor) -> Tensor) {
        let config = GPTConfig(vocabSize: 65, blockSize: 64, nLayer: 4, nHead: 4, nEmbd: 128, dropout: 0, bias: false)
        let model = GPT(config).to(device)
        let parameters = model.parameters()
        let opt = AdamW([ParamGroup(params: parameters.filter { $0.rank >= 2 }, weightDecay: 0.1),
                         ParamGroup(params: parameters.filter { $0.rank < 2 }, weightDecay: 0)], lr: 1e-3, betas: (0.9, 0.99))
        return (model, { x, y in
            let loss = model.loss(x, targets: y)
            opt.zeroGrad()
            loss.backward()
            clipGradNorm(parameters, maxNorm: 1)
            opt.step()
            return loss
        })
    }
}
