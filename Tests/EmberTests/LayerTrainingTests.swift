import Foundation
import Testing
@testable import Ember

/// Small models built from the newer layers, written as a user would: each trains (the loss
/// falls), moves to every device with its optimizer, and round-trips through a checkpoint.
@Suite("Training the newer layers")
struct LayerTrainingTests {
    /// A convolutional autoencoder: down with strided Conv2d + GroupNorm + SiLU, up with
    /// ConvTranspose2d and Upsample.
    final class AutoEncoder: Module, Layer {
        let down = Sequential(Conv2d(1, 8, kernelSize: 3, stride: 2, padding: 1), GroupNorm(numGroups: 2, numChannels: 8), SiLU())
        let up = Sequential(ConvTranspose2d(8, 4, kernelSize: 3, stride: 2, padding: 1, outputPadding: 1), Mish(),
                            Conv2d(4, 1, kernelSize: 3, padding: 1), Upsample(scaleFactor: [1], mode: .bilinear))
        func callAsFunction(_ x: Tensor) -> Tensor { up(down(x)) }
    }

    /// A character model: Embedding with a padding row, a 2-layer LSTM, RMSNorm and a head.
    final class CharLSTM: Module, Layer {
        let embedding = Embedding(12, 8, paddingIdx: 0)
        let lstm = LSTM(inputSize: 8, hiddenSize: 16, numLayers: 2, batchFirst: true)
        let norm = RMSNorm(16)
        let head = Linear(16, 12)
        func callAsFunction(_ x: Tensor) -> Tensor { head(norm(lstm(embedding(x)).output)) }
    }

    /// Trains `model` for `steps` steps of `loss` with `optimizer` and returns the first and last losses.
    static func train(_ model: Module, _ optimizer: Optimizer, steps: Int, _ loss: () -> Tensor) -> (first: Float, last: Float) {
        var losses: [Float] = []
        for _ in 0..<steps {
            optimizer.zeroGrad()
            let l = loss()
            l.backward()
            optimizer.step()
            losses.append(l.item())
        }
        return (losses[0], losses[losses.count - 1])
    }

    @Test("an autoencoder of Conv2d, GroupNorm, ConvTranspose2d and Upsample learns to reconstruct, on every device",
          arguments: TestDevices.all)
    func autoencoder(_ device: Device) throws {
        let model = Tensor.withRandomSeed(1) { AutoEncoder() }.to(device)
        let images = Tensor.withRandomSeed(2) { Tensor.rand([8, 1, 8, 8], device: device) }
        let optimizer = Adam(model.parameters(), lr: 1e-2)
        let (first, last) = Self.train(model, optimizer, steps: 40) { mseLoss(model(images), images) }
        #expect(last < first * 0.5, "loss \(first) -> \(last)")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("autoencoder-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try model.save(to: url)
        let restored = AutoEncoder().to(device)
        try restored.load(from: url)
        #expect(restored(images).toArray() == model(images).toArray())
    }

    @Test("a character LSTM with a padding embedding and RMSNorm learns a repeating sequence, on every device",
          arguments: TestDevices.all)
    func charLSTM(_ device: Device) throws {
        let model = Tensor.withRandomSeed(3) { CharLSTM() }.to(device)
        // Sequences of 1, 2, ..., 11 repeating, each preceded by padding; the target is the next token.
        var tokens: [Int64] = []
        for offset in 0..<4 {
            tokens.append(0)
            for i in 0..<9 { tokens.append(Int64((i + offset) % 11 + 1)) }
        }
        let x = Tensor(shape: [4, 10], data: tokens, device: device)
        let inputs = x.slice(dim: 1, end: 9), targets = x.slice(dim: 1, start: 1)
        let optimizer = AdamW(model.parameters(), lr: 2e-2)
        let (first, last) = Self.train(model, optimizer, steps: 60) {
            crossEntropy(model(inputs).reshape([-1, 12]), targets.reshape([-1]))
        }
        #expect(last < first * 0.3, "loss \(first) -> \(last)")
        #expect(model.embedding.weight.toArray().prefix(8).allSatisfy { $0 == 0 }, "the padding row stays zero")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("charlstm-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try model.save(to: url)
        let restored = CharLSTM().to(device)
        try restored.load(from: url)
        #expect(restored.stateDict().map(\.name).contains("lstm.weight_hh_l1"))
        #expect(restored(inputs).toArray() == model(inputs).toArray())
    }
}
