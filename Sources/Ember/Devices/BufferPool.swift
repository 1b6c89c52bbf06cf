import Foundation
import Synchronization

/// A size-keyed free list of device blocks, shared by every backend.
///
/// Requests are rounded up to a size class (four classes per power of two, so at most
/// 25% is wasted); a freed block waits in its class for the next request of that class,
/// so a training loop allocates nothing new after its first step. The pool keeps the
/// counters of `BackendStats`. It is thread-safe.
final class BufferPool: @unchecked Sendable {
    private var free: [Int: [OpaquePointer]] = [:]
    private var counters = BackendStats()
    private let lock = NSLock()
    /// The launch and byte counters, bumped by every primitive: atomics, not the lock.
    private let launches = Atomic<Int>(0), bytes = Atomic<Int>(0)
    /// Pooled bytes above which freed blocks are released instead of kept.
    let retainLimit: Int

    init(retainLimit: Int) {
        self.retainLimit = retainLimit
    }

    /// The size class a request of `bytes` bytes is served from.
    static func sizeClass(_ bytes: Int) -> Int {
        if bytes <= 512 { return 512 }
        var high = 1024
        while high < bytes { high <<= 1 }
        let quarter = high >> 3
        var size = high >> 1
        while size < bytes { size += quarter }
        return size
    }

    /// A pooled block of `capacity` bytes, or nil when the caller must allocate one.
    func take(capacity: Int) -> OpaquePointer? {
        lock.lock(); defer { lock.unlock() }
        // Popped in place: a copy of the list out of the dictionary would copy its storage.
        guard let handle = free[capacity]?.popLast() else { return nil }
        counters.pooledBuffers -= 1
        counters.pooledBytes -= capacity
        noteLive(capacity)
        return handle
    }

    /// Records a block the caller just allocated from the system or driver.
    func noteAllocated(capacity: Int) {
        lock.lock(); defer { lock.unlock() }
        counters.allocations += 1
        noteLive(capacity)
    }

    private func noteLive(_ capacity: Int) {
        counters.liveBuffers += 1
        counters.liveBytes += capacity
        counters.peakLiveBytes = max(counters.peakLiveBytes, counters.liveBytes)
    }

    /// Parks a freed block; returns false when the pool is full and the caller must release it.
    func put(_ handle: OpaquePointer, capacity: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        counters.liveBuffers -= 1
        counters.liveBytes -= capacity
        guard counters.pooledBytes + capacity <= retainLimit else { return false }
        free[capacity, default: []].append(handle)
        counters.pooledBuffers += 1
        counters.pooledBytes += capacity
        return true
    }

    /// Removes and returns every parked block, for the caller to release.
    func drain() -> [(handle: OpaquePointer, capacity: Int)] {
        lock.lock(); defer { lock.unlock() }
        var out: [(OpaquePointer, Int)] = []
        for (capacity, list) in free { for h in list { out.append((h, capacity)) } }
        free.removeAll()
        counters.pooledBuffers = 0
        counters.pooledBytes = 0
        return out
    }

    /// Counts one host-to-device (`upload: true`) or device-to-host copy.
    func noteTransfer(upload: Bool) {
        lock.lock(); defer { lock.unlock() }
        if upload { counters.hostToDevice += 1 } else { counters.deviceToHost += 1 }
    }

    /// Counts `launches` kernel launches that read and write `bytes` bytes in all.
    func noteKernels(_ launches: Int, bytes: Int) {
        if launches != 0 { self.launches.add(launches, ordering: .relaxed) }
        self.bytes.add(bytes, ordering: .relaxed)
    }

    /// A snapshot of the counters.
    var stats: BackendStats {
        lock.lock(); defer { lock.unlock() }
        var snapshot = counters
        snapshot.kernelLaunches = launches.load(ordering: .relaxed)
        snapshot.bytesMoved = bytes.load(ordering: .relaxed)
        return snapshot
    }

    /// Sets the peak to the current live bytes.
    func resetPeak() {
        lock.lock(); defer { lock.unlock() }
        counters.peakLiveBytes = counters.liveBytes
    }
}
