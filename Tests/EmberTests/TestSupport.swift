import CPUKernels
import Foundation
import Testing
@testable import Ember

/// Devices every op is tested on: the CPU and every OpenCL device (`Device.available`).
enum TestDevices {
    /// Every device, the CPU first, with the kernels OpenCL compiles in the background built
    /// (tests compare the fused paths and count their launches).
    static let all: [Device] = {
        // The suite meets hundreds of fused patterns a few times each: building them all would
        // take minutes, so only the tests of fused kernels queue theirs (`queuesBuilds`), and
        // build them many to a program (a third of the cost of a program each).
        LazyFusion.queuesRepeatedPatterns = false
        // Lazy graphs on PoCL too (off there by default), so every test runs through them.
        Fusion.elementwiseOnCPUDevices = true
        LazyFusion.maxBatch = 32
        let devices = Device.available
        for d in devices { (d.backend as? OpenCLBackend)?.finishBackgroundBuilds() }
        return devices
    }()
    /// The devices compared against the CPU in parity checks: every OpenCL device.
    static var accelerators: [Device] { Array(all.dropFirst()) }
    /// The first OpenCL device, for tests of one device's behaviour.
    static var openCL: Device? { accelerators.first }
}

/// The first OpenCL device with its kernels built as for a GPU (`EMBER_OPENCL_KERNELS=gpu`:
/// one element per work-item, interleaved reductions), so exit tests can run those variants on
/// a CPU OpenCL device; nil without OpenCL. Call first in an exit test's process.
func gpuKernelVariantDevice() -> Device? {
    setenv("EMBER_OPENCL_KERNELS", "gpu", 1)
    guard let gpu = TestDevices.openCL else { return nil }
    precondition((gpu.backend as! OpenCLBackend).isCPU == false, "EMBER_OPENCL_KERNELS=gpu was not applied")
    return gpu
}

/// Every instruction set of the C kernels up to `best` (tests run each path the CPU has).
func isas(upTo best: ember_isa) -> [ember_isa] { (0...best.rawValue).map { ember_isa(rawValue: $0) } }

/// A deterministic host-side random source for test inputs.
struct TestRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform Float in `range`.
    mutating func float(_ range: ClosedRange<Float> = -1...1) -> Float {
        let u = Float(next() >> 40) * 0x1p-24
        return range.lowerBound + (range.upperBound - range.lowerBound) * u
    }

    /// `count` uniform Floats in `range`.
    mutating func floats(_ count: Int, _ range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in float(range) }
    }
}

/// Largest absolute difference allowed: `atol + rtol * |expected|`, elementwise.
func isClose(_ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-6) -> Bool {
    guard actual.count == expected.count else { return false }
    for (a, e) in zip(actual, expected) {
        if a.isNaN || e.isNaN { if a.isNaN != e.isNaN { return false }; continue }
        if a.isInfinite || e.isInfinite { if a != e { return false }; continue }
        if Swift.abs(a - e) > atol + rtol * Swift.abs(e) { return false }
    }
    return true
}

/// Names the first mismatching element when the arrays differ, else nil.
func mismatch(_ actual: [Float], _ expected: [Float], rtol: Float, atol: Float, _ context: String) -> String? {
    if actual.count != expected.count { return "\(context): \(actual.count) values, expected \(expected.count)" }
    guard let i = zip(actual, expected).enumerated().first(where: { !isClose([$0.element.0], [$0.element.1], rtol: rtol, atol: atol) })?.offset else {
        return nil
    }
    return "\(context): element \(i) is \(actual[i]), expected \(expected[i]) (rtol \(rtol), atol \(atol)); \(actual.count) elements"
}

/// Records an issue naming the first mismatching element when the arrays differ.
func expectClose(_ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-6,
                 _ context: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    if let message = mismatch(actual, expected, rtol: rtol, atol: atol, context) {
        Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
    }
}

/// Checks the analytic gradients of `function` at `inputs` against central finite
/// differences on `device`.
///
/// The scalar that is differentiated is `sum(w * function(x))` with fixed random weights
/// `w`, accumulated on the host in Double so only the op's own Float32 rounding enters the
/// differences. With step `eps` the truncation error is O(eps²·f''') and the rounding error
/// O(ulp(f)/eps); for eps = 1e-2 and values of order one both stay below ~1e-3 relative,
/// hence the default tolerances.
func gradCheck(_ name: String, device: Device, inputs: [[Float]], shapes: [[Int]], eps: Float = 1e-2,
               rtol: Float = 2e-2, atol: Float = 2e-3, sourceLocation: SourceLocation = #_sourceLocation,
               _ function: ([Tensor]) -> Tensor) {
    let tensors = zip(inputs, shapes).map { Tensor(shape: $1, data: $0, device: device, requiresGrad: true) }
    let output = function(tensors)
    var random = TestRandom(seed: 99)
    let weights = random.floats(output.count, 0.5...1.5)
    output.backward(gradient: Tensor(shape: output.shape, data: weights, device: device))
    func objective(_ values: [[Float]]) -> Double {
        // Not under noGrad: a function may itself take gradients (a gradient penalty).
        let y = function(zip(values, shapes).map { Tensor(shape: $1, data: $0, device: device) })
        return zip(y.toArray(), weights).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }
    for (k, tensor) in tensors.enumerated() {
        // An input the output does not depend on (a where condition) gets no gradient: zero.
        let analytic = tensor.grad?.toArray() ?? [Float](repeating: 0, count: tensor.count)
        var numeric: [Float] = []
        for j in inputs[k].indices {
            var plus = inputs, minus = inputs
            plus[k][j] += eps
            minus[k][j] -= eps
            numeric.append(Float((objective(plus) - objective(minus)) / Double(2 * eps)))
        }
        expectClose(analytic, numeric, rtol: rtol, atol: atol, "\(name) on \(device): d/d input \(k)",
                    sourceLocation: sourceLocation)
    }
}

/// Runs `function` on the CPU and on OpenCL with the same inputs and compares the outputs
/// (and, when `gradients`, the inputs' gradients for the same output weights).
func expectParity(_ name: String, inputs: [[Float]], shapes: [[Int]], rtol: Float = 1e-4, atol: Float = 1e-5,
                  gradients: Bool = true, sourceLocation: SourceLocation = #_sourceLocation,
                  _ function: ([Tensor]) -> Tensor) {
    for gpu in TestDevices.accelerators {
        for message in parityMismatches(name, on: gpu, inputs: inputs, shapes: shapes, rtol: rtol, atol: atol, gradients: gradients, function) {
            Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
        }
    }
}

/// Runs `function` (and, with `gradients`, its backward from fixed random output
/// gradients) on the CPU and on `gpu`, and describes every output or input gradient that
/// differs.
func parityMismatches(_ name: String, on gpu: Device, inputs: [[Float]], shapes: [[Int]], rtol: Float = 1e-4, atol: Float = 1e-5,
                      gradients: Bool = true, _ function: ([Tensor]) -> Tensor) -> [String] {
    var results: [[[Float]]] = []
    for device in [Device.cpu, gpu] {
        let tensors = zip(inputs, shapes).map { Tensor(shape: $1, data: $0, device: device, requiresGrad: gradients) }
        let y = function(tensors)
        var values = [y.toArray()]
        if gradients && y.requiresGrad {
            var random = TestRandom(seed: 5)
            y.backward(gradient: Tensor(shape: y.shape, data: random.floats(y.count), device: device))
            values += tensors.map { $0.grad?.toArray() ?? [] }
        }
        results.append(values)
    }
    return zip(results[0], results[1]).enumerated().compactMap { i, pair in
        mismatch(pair.1, pair.0, rtol: rtol, atol: atol, "\(name): \(i == 0 ? "output" : "gradient of input \(i - 1)") OpenCL vs CPU")
    }
}

/// What an exit test's child process wrote to standard error, as text.
func stderrText(_ result: ExitTest.Result?) -> String {
    result.map { String(decoding: $0.standardErrorContent, as: UTF8.self) } ?? ""
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS`, the resident size, or
/// `VmHWM`, its peak), in bytes.
func processMemory(_ field: String) -> Int {
    let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = text.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
    return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
}
