import Foundation

/// The global random stream: a seed and a running counter. Every random op takes the next
/// block of counters, so a fixed seed reproduces a whole program's draws on any device.
final class RandomState: @unchecked Sendable {
    /// The process-wide stream (`Tensor.manualSeed`).
    static let shared = RandomState(seed: 0x5EED)
    /// A stream private to the current task (`Tensor.withRandomSeed`), when one is set.
    @TaskLocal static var scoped: RandomState?
    /// The stream random ops draw from now.
    static var current: RandomState { scoped ?? shared }

    private let lock = NSLock()
    private var seed: UInt64
    private var counter: UInt64 = 0

    init(seed: UInt64) {
        self.seed = seed
    }

    func reseed(_ value: UInt64) {
        lock.lock(); defer { lock.unlock() }
        seed = value
        counter = 0
    }

    /// Reserves `n` counters; returns the seed and the first counter.
    func next(_ n: UInt64) -> (seed: UInt64, offset: UInt64) {
        lock.lock(); defer { lock.unlock() }
        let start = counter
        counter &+= n
        return (seed, start)
    }
}

extension Tensor {
    /// Seeds the global generator used by `rand`, `randn`, `randint`, `dropout` and layer
    /// initialisation; the same seed gives the same values on every device.
    public static func manualSeed(_ seed: UInt64) {
        RandomState.shared.reseed(seed)
    }

    /// Runs `body` with a private random stream seeded with `seed`: its draws are reproducible
    /// whatever other threads or tasks draw meanwhile, and the global stream is untouched.
    public static func withRandomSeed<T>(_ seed: UInt64, _ body: () throws -> T) rethrows -> T {
        try RandomState.$scoped.withValue(RandomState(seed: seed), operation: body)
    }

    /// A tensor of `shape` filled with `value`.
    public static func full(_ shape: [Int], _ value: Float, dtype: DType = .float32, device: Device = .cpu, requiresGrad: Bool = false) -> Tensor {
        filled(shape, Double(value), dtype: dtype, device: device, requiresGrad: requiresGrad, op: "full")
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu, requiresGrad: Bool = false) -> Tensor {
        filled(shape, 0, dtype: dtype, device: device, requiresGrad: requiresGrad, op: "zeros")
    }

    /// A tensor of ones.
    public static func ones(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu, requiresGrad: Bool = false) -> Tensor {
        filled(shape, 1, dtype: dtype, device: device, requiresGrad: requiresGrad, op: "ones")
    }

    /// Zeros shaped like `other`, on its device.
    public static func zeros(like other: Tensor) -> Tensor { zeros(other.shape, dtype: other.dtype, device: other.device) }

    /// Ones shaped like `other`, on its device.
    public static func ones(like other: Tensor) -> Tensor { ones(other.shape, dtype: other.dtype, device: other.device) }

    /// A tensor of `value` with the shape, dtype and device of `other` (`torch.full_like`).
    public static func full(like other: Tensor, _ value: Float) -> Tensor {
        full(other.shape, value, dtype: other.dtype, device: other.device)
    }

    /// Uniform samples in [0, 1) with the shape, float dtype and device of `other` (`torch.rand_like`).
    public static func rand(like other: Tensor) -> Tensor {
        check(other.dtype.isFloatingPoint, "rand(like:): expected a float tensor, got \(other.dtype)")
        return rand(other.shape, device: other.device).to(other.dtype)
    }

    /// Standard normal samples with the shape, float dtype and device of `other` (`torch.randn_like`).
    public static func randn(like other: Tensor) -> Tensor {
        check(other.dtype.isFloatingPoint, "randn(like:): expected a float tensor, got \(other.dtype)")
        return randn(other.shape, device: other.device).to(other.dtype)
    }

    static func filled(_ shape: [Int], _ value: Double, dtype: DType, device: Device, requiresGrad: Bool = false, op: String) -> Tensor {
        checkShape(shape, op: op)
        let out = Tensor(uninitialized: shape, dtype: dtype, device: device, op: op)
        if out.count > 0 { out.backend.fill(out.storage.buffer, count: out.count, value: value, dtype: dtype) }
        if requiresGrad { out.requiresGrad = true }
        return out
    }

    /// `[start, start + step, ...]` up to but excluding `end` (like `torch.arange`).
    public static func arange(_ start: Float = 0, _ end: Float, step: Float = 1, dtype: DType = .float32, device: Device = .cpu) -> Tensor {
        check(step != 0 && step.isFinite, "arange: step must be finite and non-zero, got \(step)")
        check(start.isFinite && end.isFinite, "arange: start and end must be finite, got \(start) and \(end)")
        let n = Swift.max(0, Int((Double(end - start) / Double(step)).rounded(.up)))
        // The kernels write Float32 or Int32; other types are converted from the nearer one.
        let written: DType = dtype.isFloatingPoint ? .float32 : .int32
        let out = Tensor(uninitialized: [n], dtype: written, device: device, op: "arange")
        if n > 0 { out.backend.arange(out.storage.buffer, count: n, start: Double(start), step: Double(step), dtype: written) }
        return out.castStorage(to: dtype)
    }

    /// `[0, 1, ..., end - 1]` as Int64, as `torch.arange(end)` with an integer `end`.
    public static func arange(_ end: Int, device: Device = .cpu) -> Tensor {
        arange(0, Float(end), dtype: .int64, device: device)
    }

    /// `count` evenly spaced values from `start` to `end` inclusive.
    public static func linspace(_ start: Float, _ end: Float, count: Int, device: Device = .cpu) -> Tensor {
        check(count >= 0, "linspace: count must be >= 0, got \(count)")
        let out = Tensor(uninitialized: [count], device: device, op: "linspace")
        let step = count > 1 ? (Double(end) - Double(start)) / Double(count - 1) : 0
        if count > 0 { out.backend.arange(out.storage.buffer, count: count, start: Double(start), step: step, dtype: .float32) }
        return out
    }

    /// The `n` x `m` identity matrix (ones on the diagonal).
    public static func eye(_ n: Int, _ m: Int? = nil, device: Device = .cpu) -> Tensor {
        let cols = m ?? n
        check(n >= 0 && cols >= 0, "eye: sizes must be >= 0, got \(n) x \(cols)")
        let rows = arange(n, device: device).reshape([n, 1])
        let columns = arange(cols, device: device).reshape([1, cols])
        return (rows == columns).float()
    }

    /// Uniform samples in `[low, high)`.
    public static func rand(_ shape: [Int], low: Float = 0, high: Float = 1, device: Device = .cpu, requiresGrad: Bool = false) -> Tensor {
        random(shape, .uniform(low: low, high: high), dtype: .float32, device: device, requiresGrad: requiresGrad, op: "rand")
    }

    /// Standard normal samples (or `mean` + `std` * N(0, 1)).
    public static func randn(_ shape: [Int], mean: Float = 0, std: Float = 1, device: Device = .cpu, requiresGrad: Bool = false) -> Tensor {
        random(shape, .normal(mean: mean, std: std), dtype: .float32, device: device, requiresGrad: requiresGrad, op: "randn")
    }

    /// Int64 samples uniform in `low..<high` (PyTorch's default type), drawn as Int32.
    public static func randint(_ low: Int, _ high: Int, _ shape: [Int], device: Device = .cpu) -> Tensor {
        check(low < high, "randint: low (\(low)) must be less than high (\(high))")
        check(low >= Int(Int32.min) && high <= Int(Int32.max), "randint: bounds \(low)..<\(high) exceed int32")
        return random(shape, .integer(low: Int32(low), high: Int32(high)), dtype: .int32, device: device, requiresGrad: false, op: "randint")
            .castStorage(to: .int64)
    }

    static func random(_ shape: [Int], _ distribution: RandomDistribution, dtype: DType, device: Device, requiresGrad: Bool, op: String) -> Tensor {
        checkShape(shape, op: op)
        let out = Tensor(uninitialized: shape, dtype: dtype, device: device, op: op)
        let n = out.count
        if n > 0 {
            let (seed, offset) = RandomState.current.next(UInt64(n) * distribution.countersPerElement)
            out.backend.random(out.storage.buffer, count: n, distribution: distribution, seed: seed, offset: offset)
        }
        if requiresGrad { out.requiresGrad = true }
        return out
    }

    /// A copy of this tensor on `device` (self when it is already there). Keeps the graph:
    /// gradients flow back to the source device.
    public func to(_ target: Device) -> Tensor {
        if target == device { return self }
        let out = deviceCopy(to: target, op: "to(\(target))")
        let from = device
        return out.recording("ToCopyBackward", inputs: [self]) { g in [g.to(from)] }
    }
}
