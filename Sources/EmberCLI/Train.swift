import ArgumentParser
import Ember
import Foundation

/// `ember train`: trains an MLP or a CNN on the bundled digits (or IDX files) and reports
/// loss, accuracy and throughput, or (`--model gpt`) a character-level GPT on the bundled
/// Shakespeare (TrainGPT.swift).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train a classifier on the bundled digits or on MNIST-format files, or a GPT on the bundled Shakespeare.")

    enum ModelKind: String, ExpressibleByArgument, CaseIterable { case mlp, cnn, gpt }
    enum OptimizerKind: String, ExpressibleByArgument, CaseIterable { case sgd, adam, adamw, rmsprop }
    enum Schedule: String, ExpressibleByArgument, CaseIterable { case constant, cosine }

    @Option(help: "Model: mlp, cnn or gpt.") var model: ModelKind = .mlp
    @Option(help: "Device: cpu, opencl or opencl:N (default: EMBER_DEVICE, else the first OpenCL device).") var device: String?
    @Option(help: "Training epochs.") var epochs = 20
    @Option(name: .customLong("batch-size"), help: "Examples per batch (default 64; gpt: 12 sequences).") var batchSize: Int?
    @Option(help: "Learning rate (default 0.1; gpt: 1e-3, the peak of the warm-up + cosine schedule).") var lr: Float?
    @Option(help: "Optimizer: sgd (momentum 0.9), adam, adamw or rmsprop.") var optimizer: OptimizerKind = .sgd
    @Option(name: .customLong("weight-decay"), help: "Weight decay (default 0; gpt: 0.1 on 2-D weights only).") var weightDecay: Float?
    @Option(help: "Learning-rate schedule: constant or cosine (annealed to 0 over the epochs).") var schedule: Schedule = .cosine
    @Option(help: "Random seed for initialisation and shuffling.") var seed: UInt64 = 0
    @Option(help: "Save the trained model (safetensors) to this path (gpt: default gpt.safetensors, written at each best validation loss).") var save: String?
    @Option(name: .customLong("idx-images"), help: "MNIST-format image file (gzip or plain) instead of the digits.") var idxImages: String?
    @Option(name: .customLong("idx-labels"), help: "MNIST-format label file matching --idx-images.") var idxLabels: String?
    @OptionGroup(title: "GPT (--model gpt; defaults: nanoGPT's shakespeare_char on a CPU)") var gpt: GPTOptions

    func validate() throws {
        guard epochs > 0 else { throw ValidationError("--epochs must be positive, got \(epochs)") }
        if let batchSize, batchSize <= 0 { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        if let lr, !(lr.isFinite && lr > 0) { throw ValidationError("--lr must be a positive number, got \(lr)") }
        if let weightDecay, !(weightDecay.isFinite && weightDecay >= 0) { throw ValidationError("--weight-decay must be a number >= 0, got \(weightDecay)") }
        guard (idxImages == nil) == (idxLabels == nil) else { throw ValidationError("--idx-images and --idx-labels go together") }
        if model == .gpt {
            guard idxImages == nil else { throw ValidationError("--model gpt trains on the bundled Shakespeare; --idx-images does not apply") }
            try gpt.validate(learningRate: lr ?? GPTOptions.defaultLR)
        }
    }

    func run() throws {
        let target = try selectedDevice(device)
        Tensor.manualSeed(seed)
        if model == .gpt { return try runGPT(on: target) }
        let batchSize = batchSize ?? 64, lr = lr ?? 0.1
        let (train, test, name) = try loadData()
        let imageShape = Array(train.inputs.shape.dropFirst())
        if model == .cnn && (imageShape.count != 3 || imageShape[1] < 4 || imageShape[2] < 4) {
            throw ValidationError("--model cnn needs images of at least 4x4 pixels, got \(imageShape)")
        }
        let net = model == .mlp ? makeMLP(features: imageShape.reduce(1, *)) : makeCNN(imageShape)
        net.to(target)
        let opt = makeOptimizer(net.parameters())
        let loader = DataLoader(train, batchSize: batchSize, shuffle: true, seed: seed, device: target)
        let scheduler = schedule == .cosine ? CosineAnnealingLR(opt, tMax: epochs) : nil
        print("Training \(model.rawValue) (\(net.parameterCount) parameters) on \(name): \(train.count) train / \(test.count) test examples, device \(target) (\(target.info.name)), \(optimizer.rawValue) lr \(lr), batch \(batchSize)")
        let testData = test.to(target)
        let interactive = isatty(STDOUT_FILENO) != 0
        var accuracy: Float = 0
        for epoch in 1...epochs {
            net.train()
            let start = Date()
            var lossSum: Float = 0
            var seen = 0
            for (step, (x, y)) in loader.enumerated() {
                let input = model == .mlp ? x.reshape([x.shape[0], -1]) : x
                let loss = crossEntropy(net(input), y)
                opt.zeroGrad()
                loss.backward()
                opt.step()
                let value = loss.item()
                lossSum += value * Float(x.shape[0])
                seen += x.shape[0]
                if interactive {
                    let rate = Double(seen) / max(Date().timeIntervalSince(start), 1e-9)
                    print(progressLine(epoch: epoch, step: step + 1, steps: loader.count, loss: value, rate: rate), terminator: "\r")
                    fflush(nil)
                }
            }
            let seconds = Date().timeIntervalSince(start)
            scheduler?.step()
            accuracy = evaluate(net, testData)
            if interactive { print(String(repeating: " ", count: 100), terminator: "\r") }
            print(String(format: "epoch %3d  train loss %.4f  test accuracy %.2f%%  %.0f samples/s", epoch, lossSum / Float(seen), accuracy * 100, Double(seen) / seconds))
        }
        print(String(format: "final test accuracy: %.2f%%", accuracy * 100))
        if let save {
            try net.save(to: URL(fileURLWithPath: save))
            print("saved \(save)")
        }
    }

    private func loadData() throws -> (TensorDataset, TensorDataset, String) {
        if let idxImages, let idxLabels {
            let all = try IDXDataset(images: URL(fileURLWithPath: idxImages), labels: URL(fileURLWithPath: idxLabels)).dataset
            let (train, test) = all.split(fraction: 0.8, seed: seed)
            return (train, test, URL(fileURLWithPath: idxImages).lastPathComponent)
        }
        let digits = try Digits.load(images: true)
        return (digits.train, digits.test, "digits")
    }

    private func makeMLP(features: Int) -> Sequential {
        Sequential(Linear(features, 128), ReLU(), Linear(128, 10))
    }

    private func makeCNN(_ shape: [Int]) -> Sequential {
        let (h, w) = (shape[1] / 4, shape[2] / 4)
        return Sequential(Conv2d(shape[0], 16, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2),
                          Conv2d(16, 32, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2),
                          Flatten(), Linear(32 * h * w, 10))
    }

    private func makeOptimizer(_ parameters: [Tensor]) -> Optimizer {
        let lr = lr ?? 0.1, weightDecay = weightDecay ?? 0
        switch optimizer {
        case .sgd: return SGD(parameters, lr: lr, momentum: 0.9, weightDecay: weightDecay)
        case .adam: return Adam(parameters, lr: lr, weightDecay: weightDecay)
        case .adamw: return AdamW(parameters, lr: lr, weightDecay: weightDecay)
        case .rmsprop: return RMSprop(parameters, lr: lr, weightDecay: weightDecay)
        }
    }

    private func evaluate(_ net: Sequential, _ data: TensorDataset) -> Float {
        net.eval()
        return Tensor.noGrad {
            let input = model == .mlp ? data.inputs.reshape([data.count, -1]) : data.inputs
            return (net(input).argmax(dim: 1) == data.labels).float().mean().item()
        }
    }

    private func progressLine(epoch: Int, step: Int, steps: Int, loss: Float, rate: Double) -> String {
        let width = 30
        let filled = width * step / max(steps, 1)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return String(format: "epoch %3d [%@] %d/%d  loss %.4f  %.0f samples/s", epoch, bar, step, steps, loss, rate)
    }
}
