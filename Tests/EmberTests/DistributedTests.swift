import Ember
import EmberDistributed
import Foundation
import Testing

/// Runs `EmberDistributedChecks` (Tests/EmberDistributedChecks) under `mpirun -np 2`: every
/// collective, DDP parity with one process, noSync, unused parameters and the sampler on
/// the CPU and OpenCL; and a failing rank, which must end the whole job with a message
/// naming the rank well within the timeout.
@Suite("Distributed (mpirun)")
struct DistributedTests {
    /// The checks binary built beside the test bundle.
    static var checks: URL? {
        var folder = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            if let candidate = folder?.appendingPathComponent("EmberDistributedChecks"), FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
            folder = folder?.deletingLastPathComponent()
        }
        return nil
    }

    /// Runs the checks in `mode` on `ranks` processes; returns the exit status, the output and
    /// whether the timeout killed mpirun. Root (CI containers) needs Open MPI's permission
    /// variables, and 2 ranks on a 2-core machine need `--oversubscribe`.
    static func mpirun(_ mode: String, ranks: Int = 2, timeout: TimeInterval = 60) throws -> (status: Int32, output: String, timedOut: Bool) {
        guard let checks else {
            Issue.record("EmberDistributedChecks was not built beside the tests")
            return (0, "", false)
        }
        return try mpirun(checks, [mode], ranks: ranks, timeout: timeout)
    }

    /// Runs `binary` with `arguments` under mpirun, as above.
    static func mpirun(_ binary: URL, _ arguments: [String], ranks: Int = 2, timeout: TimeInterval = 60) throws -> (status: Int32, output: String, timedOut: Bool) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["mpirun", "-np", "\(ranks)", "--oversubscribe", binary.path] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging([
            "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            // Containers forbid the cross-process memory attach of Open MPI's shared-memory transport.
            "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
            "SWIFT_BACKTRACE": "enable=no",
        ]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        // Read while it runs (a full pipe would block mpirun).
        let box = DataBox()
        let read = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            box.data = output.fileHandleForReading.readDataToEndOfFile()
            read.signal()
        }
        var timedOut = false
        while process.isRunning {
            if Date() > deadline { timedOut = true; process.terminate(); break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.waitUntilExit()
        read.wait()
        return (process.terminationStatus, String(decoding: box.data, as: UTF8.self), timedOut)
    }

    /// The output, written by the reading thread before it signals and read after the wait.
    private final class DataBox: @unchecked Sendable { var data = Data() }

    @Test("2 ranks: collectives, DDP parity with one process, noSync, unused parameters, sampler, checkpoint (CPU and OpenCL)")
    func checksPass() throws {
        let (status, output, timedOut) = try DistributedTests.mpirun("all")
        #expect(!timedOut, "mpirun hung: \(output)")
        #expect(status == 0, "\(output)")
        #expect(output.contains("distributed checks passed on 2 ranks"), "\(output)")
    }

    @Test("a rank stopping on a programmer error ends every rank, naming the rank")
    func failingRank() throws {
        let (status, output, timedOut) = try DistributedTests.mpirun("fail")
        #expect(!timedOut, "mpirun hung instead of ending the job: \(output)")
        #expect(status != 0)
        #expect(output.contains("matmul"), "\(output)")
        #expect(output.contains("process rank 1"), "\(output)")
        #expect(!output.contains("was not stopped"), "\(output)")
    }

    @Test("mpirun -np 2 ember train --distributed: rank 0 alone prints and saves; the checkpoint loads")
    func trainDistributed() throws {
        guard let ember = CLITests.binary else {
            Issue.record("the ember binary was not built beside the tests")
            return
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ember-ddp-\(getpid()).safetensors")
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, output, timedOut) = try DistributedTests.mpirun(ember, ["train", "--distributed", "--device", "cpu", "--epochs", "2", "--save", file.path])
        #expect(!timedOut && status == 0, "\(output)")
        #expect(output.components(separatedBy: "Training mlp").count == 2, "\(output)")
        #expect(output.contains("2 processes (batch 64 each)"), "\(output)")
        #expect(output.components(separatedBy: "final test accuracy").count == 2, "\(output)")
        let model = Sequential(Linear(64, 128), ReLU(), Linear(128, 10))
        try model.load(from: file)
    }

    @Test("ProcessGroup.abort ends every rank with a message naming the rank")
    func abortingRank() throws {
        let (status, output, timedOut) = try DistributedTests.mpirun("abort")
        #expect(!timedOut, "mpirun hung instead of ending the job: \(output)")
        #expect(status != 0)
        #expect(output.contains("EmberDistributed: rank 1 of 2 failed: the data file is missing"), "\(output)")
        #expect(!output.contains("was not stopped"), "\(output)")
    }
}

/// The single-process parts: a group of one without a launcher, the sampler's partitioning,
/// and the autograd hook DDP is built on.
@Suite("Distributed (one process)")
struct DistributedLocalTests {
    @Test("the sampler pads like PyTorch and splits by stride")
    func samplerPartition() {
        let data = TensorDataset(inputs: Tensor.zeros([10, 1]), labels: Tensor.zeros([10]))
        // PyTorch: DistributedSampler(range(10), num_replicas=4, rank=r, shuffle=False) gives
        // [0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1] (padded with the first two indices).
        let shares = (0..<4).map { DistributedSampler(data, rank: $0, worldSize: 4, shuffle: false).indices() }
        #expect(shares == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]])
        // drop_last=True: [0, 4], [1, 5], [2, 6], [3, 7].
        #expect((0..<4).map { DistributedSampler(data, rank: $0, worldSize: 4, shuffle: false, dropLast: true).indices() } == [[0, 4], [1, 5], [2, 6], [3, 7]])
        let shuffled = DistributedSampler(data, rank: 0, worldSize: 1, seed: 9)
        let first = shuffled.indices()
        shuffled.setEpoch(1)
        #expect(Set(first) == Set(0..<10) && Set(shuffled.indices()) == Set(0..<10) && first != shuffled.indices())
        #expect(DataLoader(data, batchSize: 2, sampler: DistributedSampler(data, rank: 3, worldSize: 4, shuffle: false)).count == 2)
    }

    @Test("a post-accumulate hook runs once per backward with the summed gradient, before the pass ends")
    func gradientHook() {
        let w = Tensor(shape: [2], data: [1, 2], requiresGrad: true)
        var seen: [[Float]] = []
        var finished = 0
        let handle = w.registerPostAccumulateGradHook { t, pass in
            seen.append(t.grad!.toArray())
            pass.whenFinished { finished += 1 }
        }
        // w is used twice: the hook sees 3 * w + w * w's gradient, 3 + 2w, once.
        ((w * 3).sum() + (w * w).sum()).backward()
        #expect(seen == [[5, 7]] && finished == 1)
        _ = Tensor.grad(of: (w * w).sum(), wrt: [w])  // no .grad accumulated: no hook
        #expect(seen.count == 1)
        handle.remove()
        (w * 2).sum().backward()
        #expect(seen.count == 1)
    }

    @Test("a group of one needs no launcher; collectives are the identity (mean included)")
    func groupOfOne() throws {
        let group = try ProcessGroup.mpi()
        #expect(group.rank == 0 && group.worldSize == 1)
        let t = Tensor(shape: [2], data: [1.5, -2])
        group.allReduce(t, op: .mean)
        group.broadcast(t)
        group.barrier()
        #expect(t.toArray() == [1.5, -2])
        #expect(group.allGather(t).map { $0.toArray() } == [[1.5, -2]])
        #expect(group.reduceScatter(t).toArray() == [1.5, -2])
    }

    @Test("without findUnusedParameters, a parameter with no gradient stops with its name")
    func unusedParameterMessage() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let model = Sequential(Linear(2, 2), Linear(2, 2))
            let ddp = DistributedDataParallel(model, group: try! ProcessGroup.mpi())
            let first = model.children()[0] as! Linear
            first(Tensor.ones([1, 2])).sum().backward()
            _ = ddp
        }.map { result in
            let text = stderrText(result)
            #expect(text.contains("parameters received no gradient in this backward pass: 1.weight, 1.bias"), "\(text)")
        }
    }
}
