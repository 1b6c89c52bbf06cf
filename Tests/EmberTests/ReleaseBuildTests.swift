import Foundation
import Testing

/// Programmer errors print their message in an optimized build too: the `EmberMisuse` tool,
/// built with `-c release` (`make test` builds it before the tests), makes each mistake and
/// standard error must name the op and the shapes or values.
@Suite("Messages in optimized builds")
struct ReleaseBuildTests {
    /// The release build of `EmberMisuse` beside the debug folder that holds the tests.
    static var binary: URL? {
        var folder = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            guard let current = folder else { break }
            let candidate = current.deletingLastPathComponent().appendingPathComponent("release/EmberMisuse")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            folder = current.deletingLastPathComponent()
        }
        return nil
    }

    /// Runs the tool; returns its exit status, standard output and standard error.
    static func run(_ argument: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let binary = try #require(Self.binary, "EmberMisuse is not built: run `swift build -c release --product EmberMisuse` (make test does)")
        let process = Process()
        process.executableURL = binary
        process.arguments = [argument]
        // No symbolicated backtrace: it takes a second per crash and the message comes first.
        process.environment = ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { $1 }
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, out, err)
    }

    @Test("the tool is an optimized build, in which precondition drops its message")
    func optimized() throws {
        #expect(try Self.run("--configuration").stdout == "release\n")
        let control = try Self.run("precondition-control")
        #expect(control.status != 0)
        #expect(!control.stderr.contains("control message"), "this build keeps precondition messages, so it proves nothing")
    }

    @Test("each mistake stops with the op and the shapes or values", arguments: [
        ("matmul", "matmul: [2, 3] x [4, 5]: inner dimensions 3 and 4 differ"),
        ("linear", "linear: input of shape [3, 5] does not end in 4 features (weight [2, 4])"),
        ("backward-non-scalar", "backward: gradient can be implicit only for one-element tensors, got shape [2, 2]"),
        ("item-non-scalar", "item(): tensor of shape [3] has 3 elements, expected 1"),
        ("index-out-of-range", "index 5 is out of bounds for dimension 0 with size 3"),
        ("reshape", "reshape: shape [4, 2] is invalid for input of shape [2, 3] (6 elements)"),
        ("softmax-dim", "softmax: dimension 2 out of range for a tensor of rank 2"),
        ("float-labels", "crossEntropy: float32 target of shape [2] for input of shape [2, 3]: class indices must be int64 or int32, class probabilities must have the input's shape"),
        ("float-indices", "indexSelect: index must be an integer (int64 or int32) tensor, got float32"),
        ("ragged", "Tensor: ragged nested array: dimension 1 has lengths 2 and 1"),
        ("int-requires-grad", "requiresGrad: only floating-point tensors can require gradients, not int32"),
        ("in-place-leaf", "+=: in-place update of a tensor that requires grad"),
        ("nan-lr", "SGD: lr must be a finite number >= 0, got nan"),
        ("batchnorm-batch-of-one", "batchNorm: expected more than 1 value per channel when training, got input [1, 3]"),
        ("broadcast", "add: shapes [2, 3] and [4] cannot be broadcast together"),
        ("cat", "cat: shapes [2, 3] and [2, 4] differ outside dimension 0"),
        ("one-hot-range", "oneHot: class values must be smaller than numClasses 3, got 3"),
        ("conv1d-channels", "conv1d: given groups=1, weight of size [4, 3, 3], expected input [2, 5, 9] to have 3 channels, but got 5 channels instead"),
        ("repeat-dims", "repeat: number of repeat dims 1 can not be smaller than number of tensor dims 2 (shape [2, 3])"),
        ("conv-transpose-channels", "convTranspose2d: weight of size [3, 4, 2, 2] expects 3 input channels, but input [1, 2, 5, 5] has 2"),
        ("rmsnorm-shape", "rmsNorm: input of shape [2, 6] does not end in normalizedShape [8]"),
        ("bool-sub", "sub: subtraction, the `-` operator, with two bool tensors is not supported"),
        ("conv2d-channels", "conv2d: given groups=1, weight of size [4, 3, 3, 3], expected input [1, 2, 8, 8] to have 3 channels, but got 2 channels instead"),
    ])
    func message(_ mistake: String, _ expected: String) throws {
        let result = try Self.run(mistake)
        #expect(result.status != 0, "\(mistake) did not stop: \(result.stdout)")
        #expect(result.stderr.contains(expected), "\(mistake): standard error was \(result.stderr)")
    }
}
