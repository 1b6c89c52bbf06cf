import CBLAS
import COpenCL
import Foundation

/// A direct library GEMM Ember's is compared with: `run` does one N x N x N product and
/// waits for it; whatever it holds is released with it.
final class Baseline {
    let run: () -> Void
    private let release: () -> Void

    init(run: @escaping () -> Void, release: @escaping () -> Void = {}) {
        self.run = run
        self.release = release
    }

    deinit { release() }

    /// `cblas_sgemm` (OpenBLAS) on host arrays, with OpenBLAS's own threads on every core
    /// (its default).
    static func openBLAS(n: Int) -> Baseline {
        let a = (0..<n * n).map { _ in Float.random(in: -1...1) }, b = a
        let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        return Baseline(run: {
            // Ember's GEMM, timed in between, sets OpenBLAS's thread count for its own calls.
            openblas_set_num_threads(openblas_get_num_procs())
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0, c, Int32(n))
        }, release: { c.deallocate() })
    }

    /// `CLBlastSgemm` on OpenCL device `deviceIndex`, in a context and queue of its own, or
    /// nil when OpenCL is unavailable.
    static func clblast(n: Int, deviceIndex: Int) -> Baseline? {
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
        guard let context = clCreateContext(nil, 1, &device, nil, nil, &status) else { return nil }
        guard let queue = clCreateCommandQueue(context, device, 0, &status) else {
            clReleaseContext(context)
            return nil
        }
        let bytes = n * n * 4
        var host = (0..<n * n).map { _ in Float.random(in: -1...1) }
        let flags = cl_mem_flags(CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR)
        let buffers = (0..<3).compactMap { _ in clCreateBuffer(context, flags, bytes, &host, &status) }
        let release = {
            buffers.forEach { clReleaseMemObject($0) }
            clReleaseCommandQueue(queue)
            clReleaseContext(context)
        }
        guard buffers.count == 3 else {
            release()
            return nil
        }
        return Baseline(run: {
            var q: cl_command_queue? = queue
            CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, n, n, n, 1,
                         buffers[0], 0, n, buffers[1], 0, n, 0, buffers[2], 0, n, &q, nil)
            clFinish(queue)
        }, release: release)
    }
}
