import Foundation

/// Where a tensor lives and where its ops run: the CPU or one OpenCL device.
///
/// ```swift
/// let gpu = try Device.opencl()          // first OpenCL device
/// let x = Tensor.randn([2, 3], device: gpu)
/// ```
public struct Device: Hashable, Sendable, CustomStringConvertible {
    /// The family of a device.
    public enum Kind: String, Sendable {
        /// The host CPU (Swift loops and OpenBLAS).
        case cpu
        /// An OpenCL device (GPU, or a CPU through PoCL).
        case opencl
    }

    /// The family of this device.
    public let kind: Kind
    /// The device's position among all OpenCL devices (0 for the CPU).
    public let index: Int

    /// The host CPU.
    public static let cpu = Device(kind: .cpu, index: 0)

    /// The OpenCL device at `index` in the flattened list of every platform's devices.
    /// Throws when OpenCL is missing, the index does not exist, or the context fails.
    public static func opencl(index: Int = 0) throws -> Device {
        _ = try DeviceRegistry.shared.openCLBackend(index: index)
        return Device(kind: .opencl, index: index)
    }

    /// Every device found: the CPU first, then each OpenCL device.
    public static var available: [Device] {
        let openCL = (try? DeviceRegistry.shared.openCLDevices()) ?? []
        return [.cpu] + openCL.indices.map { Device(kind: .opencl, index: $0) }
    }

    /// The device named by `EMBER_DEVICE` (`cpu`, `opencl` or `opencl:N`); without it, the
    /// first OpenCL device, or the CPU when there is none. An unusable `EMBER_DEVICE`
    /// stops the program with a message naming the value.
    public static var `default`: Device {
        if let spec = ProcessInfo.processInfo.environment["EMBER_DEVICE"], !spec.isEmpty {
            do { return try Device.parse(spec) } catch {
                fatalError("EMBER_DEVICE=\(spec): \(error)")
            }
        }
        return (try? Device.opencl()) ?? .cpu
    }

    /// Parses `cpu`, `opencl` or `opencl:N` (case-insensitive) and opens that device.
    public static func parse(_ spec: String) throws -> Device {
        let text = spec.trimmingCharacters(in: .whitespaces).lowercased()
        if text == "cpu" { return .cpu }
        if text == "opencl" || text == "gpu" { return try .opencl() }
        if text.hasPrefix("opencl:"), let n = Int(text.dropFirst(7)), n >= 0 {
            return try .opencl(index: n)
        }
        throw EmberError.invalidDeviceSpec(spec)
    }

    /// Name, vendor, driver, compute units, memory and extensions.
    public var info: DeviceInfo {
        switch kind {
        case .cpu: return CPUBackend.info
        case .opencl: return DeviceRegistry.shared.openCLInfo(index: index)
        }
    }

    /// The GEMM an OpenCL device runs and where that choice came from (nil on the CPU,
    /// which uses OpenBLAS). Asking before any GEMM has run makes the measurement now.
    public var gemmChoice: GEMMChoice? { (backend as? OpenCLBackend)?.gemmChoice() }

    /// On the CPU, the kernel set OpenBLAS runs (`SkylakeX`, `Haswell`, ...), with the one it
    /// had picked at load when Ember replaced OpenBLAS's generic fallback (`Prescott`) on a
    /// CPU that has AVX-512 or AVX2; nil on OpenCL devices.
    public var blasCore: String? { kind == .cpu ? CPUBackend.blasCore : nil }

    /// Memory and transfer counters of this device's backend.
    public var stats: BackendStats { backend.stats }

    /// Resets the peak live-bytes counter to the current live bytes.
    public func resetPeakMemory() { backend.resetPeak() }

    /// Releases every pooled, unused block of device memory.
    public func emptyCache() { backend.emptyPool() }

    /// Waits until every command enqueued on this device has finished (runs its pending lazy
    /// elementwise graphs first).
    public func synchronize() throws { try backend.synchronize() }

    /// Builds now the fused kernels this device is still compiling in the background (the
    /// optimizers', attention's and cross-entropy's, float32) and the fused elementwise kernels
    /// it has queued (which it otherwise builds one program per host wait), so the next calls
    /// launch them (for benchmarks of the steady state); returns at once on the CPU.
    public func waitForKernelBuilds() {
        guard let openCL = backend as? OpenCLBackend else { return }
        openCL.finishBackgroundBuilds(float32Only: true)
        openCL.waitForFusedBuilds()
    }

    /// `cpu` or `opencl:N`.
    public var description: String {
        kind == .cpu ? "cpu" : "opencl:\(index)"
    }

    var backend: Backend {
        switch kind {
        case .cpu: return CPUBackend.shared
        case .opencl:
            do { return try DeviceRegistry.shared.openCLBackend(index: index) } catch {
                fatalError("\(self): \(error)")
            }
        }
    }
}

/// What a device reports about itself.
public struct DeviceInfo: Sendable, Equatable {
    /// Device name, e.g. `pthread-skylake-avx512-AMD EPYC`.
    public var name: String
    /// Vendor string.
    public var vendor: String
    /// Driver (or library) version.
    public var driverVersion: String
    /// Platform name (`Portable Computing Language`; `host` for the CPU device).
    public var platform: String
    /// Parallel compute units (for the CPU device, the cores this process may run on).
    public var computeUnits: Int
    /// Global memory in bytes.
    public var globalMemoryBytes: Int
    /// Largest work-group size (1 for the CPU device).
    public var maxWorkGroupSize: Int
    /// Extensions reported by the driver (instruction-set features for the CPU).
    public var extensions: [String]
}

/// Owns the backends: the CPU one and one per opened OpenCL device, created on first use.
final class DeviceRegistry: @unchecked Sendable {
    static let shared = DeviceRegistry()

    private let lock = NSLock()
    private var enumerated: Result<[DeviceInfo], Error>?
    private var backends: [Int: OpenCLBackend] = [:]

    /// Every OpenCL device's info, enumerated once.
    func openCLDevices() throws -> [DeviceInfo] {
        lock.lock(); defer { lock.unlock() }
        return try enumeratedLocked().get()
    }

    private func enumeratedLocked() -> Result<[DeviceInfo], Error> {
        if let enumerated { return enumerated }
        let result = Result { try OpenCLBackend.enumerateDevices() }
        enumerated = result
        return result
    }

    func openCLInfo(index: Int) -> DeviceInfo {
        guard let list = try? openCLDevices(), list.indices.contains(index) else {
            fatalError("opencl:\(index) is not an available device")
        }
        return list[index]
    }

    /// The backend of OpenCL device `index`, created (context, queue) on first use.
    func openCLBackend(index: Int) throws -> OpenCLBackend {
        lock.lock(); defer { lock.unlock() }
        if let backend = backends[index] { return backend }
        let devices = try enumeratedLocked().get()
        guard index >= 0 && index < devices.count else {
            throw EmberError.deviceIndexOutOfRange(index: index, available: devices.count)
        }
        let backend = try OpenCLBackend(index: index)
        backends[index] = backend
        return backend
    }
}
