import COpenCL
import Foundation

/// Thin wrappers over the OpenCL C API: platform and device discovery, info queries,
/// program building, and the location of the kernel sources.
enum OpenCLRuntime {
    /// Every (platform, device) pair, flattened in platform order.
    static func devices() throws -> [(platform: cl_platform_id, device: cl_device_id)] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        if status == -1001 || count == 0 {
            throw EmberError.noOpenCLPlatform("the OpenCL ICD loader found no platform")
        }
        guard status == CL_SUCCESS else { throw EmberError.openCL(call: "clGetPlatformIDs", code: status) }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var out: [(cl_platform_id, cl_device_id)] = []
        for case let platform? in platforms {
            var n: cl_uint = 0
            let s = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
            if s == CL_DEVICE_NOT_FOUND || n == 0 { continue }
            try check(s, "clGetDeviceIDs")
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            try check(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil), "clGetDeviceIDs")
            for case let id? in ids { out.append((platform, id)) }
        }
        if out.isEmpty {
            throw EmberError.noOpenCLDevice("\(count) platform(s) but no device")
        }
        return out
    }

    /// Throws `EmberError.openCL` unless `status` is CL_SUCCESS.
    static func check(_ status: cl_int, _ call: String) throws {
        if status != CL_SUCCESS { throw EmberError.openCL(call: call, code: status) }
    }

    static func deviceString(_ device: cl_device_id, _ param: Int32) -> String {
        infoString { clGetDeviceInfo(device, cl_device_info(param), $0, $1, $2) }
    }

    static func platformString(_ platform: cl_platform_id, _ param: Int32) -> String {
        infoString { clGetPlatformInfo(platform, cl_platform_info(param), $0, $1, $2) }
    }

    /// A string-valued info query: asks for the size, then the bytes.
    private static func infoString(_ query: (Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int) -> String {
        var size = 0
        _ = query(0, nil, &size)
        var bytes = [CChar](repeating: 0, count: max(size, 1))
        _ = bytes.withUnsafeMutableBytes { query(size, $0.baseAddress, nil) }
        return String(cString: bytes).trimmingCharacters(in: .whitespaces)
    }

    static func deviceValue<T: FixedWidthInteger>(_ device: cl_device_id, _ param: Int32, as: T.Type) -> T {
        var value: T = 0
        clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &value, nil)
        return value
    }

    static func info(platform: cl_platform_id, device: cl_device_id) -> DeviceInfo {
        DeviceInfo(name: deviceString(device, CL_DEVICE_NAME), vendor: deviceString(device, CL_DEVICE_VENDOR),
                   driverVersion: deviceString(device, CL_DRIVER_VERSION), platform: platformString(platform, CL_PLATFORM_NAME),
                   computeUnits: Int(deviceValue(device, CL_DEVICE_MAX_COMPUTE_UNITS, as: cl_uint.self)),
                   globalMemoryBytes: Int(deviceValue(device, CL_DEVICE_GLOBAL_MEM_SIZE, as: cl_ulong.self)),
                   maxWorkGroupSize: Int(deviceValue(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, as: Int.self)),
                   extensions: deviceString(device, CL_DEVICE_EXTENSIONS).split(separator: " ").map(String.init))
    }

    /// Compiles `source` for `device`; a failure throws `kernelBuildFailed` with the build log.
    static func buildProgram(context: cl_context, device: cl_device_id, name: String, source: String, options: String) throws -> cl_program {
        var status: cl_int = 0
        let program: cl_program? = source.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            var length = strlen(text)
            return clCreateProgramWithSource(context, 1, &pointer, &length, &status)
        }
        guard let program, status == CL_SUCCESS else { throw EmberError.openCL(call: "clCreateProgramWithSource", code: status) }
        var device: cl_device_id? = device
        let built = clBuildProgram(program, 1, &device, options, nil, nil)
        if built != CL_SUCCESS {
            var size = 0
            clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
            var log = [CChar](repeating: 0, count: max(size, 1))
            clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &log, nil)
            clReleaseProgram(program)
            throw EmberError.kernelBuildFailed(program: name, log: String(cString: log) + " (error \(built))")
        }
        return program
    }

    /// Folders searched for `Kernels/*.cl`: `EMBER_KERNEL_PATH`, the resource bundle, the source tree.
    static var kernelSearchPaths: [String] {
        ResourceBundle.searchPaths(environment: "EMBER_KERNEL_PATH", bundleFolder: "", sourceFolder: "Kernels")
    }

    /// The text of kernel source file `name` (e.g. `reduce.cl`).
    static func kernelSource(_ name: String) throws -> String {
        let paths = kernelSearchPaths
        guard let url = ResourceBundle.locate(name, in: paths), let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw EmberError.kernelSourceNotFound(name: name, searched: paths)
        }
        return text
    }
}
