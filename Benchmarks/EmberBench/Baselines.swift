import CBLAS
import COpenCL
import Foundation

/// Direct library calls Ember's GEMM is compared with: `cblas_sgemm` on host arrays, and
/// `CLBlastSgemm` on buffers of a context of its own, on the same OpenCL device.
enum Baselines {
    /// Median seconds of an N x N x N `cblas_sgemm` (OpenBLAS) on fresh random arrays, with
    /// OpenBLAS's own threads on every core (its default).
    static func openBLAS(n: Int, timer: Timer) -> (first: Double, times: [Double]) {
        let a = (0..<n * n).map { _ in Float.random(in: -1...1) }, b = a
        var c = [Float](repeating: 0, count: n * n)
        openblas_set_num_threads(openblas_get_num_procs())
        return timer.time(on: .cpu) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0, &c, Int32(n))
        }
    }

    /// Median seconds of an N x N x N `CLBlastSgemm` on OpenCL device `index` (its own
    /// context and queue), or nil when OpenCL is unavailable.
    static func clblast(n: Int, deviceIndex: Int, timer: Timer) -> (first: Double, times: [Double])? {
        var count: cl_uint = 0
        guard clGetPlatformIDs(0, nil, &count) == CL_SUCCESS, count > 0 else { return nil }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        clGetPlatformIDs(count, &platforms, nil)
        var devices: [cl_device_id?] = []
        for platform in platforms {
            var n: cl_uint = 0
            guard clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n) == CL_SUCCESS, n > 0 else { continue }
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil)
            devices += ids
        }
        guard devices.indices.contains(deviceIndex) else { return nil }
        var device = devices[deviceIndex]
        var status: cl_int = 0
        guard let context = clCreateContext(nil, 1, &device, nil, nil, &status),
              let queue = clCreateCommandQueue(context, device, 0, &status) else { return nil }
        defer { clReleaseCommandQueue(queue); clReleaseContext(context) }
        let bytes = n * n * 4
        var host = (0..<n * n).map { _ in Float.random(in: -1...1) }
        let flags = cl_mem_flags(CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR)
        guard let a = clCreateBuffer(context, flags, bytes, &host, &status),
              let b = clCreateBuffer(context, flags, bytes, &host, &status),
              let c = clCreateBuffer(context, flags, bytes, &host, &status) else { return nil }
        defer { clReleaseMemObject(a); clReleaseMemObject(b); clReleaseMemObject(c) }
        var q: cl_command_queue? = queue
        var first = 0.0
        var times: [Double] = []
        for i in 0..<(timer.repetitions + 3) {
            let start = Timer.now()
            CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, n, n, n, 1, a, 0, n, b, 0, n, 0, c, 0, n, &q, nil)
            clFinish(queue)
            let t = Timer.now() - start
            if i == 0 { first = t } else if i >= 3 { times.append(t) }
        }
        return (first, times.sorted())
    }
}
