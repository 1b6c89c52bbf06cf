import CBLAS
import CPUKernels
import Foundation

/// The CPU device: Swift loops over host memory (vectorised by the optimiser, split across
/// cores for large tensors) and OpenBLAS for GEMM. Everything runs synchronously.
final class CPUBackend: Backend, @unchecked Sendable {
    /// The single CPU backend.
    static let shared = CPUBackend()

    let pool = BufferPool(retainLimit: 2 << 30)
    /// Cores used for large loops and threaded GEMMs: those the process may run on. Under
    /// `mpirun` each rank is bound to its own cores, and two threads on one core made every
    /// parallel loop wait for the other thread's time slice (`ProcessInfo`'s processor
    /// counts ignore the affinity mask).
    let threads = CPUBackend.usableCores
    /// The cores this process may run on (its affinity mask), at least 1.
    static let usableCores: Int = {
        let usable = Int(ember_usable_cpus())
        return max(1, usable > 0 ? usable : ProcessInfo.processInfo.activeProcessorCount)
    }()
    /// Elements below which a loop runs on the calling thread.
    static let parallelThreshold = 1 << 16
    /// Multiply-adds from which a single GEMM runs on several cores.
    static let threadedGEMMWork = 1 << 21
    /// Rows from which such a GEMM is split into blocks of rows on Ember's threads.
    static let splitGEMMRows = 512

    private init() {}

    /// Sets OpenBLAS's thread count for the next calls (a process-wide setting; calls made
    /// meanwhile from other threads stay correct and only change speed).
    static func setBLASThreads(_ count: Int) {
        if openblas_get_num_threads() != count { openblas_set_num_threads(Int32(count)) }
    }

    /// The kernel set OpenBLAS runs, noting the one Ember replaced (`Sources/CPUKernels/blas_core.c`
    /// reselects OpenBLAS's kernels at load when it fell back to its generic ones on a CPU
    /// with AVX-512 or AVX2).
    static var blasCore: String? {
        guard let core = ember_blas_core() else { return nil }
        let name = String(cString: core)
        return ember_blas_core_reselected_from().map { "\(name) (reselected by Ember: OpenBLAS picked \(String(cString: $0)) for this CPU)" } ?? name
    }

    /// Name, vendor, cores, memory and SIMD features of the host CPU.
    static let info: DeviceInfo = {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ key: String) -> String? {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix(key) {
                if let colon = line.firstIndex(of: ":") {
                    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
        let interesting: Set<String> = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl",
                                        "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "neon", "asimd", "sve"]
        let flags = (field("flags") ?? field("Features") ?? "").split(separator: " ").map(String.init).filter { interesting.contains($0) }
        let blas = openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS"
        let kernels = ["scalar", "AVX2", "AVX-512"][Int(ember_cpu_isa().rawValue)]
        return DeviceInfo(name: field("model name") ?? "CPU", vendor: field("vendor_id") ?? "unknown",
                          driverVersion: "Ember CPU backend (\(kernels) kernels), \(blas)", platform: "host",
                          computeUnits: usableCores,
                          globalMemoryBytes: Int(ProcessInfo.processInfo.physicalMemory), maxWorkGroupSize: 1,
                          extensions: flags)
    }()

    // MARK: Memory

    func allocate(bytes: Int) throws -> DeviceBuffer {
        guard bytes <= CPUBackend.info.globalMemoryBytes else { throw EmberError.outOfMemory(device: "cpu", bytes: bytes) }
        let capacity = BufferPool.sizeClass(bytes)
        if let handle = pool.take(capacity: capacity) {
            return DeviceBuffer(handle: handle, capacity: capacity, backend: self)
        }
        var raw: UnsafeMutableRawPointer?
        if posix_memalign(&raw, 64, capacity) != 0 || raw == nil {
            emptyPool()
            guard posix_memalign(&raw, 64, capacity) == 0, raw != nil else {
                throw EmberError.outOfMemory(device: "cpu", bytes: bytes)
            }
        }
        pool.noteAllocated(capacity: capacity)
        return DeviceBuffer(handle: OpaquePointer(raw!), capacity: capacity, backend: self)
    }

    func recycle(handle: OpaquePointer, capacity: Int) {
        if !pool.put(handle, capacity: capacity) { free(UnsafeMutableRawPointer(handle)) }
    }

    func emptyPool() {
        for block in pool.drain() { free(UnsafeMutableRawPointer(block.handle)) }
    }

    var stats: BackendStats { pool.stats }

    func resetPeak() { pool.resetPeak() }

    @inline(__always)
    func floats(_ buffer: DeviceBuffer) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(buffer.handle).assumingMemoryBound(to: Float.self)
    }

    @inline(__always)
    func ints(_ buffer: DeviceBuffer) -> UnsafeMutablePointer<Int32> {
        UnsafeMutableRawPointer(buffer.handle).assumingMemoryBound(to: Int32.self)
    }

    /// The buffer's memory as elements of type `T`.
    @inline(__always)
    func elements<T>(_ buffer: DeviceBuffer, as type: T.Type) -> UnsafeMutablePointer<T> {
        UnsafeMutableRawPointer(buffer.handle).assumingMemoryBound(to: T.self)
    }

    // MARK: Transfers

    func upload(_ source: UnsafeRawBufferPointer, to buffer: DeviceBuffer, byteOffset: Int) {
        pool.noteTransfer(upload: true)
        guard let base = source.baseAddress, source.count > 0 else { return }
        (UnsafeMutableRawPointer(buffer.handle) + byteOffset).copyMemory(from: base, byteCount: source.count)
    }

    func download(_ buffer: DeviceBuffer, byteOffset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        pool.noteTransfer(upload: false)
        guard let base = destination.baseAddress, destination.count > 0 else { return }
        base.copyMemory(from: UnsafeMutableRawPointer(buffer.handle) + byteOffset, byteCount: destination.count)
    }

    func synchronize() throws {}

    func flush() {}

    /// The CPU's kernels are compiled with Ember: always ready.
    func kernelsReady(_ family: KernelFamily, dtype: DType) -> Bool { true }

    // MARK: Parallel loops

    /// Runs `body(start, end)` over `0..<count`, split into chunks across cores when large.
    @inline(__always)
    func parallelFor(_ count: Int, grain: Int = CPUBackend.parallelThreshold, _ body: (Int, Int) -> Void) {
        if count < grain || threads == 1 {
            body(0, count)
            return
        }
        let chunks = Swift.min(threads * 4, (count + grain - 1) / grain)
        let size = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let start = c * size
                let end = Swift.min(count, start + size)
                if start < end { shared.value(start, end) }
            }
        }
    }

    /// Calls `body(linearOutputIndex, offsets)` for every element of a collapsed strided
    /// iteration space in row-major order, where `offsets[k]` is operand k's element offset.
    /// The innermost dimension is handed to `inner(outIndex, count, offsets, innerStrides)`.
    func forEachRow(shape: [Int], strides: [[Int]], offsets: [Int], range: Range<Int>,
                    _ inner: (Int, Int, UnsafeMutableBufferPointer<Int>, [Int]) -> Void) {
        let rank = shape.count, operands = strides.count
        let last = shape[rank - 1]
        let innerStrides = strides.map { $0[rank - 1] }
        // Each operand's offset of the current row is kept up to date as the row index
        // advances (one add per operand and row, a subtraction when a dimension wraps), from
        // strides flattened operand by operand, instead of recomputed over every dimension.
        var flat = [Int](repeating: 0, count: operands * rank)
        for k in 0..<operands { for d in 0..<rank { flat[k * rank + d] = strides[k][d] } }
        var position = offsets, rowStart = offsets
        var index = [Int](repeating: 0, count: rank)
        flat.withUnsafeBufferPointer { st in
            position.withUnsafeMutableBufferPointer { pos in
                rowStart.withUnsafeMutableBufferPointer { base in
                    index.withUnsafeMutableBufferPointer { idx in
                        var column = range.lowerBound % last
                        var r = range.lowerBound / last
                        for d in stride(from: rank - 2, through: 0, by: -1) {
                            idx[d] = r % shape[d]
                            r /= shape[d]
                            for k in 0..<operands { base[k] += idx[d] * st[k * rank + d] }
                        }
                        var out = range.lowerBound
                        while out < range.upperBound {
                            for k in 0..<operands { pos[k] = base[k] + column * innerStrides[k] }
                            let n = Swift.min(last - column, range.upperBound - out)
                            inner(out, n, pos, innerStrides)
                            out += n
                            column = 0
                            var d = rank - 2
                            while d >= 0 {
                                idx[d] += 1
                                for k in 0..<operands { base[k] += st[k * rank + d] }
                                if idx[d] < shape[d] { break }
                                for k in 0..<operands { base[k] -= shape[d] * st[k * rank + d] }
                                idx[d] = 0
                                d -= 1
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A value handed to the workers of `DispatchQueue.concurrentPerform`, which returns only
/// after every worker has finished: the CPU loops give each worker a disjoint range of the
/// buffers the value points into, which is what makes sharing it safe.
struct UncheckedSendable<Value>: @unchecked Sendable {
    /// The shared value.
    let value: Value
    /// Wraps `value`.
    init(_ value: Value) { self.value = value }
}
