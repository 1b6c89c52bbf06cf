import ArgumentParser
import Ember
import EmberDistributed
import Foundation

/// `ember train`: trains an MLP or a CNN on the bundled digits (or IDX files) and reports
/// loss, accuracy and throughput.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train a classifier on the bundled digits or on MNIST-format files.")

    enum ModelKind: String, ExpressibleByArgument, CaseIterable { case mlp, cnn }
    enum OptimizerKind: String, ExpressibleByArgument, CaseIterable { case sgd, adam, adamw, rmsprop }
    enum Schedule: String, ExpressibleByArgument, CaseIterable { case constant, cosine }

    @Option(help: "Model: mlp or cnn.") var model: ModelKind = .mlp
    @Option(help: "Device: cpu, opencl or opencl:N (default: EMBER_DEVICE, else the first OpenCL device).") var device: String?
    @Option(help: "Training epochs.") var epochs = 20
    @Option(name: .customLong("batch-size"), help: "Examples per batch.") var batchSize = 64
    @Option(help: "Learning rate.") var lr: Float = 0.1
    @Option(help: "Optimizer: sgd (momentum 0.9), adam, adamw or rmsprop.") var optimizer: OptimizerKind = .sgd
    @Option(name: .customLong("weight-decay"), help: "Weight decay.") var weightDecay: Float = 0
    @Option(help: "Learning-rate schedule: constant or cosine (annealed to 0 over the epochs).") var schedule: Schedule = .cosine
    @Option(help: "Random seed for initialisation and shuffling.") var seed: UInt64 = 0
    @Option(help: "Save the trained model (safetensors) to this path.") var save: String?
    @Option(name: .customLong("idx-images"), help: "MNIST-format image file (gzip or plain) instead of the digits.") var idxImages: String?
    @Option(name: .customLong("idx-labels"), help: "MNIST-format label file matching --idx-images.") var idxLabels: String?
    @Flag(help: "Data-parallel training across the processes mpirun starts (mpirun -np 2 ember train --distributed): each process reads its share of every epoch, --batch-size is per process, gradients are averaged, and only rank 0 prints and saves.")
    var distributed = false

    func validate() throws {
        guard epochs > 0 else { throw ValidationError("--epochs must be positive, got \(epochs)") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard lr.isFinite && lr > 0 else { throw ValidationError("--lr must be a positive number, got \(lr)") }
        guard weightDecay.isFinite && weightDecay >= 0 else { throw ValidationError("--weight-decay must be a number >= 0, got \(weightDecay)") }
        guard (idxImages == nil) == (idxLabels == nil) else { throw ValidationError("--idx-images and --idx-labels go together") }
    }

    func run() throws {
        guard distributed else { return try train(group: nil) }
        let group = try ProcessGroup.mpi()
        // A rank that throws must end the whole job, not leave the others waiting in a collective.
        do { try train(group: group) } catch { group.abort("\(error)") }
    }

    private func train(group: ProcessGroup?) throws {
        let isMain = group?.isMain ?? true
        let target = try selectedDevice(device)
        Tensor.manualSeed(seed)
        let (train, test, name) = try loadData()
        let imageShape = Array(train.inputs.shape.dropFirst())
        if model == .cnn && (imageShape.count != 3 || imageShape[1] < 4 || imageShape[2] < 4) {
            throw ValidationError("--model cnn needs images of at least 4x4 pixels, got \(imageShape)")
        }
        let net = model == .mlp ? makeMLP(features: imageShape.reduce(1, *)) : makeCNN(imageShape)
        net.to(target)
        // Broadcasts rank 0's initial parameters; its hooks average the gradients in backward.
        let ddp = group.map { DistributedDataParallel(net, group: $0) }
        let opt = makeOptimizer(net.parameters())
        let sampler = group.map { DistributedSampler(train, group: $0, shuffle: true, seed: seed) }
        let loader = sampler.map { DataLoader(train, batchSize: batchSize, sampler: $0, device: target) }
            ?? DataLoader(train, batchSize: batchSize, shuffle: true, seed: seed, device: target)
        let scheduler = schedule == .cosine ? CosineAnnealingLR(opt, tMax: epochs) : nil
        let processes = group.map { ", \($0.worldSize) processes (batch \(batchSize) each)" } ?? ""
        if isMain { print("Training \(model.rawValue) (\(net.parameterCount) parameters) on \(name): \(train.count) train / \(test.count) test examples, device \(target) (\(target.info.name)), \(optimizer.rawValue) lr \(lr), batch \(batchSize)\(processes)") }
        let testData = test.to(target)
        let interactive = isatty(STDOUT_FILENO) != 0 && isMain
        var accuracy: Float = 0
        for epoch in 1...epochs {
            sampler?.setEpoch(epoch - 1)
            net.train()
            let start = Date()
            var lossSum: Float = 0
            var seen = 0
            for (step, (x, y)) in loader.enumerated() {
                let input = model == .mlp ? x.reshape([x.shape[0], -1]) : x
                let loss = crossEntropy(ddp?(input) ?? net(input), y)
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
            if let group {
                // The epoch's loss and examples over every process.
                let totals = Tensor(shape: [2], data: [lossSum, Float(seen)])
                group.allReduce(totals, op: .sum)
                let values = totals.toArray()
                (lossSum, seen) = (values[0], Int(values[1]))
            }
            let seconds = Date().timeIntervalSince(start)
            scheduler?.step()
            accuracy = evaluate(net, testData)
            if interactive { print(String(repeating: " ", count: 100), terminator: "\r") }
            if isMain { print(String(format: "epoch %3d  train loss %.4f  test accuracy %.2f%%  %.0f samples/s", epoch, lossSum / Float(seen), accuracy * 100, Double(seen) / seconds)) }
        }
        if isMain { print(String(format: "final test accuracy: %.2f%%", accuracy * 100)) }
        if let save {
            let url = URL(fileURLWithPath: save)
            if let ddp { try ddp.save(to: url) } else { try net.save(to: url) }
            if isMain { print("saved \(save)") }
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
