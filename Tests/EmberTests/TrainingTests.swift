import Foundation
import Testing
@testable import Ember

/// End-to-end training on the bundled digits, as `ember train` runs it.
@Suite("Training on digits")
struct TrainingTests {
    /// Trains `makeModel()` for 20 epochs (SGD lr 0.1, momentum 0.9, cosine schedule, batch 64,
    /// seed 0) on `device`; returns the per-step losses and the final test accuracy.
    static func train(_ device: Device, images: Bool, _ makeModel: () -> Sequential) throws -> (losses: [Float], accuracy: Float) {
        try Tensor.withRandomSeed(0) { try trainSeeded(device, images: images, makeModel) }
    }

    private static func trainSeeded(_ device: Device, images: Bool, _ makeModel: () -> Sequential) throws -> (losses: [Float], accuracy: Float) {
        let digits = try Digits.load(images: images)
        let model = makeModel().to(device)
        let opt = SGD(model.parameters(), lr: 0.1, momentum: 0.9)
        let schedule = CosineAnnealingLR(opt, tMax: 20)
        let loader = DataLoader(digits.train, batchSize: 64, shuffle: true, seed: 0, device: device)
        var losses: [Float] = []
        for _ in 0..<20 {
            model.train()
            for (x, y) in loader {
                let loss = crossEntropy(model(x), y)
                opt.zeroGrad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            }
            schedule.step()
        }
        model.eval()
        let test = digits.test.to(device)
        let accuracy = Tensor.noGrad { (model(test.inputs).argmax(dim: 1) == test.labels).float().mean().item() }
        return (losses, accuracy)
    }

    static func mlp() -> Sequential { Sequential(Linear(64, 128), ReLU(), Linear(128, 10)) }

    static func cnn() -> Sequential {
        Sequential(Conv2d(1, 16, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2),
                   Conv2d(16, 32, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2), Flatten(), Linear(32 * 2 * 2, 10))
    }

    @Test("the MLP and the CNN reach at least 97% on every device, with matching loss curves", arguments: ["mlp", "cnn"])
    func digits(_ kind: String) throws {
        var curves: [[Float]] = []
        for device in TestDevices.all {
            let (losses, accuracy) = try TrainingTests.train(device, images: kind == "cnn", kind == "cnn" ? TrainingTests.cnn : TrainingTests.mlp)
            #expect(accuracy >= 0.97, "\(kind) on \(device): test accuracy \(accuracy)")
            #expect(losses.last! < 0.1 && losses.last! < losses.first! / 10, "\(kind) on \(device): loss \(losses.first!) -> \(losses.last!)")
            curves.append(losses)
        }
        guard curves.count == 2 else { return }
        // Same seed, same data order, same initial weights: the devices differ only in
        // float rounding, so the curves agree closely step by step.
        #expect(curves[0].count == curves[1].count)
        for (step, (cpu, gpu)) in zip(curves[0], curves[1]).enumerated() where Swift.abs(cpu - gpu) > 1e-3 + 1e-2 * Swift.abs(cpu) {
            Issue.record("\(kind): step \(step) loss \(cpu) on the CPU, \(gpu) on OpenCL")
            break
        }
    }
}
