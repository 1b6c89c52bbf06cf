import Ember
import EmberDistributed
import Foundation

/// `ember-bench --distributed`, run under mpirun: per workload, the step time without
/// communication, with DDP's bucketed all-reduce overlapped with backward, and with one
/// all-reduce after backward (a single bucket); the communication not hidden behind
/// backward (the step's time beyond the step without communication, and the time backward
/// waited at its end) and the bytes all-reduced per step; and all-reduce times by size (the
/// α and β of docs/DISTRIBUTED.md's cost model). Only rank 0 prints.
enum DistributedBench {
    struct Workload {
        let name: String
        /// A model on the device and one training step of it (forward, backward, optimizer).
        let make: (Device) -> (model: Module, step: () -> Void)
    }

    /// A classifier of `input`-shaped batches over 10 classes, trained with SGD.
    static func classifier(_ make: @escaping () -> Sequential, input: [Int]) -> (Device) -> (model: Module, step: () -> Void) {
        { device in
            let model = make().to(device)
            let opt = SGD(model.parameters(), lr: 0.01, momentum: 0.9)
            let x = Tensor.randn(input, device: device)
            let y = Tensor.randint(0, 10, [input[0]], device: device)
            return (model, {
                let loss = crossEntropy(model(x), y)
                opt.zeroGrad()
                loss.backward()
                opt.step()
                _ = loss.item()
            })
        }
    }

    /// `ember-bench`'s GPT step (`BenchModels.gptTraining`) on one batch of 12 x 64 random
    /// tokens per rank.
    static func gpt(_ device: Device) -> (model: Module, step: () -> Void) {
        let (model, train) = BenchModels.gptTraining(device)
        let x = Tensor.randint(0, 65, [12, 64], device: device), y = Tensor.randint(0, 65, [12, 64], device: device)
        return (model, { _ = train(x, y).item() })
    }

    static let rounds = 4

    static func run(device: Device, steps: Int) throws {
        let group = try ProcessGroup.mpi()
        let say: (String) -> Void = { line in if group.isMain { print(line); fflush(nil) } }
        say("ember-bench --distributed: \(group.worldSize) ranks, device \(device) (\(device.info.name)), \(steps) timed steps per mode, medians of rank 0")
        let workloads = [
            Workload(name: "MLP 784-512-512-10, batch 128/rank", make: classifier(BenchModels.mlp784, input: [128, 784])),
            Workload(name: "CNN 28x28 (digits CNN), batch 64/rank", make: classifier(BenchModels.digitsCNN, input: [64, 1, 28, 28])),
            Workload(name: "GPT (nanoGPT shakespeare_char CPU config), batch 12x64/rank", make: gpt),
        ]
        for workload in workloads {
            Tensor.manualSeed(0)
            let (model, step) = workload.make(device)
            // The wrappers only register gradient hooks (their forward is the model's), so the
            // same step serves all three modes.
            // Rounds of the three modes in turn, so that a change in the machine's load between
            // modes does not pass for a difference between them. One wrapper at a time (a
            // wrapper's hooks go when it does).
            var local = Samples(), overlapped = Samples(), after = Samples()
            for _ in 0..<rounds {
                local.add(time(group, steps / rounds) { step(); return SyncStatistics() })
                withExtendedLifetime(DistributedDataParallel(model, group: group)) { ddp in
                    overlapped.add(time(group, steps / rounds) { step(); return ddp.lastSync })
                }
                withExtendedLifetime(DistributedDataParallel(model, group: group, bucketCapMB: 1e6, firstBucketMB: 1e6)) { ddp in
                    after.add(time(group, steps / rounds) { step(); return ddp.lastSync })
                }
            }
            let bytes = overlapped.last.bytes
            say("\(workload.name): \(model.parameterCount) parameters, \(String(format: "%.2f", Double(bytes) / 1_048_576)) MiB all-reduced per step")
            say(String(format: "  no communication               step %7.2f ms", local.step * 1e3))
            // Not hidden: what communication added to the step. The wait at the end of backward
            // misses the time an all-reduce takes the core from backward on a rank bound to
            // one core, where a woken communication thread preempts the backward thread.
            func line(_ label: String, _ s: Samples) -> String {
                let exposed = Swift.max(0, s.step - local.step)
                return String(format: "  %@ step %7.2f ms  not hidden %6.2f ms (%4.1f%% of the step; waited at the end %5.2f ms)  all-reduce calls %6.2f ms",
                              label, s.step * 1e3, exposed * 1e3, 100 * exposed / s.step, s.unhidden * 1e3, s.communication * 1e3)
            }
            say(line(String(format: "DDP bucketed (%d buckets)       ", overlapped.last.buckets), overlapped))
            say(line("one all-reduce after backward ", after))
            let exposedRatio = Swift.max(0, after.step - local.step) / Swift.max(overlapped.step - local.step, 1e-9)
            say(String(format: "  one all-reduce / bucketed: step time %.2fx, not hidden %.2fx; scaling efficiency (no communication / bucketed step) %.0f%%",
                       after.step / overlapped.step, exposedRatio, 100 * local.step / overlapped.step))
        }
        // All-reduce time by message size, for the cost model's latency and bandwidth.
        say("all-reduce (sum, float32) by size:")
        for bytes in [4, 4096, 65_536, 1 << 20, 4 << 20, 16 << 20] {
            let t = Tensor.zeros([bytes / 4], device: device)
            var samples: [Double] = []
            for _ in 0..<(bytes >= 4 << 20 ? 10 : 50) {
                group.barrier()
                let start = Date()
                group.allReduce(t)
                samples.append(Date().timeIntervalSince(start))
            }
            let median = samples.sorted()[samples.count / 2]
            say(String(format: "  %9d bytes  %8.1f us  %7.2f GB/s algorithm bandwidth", bytes, median * 1e6, Double(bytes) / median / 1e9))
        }
    }

    /// Per-step figures of one mode, gathered over rounds.
    struct Samples {
        var steps: [Double] = [], unhiddens: [Double] = [], communications: [Double] = []
        var last = SyncStatistics()
        mutating func add(_ other: Samples) {
            steps += other.steps; unhiddens += other.unhiddens; communications += other.communications; last = other.last
        }
        private func median(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.sorted()[v.count / 2] }
        /// Median step time of the slowest rank.
        var step: Double { median(steps) }
        /// Median time backward waited for communication at its end (see `time`).
        var unhidden: Double { median(unhiddens) }
        /// Median time of the all-reduce calls on the communication thread.
        var communication: Double { median(communications) }
    }

    /// `steps` steps after 2 warm-up steps; the ranks start each step together. A step's time
    /// is the slowest rank's. Its wait at the end of backward is that of the rank that
    /// finished backward last: every other rank's wait also holds the time it waited for that
    /// rank (load imbalance, not communication).
    static func time(_ group: ProcessGroup, _ steps: Int, _ body: () -> SyncStatistics) -> Samples {
        for _ in 0..<2 { _ = body() }
        var times: [Float] = [], unhidden: [Float] = [], communication: [Float] = []
        var last = SyncStatistics()
        for _ in 0..<steps {
            group.barrier()
            let start = Date()
            last = body()
            times.append(Float(Date().timeIntervalSince(start)))
            unhidden.append(Float(last.unhiddenSeconds))
            communication.append(Float(last.communicationSeconds))
        }
        let slowest = Tensor(shape: [steps], data: times)
        group.allReduce(slowest, op: .max)
        let waits = Tensor(shape: [steps], data: unhidden), calls = Tensor(shape: [steps], data: communication)
        group.allReduce(waits, op: .min)
        group.allReduce(calls, op: .min)
        var samples = Samples()
        samples.steps = slowest.toArray().map(Double.init)
        samples.unhiddens = waits.toArray().map(Double.init)
        samples.communications = calls.toArray().map(Double.init)
        samples.last = last
        return samples
    }
}
