import COpenCL
import Foundation

/// An OpenCL device: one context, one in-order queue, Ember's kernels from `Kernels/*.cl`
/// (built once per context), GEMM through `gemm.cl` or CLBlast (whichever measured faster on
/// the device, see `gemmChoice()`), and a size-keyed buffer pool.
///
/// Primitives only enqueue; the host waits in `download` and `synchronize`. An error from an
/// enqueue is remembered and thrown by the next of those two calls.
final class OpenCLBackend: Backend, @unchecked Sendable {
    /// Kernel source files, each built into one program when the backend is created.
    static let programFiles = ["elementwise.cl", "reduce.cl", "random.cl", "conv.cl", "index.cl", "gemm.cl", "attention.cl"]

    let index: Int
    let info: DeviceInfo
    let device: cl_device_id
    let context: cl_context
    let queue: cl_command_queue
    let pool: BufferPool
    /// Largest single allocation the device allows.
    let maxAllocation: Int
    /// Work-group size of elementwise kernels and of reductions (`LS` in reduce.cl).
    let elementwiseLocal: Int
    /// Elements of a row each work-item of a strided elementwise kernel loops over: 64 on CPU
    /// devices (a vectorisable loop per work-item), 1 on GPUs (coalesced neighbours).
    var stridedRun: Int { isCPU ? 64 : 1 }
    let reductionLocal: Int
    /// Whether the device is a CPU (PoCL) and gets the CPU variants of the kernels: each
    /// work-item takes a contiguous slice or run.
    let isCPU: Bool
    /// The GEMM cache entry's key: platform, device, driver and `gemm.cl` digest.
    private(set) var gemmCacheKey = ""
    /// Guards `chosenGEMM`, so concurrent first GEMMs measure once.
    private let gemmLock = NSLock()
    private var chosenGEMM: GEMMChoice?

    /// Guards kernel arguments + enqueue (a `cl_kernel` is not thread-safe), the kernel
    /// cache and the pending error.
    private let lock = NSLock()
    private var programs: [String: cl_program] = [:]
    private var kernels: [String: cl_kernel] = [:]
    private var pendingError: EmberError?

    /// Every OpenCL device of every platform.
    static func enumerateDevices() throws -> [DeviceInfo] {
        try OpenCLRuntime.devices().map { OpenCLRuntime.info(platform: $0.platform, device: $0.device) }
    }

    /// Opens device `index`: context, queue, and every program in `programFiles`.
    init(index: Int) throws {
        let all = try OpenCLRuntime.devices()
        guard all.indices.contains(index) else { throw EmberError.deviceIndexOutOfRange(index: index, available: all.count) }
        let (platform, device) = all[index]
        self.index = index
        self.device = device
        self.info = OpenCLRuntime.info(platform: platform, device: device)
        var status: cl_int = 0
        var deviceRef: cl_device_id? = device
        guard let context = clCreateContext(nil, 1, &deviceRef, nil, nil, &status), status == CL_SUCCESS else {
            throw EmberError.openCL(call: "clCreateContext", code: status)
        }
        self.context = context
        guard let queue = clCreateCommandQueue(context, device, 0, &status), status == CL_SUCCESS else {
            clReleaseContext(context)
            throw EmberError.openCL(call: "clCreateCommandQueue", code: status)
        }
        self.queue = queue
        maxAllocation = Int(OpenCLRuntime.deviceValue(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, as: cl_ulong.self))
        pool = BufferPool(retainLimit: max(info.globalMemoryBytes / 4, 64 << 20))
        elementwiseLocal = min(256, info.maxWorkGroupSize)
        // EMBER_OPENCL_KERNELS=gpu builds the GPU variants of the kernels on any device, so the
        // tests can run those paths on a CPU OpenCL device (PoCL) too.
        let gpuKernels = ProcessInfo.processInfo.environment["EMBER_OPENCL_KERNELS"]?.lowercased() == "gpu"
        isCPU = !gpuKernels && OpenCLRuntime.deviceValue(device, CL_DEVICE_TYPE, as: cl_device_type.self) & cl_device_type(CL_DEVICE_TYPE_CPU) != 0
        var reduction = 1
        while reduction * 2 <= min(256, info.maxWorkGroupSize) { reduction *= 2 }
        reductionLocal = reduction
        var gemmSource = ""
        for file in Self.programFiles {
            let source = try OpenCLRuntime.kernelSource(file)
            if file == "gemm.cl" { gemmSource = source }
            programs[file] = try build(name: file, source: source)
        }
        gemmCacheKey = "\(info.platform) | \(info.name) | \(info.driverVersion) | gemm.cl \(GEMMChoice.digest(gemmSource))"
    }

    /// The GEMM this device runs: forced by `EMBER_GEMM`, cached from an earlier run, or
    /// measured now (both implementations on a 512^3 product, best of three after a warm-up
    /// that includes compiling them) and cached.
    func gemmChoice() -> GEMMChoice {
        gemmLock.lock(); defer { gemmLock.unlock() }
        if let chosenGEMM { return chosenGEMM }
        // An error still pending from earlier commands belongs to their caller's next
        // synchronisation, which the measurement would swallow: go by device type this time
        // and measure at a later GEMM.
        guard let choice = GEMMChoice.forced() ?? GEMMChoice.cached(key: gemmCacheKey) ?? measureGEMM() else {
            return deviceTypeGEMM
        }
        chosenGEMM = choice
        return choice
    }

    /// Ember's kernels on CPU devices, CLBlast on GPUs: the choice when none can be measured.
    private var deviceTypeGEMM: GEMMChoice {
        GEMMChoice(implementation: isCPU ? .ember : .clblast, emberGFLOPS: nil, clblastGFLOPS: nil, source: "device type")
    }

    /// Times both GEMMs and caches the faster (the device-type choice, uncached, when both
    /// fail); nil when an earlier command's error is pending or no memory is left for the
    /// operands, so a later GEMM measures again.
    private func measureGEMM() -> GEMMChoice? {
        record(clFinish(queue), "clFinish")
        lock.lock()
        let pending = pendingError != nil
        lock.unlock()
        let n = 512
        guard !pending, let a = try? allocate(bytes: n * n * 4), let b = try? allocate(bytes: n * n * 4),
              let c = try? allocate(bytes: n * n * 4) else { return nil }
        random(a, count: n * n, distribution: .uniform(low: -1, high: 1), seed: 1, offset: 0)
        random(b, count: n * n, distribution: .uniform(low: -1, high: 1), seed: 2, offset: 0)
        let operand = { (buffer: DeviceBuffer) in GemmOperand(buffer: buffer, offset: 0, ld: n, transposed: false, batchStride: 0) }
        func gflops(_ implementation: GEMMImplementation) -> Double? {
            var best = Double.infinity
            for round in 0..<4 {
                let start = DispatchTime.now().uptimeNanoseconds
                runGEMM(implementation, m: n, n: n, k: n, batch: 1, alpha: 1, a: operand(a), b: operand(b), beta: 0, c: c, cOffset: 0)
                guard (try? synchronize()) != nil else { return nil }
                if round > 0 { best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            }
            return 2 * Double(n * n * n) / best / 1e9
        }
        let ember = gflops(.ember), clblast = gflops(.clblast)
        guard ember != nil || clblast != nil else { return deviceTypeGEMM }
        let choice = GEMMChoice(implementation: (ember ?? 0) >= (clblast ?? 0) ? .ember : .clblast,
                                emberGFLOPS: ember, clblastGFLOPS: clblast, source: "measured")
        choice.store(key: gemmCacheKey)
        return choice
    }

    /// Builds `source` for this device with Ember's build options.
    func build(name: String, source: String) throws -> cl_program {
        try OpenCLRuntime.buildProgram(context: context, device: device, name: name, source: source,
                                       options: "-cl-std=CL1.2 -DLS=\(reductionLocal) -DCPU_DEVICE=\(isCPU ? 1 : 0) -DRUN=\(stridedRun)")
    }

    // MARK: Memory

    func allocate(bytes: Int) throws -> DeviceBuffer {
        let capacity = BufferPool.sizeClass(bytes)
        guard bytes <= maxAllocation, bytes <= info.globalMemoryBytes else {
            throw EmberError.outOfMemory(device: "opencl:\(index)", bytes: bytes)
        }
        if let handle = pool.take(capacity: capacity) {
            return DeviceBuffer(handle: handle, capacity: capacity, backend: self)
        }
        var status: cl_int = 0
        var mem = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), min(capacity, maxAllocation), nil, &status)
        if mem == nil || status != CL_SUCCESS {
            emptyPool()
            mem = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), min(capacity, maxAllocation), nil, &status)
        }
        guard let mem, status == CL_SUCCESS else { throw EmberError.outOfMemory(device: "opencl:\(index)", bytes: bytes) }
        pool.noteAllocated(capacity: capacity)
        return DeviceBuffer(handle: mem, capacity: capacity, backend: self)
    }

    func recycle(handle: OpaquePointer, capacity: Int) {
        if !pool.put(handle, capacity: capacity) { clReleaseMemObject(handle) }
    }

    func emptyPool() {
        for block in pool.drain() { clReleaseMemObject(block.handle) }
    }

    var stats: BackendStats { pool.stats }

    func resetPeak() { pool.resetPeak() }

    // MARK: Transfers and synchronisation

    func upload(_ source: UnsafeRawBufferPointer, to buffer: DeviceBuffer, byteOffset: Int) {
        pool.noteTransfer(upload: true)
        guard let base = source.baseAddress, source.count > 0 else { return }
        record(clEnqueueWriteBuffer(queue, buffer.handle, cl_bool(CL_TRUE), byteOffset, source.count, base, 0, nil, nil),
               "clEnqueueWriteBuffer")
    }

    func download(_ buffer: DeviceBuffer, offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        pool.noteTransfer(upload: false)
        if let base = destination.baseAddress, destination.count > 0 {
            record(clEnqueueReadBuffer(queue, buffer.handle, cl_bool(CL_TRUE), offset * 4, destination.count, base, 0, nil, nil),
                   "clEnqueueReadBuffer")
        }
        try throwPending()
    }

    func synchronize() throws {
        record(clFinish(queue), "clFinish")
        try throwPending()
    }

    /// Remembers the first failed call, to be thrown at the next synchronisation point.
    func record(status: cl_int, _ call: String) { record(status, call) }

    private func record(_ status: cl_int, _ call: String) {
        guard status != CL_SUCCESS else { return }
        lock.lock(); defer { lock.unlock() }
        if pendingError == nil { pendingError = .openCL(call: call, code: status) }
    }

    private func throwPending() throws {
        lock.lock()
        let error = pendingError
        pendingError = nil
        lock.unlock()
        if let error { throw error }
    }

    // MARK: Kernel launches

    /// One kernel argument.
    enum Argument {
        case buffer(DeviceBuffer)
        case int(Int)
        case float(Float)
        case ulong(UInt64)
        case int8([Int])
    }

    /// Enqueues `name` from `file` over `count` work-items, rounded up to whole work-groups of
    /// `local` (kernels guard the excess).
    func launch(_ file: String, _ name: String, count: Int, local: Int? = nil, _ arguments: [Argument]) {
        guard count > 0 else { return }
        check(count < Int(Int32.max), "opencl:\(index): \(name) over \(count) elements exceeds the 2^31 limit of Ember's kernels")
        let size = local ?? elementwiseLocal
        launch3D(file, name, global: ((count + size - 1) / size * size, 1, 1), local: (size, 1, 1), arguments)
    }

    /// Enqueues `name` over a 3-D range; `global` must be a multiple of `local` in each dim.
    func launch3D(_ file: String, _ name: String, global: (Int, Int, Int), local: (Int, Int, Int), _ arguments: [Argument]) {
        guard global.0 > 0 && global.1 > 0 && global.2 > 0 else { return }
        lock.lock(); defer { lock.unlock() }
        let kernel: cl_kernel
        if let cached = kernels[name] {
            kernel = cached
        } else {
            var status: cl_int = 0
            guard let created = clCreateKernel(programs[file], name, &status), status == CL_SUCCESS else {
                if pendingError == nil { pendingError = .openCL(call: "clCreateKernel(\(name))", code: status) }
                return
            }
            kernels[name] = created
            kernel = created
        }
        for (i, argument) in arguments.enumerated() {
            let status: cl_int
            switch argument {
            case .buffer(let b):
                var mem: cl_mem? = b.handle
                status = clSetKernelArg(kernel, cl_uint(i), MemoryLayout<cl_mem>.size, &mem)
            case .int(let v):
                var x = Int32(truncatingIfNeeded: v)
                status = clSetKernelArg(kernel, cl_uint(i), 4, &x)
            case .float(let v):
                var x = v
                status = clSetKernelArg(kernel, cl_uint(i), 4, &x)
            case .ulong(let v):
                var x = v
                status = clSetKernelArg(kernel, cl_uint(i), 8, &x)
            case .int8(let values):
                check(values.count <= 8, "opencl:\(index): \(name) needs \(values.count) dimensions after collapsing; at most 8 are supported")
                var x = SIMD8<Int32>()
                for (k, v) in values.enumerated() { x[k] = Int32(truncatingIfNeeded: v) }
                status = clSetKernelArg(kernel, cl_uint(i), 32, &x)
            }
            if status != CL_SUCCESS {
                if pendingError == nil { pendingError = .openCL(call: "clSetKernelArg(\(name), \(i))", code: status) }
                return
            }
        }
        var globalSize = [global.0, global.1, global.2]
        var localSize = [local.0, local.1, local.2]
        let status = clEnqueueNDRangeKernel(queue, kernel, 3, nil, &globalSize, &localSize, 0, nil, nil)
        if status != CL_SUCCESS && pendingError == nil { pendingError = .openCL(call: "clEnqueueNDRangeKernel(\(name))", code: status) }
    }

    /// Runs `body` holding the launch lock (for CLBlast calls on the shared queue).
    func withQueue(_ body: (inout cl_command_queue?) -> Int32, call: String) {
        lock.lock(); defer { lock.unlock() }
        var q: cl_command_queue? = queue
        let status = body(&q)
        if status != 0 && pendingError == nil { pendingError = .openCL(call: call, code: status) }
    }
}
