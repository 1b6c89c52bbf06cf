import Foundation
import Testing

/// `ember train --model gpt` and `ember sample` from the built binary.
@Suite("Command line: GPT")
struct CLIGPTTests {
    /// Runs `ember` with `arguments`; returns the exit status, standard output and standard error.
    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        guard let binary = CLITests.binary else {
            Issue.record("the ember binary was not built beside the tests")
            return (0, "", "")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, out, err)
    }

    @Test("bad GPT flags give a one-line error", arguments: [
        (["train", "--model", "gpt", "--n-embd", "30"], "--n-embd 30 must be a multiple of --n-head 4"),
        (["train", "--model", "gpt", "--max-iters", "50"], "--lr-decay-iters (50) must exceed --warmup-iters (100)"),
        (["train", "--model", "gpt", "--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
        (["train", "--model", "gpt", "--min-lr", "0.1"], "--min-lr must be a number in [0, --lr], got 0.1"),
        (["sample", "--checkpoint", "/nonexistent/gpt.safetensors"], "/nonexistent/gpt.safetensors: cannot be read"),
        (["sample", "--checkpoint", "x", "--temperature", "0"], "--temperature must be a positive number, got 0.0"),
    ])
    func badInput(_ arguments: [String], _ message: String) throws {
        let (status, _, stderr) = try CLIGPTTests.run(arguments)
        #expect(status != 0)
        #expect(stderr.contains(message), "\(stderr)")
        #expect(!stderr.contains("Fatal error") && !stderr.contains("Backtrace"))
    }

    @Test("train --model gpt saves a checkpoint that sample continues a prompt from")
    func trainAndSample() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ember-cli-gpt-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let train = try CLIGPTTests.run(["train", "--model", "gpt", "--device", "cpu", "--max-iters", "3", "--warmup-iters", "1",
                                         "--eval-interval", "2", "--eval-iters", "1", "--n-layer", "1", "--n-head", "2",
                                         "--n-embd", "16", "--block-size", "8", "--batch-size", "2", "--save", path])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("step     0: train loss") && train.stdout.contains("step     2:") && train.stdout.contains("step     3:"))
        #expect(train.stdout.contains("saved \(path)"))
        let sample = try CLIGPTTests.run(["sample", "--checkpoint", path, "--prompt", "ROMEO:", "--tokens", "20", "--device", "cpu"])
        #expect(sample.status == 0, "\(sample.stderr)")
        #expect(sample.stdout.hasPrefix("ROMEO:") && sample.stdout.unicodeScalars.count == "ROMEO:".count + 20 + 1)
        let unknown = try CLIGPTTests.run(["sample", "--checkpoint", path, "--prompt", "Ωmega"])
        #expect(unknown.status != 0 && unknown.stderr.contains("--prompt has characters outside the model's vocabulary: '\\u{03A9}'"), "\(unknown.stderr)")
    }
}
