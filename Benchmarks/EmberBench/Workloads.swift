import Ember
import Foundation

/// The workloads of `ember-bench`, shaped like the peers' (../shared/peers/bench_peers.py).
/// The models several workloads train.
enum BenchModels {
    /// The MLP of the "MLP 784-512-512-10" rows.
    static func mlp784() -> Sequential { Sequential(Linear(784, 512), ReLU(), Linear(512, 512), ReLU(), Linear(512, 10)) }
    /// The CNN of the "CNN step (64x1x28x28)" rows: two conv-ReLU-pool stages and a linear layer.
    static func digitsCNN() -> Sequential {
        Sequential(Conv2d(1, 16, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2),
                   Conv2d(16, 32, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2),
                   Flatten(), Linear(32 * 7 * 7, 10))
    }
}

struct Workloads {
    let timer: Timer
    let quick: Bool
    let record: (BenchResult) -> Void

    /// Records a timed workload with a derived figure computed from the median seconds.
    func report(_ workload: String, _ device: Device, _ timing: (first: Double, times: [Double]), unit: String,
                higherIsBetter: Bool = true, note: String? = nil, derive: (Double) -> Double) {
        let median = timing.times.median
        record(BenchResult(workload: workload, device: device.description, firstCall: timing.first, median: median,
                           min: timing.times.first ?? .nan, max: timing.times.last ?? .nan, repetitions: timing.times.count,
                           value: derive(median), unit: unit, higherIsBetter: higherIsBetter, note: note))
        if let profiles = timer.profiles, let profile = profiles.last {
            print(profiles.table(profile))
            profiles.last = nil
        }
    }

    func sgemm(_ device: Device, filter: (String) -> Bool) {
        // On the CPU every size of Ember's GEMM is timed before any direct call: after each
        // threaded call OpenBLAS's idle threads spin for a while, and Ember's own threads
        // (which run its GEMM blocks) would be timed competing with them. On OpenCL the two
        // take turns, repetition by repetition.
        var directs: [() -> Void] = []
        for n in quick ? [128, 512] : [128, 256, 512, 1024, 2048] {
            let name = "sgemm N=\(n)"
            guard filter(name) else { continue }
            let flops = 2 * Double(n * n * n)
            let a = Tensor.randn([n, n], device: device), b = Tensor.randn([n, n], device: device)
            let implementation = device.gemmChoice.map { "\($0.implementation == .ember ? "Ember kernel" : "CLBlast"), \($0.source)" } ?? "OpenBLAS"
            let ember = { _ = a.matmul(b) }
            let (direct, library) = device.kind == .cpu ? (Baseline.openBLAS(n: n), "cblas_sgemm")
                                                        : (Baseline.clblast(n: n, deviceIndex: device.index), "CLBlastSgemm")
            guard let direct else {
                report(name, device, timer.time(on: device, ember), unit: "GFLOP/s", note: implementation) { flops / $0 / 1e9 }
                continue
            }
            if device.kind == .cpu {
                report(name, device, timer.time(on: device, ember), unit: "GFLOP/s", note: implementation) { flops / $0 / 1e9 }
                directs.append {
                    report("\(name) direct \(library)", device, timer.time(on: device, direct.run), unit: "GFLOP/s") { flops / $0 / 1e9 }
                }
                continue
            }
            let timings = timer.timeAlternating(on: device, ember, direct.run)
            report(name, device, timings.a, unit: "GFLOP/s", note: implementation) { flops / $0 / 1e9 }
            report("\(name) direct \(library)", device, timings.b, unit: "GFLOP/s") { flops / $0 / 1e9 }
        }
        for run in directs { run() }
    }

    /// Causal self-attention forward + backward at GPT shapes (B 12, H 4, head dim 32):
    /// Ember's fused `scaledDotProductAttention` against the same computation composed from
    /// matmul, maskedFill, softmax and matmul, taking turns repetition by repetition.
    func attention(_ device: Device, filter: (String) -> Bool) {
        for t in [64, 256] {
            let name = "attention forward+backward T=\(t)"
            guard filter(name) else { continue }
            let shape = [12, 4, t, 32]
            let q = Tensor.randn(shape, device: device, requiresGrad: true)
            let k = Tensor.randn(shape, device: device, requiresGrad: true)
            let v = Tensor.randn(shape, device: device, requiresGrad: true)
            let g = Tensor.randn(shape, device: device)
            let future = Tensor.ones([t, t], device: device).triu(diagonal: 1).bool()
            try? device.synchronize()
            // Two GEMMs forward, four backward: 2 * B * H * T * T * 32 multiply-adds each.
            let flops = 6 * 2 * Double(12 * 4 * t * t * 32)
            let fused = {
                scaledDotProductAttention(query: q, key: k, value: v, isCausal: true).backward(gradient: g)
                for x in [q, k, v] { x.grad = nil }
            }
            let composed = {
                let scores = q.matmul(k.transpose(-2, -1)) * (1 / Float(32).squareRoot())
                scores.maskedFill(future, -Float.infinity).softmax(dim: -1).matmul(v).backward(gradient: g)
                for x in [q, k, v] { x.grad = nil }
            }
            let timings = timer.timeAlternating(on: device, fused, composed)
            report("\(name) fused", device, timings.a, unit: "GFLOP/s") { flops / $0 / 1e9 }
            report("\(name) composed", device, timings.b, unit: "GFLOP/s") { flops / $0 / 1e9 }
        }
    }

    func elementwise(_ device: Device, filter: (String) -> Bool) {
        let n = 16 * 1024 * 1024
        // Inputs are made (and synchronised) before any timing, only when a workload needs them.
        lazy var inputs: (Tensor, Tensor) = {
            let pair = (Tensor.randn([n], device: device), Tensor.randn([n], device: device))
            try? device.synchronize()
            return pair
        }()
        let megabytes = Double(n * 4)
        if filter("add 16M") {
            let (a, b) = inputs
            report("add 16M", device, timer.time(on: device) { _ = a + b }, unit: "GB/s") { 3 * megabytes / $0 / 1e9 }
        }
        if filter("relu 16M") {
            let a = inputs.0
            report("relu 16M", device, timer.time(on: device) { _ = a.relu() }, unit: "GB/s") { 2 * megabytes / $0 / 1e9 }
        }
        if filter("sum 16M") {
            let a = inputs.0
            report("sum 16M", device, timer.time(on: device) { _ = a.sum() }, unit: "GB/s") { megabytes / $0 / 1e9 }
        }
        if filter("softmax 4096x1024") {
            let x = Tensor.randn([4096, 1024], device: device)
            report("softmax 4096x1024", device, timer.time(on: device) { _ = x.softmax(dim: 1) }, unit: "ms", higherIsBetter: false) { $0 * 1e3 }
        }
    }

    func convolution(_ device: Device, filter: (String) -> Bool) {
        for (cin, cout) in [(1, 16), (16, 32)] {
            let x = Tensor.randn([64, cin, 28, 28], device: device, requiresGrad: true)
            let w = Tensor.randn([cout, cin, 3, 3], device: device, requiresGrad: true)
            let flops = 2 * Double(64 * cout * 28 * 28 * cin * 9)
            let forward = "conv2d \(cin)->\(cout) forward"
            if filter(forward) {
                report(forward, device, timer.time(on: device) { _ = Tensor.noGrad { x.conv2d(weight: w, padding: 1) } }, unit: "GFLOP/s") { flops / $0 / 1e9 }
            }
            let backward = "conv2d \(cin)->\(cout) forward+backward"
            if filter(backward) {
                report(backward, device, timer.time(on: device) {
                    x.zeroGrad(); w.zeroGrad()
                    x.conv2d(weight: w, padding: 1).sum().backward()
                }, unit: "GFLOP/s") { 3 * flops / $0 / 1e9 }
            }
        }
    }

    /// One SGD-momentum training step of `model` on a batch.
    func trainingStep(_ model: Sequential, _ optimizer: Optimizer, _ x: Tensor, _ y: Tensor) {
        let loss = crossEntropy(model(x), y)
        optimizer.zeroGrad()
        loss.backward()
        optimizer.step()
    }

    func training(_ device: Device, filter: (String) -> Bool) throws {
        if filter("first training step") {
            // The first step of a fresh model in this process: every kernel it needs is compiled
            // here (from an empty cache with --cold-cache).
            Tensor.manualSeed(0)
            let model = BenchModels.mlp784().to(device)
            let opt = SGD(model.parameters(), lr: 0.01, momentum: 0.9)
            let x = Tensor.randn([128, 784], device: device), y = Tensor.randint(0, 10, [128], device: device)
            try? device.synchronize()  // the data and the initial weights are ready before the clock starts
            let start = Timer.now()
            trainingStep(model, opt, x, y)
            try? device.synchronize()
            let seconds = Timer.now() - start
            report("first training step (MLP 784-512-512-10)", device, (seconds, [seconds]), unit: "s", higherIsBetter: false) { $0 }
        }
        if filter("digits MLP 64-128-10") {
            Tensor.manualSeed(0)
            let digits = try Digits.load()
            let model = Sequential(Linear(64, 128), ReLU(), Linear(128, 10)).to(device)
            let opt = SGD(model.parameters(), lr: 0.1, momentum: 0.9)
            let loader = DataLoader(digits.train, batchSize: 64, shuffle: true, seed: 0, dropLast: true, device: device)
            let samples = Double(loader.count * 64)
            device.resetPeakMemory()
            let timing = timer.time(on: device) { for (x, y) in loader { trainingStep(model, opt, x, y) } }
            report("digits MLP 64-128-10 (epoch)", device, timing, unit: "samples/s", note: memoryNote(device)) { samples / $0 }
        }
        if filter("MLP 784-512-512-10") {
            Tensor.manualSeed(0)
            let model = BenchModels.mlp784().to(device)
            let opt = SGD(model.parameters(), lr: 0.01, momentum: 0.9)
            let x = Tensor.randn([128, 784], device: device), y = Tensor.randint(0, 10, [128], device: device)
            device.resetPeakMemory()
            let timing = timer.time(on: device) { trainingStep(model, opt, x, y) }
            report("MLP 784-512-512-10 step", device, timing, unit: "ms/step", higherIsBetter: false, note: memoryNote(device)) { $0 * 1e3 }
        }
        if filter("CNN") {
            Tensor.manualSeed(0)
            let model = BenchModels.digitsCNN().to(device)
            let opt = SGD(model.parameters(), lr: 0.01, momentum: 0.9)
            let x = Tensor.randn([64, 1, 28, 28], device: device), y = Tensor.randint(0, 10, [64], device: device)
            device.resetPeakMemory()
            let timing = timer.time(on: device) { trainingStep(model, opt, x, y) }
            report("CNN step (64x1x28x28)", device, timing, unit: "ms/step", higherIsBetter: false, note: memoryNote(device)) { $0 * 1e3 }
        }
    }

    /// An AdamW step over 1M parameters (one [1024, 1024] weight), fused (one kernel per
    /// parameter) against the composed update that `EMBER_FUSION=0` runs, taking turns
    /// repetition by repetition; the note gives each path's kernel launches and bytes per step.
    func optimizerStep(_ device: Device, filter: (String) -> Bool) {
        let name = "AdamW step 1M parameters"
        guard filter(name) else { return }
        let weight = Tensor.randn([1024, 1024], device: device, requiresGrad: true)
        weight.grad = Tensor.randn([1024, 1024], device: device)
        let fused = AdamW([weight], lr: 1e-3), eager = AdamW([weight], lr: 1e-3)
        fused.fused = true
        eager.fused = false
        device.waitForKernelBuilds()  // OpenCL builds the fused update in the background
        /// Launches and megabytes of one step of `optimizer`.
        func traffic(_ optimizer: Optimizer) -> String {
            optimizer.step()
            try? device.synchronize()
            let before = device.stats
            optimizer.step()
            try? device.synchronize()
            let after = device.stats
            return String(format: "%d launches, %.0f MB per step", after.kernelLaunches - before.kernelLaunches,
                          Double(after.bytesMoved - before.bytesMoved) / 1e6)
        }
        let notes = (traffic(fused), traffic(eager))
        let timings = timer.timeAlternating(on: device, { fused.step() }, { eager.step() })
        report("\(name) fused", device, timings.a, unit: "ms/step", higherIsBetter: false, note: notes.0) { $0 * 1e3 }
        report("\(name) eager", device, timings.b, unit: "ms/step", higherIsBetter: false, note: notes.1) { $0 * 1e3 }
    }

    /// Peak resident memory of the process and peak live device bytes since the last reset.
    func memoryNote(_ device: Device) -> String {
        String(format: "peak RSS %.0f MiB, peak live %@ %.1f MiB", peakResidentMiB(), device.description,
               Double(device.stats.peakLiveBytes) / 1_048_576)
    }

    /// Writing and reading a 256 MiB safetensors checkpoint (host side: the tensors load onto
    /// the CPU): GB/s, and the peak resident memory above the process's baseline as a multiple
    /// of the file size.
    func checkpoint(filter: (String) -> Bool) throws {
        guard filter("safetensors") else { return }
        let bytes = 256 << 20
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ember-bench-\(getpid()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let tensors: StateDict = ["a": Tensor.randn([bytes / 8]), "b": Tensor.randn([bytes / 16]), "c": Tensor.randn([bytes / 16])]
        // Freed buffers wait in the CPU's pool and would serve the next read without new
        // memory, so the pool is emptied before each measured call.
        func measured(_ body: () -> Void) -> Int {
            Device.cpu.emptyCache()
            return peakBytesAbove(body)
        }
        var writePeak = 0, readPeak = 0
        let write = timer.time(on: .cpu) { writePeak = max(writePeak, measured { try? SafeTensors.write(tensors, to: url) }) }
        report("safetensors write 256 MiB", .cpu, write, unit: "GB/s",
               note: String(format: "peak %.2fx the file above the baseline", Double(writePeak) / Double(bytes))) { Double(bytes) / $0 / 1e9 }
        let read = timer.time(on: .cpu) { readPeak = max(readPeak, measured { _ = try? SafeTensors.read(from: url) }) }
        report("safetensors read 256 MiB", .cpu, read, unit: "GB/s",
               note: String(format: "peak %.2fx the file above the baseline", Double(readPeak) / Double(bytes))) { Double(bytes) / $0 / 1e9 }
    }

    /// Parsing a 64 MiB numeric CSV file (the reader's one pass over its bytes): MB/s.
    func csv(filter: (String) -> Bool) throws {
        guard filter("csv") else { return }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ember-bench-\(getpid()).csv")
        defer { try? FileManager.default.removeItem(at: url) }
        var text = ""
        var row = 0
        while text.utf8.count < 64 << 20 {
            text += (0..<31).map { String(format: "%.4f", Float(($0 * 7919 + row * 104_729) % 10_000) / 997) }.joined(separator: ",")
            text += ",\(row % 10)\n"
            row += 1
        }
        try text.write(to: url, atomically: false, encoding: .utf8)
        let bytes = Double(text.utf8.count)
        let timing = timer.time(on: .cpu) { _ = try? CSVDataset(url: url, labelColumn: 31) }
        report("csv read 64 MiB", .cpu, timing, unit: "MB/s", note: "\(row) rows of 32 fields") { bytes / $0 / 1e6 }
    }

    func dispatch(_ device: Device, filter: (String) -> Bool) {
        let ops = 1000
        if filter("dispatch forward") {
            let x = Tensor.ones([4], device: device)
            report("dispatch forward (1000 ops, 4 elements)", device, timer.time(on: device) {
                var y = x
                for _ in 0..<ops { y = y * 1.0001 }
            }, unit: "µs/op", higherIsBetter: false) { $0 / Double(ops) * 1e6 }
        }
        if filter("dispatch backward") {
            let x = Tensor.ones([4], device: device, requiresGrad: true)
            report("dispatch forward+backward (1000 ops, 4 elements)", device, timer.time(on: device) {
                var y = x
                for _ in 0..<ops { y = y * 1.0001 }
                y.sum().backward()
                x.zeroGrad()
            }, unit: "µs/op", higherIsBetter: false) { $0 / Double(ops) * 1e6 }
        }
    }
}
