import ArgumentParser
import Ember
import EmberDistributed
import EmberPlot
import Foundation

/// `ember train`: trains an MLP or a CNN on the bundled digits (or IDX files) and reports
/// loss, accuracy and throughput, or (`--model gpt`) a character-level GPT on the bundled
/// Shakespeare (TrainGPT.swift).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train a classifier on the bundled digits or on MNIST-format files, or a GPT on the bundled Shakespeare.")

    enum ModelKind: String, ExpressibleByArgument, CaseIterable { case mlp, cnn, gpt }
    enum OptimizerKind: String, ExpressibleByArgument, CaseIterable { case sgd, adam, adamw, rmsprop }
    enum Schedule: String, ExpressibleByArgument, CaseIterable { case constant, cosine }
    /// The precision of the forward pass and loss.
    enum Precision: String, ExpressibleByArgument, CaseIterable {
        case fp32, bf16, fp16

        /// The autocast type (nil: plain Float32).
        var autocastType: DType? {
            switch self {
            case .fp32: nil
            case .bf16: .bfloat16
            case .fp16: .float16
            }
        }

        /// How the run header describes it.
        var summary: String {
            switch self {
            case .fp32: "precision fp32"
            case .bf16: "precision bf16 (autocast to bfloat16)"
            case .fp16: "precision fp16 (autocast to float16, loss scaling)"
            }
        }
    }

    @Option(help: "Model: mlp, cnn or gpt.") var model: ModelKind = .mlp
    @Option(help: "Device: cpu, opencl or opencl:N (default: EMBER_DEVICE, else the first OpenCL device).") var device: String?
    @Option(help: "Training epochs.") var epochs = 20
    @Option(name: .customLong("batch-size"), help: "Examples per batch (default 64; gpt: 12 sequences).") var batchSize: Int?
    @Option(help: "Learning rate (default 0.1; gpt: 1e-3, the peak of the warm-up + cosine schedule).") var lr: Float?
    @Option(help: "Optimizer: sgd (momentum 0.9), adam, adamw or rmsprop.") var optimizer: OptimizerKind = .sgd
    @Option(name: .customLong("weight-decay"), help: "Weight decay (default 0; gpt: 0.1 on 2-D weights only).") var weightDecay: Float?
    @Option(help: "Learning-rate schedule: constant or cosine (annealed to 0 over the epochs).") var schedule: Schedule = .cosine
    @Option(help: "Precision of the forward pass and loss: fp32, bf16 (autocast to bfloat16) or fp16 (autocast to float16 with a gradient scaler); parameters and optimizer state stay float32.")
    var precision: Precision = .fp32
    @Option(help: "Random seed for initialisation and shuffling.") var seed: UInt64 = 0
    @Option(help: "Save the trained model (safetensors) to this path (gpt: default gpt.safetensors, written at each best validation loss).") var save: String?
    @Option(name: .customLong("idx-images"), help: "MNIST-format image file (gzip or plain) instead of the digits.") var idxImages: String?
    @Option(name: .customLong("idx-labels"), help: "MNIST-format label file matching --idx-images.") var idxLabels: String?
    @Flag(help: "Data-parallel training across the processes mpirun starts (mpirun -np 2 ember train --distributed): each process reads its share of every epoch, --batch-size is per process, gradients are averaged, and only rank 0 prints and saves.")
    var distributed = false
    @Option(help: "Profile training steps after a warm-up: print the ops that take the most time and write a Chrome trace (Perfetto, chrome://tracing) to this path.")
    var profile: String?
    @Option(name: .customLong("profile-steps"), help: "Steps to profile with --profile.") var profileSteps = 5
    @Option(help: "Draw the training curves (loss per step, test loss and accuracy per epoch, learning rate) as an SVG to this path.")
    var plot: String?

    /// Steps run before profiling starts (the first ones compile kernels and fill the memory pool).
    static let profileWarmup = 3
    @OptionGroup(title: "GPT (--model gpt; defaults: nanoGPT's shakespeare_char on a CPU)") var gpt: GPTOptions

    func validate() throws {
        guard epochs > 0 else { throw ValidationError("--epochs must be positive, got \(epochs)") }
        if let batchSize, batchSize <= 0 { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        if let lr, !(lr.isFinite && lr > 0) { throw ValidationError("--lr must be a positive number, got \(lr)") }
        if let weightDecay, !(weightDecay.isFinite && weightDecay >= 0) { throw ValidationError("--weight-decay must be a number >= 0, got \(weightDecay)") }
        guard (idxImages == nil) == (idxLabels == nil) else { throw ValidationError("--idx-images and --idx-labels go together") }
        guard profileSteps > 0 else { throw ValidationError("--profile-steps must be positive, got \(profileSteps)") }
        if model == .gpt {
            guard idxImages == nil else { throw ValidationError("--model gpt trains on the bundled Shakespeare; --idx-images does not apply") }
            guard !distributed, profile == nil, plot == nil else {
                throw ValidationError("--distributed, --profile and --plot apply to --model mlp and cnn, not gpt")
            }
            try gpt.validate(learningRate: lr ?? GPTOptions.defaultLR)
        }
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
        if model == .gpt { return try runGPT(on: target) }
        let batchSize = batchSize ?? 64, lr = lr ?? 0.1
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
        let scaler = GradScaler(enabled: precision == .fp16)
        let sampler = group.map { DistributedSampler(train, group: $0, shuffle: true, seed: seed) }
        let loader = sampler.map { DataLoader(train, batchSize: batchSize, sampler: $0, device: target) }
            ?? DataLoader(train, batchSize: batchSize, shuffle: true, seed: seed, device: target)
        let scheduler = schedule == .cosine ? CosineAnnealingLR(opt, tMax: epochs) : nil
        let processes = group.map { ", \($0.worldSize) processes (batch \(batchSize) each)" } ?? ""
        if isMain { print("Training \(model.rawValue) (\(net.parameterCount) parameters) on \(name): \(train.count) train / \(test.count) test examples, device \(target) (\(target.info.name)), \(optimizer.rawValue) lr \(lr), batch \(batchSize)\(processes), \(precision.summary)") }
        let testData = test.to(target)
        let interactive = isatty(STDOUT_FILENO) != 0 && isMain
        var accuracy: Float = 0
        var curves = Curves()
        var profileResult: ProfileResult?
        let totalSteps = epochs * loader.count
        let warmup = min(Self.profileWarmup, max(0, totalSteps - profileSteps))
        for epoch in 1...epochs {
            sampler?.setEpoch(epoch - 1)
            net.train()
            let start = Date()
            var lossSum: Float = 0
            var seen = 0
            var step = 0
            func trainStep(_ x: Tensor, _ y: Tensor) {
                let input = model == .mlp ? x.reshape([x.shape[0], -1]) : x
                let loss = withPrecision { crossEntropy(ddp?(input) ?? net(input), y) }
                opt.zeroGrad()
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                let value = loss.item()
                lossSum += value * Float(x.shape[0])
                seen += x.shape[0]
                step += 1
                curves.steps.append((loss: Double(value), lr: Double(opt.lr)))
                if interactive {
                    let rate = Double(seen) / max(Date().timeIntervalSince(start), 1e-9)
                    print(progressLine(epoch: epoch, step: step, steps: loader.count, loss: value, rate: rate), terminator: "\r")
                    fflush(nil)
                }
            }
            let batches = loader.makeIterator()
            while let (x, y) = batches.next() {
                guard profile != nil, profileResult == nil, curves.steps.count >= warmup else {
                    trainStep(x, y)
                    continue
                }
                // Profile the next steps (running on into the rest of this epoch at most).
                var batch: (inputs: Tensor, labels: Tensor)? = (x, y)
                var profiled = 0
                profileResult = Profiler.profile(activities: [.cpu, .device], recordShapes: true) {
                    while let (bx, by) = batch {
                        Profiler.record("ProfilerStep") { trainStep(bx, by) }
                        profiled += 1
                        batch = profiled < profileSteps ? batches.next() : nil
                    }
                }
                if interactive { print(String(repeating: " ", count: 100), terminator: "\r") }
                if isMain { print("profiled \(profiled) training steps after \(warmup) warm-up steps:") }
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
            let (testLoss, testAccuracy) = evaluate(net, testData)
            accuracy = testAccuracy
            curves.epochs.append((trainLoss: Double(lossSum / Float(seen)), testLoss: Double(testLoss), accuracy: Double(accuracy)))
            if interactive { print(String(repeating: " ", count: 100), terminator: "\r") }
            if isMain { print(String(format: "epoch %3d  train loss %.4f  test loss %.4f  test accuracy %.2f%%  %.0f samples/s", epoch, lossSum / Float(seen), testLoss, accuracy * 100, Double(seen) / seconds)) }
            if epoch == 1, isMain, let profileResult, let profile {
                print(profileResult.table(sortBy: .selfHostTime, limit: 15))
                try profileResult.exportChromeTrace(to: URL(fileURLWithPath: profile))
                print("wrote the trace to \(profile) (open it in https://ui.perfetto.dev or chrome://tracing)")
            }
        }
        if let profile, profileResult == nil, isMain { print("--profile \(profile): no step was profiled") }
        if let plot, isMain {
            try curves.figure(title: "ember train: \(model.rawValue) on \(name), \(optimizer.rawValue), device \(target)")
                .svg().write(toFile: plot, atomically: true, encoding: .utf8)
            print("wrote the training curves to \(plot)")
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
        let lr = lr ?? 0.1, weightDecay = weightDecay ?? 0
        switch optimizer {
        case .sgd: return SGD(parameters, lr: lr, momentum: 0.9, weightDecay: weightDecay)
        case .adam: return Adam(parameters, lr: lr, weightDecay: weightDecay)
        case .adamw: return AdamW(parameters, lr: lr, weightDecay: weightDecay)
        case .rmsprop: return RMSprop(parameters, lr: lr, weightDecay: weightDecay)
        }
    }

    /// The test loss and accuracy.
    private func evaluate(_ net: Sequential, _ data: TensorDataset) -> (Float, Float) {
        net.eval()
        return Tensor.noGrad {
            let input = model == .mlp ? data.inputs.reshape([data.count, -1]) : data.inputs
            let logits = withPrecision { net(input) }
            return (crossEntropy(logits, data.labels).item(), (logits.argmax(dim: 1) == data.labels).float().mean().item())
        }
    }

    /// `body` (a forward pass and loss) under autocast to `--precision`'s type, or as it is for fp32.
    func withPrecision<T>(_ body: () -> T) -> T {
        guard let type = precision.autocastType else { return body() }
        return Tensor.autocast(type, body)
    }

    private func progressLine(epoch: Int, step: Int, steps: Int, loss: Float, rate: Double) -> String {
        let width = 30
        let filled = width * step / max(steps, 1)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return String(format: "epoch %3d [%@] %d/%d  loss %.4f  %.0f samples/s", epoch, bar, step, steps, loss, rate)
    }
}

/// What `ember train --plot` draws: the loss and learning rate of every step, and the
/// losses and accuracy of every epoch.
struct Curves {
    var steps: [(loss: Double, lr: Double)] = []
    var epochs: [(trainLoss: Double, testLoss: Double, accuracy: Double)] = []

    /// Four panels: training loss per step (raw and smoothed), loss per epoch (train and
    /// test), test accuracy per epoch and the learning rate per step.
    func figure(title: String) -> Figure {
        let colors = Plot.palette
        let raw = steps.enumerated().map { (x: Double($0.offset + 1), y: $0.element.loss) }
        let smoothed = zip(raw, Plot.smooth(raw.map(\.y))).map { (x: $0.x, y: $1) }
        let epochX = epochs.indices.map { Double($0 + 1) }
        return Figure(title: title, panels: [
            LineChart(title: "Training loss per step", xLabel: "step", yLabel: "cross-entropy loss", series: [
                Series("raw", points: raw, color: colors[0], width: 1, opacity: 0.35),
                Series("smoothed (EMA 0.9)", points: smoothed, color: colors[0], width: 2),
            ]),
            LineChart(title: "Loss per epoch", xLabel: "epoch", yLabel: "cross-entropy loss", series: [
                Series("train (epoch mean)", points: zip(epochX, epochs.map(\.trainLoss)).map { (x: $0, y: $1) }, color: colors[0], markers: true),
                Series("test", points: zip(epochX, epochs.map(\.testLoss)).map { (x: $0, y: $1) }, color: colors[1], markers: true),
            ]),
            LineChart(title: "Test accuracy per epoch", xLabel: "epoch", yLabel: "accuracy (%)", series: [
                Series("test accuracy", points: zip(epochX, epochs.map { $0.accuracy * 100 }).map { (x: $0, y: $1) }, color: colors[2], markers: true),
            ]),
            LineChart(title: "Learning rate", xLabel: "step", yLabel: "learning rate", series: [
                Series("lr", points: steps.enumerated().map { (x: Double($0.offset + 1), y: $0.element.lr) }, color: colors[3]),
            ]),
        ])
    }
}
