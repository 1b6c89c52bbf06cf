import Ember
import Foundation
import Testing

/// The `ember` tool rejects bad flags and environment with a short error and a non-zero
/// exit status, never a crash report.
@Suite("Command line")
struct CLITests {
    /// The `ember` binary built beside the test bundle.
    static var binary: URL? {
        var folder = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            if let candidate = folder?.appendingPathComponent("ember"), FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
            folder = folder?.deletingLastPathComponent()
        }
        return nil
    }

    /// Runs `ember` with `arguments` (through `launcher`, such as `taskset -c 0`, if given);
    /// returns the exit status, standard output and standard error.
    static func run(_ arguments: [String], environment: [String: String] = [:],
                    launcher: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        guard let binary else {
            Issue.record("the ember binary was not built beside the tests")
            return (0, "", "")
        }
        let process = Process()
        process.executableURL = launcher.first.map { URL(fileURLWithPath: $0) } ?? binary
        process.arguments = launcher.dropFirst() + (launcher.isEmpty ? [] : [binary.path]) + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe(), errors = Pipe()
        process.standardError = errors
        process.standardOutput = output
        try process.run()
        // Standard output is read on another thread, so neither pipe fills while the other is read.
        let printed = ReadBuffer(), reading = DispatchGroup()
        DispatchQueue.global().async(group: reading) { printed.data = output.fileHandleForReading.readDataToEndOfFile() }
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        reading.wait()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: printed.data, as: UTF8.self), text)
    }

    @Test("a process bound to one core (as mpirun binds a rank) has a CPU device of one compute unit")
    func cpuCoresFollowAffinity() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset"), "util-linux's taskset is missing")
        // The first device `ember devices` lists is the CPU.
        func cpuComputeUnits(_ launcher: [String]) throws -> String? {
            try CLITests.run(["devices"], launcher: launcher).stdout.split(separator: "\n")
                .first { $0.contains("compute units:") }.map { $0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces) }
        }
        #expect(try cpuComputeUnits(["/usr/bin/taskset", "-c", "0"]) == "1")
        #expect(try cpuComputeUnits([]) == String(Device.cpu.info.computeUnits))
    }

    @Test("bad flags and device names give a one-line error and a non-zero status", arguments: [
        (["train", "--epochs", "0"], "--epochs must be positive, got 0"),
        (["train", "--batch-size=-3"], "--batch-size must be positive, got -3"),
        (["train", "--lr", "nan"], "--lr must be a positive number, got nan"),
        (["train", "--device", "tpu"], "--device tpu: invalid device 'tpu'"),
        (["train", "--device", "opencl:99"], "--device opencl:99: OpenCL device index 99 out of range"),
        (["train", "--idx-images", "/nonexistent/images", "--idx-labels", "/nonexistent/labels"], "/nonexistent/images: cannot be read"),
        (["train", "--model", "transformer"], "transformer"),
        (["train", "--precision", "fp8"], "The value 'fp8' is invalid for '--precision <precision>'. Please provide one of 'fp32', 'bf16' or 'fp16'."),
    ])
    func badInput(_ arguments: [String], _ message: String) throws {
        let (status, _, stderr) = try CLITests.run(arguments)
        #expect(status != 0)
        #expect(stderr.contains(message), "\(stderr)")
        #expect(!stderr.contains("Fatal error") && !stderr.contains("Backtrace") && !stderr.contains("crashed"))
    }

    @Test("--precision bf16 and fp16 train, and the run header names the precision", arguments: [
        (["--epochs", "2", "--precision", "bf16"], "precision bf16 (autocast to bfloat16)"),
        (["--model", "cnn", "--epochs", "1", "--precision", "fp16"], "precision fp16 (autocast to float16, loss scaling)"),
        (["--model", "gpt", "--precision", "fp16", "--max-iters", "3", "--warmup-iters", "1", "--eval-interval", "3", "--eval-iters", "1",
          "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "2", "--save", "/dev/null"],
         "precision fp16 (autocast to float16, loss scaling)"),
    ])
    func precision(_ arguments: [String], _ header: String) throws {
        let (status, stdout, stderr) = try CLIGPTTests.run(["train", "--device", "cpu"] + arguments)
        #expect(status == 0, "\(stderr)")
        #expect(stdout.split(separator: "\n").first?.hasSuffix(header) == true, "\(stdout)")
        guard arguments.contains("gpt") else { return }
        #expect(stdout.contains("step     3: train loss"), "\(stdout)")
        #expect(!stdout.contains("nan"), "\(stdout)")
    }

    @Test("the MLP trained with --precision bf16 reaches the accuracy of fp32")
    func bf16Accuracy() throws {
        func accuracy(_ precision: String) throws -> Double? {
            let run = try CLIGPTTests.run(["train", "--device", "cpu", "--epochs", "2", "--precision", precision])
            let line = run.stdout.split(separator: "\n").first { $0.hasPrefix("final test accuracy: ") }
            return line.flatMap { Double($0.dropFirst("final test accuracy: ".count).dropLast()) }
        }
        let full = try #require(try accuracy("fp32")), mixed = try #require(try accuracy("bf16"))
        #expect(mixed >= full - 2 && mixed >= 85, "bf16 \(mixed)%, fp32 \(full)%")
    }

    @Test("a bad EMBER_DEVICE is a usage error, not a crash")
    func badEnvironment() throws {
        let (status, _, stderr) = try CLITests.run(["devices"], environment: ["EMBER_DEVICE": "quantum"])
        #expect(status != 0)
        #expect(stderr.contains("EMBER_DEVICE quantum: invalid device 'quantum'"), "\(stderr)")
        #expect(!stderr.contains("Fatal error"))
    }
}

/// Bytes one thread reads for another, which takes them after waiting for it.
private final class ReadBuffer: @unchecked Sendable {
    var data = Data()
}
