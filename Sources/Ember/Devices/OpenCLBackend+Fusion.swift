import COpenCL
import Foundation

/// The lazy elementwise graphs of one OpenCL device (see "Lazy elementwise fusion" in
/// docs/ARCHITECTURE.md). Every field is guarded by `lock`, which a thread holds while it
/// records an op, settles a buffer or runs a graph (recursively: running a graph launches).
final class LazyFusion: @unchecked Sendable {
    /// Largest graph recorded: values, leaves, scalars, and buffers written at once.
    static let maxValues = 64, maxLeaves = 12, maxScalars = 24, maxOutputs = 4
    /// Most fused kernels built into one program (1: a program per pattern, which disk caches
    /// keep across processes).
    nonisolated(unsafe) static var maxBatch = 1

    let lock = NSRecursiveLock()
    /// The next `LazyResult` token.
    var nextToken = 0
    /// Buffers given pending contents (weakly; `flush` runs those still pending).
    var pending: [WeakBuffer] = []
    /// For each leaf buffer, the buffers whose pending graphs may read it.
    var readers: [ObjectIdentifier: [WeakBuffer]] = [:]
    /// True while this device runs a graph: its launches read leaves and write outputs that are
    /// settled already.
    var running = false
    /// What is known of each kernel source (`LazyKernelPlan.source`).
    var kernels: [String: KernelState] = [:]
    /// Sources waiting to be built (at the next host waits, `buildQueuedKernels`).
    var queued: [(source: String, name: String, parameters: [LazyKernelPlan.Parameter])] = []
    /// The queue and buffer of the launch that follows each build (made at the first build).
    /// (The buffer is outside the pool: it is not the program's memory.)
    var warmUpQueue: cl_command_queue?
    var scratch: cl_mem?
    /// `storage.cl`, `strided.cl` and `math.cl`: what a fused kernel's source is appended to.
    var prelude = ""
    /// Where `EMBER_FUSION_DUMP` asks for the generated sources to be written.
    static let dumpDirectory = ProcessInfo.processInfo.environment["EMBER_FUSION_DUMP"].flatMap { $0.isEmpty ? nil : $0 }
    /// Whether a fused kernel that fails to build stops with its build log (the tests set it)
    /// instead of leaving its pattern to the eager kernels.
    nonisolated(unsafe) static var buildFailuresThrow = false
    /// Whether a pattern seen for the second time is queued for building, unless the current
    /// task says otherwise (`queuesBuilds`). The test suite turns it off: it meets hundreds of
    /// patterns a few times each, and builds those of the tests that check fused kernels.
    nonisolated(unsafe) static var queuesRepeatedPatterns = true
    /// The current task's override of `queuesRepeatedPatterns`.
    @TaskLocal static var queuesBuilds: Bool?

    enum KernelState {
        /// Run once, eagerly; queued for building when it runs again.
        case seen
        /// Queued; runs eagerly until it is built.
        case building
        /// Built: launch `kernel` from program `program`.
        case ready(program: String, kernel: String)
        /// The build failed; runs eagerly.
        case failed
    }
}

extension Fusion {
    /// Whether elementwise ops of the current task are recorded lazily, when a scope says so
    /// (`withElementwiseFusion`); nil leaves it to the device (`OpenCLBackend.recordsLazily`).
    @TaskLocal static var elementwise: Bool?
    /// Whether OpenCL devices of the CPU type (PoCL) record elementwise ops lazily without a
    /// scope saying so: only with `EMBER_FUSION=1` (the test suite sets it). They share the
    /// host's cores and caches, so launches are cheap and fusion saved no time in `ember-bench`
    /// there, while building the fused kernels costs compilations.
    nonisolated(unsafe) static var elementwiseOnCPUDevices = ProcessInfo.processInfo.environment["EMBER_FUSION"] == "1"

    /// Runs `body` with lazy elementwise fusion on OpenCL devices turned on or off. Without a
    /// scope it is on for GPUs and other OpenCL devices that are not the host's CPU, and off on
    /// CPU devices such as PoCL unless `EMBER_FUSION=1`; `EMBER_FUSION=0` turns it off
    /// everywhere. Off, every elementwise op launches its own kernel when it is called; results
    /// are equal either way.
    public static func withElementwiseFusion<T>(_ enabled: Bool, _ body: () throws -> T) rethrows -> T {
        try $elementwise.withValue(enabled, operation: body)
    }
}

extension OpenCLBackend {
    // MARK: Recording

    /// Whether the current task's elementwise ops on this device are recorded lazily.
    var recordsLazily: Bool {
        Fusion.elementwise ?? (Fusion.enabled && (!isCPU || Fusion.elementwiseOnCPUDevices))
    }

    /// Whether an elementwise op of `dtype` values can be part of a lazy graph.
    private static func fusible(_ dtype: DType) -> Bool { dtype.isFloatingPoint || dtype == .bool }

    /// Records the elementwise op `make` builds (from the graph values of `inputs`) as the pending
    /// contents of `destination`, inlining inputs that are pending themselves where their view
    /// allows. Returns false, recording nothing, when the op must run now: fusion is off, a dtype
    /// is not a float or bool type, the graph would pass a limit, or it would read its own
    /// destination in another layout than the one it writes.
    func recordLazily(_ destination: DeviceBuffer, shape: [Int], inputs: [Operand],
                      _ make: (inout LazyGraphBuilder, [Int]) -> Int) -> Bool {
        guard recordsLazily, Shape.count(shape) < Int(Int32.max) else { return false }
        for case .view(let v) in inputs where !Self.fusible(v.dtype) { return false }
        fusion.lock.lock(); defer { fusion.lock.unlock() }
        guard !fusion.running else { return false }
        // Graphs that read the destination run before it is reassigned, and before the inputs
        // are read: running them writes their outputs, which the inputs may read.
        settleReadersLocked(destination, except: destination)
        var builder = LazyGraphBuilder(shape: shape)
        let dense = Shape.contiguousStrides(shape)
        var indices: [Int] = []
        for input in inputs {
            switch input {
            case .scalar(let s):
                indices.append(builder.scalar(s))
            case .view(let v):
                if let result = v.buffer.lazy {
                    let identity = v.offset == 0 && result.graph.shape == shape && (v.strides == dense || v.count <= 1)
                    if identity || result.graph.isFlat {
                        let value = builder.inline(result.graph, through: v, identity: identity)
                        if identity { builder.produced(value, by: v.buffer, token: result.token) }
                        indices.append(value)
                        continue
                    }
                    materializeLocked(v.buffer)
                }
                indices.append(builder.leaf(v))
            }
        }
        let root = make(&builder, indices)
        let graph = builder.build(root: root)
        let outputs = 1 + graph.producers.filter { $0.buffer.buffer?.lazy?.token == $0.token }.count
        guard graph.values.count <= LazyFusion.maxValues, graph.leaves.count <= LazyFusion.maxLeaves,
              graph.scalars.count <= LazyFusion.maxScalars, outputs <= LazyFusion.maxOutputs,
              !graph.leaves.contains(where: { $0.buffer === destination && !($0.offset == 0 && ($0.strides == dense || $0.count <= 1)) })
        else { return false }
        // The old contents (if pending) are overwritten: graphs that inlined them recompute them.
        destination.lazy = nil
        let token = fusion.nextToken
        fusion.nextToken += 1
        destination.lazy = LazyResult(graph: graph, token: token)
        for leaf in graph.leaves {
            fusion.readers[ObjectIdentifier(leaf.buffer), default: []].append(WeakBuffer(buffer: destination))
        }
        fusion.pending.append(WeakBuffer(buffer: destination))
        if fusion.pending.count > 4096 { fusion.pending.removeAll { $0.buffer?.lazy == nil } }
        if fusion.readers.count > 4096 {
            fusion.readers = fusion.readers.filter { entry in entry.value.contains { $0.buffer?.lazy != nil } }
        }
        return true
    }

    // MARK: Materialising

    /// Makes `buffer` safe to hand to a kernel or a transfer that may read or write it: runs
    /// its pending graph, and the pending graphs that read it.
    func settle(_ buffer: DeviceBuffer) {
        fusion.lock.lock(); defer { fusion.lock.unlock() }
        settleLocked(buffer)
    }

    private func settleLocked(_ buffer: DeviceBuffer) {
        guard !fusion.running else { return }
        if buffer.lazy != nil { materializeLocked(buffer) }
        settleReadersLocked(buffer)
    }

    /// Runs the pending graphs that read `buffer` (before it is written), but the one of `except`.
    private func settleReadersLocked(_ buffer: DeviceBuffer, except: DeviceBuffer? = nil) {
        guard let list = fusion.readers.removeValue(forKey: ObjectIdentifier(buffer)) else { return }
        for reader in list {
            if let r = reader.buffer, r !== except, let result = r.lazy, result.graph.leaves.contains(where: { $0.buffer === buffer }) {
                materializeLocked(r)
            }
        }
    }

    /// Runs every pending graph of the device (at the end of `backward()` and of an optimizer
    /// step, and before `synchronize`).
    func flush() {
        fusion.lock.lock(); defer { fusion.lock.unlock() }
        let list = fusion.pending
        fusion.pending.removeAll()
        // The latest first: a later graph that inlined earlier ones writes them too.
        for entry in list.reversed() { if let b = entry.buffer { materializeLocked(b) } }
        fusion.readers.removeAll()
    }

    /// Runs `buffer`'s pending graph, writing it and every producer of the graph still pending
    /// with the contents the graph computes, after the graphs that read any of those buffers.
    private func materializeLocked(_ buffer: DeviceBuffer) {
        guard let result = buffer.lazy, !fusion.running else { return }
        let graph = result.graph
        buffer.lazy = nil
        var outputs: [(value: Int, buffer: DeviceBuffer)] = [(graph.root, buffer)]
        for p in graph.producers {
            guard let b = p.buffer.buffer, let r = b.lazy, r.token == p.token, !outputs.contains(where: { $0.buffer === b }) else { continue }
            b.lazy = nil
            outputs.append((p.value, b))
        }
        // Graphs that read an output as a leaf run first, before it is overwritten.
        for output in outputs { settleReadersLocked(output.buffer) }
        fusion.running = true
        defer { fusion.running = false }
        let plan = LazyKernelPlan(graph: graph, outputs: outputs)
        if case let .ready(program, kernel) = kernelStateLocked(plan), launchFused(plan, graph, program: program, kernel: kernel) { return }
        runEagerly(plan, graph)
    }

    /// The state of a plan's kernel, noting this run: a source seen for the second time is
    /// queued for building.
    private func kernelStateLocked(_ plan: LazyKernelPlan) -> LazyFusion.KernelState {
        let source = plan.source
        switch fusion.kernels[source] {
        case nil:
            fusion.kernels[source] = .seen
            return .seen
        case .seen:
            guard LazyFusion.queuesBuilds ?? LazyFusion.queuesRepeatedPatterns else { return .seen }
            fusion.kernels[source] = .building
            let name = Self.fusedKernelName(source)
            if let directory = LazyFusion.dumpDirectory {
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try? (fusion.prelude + fusedSource(source, name)).write(toFile: directory + "/\(name).cl", atomically: true, encoding: .utf8)
            }
            fusion.queued.append((source, name, plan.parameters))
            return .building
        case let state?:
            return state
        }
    }

    /// `fused_` and a hash of the source (FNV-1a): the same name for a pattern in every process,
    /// so the program text, and the disk caches keyed by it, do not depend on the order in
    /// which patterns were met.
    static func fusedKernelName(_ source: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in source.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "fused_" + String(hash, radix: 16)
    }

    private func fusedSource(_ source: String, _ name: String) -> String {
        source.replacingOccurrences(of: "KERNEL_NAME", with: name)
    }

    /// Launches the built kernel `name` for `plan`; false when the layout has more dimensions
    /// than the kernel takes after collapsing.
    private func launchFused(_ plan: LazyKernelPlan, _ graph: LazyGraph, program: String, kernel name: String) -> Bool {
        let leaves = plan.leaves.map { graph.leaves[$0] }
        let n = graph.count
        var arguments: [Argument]
        if plan.strided {
            let c = Shape.collapse(graph.shape, leaves.map(\.strides))
            guard c.shape.count <= 8 else { return false }
            arguments = [.int(n), .int(c.shape.count), .int8(c.shape)]
            for (leaf, strides) in zip(leaves, c.strides) { arguments += [.buffer(leaf.buffer), .int(leaf.offset), .int8(strides)] }
        } else {
            arguments = [.int(n), .int(1), .int8([n])]
            for leaf in leaves { arguments += [.buffer(leaf.buffer), .int(leaf.offset)] }
        }
        arguments += plan.outputs.map { .buffer($0.buffer) }
        arguments += plan.scalars.map { .float(graph.scalars[$0]) }
        pool.noteKernels(0, bytes: leaves.reduce(0) { $0 + Traffic.of($1) }
                                   + plan.outputs.reduce(0) { $0 + Traffic.elements(n, graph.values[$1.value].dtype) })
        if plan.strided {
            let c = Shape.collapse(graph.shape, leaves.map(\.strides))
            let last = c.shape[c.shape.count - 1]
            launch(program, name, count: n / last * ((last + stridedRun - 1) / stridedRun), arguments)
        } else {
            launchDense(program, name, count: n, arguments)
        }
        return true
    }

    /// Computes the plan's values one eager kernel each (what the ops would have launched),
    /// into the output buffers or temporaries. An output whose buffer the graph also reads is
    /// written last, from a temporary, unless nothing reads after it.
    private func runEagerly(_ plan: LazyKernelPlan, _ graph: LazyGraph) {
        let dense = Shape.contiguousStrides(graph.shape)
        var computed: [Int: StridedView] = [:]
        var deferred: [(StridedView, DeviceBuffer)] = []
        let lastComputed = plan.needed.last { i in
            switch graph.values[i].operation { case .leaf, .scalar: false; default: true }
        }
        func view(_ v: Int) -> StridedView? {
            if case .leaf(let l) = graph.values[v].operation { return graph.leaves[l] }
            return computed[v]
        }
        func operand(_ v: Int) -> Operand? {
            if case .scalar(let s) = graph.values[v].operation { return .scalar(graph.scalars[s]) }
            return view(v).map { .view($0) }
        }
        for i in plan.needed {
            let value = graph.values[i]
            if case .leaf = value.operation { continue }
            if case .scalar = value.operation { continue }
            let output = plan.outputs.first { $0.value == i }?.buffer
            let aliased = output.map { o in graph.leaves.contains { $0.buffer === o } && i != lastComputed } ?? false
            let destination: DeviceBuffer
            if let output, !aliased {
                destination = output
            } else {
                guard let temporary = try? allocate(bytes: max(1, graph.count * value.dtype.byteSize)) else {
                    return record(status: -4, "fusion: no memory for an intermediate value")
                }
                destination = temporary
                if let output, aliased {
                    deferred.append((StridedView(buffer: temporary, offset: 0, shape: graph.shape, strides: dense, dtype: value.dtype), output))
                }
            }
            switch value.operation {
            case let .unary(kernel, x, p0, p1):
                guard let source = view(x) else { return record(status: -5, "fusion: a unary op of a scalar") }
                eagerUnary(UnaryOp(kernel: kernel, p0: graph.scalars[p0], p1: graph.scalars[p1]), source, destination: destination)
            case let .binary(kernel, a, b):
                guard let x = operand(a), let y = operand(b) else { return record(status: -5, "fusion: a missing operand") }
                let dtype = x.view?.dtype ?? y.view?.dtype ?? .float32
                eagerBinary(BinaryOp(kernel: kernel), x, y, shape: graph.shape, dtype: dtype, destination: destination)
            case let .select(c, a, b):
                guard let condition = view(c), let x = operand(a), let y = operand(b) else { return record(status: -5, "fusion: a missing operand") }
                eagerSelect(condition, x, y, shape: graph.shape, dtype: value.dtype, destination: destination)
            case .cast(let a):
                guard let source = view(a) else { return record(status: -5, "fusion: a cast of a scalar") }
                eagerCast(source, to: value.dtype, destination: destination)
            case .leaf, .scalar:
                break
            }
            computed[i] = StridedView(buffer: destination, offset: 0, shape: graph.shape, strides: dense, dtype: value.dtype)
        }
        for (source, output) in deferred { copy(source, to: output) }
    }

    // MARK: Building fused kernels

    /// Builds the oldest queued fused kernels (up to `LazyFusion.maxBatch` in one program) and
    /// runs each once over no elements on a queue of its own, since PoCL compiles a kernel's
    /// work-group function at its first launch; returns false when nothing was queued. Called
    /// where the host waits for the device (`download`, `synchronize`), before the wait, so the
    /// compilation overlaps the device's work; one program per pattern (the default) lets
    /// PoCL's and the drivers' on-disk caches, keyed by source, serve later processes.
    ///
    /// The builds run on the waiting thread rather than a thread of their own: a process that
    /// exits while LLVM compiles on another thread crashes, as exit handlers tear down the
    /// compiler's statics under it, and no handler can be ordered before all of those.
    @discardableResult
    func buildQueuedKernels() -> Bool {
        fusion.lock.lock()
        guard !fusion.queued.isEmpty else {
            fusion.lock.unlock()
            return false
        }
        let batch = Array(fusion.queued.prefix(LazyFusion.maxBatch))
        fusion.queued.removeFirst(batch.count)
        if fusion.warmUpQueue == nil {
            var status: cl_int = 0
            fusion.warmUpQueue = clCreateCommandQueue(context, device, 0, &status)
            fusion.scratch = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), 64, nil, &status)
        }
        let queue = fusion.warmUpQueue, scratch = fusion.scratch
        fusion.lock.unlock()
        let file = batch[0].name
        let states: [LazyFusion.KernelState]
        do {
            let program = try build(name: file, source: fusion.prelude + batch.map { fusedSource($0.source, $0.name) }.joined())
            if let queue, let scratch { for entry in batch { warmUp(program, entry.name, entry.parameters, queue: queue, scratch: scratch) } }
            installProgram(program, as: file)
            states = batch.map { .ready(program: file, kernel: $0.name) }
        } catch {
            if LazyFusion.buildFailuresThrow { record(error as? EmberError ?? .openCL(call: "clBuildProgram(\(file))", code: -11)) }
            states = batch.map { _ in .failed }
        }
        fusion.lock.lock()
        for (entry, state) in zip(batch, states) { fusion.kernels[entry.source] = state }
        fusion.lock.unlock()
        return true
    }

    /// Launches kernel `name` of `program` once over no elements on `queue` (n = 0, rank 1,
    /// every pointer the scratch buffer), and waits for it.
    private func warmUp(_ program: cl_program, _ name: String, _ parameters: [LazyKernelPlan.Parameter],
                        queue: cl_command_queue, scratch: cl_mem) {
        var status: cl_int = 0
        guard let kernel = clCreateKernel(program, name, &status), status == CL_SUCCESS else { return }
        defer { clReleaseKernel(kernel) }
        for (i, kind) in parameters.enumerated() {
            let index = cl_uint(i)
            switch kind {
            case .int:
                var v: Int32 = i == 1 ? 1 : 0
                status = clSetKernelArg(kernel, index, 4, &v)
            case .float:
                var v: Float = 0
                status = clSetKernelArg(kernel, index, 4, &v)
            case .int8:
                var v = SIMD8<Int32>(repeating: 1)
                status = clSetKernelArg(kernel, index, 32, &v)
            case .pointer:
                var mem: cl_mem? = scratch
                status = clSetKernelArg(kernel, index, MemoryLayout<cl_mem>.size, &mem)
            }
            guard status == CL_SUCCESS else { return }
        }
        var global = [elementwiseLocal, 1, 1], local = [elementwiseLocal, 1, 1]
        if clEnqueueNDRangeKernel(queue, kernel, 3, nil, &global, &local, 0, nil, nil) == CL_SUCCESS { clFinish(queue) }
    }

    /// Builds every queued fused kernel now (for tests and benchmarks).
    func waitForFusedBuilds() {
        while buildQueuedKernels() {}
    }
}
