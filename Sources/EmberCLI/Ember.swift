import ArgumentParser
import Ember
import Foundation

/// The `ember` command-line tool.
@main
struct EmberCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ember",
        abstract: "Ember: tensors, autograd and training on the CPU and OpenCL devices.",
        subcommands: [DevicesCommand.self, TrainCommand.self, SampleCommand.self]
    )
}

/// The device named by a `--device` flag, else by `EMBER_DEVICE`, else the default; a bad
/// name is a usage error (one line, no trap).
func selectedDevice(_ flag: String?) throws -> Device {
    let environment = ProcessInfo.processInfo.environment["EMBER_DEVICE"].flatMap { $0.isEmpty ? nil : $0 }
    guard let spec = flag ?? environment else { return Device.default }
    do { return try Device.parse(spec) } catch {
        throw ValidationError("\(flag != nil ? "--device" : "EMBER_DEVICE") \(spec): \(error)")
    }
}

/// `ember devices`: every device with its properties.
struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "devices", abstract: "List the CPU and every OpenCL device.")

    func run() throws {
        do {
            _ = try Device.opencl()
        } catch {
            print("OpenCL: \(error)\n")
        }
        let preferred = try selectedDevice(nil)
        for device in Device.available {
            let info = device.info
            print("\(device)\(device == preferred ? "  (default)" : "")")
            print("  name:          \(info.name)")
            print("  vendor:        \(info.vendor)")
            print("  platform:      \(info.platform)")
            print("  driver:        \(info.driverVersion)")
            print("  compute units: \(info.computeUnits)")
            print("  memory:        \(String(format: "%.1f", Double(info.globalMemoryBytes) / 1_073_741_824)) GiB")
            if device.kind == .opencl { print("  max work-group: \(info.maxWorkGroupSize)") }
            if let gemm = device.gemmChoice {
                let figures = [("Ember kernel", gemm.emberGFLOPS), ("CLBlast", gemm.clblastGFLOPS)]
                    .compactMap { name, value in value.map { String(format: "%@ %.1f GFLOP/s", name, $0) } }
                print("  gemm:          \(gemm.implementation == .ember ? "Ember kernel" : "CLBlast") (\(gemm.source)"
                      + (figures.isEmpty ? ")" : ": " + figures.joined(separator: ", ") + ")"))
            }
            if let core = device.blasCore { print("  gemm:          OpenBLAS, kernels \(core)") }
            print("  extensions:    \(info.extensions.joined(separator: " "))")
            print("")
        }
    }
}
