/// Errors Ember throws for conditions a program can recover from: missing drivers,
/// device failures, bad files. Programmer errors (shape mismatches, out-of-range
/// indices) stop the program with a message instead.
public enum EmberError: Error, Equatable, CustomStringConvertible, Sendable {
    /// No OpenCL platform (ICD) is installed.
    case noOpenCLPlatform(String)
    /// An OpenCL platform exists but exposes no device.
    case noOpenCLDevice(String)
    /// `Device.opencl(index:)` named a device that does not exist.
    case deviceIndexOutOfRange(index: Int, available: Int)
    /// `EMBER_DEVICE` (or a `--device` flag) could not be parsed.
    case invalidDeviceSpec(String)
    /// An OpenCL program failed to compile; carries the build log.
    case kernelBuildFailed(program: String, log: String)
    /// The OpenCL kernel sources could not be found on disk.
    case kernelSourceNotFound(name: String, searched: [String])
    /// A device allocation failed.
    case outOfMemory(device: String, bytes: Int)
    /// An OpenCL call returned an error code.
    case openCL(call: String, code: Int32)
    /// A file could not be read or had the wrong format.
    case invalidFile(path: String, reason: String)
    /// A state dict does not fit a module: keys missing, unexpected, or mis-shaped.
    case stateDictMismatch(missing: [String], unexpected: [String], shapeMismatches: [String])

    public var description: String {
        switch self {
        case .noOpenCLPlatform(let detail):
            return "no OpenCL platform found (\(detail)); install an OpenCL driver, e.g. `apt-get install pocl-opencl-icd ocl-icd-opencl-dev`, or use Device.cpu"
        case .noOpenCLDevice(let detail):
            return "no OpenCL device found (\(detail)); check `clinfo -l`, or use Device.cpu"
        case .deviceIndexOutOfRange(let index, let available):
            return "OpenCL device index \(index) out of range: \(available) device(s) available (indices 0..<\(available))"
        case .invalidDeviceSpec(let spec):
            return "invalid device '\(spec)': expected cpu, opencl or opencl:N"
        case .kernelBuildFailed(let program, let log):
            return "OpenCL program '\(program)' failed to build:\n\(log)"
        case .kernelSourceNotFound(let name, let searched):
            return "OpenCL kernel source '\(name)' not found; searched: \(searched.joined(separator: ", ")) (set EMBER_KERNEL_PATH to the Kernels/ folder)"
        case .outOfMemory(let device, let bytes):
            return "out of memory on \(device): could not allocate \(bytes) bytes"
        case .openCL(let call, let code):
            return "OpenCL call \(call) failed with error \(code)"
        case .invalidFile(let path, let reason):
            return "\(path): \(reason)"
        case .stateDictMismatch(let missing, let unexpected, let shapes):
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing keys: \(missing.joined(separator: ", "))") }
            if !unexpected.isEmpty { parts.append("unexpected keys: \(unexpected.joined(separator: ", "))") }
            if !shapes.isEmpty { parts.append("shape mismatches: \(shapes.joined(separator: "; "))") }
            return "state dict does not match the module: " + parts.joined(separator: "; ")
        }
    }
}
