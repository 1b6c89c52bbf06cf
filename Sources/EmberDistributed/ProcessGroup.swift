import CMPI
import CMPIShim
@_spi(Distributed) import Ember
import Foundation

/// A failure of the distributed runtime (MPI did not start, rank 0 could not write).
public struct DistributedError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The processes of one training job and the collectives between them (PyTorch's
/// `torch.distributed` process group), over Open MPI.
///
/// Collectives work in place on tensors of any device and of every dtype (float32, int32,
/// and bool for `max`/`min`, which are logical or/and). CPU tensors that are contiguous are
/// handed to MPI as they are; others (OpenCL tensors) go through host staging buffers that
/// the group keeps and reuses. Every process must call the same collectives in the same
/// order, as with any MPI program. Calls are serialised by a lock, so a communication
/// thread (as `DistributedDataParallel` runs) and the caller's thread may both use a group.
public final class ProcessGroup: @unchecked Sendable {
    /// How `allReduce` and `reduceScatter` combine the processes' values.
    public enum ReduceOp: String, Sendable, CaseIterable {
        /// The sum over processes.
        case sum
        /// The sum divided by `worldSize` (float32 only).
        case mean
        /// The elementwise maximum (logical or for bool).
        case max
        /// The elementwise minimum (logical and for bool).
        case min
    }

    /// This process's index, `0..<worldSize`.
    public let rank: Int
    /// Number of processes in the job.
    public let worldSize: Int
    /// Whether MPI carries the collectives (false for a group of one started without a launcher).
    public let usesMPI: Bool

    /// Serialises every MPI call (MPI runs at `MPI_THREAD_SERIALIZED`) and the staging buffers.
    private let lock = NSLock()
    private var staging: [UnsafeMutableRawBufferPointer] = [UnsafeMutableRawBufferPointer(start: nil, count: 0),
                                                            UnsafeMutableRawBufferPointer(start: nil, count: 0)]

    /// The communication thread `DistributedDataParallel` hands its buckets to, started on
    /// first use and shared by every wrapper on this group.
    var communicator: Communicator {
        communicatorLock.lock()
        defer { communicatorLock.unlock() }
        if let started { return started }
        let made = Communicator(group: self)
        started = made
        return made
    }
    private let communicatorLock = NSLock()
    private var started: Communicator?

    private init(rank: Int, worldSize: Int, usesMPI: Bool) {
        self.rank = rank
        self.worldSize = worldSize
        self.usesMPI = usesMPI
    }

    private nonisolated(unsafe) static var shared: ProcessGroup?
    private static let sharedLock = NSLock()

    /// The group of every process started by `mpirun` (MPI is initialised on the first call
    /// and finalised at exit). A process started without a launcher is a group of one and
    /// never touches MPI. Throws when MPI fails to start.
    public static func mpi() throws -> ProcessGroup {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let shared { return shared }
        let environment = ProcessInfo.processInfo.environment
        let launched = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { environment[$0] != nil }
        let group: ProcessGroup
        if launched {
            var provided: Int32 = 0
            let status = MPI_Init_thread(nil, nil, ember_mpi_thread_serialized(), &provided)
            guard status == ember_mpi_success() else {
                throw DistributedError("ProcessGroup.mpi(): MPI_Init_thread failed with code \(status)")
            }
            guard provided >= ember_mpi_thread_serialized() else {
                throw DistributedError("ProcessGroup.mpi(): this MPI gives thread level \(provided); EmberDistributed needs MPI_THREAD_SERIALIZED")
            }
            var rank: Int32 = 0, size: Int32 = 0
            MPI_Comm_rank(ember_mpi_comm_world(), &rank)
            MPI_Comm_size(ember_mpi_comm_world(), &size)
            group = ProcessGroup(rank: Int(rank), worldSize: Int(size), usesMPI: true)
            atexit { ProcessGroup.finalizeAtExit() }
        } else {
            group = ProcessGroup(rank: 0, worldSize: 1, usesMPI: false)
        }
        shared = group
        return group
    }

    /// Finalises MPI when the process exits normally (mpirun reports a process that exits
    /// without finalising as a failure).
    private static func finalizeAtExit() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    /// Whether this is rank 0 (the one that prints and writes checkpoints).
    public var isMain: Bool { rank == 0 }

    /// Stops every process of the job: prints `message` naming this rank to standard error
    /// and calls `MPI_Abort`, which makes mpirun end the others (no process hangs in a
    /// collective). In a group of one it exits with status 1.
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("EmberDistributed: rank \(rank) of \(worldSize) failed: \(message)\n".utf8))
        if usesMPI { MPI_Abort(ember_mpi_comm_world(), 1) }
        exit(1)
    }

    // MARK: Collectives

    /// Combines `tensor` across processes with `op`, in place: afterwards every process holds
    /// the result (PyTorch's `all_reduce`). The tensor must own its storage contiguously.
    public func allReduce(_ tensor: Tensor, op: ReduceOp = .sum) {
        let type = datatype(tensor, op: op, "allReduce")
        withBytes(tensor, write: true, "allReduce") { bytes in
            if usesMPI && worldSize > 1 {
                callLocked("allReduce") { MPI_Allreduce(ember_mpi_in_place(), bytes.baseAddress, Int32(tensor.count), type, mpiOp(op), ember_mpi_comm_world()) }
            }
            if op == .mean { ProcessGroup.scale(bytes, by: 1 / Float(worldSize)) }
        }
    }

    /// Overwrites `tensor` on every process with its value on `root` (PyTorch's `broadcast`).
    public func broadcast(_ tensor: Tensor, root: Int = 0) {
        check(root >= 0 && root < worldSize, "broadcast: root \(root) is out of range for \(worldSize) processes")
        let type = datatype(tensor, op: nil, "broadcast")
        withBytes(tensor, write: rank != root, "broadcast") { bytes in
            guard usesMPI && worldSize > 1 else { return }
            callLocked("broadcast") { MPI_Bcast(bytes.baseAddress, Int32(tensor.count), type, Int32(root), ember_mpi_comm_world()) }
        }
    }

    /// Every process's `tensor`, in rank order, on every process (PyTorch's `all_gather`).
    /// Each process must pass the same shape and dtype.
    public func allGather(_ tensor: Tensor) -> [Tensor] {
        let type = datatype(tensor, op: nil, "allGather")
        let gathered = Tensor.zeros([worldSize] + tensor.shape, dtype: tensor.dtype, device: tensor.device)
        let bytes = tensor.count * tensor.dtype.byteSize
        lock.lock()
        defer { lock.unlock() }
        let send = stagingBuffer(0, bytes)
        tensor.copyBytes(into: send)
        let receive = stagingBuffer(1, bytes * worldSize)
        if usesMPI && worldSize > 1 {
            callLocked("allGather") { MPI_Allgather(send.baseAddress, Int32(tensor.count), type, receive.baseAddress, Int32(tensor.count), type, ember_mpi_comm_world()) }
        } else {
            receive.copyMemory(from: UnsafeRawBufferPointer(send))
        }
        Tensor.noGrad { gathered.overwriteBytes(from: UnsafeRawBufferPointer(receive)) }
        return (0..<worldSize).map { gathered[$0].clone() }
    }

    /// Reduces `tensor` across processes with `op` and gives process r the r-th of
    /// `worldSize` equal chunks of the result along dimension 0 (PyTorch's
    /// `reduce_scatter_tensor`). The first dimension must divide by `worldSize`.
    public func reduceScatter(_ tensor: Tensor, op: ReduceOp = .sum) -> Tensor {
        check(tensor.rank >= 1 && tensor.shape[0] % worldSize == 0,
              "reduceScatter: the first dimension of shape \(tensor.shape) must divide by the \(worldSize) processes")
        let type = datatype(tensor, op: op, "reduceScatter")
        let chunkShape = [tensor.shape[0] / worldSize] + tensor.shape.dropFirst()
        let chunk = Tensor.zeros(chunkShape, dtype: tensor.dtype, device: tensor.device)
        let chunkCount = chunk.count
        lock.lock()
        defer { lock.unlock() }
        let send = stagingBuffer(0, tensor.count * tensor.dtype.byteSize)
        tensor.copyBytes(into: send)
        let receive = stagingBuffer(1, chunkCount * tensor.dtype.byteSize)
        if usesMPI && worldSize > 1 {
            callLocked("reduceScatter") { MPI_Reduce_scatter_block(send.baseAddress, receive.baseAddress, Int32(chunkCount), type, mpiOp(op), ember_mpi_comm_world()) }
        } else {
            receive.copyMemory(from: UnsafeRawBufferPointer(send))
        }
        if op == .mean { ProcessGroup.scale(receive, by: 1 / Float(worldSize)) }
        chunk.overwriteBytes(from: UnsafeRawBufferPointer(receive))
        return chunk
    }

    /// Waits until every process has reached the barrier.
    public func barrier() {
        guard usesMPI && worldSize > 1 else { return }
        call("barrier") { MPI_Barrier(ember_mpi_comm_world()) }
    }

    /// Runs `write` on rank 0 only (e.g. saving a checkpoint), then tells every rank whether it
    /// succeeded: all ranks return once the file is complete, and all throw if rank 0 failed.
    public func rankZeroWrites(_ write: () throws -> Void) throws {
        var failure: String?
        if rank == 0 {
            do { try write() } catch { failure = "\(error)" }
        }
        let status = Tensor(shape: [1], data: [Int32(failure == nil ? 0 : 1)])
        broadcast(status, root: 0)
        if let failure { throw DistributedError(failure) }
        if status.toIntArray()[0] != 0 { throw DistributedError("rank 0 failed to write the checkpoint") }
    }

    /// All-reduces `count` Float32 values at `pointer` in place with a sum (used by
    /// `DistributedDataParallel`'s communication thread on its bucket buffers).
    ///
    /// With `awaited` nil (backward has produced every gradient) it is one blocking
    /// `MPI_Allreduce`. Otherwise it starts a non-blocking all-reduce and polls it: while
    /// `awaited()` is false (backward still runs on this rank) it sleeps between polls (2 to
    /// 50 us), because a blocking MPI call spins on a core while the other ranks are still in
    /// backward, which takes that core from this process's own backward; once a thread waits
    /// for the result it polls without sleeping, as Open MPI advances a non-blocking
    /// collective only inside a poll. The lock is released between polls, so other
    /// collectives are not held up.
    func allReduceSum(_ pointer: UnsafeMutableRawPointer, count: Int, awaited: (() -> Bool)?) {
        guard usesMPI && worldSize > 1 && count > 0 else { return }
        guard let awaited else {
            return call("allReduce") { MPI_Allreduce(ember_mpi_in_place(), pointer, Int32(count), ember_mpi_float(), ember_mpi_sum(), ember_mpi_comm_world()) }
        }
        var request: MPI_Request?
        call("allReduce") { MPI_Iallreduce(ember_mpi_in_place(), pointer, Int32(count), ember_mpi_float(), ember_mpi_sum(), ember_mpi_comm_world(), &request) }
        var done: Int32 = 0
        var pause: UInt32 = 2
        while true {
            call("allReduce") { MPI_Test(&request, &done, ember_mpi_status_ignore()) }
            if done != 0 { return }
            if awaited() { continue }
            usleep(pause)
            pause = Swift.min(pause * 2, 50)
        }
    }

    // MARK: Helpers

    /// The MPI datatype of `tensor`'s elements, refusing reductions a dtype has no meaning for.
    private func datatype(_ tensor: Tensor, op: ReduceOp?, _ name: String) -> MPI_Datatype? {
        check(tensor.count <= Int(Int32.max), "\(name): \(tensor.count) elements exceed MPI's Int32 count")
        switch tensor.dtype {
        case .float32: return ember_mpi_float()
        case .int32, .int64, .uint8:
            check(op != .mean, "\(name): mean needs a float32 tensor, got \(tensor.dtype) (sum it and divide, or convert with float())")
            return tensor.dtype == .int32 ? ember_mpi_int() : (tensor.dtype == .int64 ? ember_mpi_int64() : ember_mpi_uint8())
        case .bool:
            check(op == nil || op == .max || op == .min, "\(name): \(op!.rawValue) of a bool tensor; use max (or) or min (and), or convert with float()")
            return ember_mpi_uint8()
        case .float16, .bfloat16:
            // MPI has no 16-bit float type: only moves (broadcast, gather) are bitwise.
            check(op == nil, "\(name): \(op!.rawValue) of a \(tensor.dtype) tensor; convert with float() first")
            return ember_mpi_uint16()
        }
    }

    private func mpiOp(_ op: ReduceOp) -> MPI_Op? {
        switch op {
        case .sum, .mean: return ember_mpi_sum()
        case .max: return ember_mpi_max()
        case .min: return ember_mpi_min()
        }
    }

    /// Hands `tensor`'s bytes to `body` (the CPU memory itself, or a staging buffer filled from
    /// the device and, with `write`, copied back), holding the lock.
    private func withBytes(_ tensor: Tensor, write: Bool, _ name: String, _ body: (UnsafeMutableRawBufferPointer) -> Void) {
        if write { Tensor.noGrad { tensor.noteHostWrite() } }
        lock.lock()
        defer { lock.unlock() }
        if let direct = tensor.cpuElementBytes {
            body(direct)
            return
        }
        let buffer = stagingBuffer(0, tensor.count * tensor.dtype.byteSize)
        tensor.copyBytes(into: buffer)
        body(buffer)
        if write { Tensor.noGrad { tensor.overwriteBytes(from: UnsafeRawBufferPointer(buffer)) } }
    }

    /// Runs one MPI call under the lock; a failing call stops every process with a message
    /// naming this rank.
    private func call(_ name: String, _ body: () -> Int32) {
        lock.lock()
        defer { lock.unlock() }
        callLocked(name, body)
    }

    /// Runs one MPI call; the caller holds the lock.
    private func callLocked(_ name: String, _ body: () -> Int32) {
        let status = body()
        if status != ember_mpi_success() { abort("\(name): MPI error code \(status)") }
    }

    /// Staging buffer `slot`, grown (never shrunk) to at least `bytes`; reused by later calls.
    /// The caller holds the lock.
    private func stagingBuffer(_ slot: Int, _ bytes: Int) -> UnsafeMutableRawBufferPointer {
        if staging[slot].count < bytes {
            staging[slot].deallocate()
            staging[slot] = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(bytes, 4096), alignment: 64)
        }
        return UnsafeMutableRawBufferPointer(rebasing: staging[slot][..<bytes])
    }

    /// Multiplies Float32 values in place.
    static func scale(_ bytes: UnsafeMutableRawBufferPointer, by factor: Float) {
        let values = bytes.bindMemory(to: Float.self)
        for i in values.indices { values[i] *= factor }
    }
}
