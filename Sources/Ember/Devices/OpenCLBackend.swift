import COpenCL
import Foundation

/// An OpenCL device: one context, one in-order queue, Ember's kernels from `Kernels/*.cl`
/// (built once per context), GEMM through `gemm.cl` or CLBlast (whichever measured faster on
/// the device, see `gemmChoice()`), and a size-keyed buffer pool.
///
/// Primitives only enqueue; the host waits in `download` and `synchronize`. An error from an
/// enqueue is remembered and thrown by the next of those two calls. Index kernels report an
/// out-of-range index in a small device-side record (`indexErrors`), which the next of those
/// two calls reads when an index kernel ran since the last read, and stops with the CPU's
/// message.
final class OpenCLBackend: Backend, @unchecked Sendable {
    /// Kernel source files, each built into one program when the backend is created.
    static let programFiles = ["elementwise.cl", "reduce.cl", "random.cl", "conv.cl", "index.cl", "gemm.cl", "attention.cl", "optim.cl",
                               "loss.cl"]
    /// The programs whose kernels read the float storage type `storage.cl` selects: built for
    /// float32 with the others, and for float16 / bfloat16 (`file#1`, `file#2`) at first use
    /// (conv.cl's average pooling reads float in every build).
    static let storageTyped: Set<String> = ["elementwise.cl", "reduce.cl", "gemm.cl", "optim.cl", "conv.cl"]
    /// The programs whose kernels loop over runs of RUN elements (`Kernels/strided.cl`, prepended).
    static let runPrograms: Set<String> = ["elementwise.cl", "optim.cl", "index.cl"]
    /// The programs that read and check indices (`Kernels/index_check.cl`, prepended).
    static let indexPrograms: Set<String> = ["index.cl", "loss.cl"]
    /// The programs that combine partial results: a work-group's values in GPU row kernels,
    /// a vector's lanes on CPU devices (`Kernels/group_reduce.cl`, prepended).
    static let combiningPrograms: Set<String> = ["attention.cl", "loss.cl", "reduce.cl", "optim.cl", "gemm.cl"]

    let index: Int
    let info: DeviceInfo
    let device: cl_device_id
    let context: cl_context
    /// The queue commands go to: `plainQueue`, or `profilingQueue` while a profile records
    /// device activity (guarded by `lock`; read it through `activeQueue()` outside launches).
    private var queue: cl_command_queue
    /// The in-order queue of normal runs (no profiling, so commands carry no timestamps).
    private let plainQueue: cl_command_queue
    /// An in-order queue opened with `CL_QUEUE_PROFILING_ENABLE` at the first profile.
    private var profilingQueue: cl_command_queue?
    let pool: BufferPool
    /// Largest single allocation the device allows.
    let maxAllocation: Int
    /// Work-group size of elementwise kernels and of reductions (`LS` in reduce.cl).
    let elementwiseLocal: Int
    /// Elements of a row each work-item of a strided elementwise kernel loops over: 64 on CPU
    /// devices (a vectorisable loop per work-item), 1 on GPUs (coalesced neighbours).
    var stridedRun: Int { isCPU ? 64 : 1 }
    /// Rows of C per work-item of `gemm_block` for operands of `dtype` (`GEMM_ROWS_FLOAT32` and
    /// `GEMM_ROWS_NARROW` in gemm.cl): 8 in float32 on CPU devices, where its eight `float16`
    /// sums fill the vector registers without spilling, 4 elsewhere (with float16 and bfloat16
    /// operands, whose widening also takes registers, a 1024^3 product ran up to 1.2x slower
    /// with 8).
    func gemmRows(_ dtype: DType) -> Int { isCPU && dtype == .float32 ? 8 : 4 }
    let reductionLocal: Int
    /// Whether the device is a CPU (PoCL) and gets the CPU variants of the kernels: each
    /// work-item takes a contiguous slice or run.
    let isCPU: Bool
    /// Whether a product of few rows with B stored transposed may run `gemm_block_nt` rather
    /// than packing B for `gemm_block` (`gemmBPath`): on devices with 16-wide native float
    /// vectors (AVX-512), where its sixteen `float16` sums fit the registers. With 8-wide
    /// vectors (AVX2) they spill and a copy and `gemm_block` took 0.4-0.6x its time.
    let readsTransposedB: Bool
    /// The GEMM cache entry's key: platform, device, driver and `gemm.cl` digest.
    private(set) var gemmCacheKey = ""
    /// Guards `chosenGEMM`, so concurrent first GEMMs measure once.
    private let gemmLock = NSLock()
    private var chosenGEMM: GEMMChoice?

    /// Guards kernel arguments + enqueue (a `cl_kernel` is not thread-safe), the kernel
    /// cache and the pending error.
    private let lock = NSLock()
    /// Built programs by file name; `file#1` and `file#2` are the float16 and bfloat16 builds
    /// of a `storageTyped` program, made at their first launch.
    private var programs: [String: cl_program] = [:]
    /// Kernels by `file/name`.
    private var kernels: [String: cl_kernel] = [:]
    /// The full source of each program (what its narrow builds compile too).
    private var sources: [String: String] = [:]
    /// The programs of the kernel families with a composed fallback, compiled on a background
    /// thread (from device open for float32, at their first query for narrow builds) so a cold
    /// start does not wait for them; `kernelsReady` says when they are built.
    static let backgroundPrograms: [KernelFamily: String] = [.optimizer: "optim.cl", .attention: "attention.cl", .loss: "loss.cl"]
    /// The background builds started, by program name.
    private var backgroundBuilds: Set<String> = []
    /// Every running background build. A process that exits waits for them (an `atexit`
    /// handler): the OpenCL library must not be torn down under a compiling thread.
    static let runningBuilds: DispatchGroup = {
        let group = DispatchGroup()
        atexit { OpenCLBackend.runningBuilds.wait() }
        return group
    }()
    private var pendingError: EmberError?
    /// The device's lazy elementwise graphs (OpenCLBackend+Fusion.swift).
    let fusion = LazyFusion()
    /// The queue's index-error record, five Int32s `[reported, site, index (low), size, index (high)]` that
    /// `index.cl` fills for the first out-of-range index (zero while none was seen).
    private let indexErrors: cl_mem
    /// Whether an index kernel was enqueued since the record was last read.
    private var indexKernelsPending = false
    /// The op names of index kernels' site codes (code `i + 1` names `indexSites[i]`), and back.
    private var indexSites: [String] = []
    private var indexSiteCodes: [String: Int] = [:]

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
        self.plainQueue = queue
        var zeros = [Int32](repeating: 0, count: 5)
        guard let record = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR), 20, &zeros, &status),
              status == CL_SUCCESS else {
            clReleaseCommandQueue(queue)
            clReleaseContext(context)
            throw EmberError.openCL(call: "clCreateBuffer(index errors)", code: status)
        }
        indexErrors = record
        maxAllocation = Int(OpenCLRuntime.deviceValue(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, as: cl_ulong.self))
        pool = BufferPool(retainLimit: max(info.globalMemoryBytes / 4, 64 << 20))
        elementwiseLocal = min(256, info.maxWorkGroupSize)
        // EMBER_OPENCL_KERNELS=gpu builds the GPU variants of the kernels on any device, so the
        // tests can run those paths on a CPU OpenCL device (PoCL) too.
        let gpuKernels = ProcessInfo.processInfo.environment["EMBER_OPENCL_KERNELS"]?.lowercased() == "gpu"
        isCPU = !gpuKernels && OpenCLRuntime.deviceValue(device, CL_DEVICE_TYPE, as: cl_device_type.self) & cl_device_type(CL_DEVICE_TYPE_CPU) != 0
        readsTransposedB = OpenCLRuntime.deviceValue(device, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, as: cl_uint.self) >= 16
        var reduction = 1
        while reduction * 2 <= min(256, info.maxWorkGroupSize) { reduction *= 2 }
        reductionLocal = reduction
        var gemmSource = ""
        let storage = try OpenCLRuntime.kernelSource("storage.cl"), strided = try OpenCLRuntime.kernelSource("strided.cl")
        let math = try OpenCLRuntime.kernelSource("math.cl"), indexCheck = try OpenCLRuntime.kernelSource("index_check.cl")
        let groupReduce = try OpenCLRuntime.kernelSource("group_reduce.cl")
        fusion.prelude = storage + strided + math
        for file in Self.programFiles {
            var source = try OpenCLRuntime.kernelSource(file)
            if file == "gemm.cl" { gemmSource = source }
            if file == "elementwise.cl" { source = math + source + ElementwiseSource.generated + ElementwiseSource.casts }
            if Self.indexPrograms.contains(file) { source = indexCheck + source }
            if Self.combiningPrograms.contains(file) { source = groupReduce + source }
            if Self.runPrograms.contains(file) { source = strided + source }
            if Self.storageTyped.contains(file) { source = storage + source }
            sources[file] = source
            if !Self.backgroundPrograms.values.contains(file) { programs[file] = try build(name: file, source: source) }
        }
        sources["integer.cl"] = IntegerSource.generated
        gemmCacheKey = "\(info.platform) | \(info.name) | \(info.driverVersion) | gemm.cl \(GEMMChoice.digest(gemmSource))"
        lock.lock()
        for file in Self.backgroundPrograms.values { startBackgroundBuildLocked(file) }
        lock.unlock()
    }

    func kernelsReady(_ family: KernelFamily, dtype: DType) -> Bool {
        guard let base = Self.backgroundPrograms[family] else { return true }
        let file = Self.storageTyped.contains(base) ? Self.typedProgram(base, dtype) : base
        lock.lock(); defer { lock.unlock() }
        if programs[file] != nil { return true }
        startBackgroundBuildLocked(file)
        return false
    }

    /// Builds every background program now if its background build has not finished: in every
    /// storage type it has (for tests, which compare the fused paths and count their launches),
    /// or only its float32 build when `float32Only`.
    func finishBackgroundBuilds(float32Only: Bool = false) {
        lock.lock(); defer { lock.unlock() }
        for file in Self.backgroundPrograms.values {
            let types: [DType] = Self.storageTyped.contains(file) && !float32Only ? [.float32, .float16, .bfloat16] : [.float32]
            for dtype in types { _ = programLocked(Self.typedProgram(file, dtype)) }
        }
    }

    /// Starts building `file` (a background program or a narrow build of one) on a background
    /// thread unless it was started before. A launch that needs it first builds it itself (the
    /// background result is then dropped); a failed build leaves it unbuilt, so callers keep to
    /// their composed path, and a launch reports the build log. Call with `lock` held.
    private func startBackgroundBuildLocked(_ file: String) {
        guard programs[file] == nil, !backgroundBuilds.contains(file), sources[Self.sourceFile(of: file)] != nil else { return }
        backgroundBuilds.insert(file)
        Self.runningBuilds.enter()
        // A thread of its own at the lowest priority: the work it competes with (the first
        // steps, on the same cores on PoCL) goes first.
        let thread = Thread { [self] in
            defer { Self.runningBuilds.leave() }
            // On Linux the nice value is per thread: `who` 0 is this thread.
            setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
            guard let built = try? compile(file) else { return }
            lock.lock(); defer { lock.unlock() }
            if programs[file] == nil { programs[file] = built } else { clReleaseProgram(built) }
        }
        thread.start()
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
        record(clFinish(activeQueue()), "clFinish")
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

    /// Builds `source` for this device with Ember's build options (and `extra` ones).
    func build(name: String, source: String, extra: String = "") throws -> cl_program {
        try OpenCLRuntime.buildProgram(context: context, device: device, name: name, source: source,
                                       options: "-cl-std=CL1.2 -DLS=\(reductionLocal) -DCPU_DEVICE=\(isCPU ? 1 : 0) -DRUN=\(stridedRun) -DGEMM_ROWS_FLOAT32=\(gemmRows(.float32)) -DGEMM_ROWS_NARROW=\(gemmRows(.float16))\(extra)")
    }

    /// The build of a `storageTyped` program whose kernels read (and write) `dtype`.
    static func typedProgram(_ file: String, _ dtype: DType) -> String {
        switch dtype {
        case .float16: file + "#1"
        case .bfloat16: file + "#2"
        default: file
        }
    }

    /// The elementwise program for `dtype`.
    static func elementwiseProgram(_ dtype: DType) -> String { typedProgram("elementwise.cl", dtype) }

    /// The source file a program is built from: `file` itself, or the `file` of a narrow build `file#n`.
    private static func sourceFile(of program: String) -> String {
        String(program.split(separator: "#")[0])
    }

    /// Builds program `file` (a narrow build `file#n` with `-DSTORAGE=n`) from its source,
    /// which must be known. `sources` is written only while the backend opens, so any thread
    /// may call this.
    private func compile(_ file: String) throws -> cl_program {
        let parts = file.split(separator: "#").map(String.init)
        return try build(name: file, source: sources[parts[0]]!, extra: parts.count == 2 ? " -DSTORAGE=\(parts[1])" : "")
    }

    /// The program `file`, building a narrow variant (`file#n`), or a background program whose
    /// background build has not finished, at its first use. Call with `lock` held.
    private func programLocked(_ file: String) -> cl_program? {
        if let built = programs[file] { return built }
        guard sources[Self.sourceFile(of: file)] != nil else { return nil }
        do {
            let built = try compile(file)
            programs[file] = built
            return built
        } catch {
            if pendingError == nil { pendingError = error as? EmberError ?? .openCL(call: "clBuildProgram(\(file))", code: -11) }
            return nil
        }
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
        settle(buffer)
        pool.noteTransfer(upload: true)
        guard let base = source.baseAddress, source.count > 0 else { return }
        let (queue, collector) = queueAndCollector()
        var event: cl_event?
        let status = withUnsafeMutablePointer(to: &event) { slot in
            clEnqueueWriteBuffer(queue, buffer.handle, cl_bool(CL_TRUE), byteOffset, source.count, base, 0, nil, collector == nil ? nil : slot)
        }
        record(status, "clEnqueueWriteBuffer")
        if let collector, let event { collector.noteDeviceEvent(event, name: "Memcpy HtoD", device: "opencl:\(index)") }
    }

    func download(_ buffer: DeviceBuffer, byteOffset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        settle(buffer)
        pool.noteTransfer(upload: false)
        guard let base = destination.baseAddress, destination.count > 0 else { return try synchronize() }
        buildQueuedKernels()
        checkingIndices {
            let (queue, collector) = queueAndCollector()
            var event: cl_event?
            let status = withUnsafeMutablePointer(to: &event) { slot in
                clEnqueueReadBuffer(queue, buffer.handle, cl_bool(CL_TRUE), byteOffset, destination.count, base, 0, nil, collector == nil ? nil : slot)
            }
            record(status, "clEnqueueReadBuffer")
            if let collector, let event { collector.noteDeviceEvent(event, name: "Memcpy DtoH", device: "opencl:\(index)") }
        }
        try throwPending()
    }

    func synchronize() throws {
        flush()
        buildQueuedKernels()
        checkingIndices { record(clFinish(activeQueue()), "clFinish") }
        try throwPending()
    }

    /// Runs `wait` (a call that waits for the queue), reading the index-error record along
    /// with it when an index kernel ran since the last read: the read is enqueued without
    /// waiting just before, so the in-order queue completes it within `wait`, with no wait of
    /// its own. Stops the program with the CPU's message when a kernel reported an index out
    /// of range.
    private func checkingIndices(_ wait: () -> Void) {
        var report = [Int32](repeating: 0, count: 5)
        let reading = report.withUnsafeMutableBytes { bytes in
            lock.lock()
            let reading = indexKernelsPending
            indexKernelsPending = false
            lock.unlock()
            if reading {
                record(clEnqueueReadBuffer(activeQueue(), indexErrors, cl_bool(CL_FALSE), 0, 20, bytes.baseAddress, 0, nil, nil),
                       "clEnqueueReadBuffer(index errors)")
            }
            wait()
            return reading
        }
        guard reading, report[0] != 0 else { return }
        lock.lock()
        let site = Int(report[1]) - 1
        let op = indexSites.indices.contains(site) ? indexSites[site] : "index"
        lock.unlock()
        let index = Int(report[4]) << 32 | Int(UInt32(bitPattern: report[2]))
        failCheck(IndexRule(op: op).outOfBounds(index, size: Int(report[3])))
    }

    /// The trailing kernel arguments with which an index kernel checks its indices under
    /// `rule`: the ignored index, whether there is one, the op's site code and the error
    /// record. Marks the record for reading at the next synchronisation.
    func indexCheckArguments(_ rule: IndexRule) -> [Argument] {
        lock.lock(); defer { lock.unlock() }
        indexKernelsPending = true
        let code: Int
        if let known = indexSiteCodes[rule.op] {
            code = known
        } else {
            indexSites.append(rule.op)
            code = indexSites.count
            indexSiteCodes[rule.op] = code
        }
        return [.int(rule.ignored ?? 0), .int(rule.ignored == nil ? 0 : 1), .int(code), .memory(indexErrors)]
    }

    // MARK: Profiling

    /// The queue to enqueue on now (see `selectQueueLocked`).
    private func activeQueue() -> cl_command_queue {
        lock.lock(); defer { lock.unlock() }
        return selectQueueLocked()
    }

    /// The queue to enqueue on, and the profile of the current task when it records device
    /// activity (its commands then carry an event whose times the profile reads back).
    private func queueAndCollector() -> (cl_command_queue, ProfileCollector?) {
        let queue = activeQueue()
        guard Profiler.deviceProfiling, let collector = Profiler.current, collector.activities.contains(.device) else {
            return (queue, nil)
        }
        return (queue, collector)
    }

    /// The profiling queue while any profile records device activity, else the plain queue.
    /// Switching waits for the old queue first, so commands stay in order across the switch
    /// (the two queues are not ordered with respect to each other). Only a profile pays: a
    /// normal run reads one atomic counter. Call with `lock` held.
    private func selectQueueLocked() -> cl_command_queue {
        let profiling = Profiler.deviceProfiling
        guard profiling != (queue != plainQueue) else { return queue }
        if profiling && profilingQueue == nil {
            var status: cl_int = 0
            let created = clCreateCommandQueue(context, device, cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), &status)
            guard let created, status == CL_SUCCESS else {
                if pendingError == nil { pendingError = .openCL(call: "clCreateCommandQueue(profiling)", code: status) }
                return queue
            }
            profilingQueue = created
        }
        guard let next = profiling ? profilingQueue : plainQueue else { return queue }
        clFinish(queue)
        queue = next
        return queue
    }

    /// Remembers the first failed call, to be thrown at the next synchronisation point.
    func record(status: cl_int, _ call: String) { record(status, call) }

    /// Remembers `error` (a build failure, with its log) for the next synchronisation point.
    func record(_ error: EmberError) {
        lock.lock(); defer { lock.unlock() }
        if pendingError == nil { pendingError = error }
    }

    /// Makes `program` (built elsewhere: a fused kernel) launchable as program `file`.
    func installProgram(_ program: cl_program, as file: String) {
        lock.lock(); defer { lock.unlock() }
        if programs[file] == nil { programs[file] = program } else { clReleaseProgram(program) }
    }

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
        case memory(cl_mem)
        case int(Int)
        case float(Float)
        case ulong(UInt64)
        case uchar(UInt8)
        case ushort(UInt16)
        case int8([Int])
        case int16([Int])
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
    /// Counts one launch in `stats` (the primitive counts the bytes its kernels move).
    func launch3D(_ file: String, _ name: String, global: (Int, Int, Int), local: (Int, Int, Int), _ arguments: [Argument]) {
        guard global.0 > 0 && global.1 > 0 && global.2 > 0 else { return }
        for case .buffer(let b) in arguments { settle(b) }
        let collector = Profiler.deviceProfiling ? Profiler.current.flatMap { $0.activities.contains(.device) ? $0 : nil } : nil
        lock.lock(); defer { lock.unlock() }
        let queue = selectQueueLocked()
        let kernel: cl_kernel
        let key = file + "/" + name
        if let cached = kernels[key] {
            kernel = cached
        } else {
            guard let program = programLocked(file) else { return }
            var status: cl_int = 0
            guard let created = clCreateKernel(program, name, &status), status == CL_SUCCESS else {
                if pendingError == nil { pendingError = .openCL(call: "clCreateKernel(\(name))", code: status) }
                return
            }
            kernels[key] = created
            kernel = created
        }
        for (i, argument) in arguments.enumerated() {
            let status: cl_int
            switch argument {
            case .buffer(let b):
                var mem: cl_mem? = b.handle
                status = clSetKernelArg(kernel, cl_uint(i), MemoryLayout<cl_mem>.size, &mem)
            case .memory(let m):
                var mem: cl_mem? = m
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
            case .uchar(let v):
                var x = v
                status = clSetKernelArg(kernel, cl_uint(i), 1, &x)
            case .ushort(let v):
                var x = v
                status = clSetKernelArg(kernel, cl_uint(i), 2, &x)
            case .int8(let values):
                check(values.count <= 8, "opencl:\(index): \(name) needs \(values.count) dimensions after collapsing; at most 8 are supported")
                var x = SIMD8<Int32>()
                for (k, v) in values.enumerated() { x[k] = Int32(truncatingIfNeeded: v) }
                status = clSetKernelArg(kernel, cl_uint(i), 32, &x)
            case .int16(let values):
                check(values.count <= 16, "opencl:\(index): \(name) takes at most 16 entries in a vector argument, got \(values.count)")
                var x = SIMD16<Int32>()
                for (k, v) in values.enumerated() { x[k] = Int32(truncatingIfNeeded: v) }
                status = clSetKernelArg(kernel, cl_uint(i), 64, &x)
            }
            if status != CL_SUCCESS {
                if pendingError == nil { pendingError = .openCL(call: "clSetKernelArg(\(name), \(i))", code: status) }
                return
            }
        }
        var globalSize = [global.0, global.1, global.2]
        var localSize = [local.0, local.1, local.2]
        var event: cl_event?
        let status = withUnsafeMutablePointer(to: &event) { slot in
            clEnqueueNDRangeKernel(queue, kernel, 3, nil, &globalSize, &localSize, 0, nil, collector == nil ? nil : slot)
        }
        if status != CL_SUCCESS && pendingError == nil { pendingError = .openCL(call: "clEnqueueNDRangeKernel(\(name))", code: status) }
        pool.noteKernels(1, bytes: 0)
        if let collector, let event { collector.noteDeviceEvent(event, name: name, device: "opencl:\(index)") }
    }

    /// Runs `body` holding the launch lock (for CLBlast calls on the shared queue; each call
    /// counts as one kernel launch, whatever CLBlast enqueues inside it). `body`
    /// gets the queue and, when the current task profiles device activity, a place for the
    /// event of its last command (nil otherwise).
    func withQueue(_ body: (inout cl_command_queue?, UnsafeMutablePointer<cl_event?>?) -> Int32, call: String) {
        let collector = Profiler.deviceProfiling ? Profiler.current.flatMap { $0.activities.contains(.device) ? $0 : nil } : nil
        lock.lock(); defer { lock.unlock() }
        var q: cl_command_queue? = selectQueueLocked()
        var event: cl_event?
        let status = collector == nil ? body(&q, nil) : body(&q, &event)
        if status != 0 && pendingError == nil { pendingError = .openCL(call: call, code: status) }
        pool.noteKernels(1, bytes: 0)
        if let collector, let event { collector.noteDeviceEvent(event, name: call, device: "opencl:\(index)") }
    }
}
