import COpenCL
import Foundation

/// The recording side of one profile: events appended under a lock by whichever thread runs
/// the profiled task, a stack of open ranges per thread (which gives the nesting), and the
/// device's profiling events, read back when the profile ends.
final class ProfileCollector: @unchecked Sendable {
    let activities: Set<ProfilerActivity>
    let recordShapes: Bool
    private let origin: UInt64
    private let lock = NSLock()
    private var events: [ProfilerEvent] = []
    /// The tensor each op event wrote (matched by `noteRecorded` to give it its gradFn).
    private var outputs: [ObjectIdentifier?] = []
    private var threads: [UInt: Int] = [:]
    private var open: [UInt: [Int]] = [:]
    /// Per thread: the last op event and the buffer it wrote.
    private var lastOp: [UInt: (event: Int, buffer: ObjectIdentifier, primitive: String)] = [:]
    /// Buffers allocated since the profile began that no primitive has written yet.
    private var fresh: [ObjectIdentifier: (label: String, bytes: Int, tensor: ObjectIdentifier?)] = [:]
    private var pendingDevice: [(event: cl_event, name: String, device: String, enqueued: UInt64, host: Int?)] = []

    init(activities: Set<ProfilerActivity>, recordShapes: Bool) {
        self.activities = activities
        self.recordShapes = recordShapes
        origin = ProfileCollector.now()
    }

    /// The monotonic clock in nanoseconds.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private var elapsed: Int { Int(ProfileCollector.now() &- origin) }

    private static var thread: UInt { UInt(pthread_self()) }

    private func threadIndex(_ tid: UInt) -> Int {
        if let index = threads[tid] { return index }
        let index = threads.count
        threads[tid] = index
        return index
    }

    // MARK: Ranges

    /// Runs `body` as one range.
    func scope<T>(_ name: String, kind: ProfilerEvent.Kind, device: String? = nil, _ body: () throws -> T) rethrows -> T {
        guard activities.contains(.cpu) else { return try body() }
        let index = begin(name, kind: kind, device: device, shapes: [], transferred: 0, bytes: 0, output: nil)
        defer { end(index) }
        return try body()
    }

    /// Runs a host<->device copy as a range; an upload into a buffer just allocated for it
    /// (`to(_:)`, a tensor made from host data) is charged that buffer's bytes.
    func transfer<T>(_ name: String, into buffer: DeviceBuffer?, device: String, bytes transferred: Int,
                     _ body: () throws -> T) rethrows -> T {
        guard activities.contains(.cpu) else { return try body() }
        var allocated = 0
        if let buffer {
            lock.lock()
            allocated = fresh.removeValue(forKey: ObjectIdentifier(buffer))?.bytes ?? 0
            lock.unlock()
        }
        let index = begin(name, kind: .transfer, device: device, shapes: [], transferred: transferred, bytes: allocated, output: nil)
        defer { end(index) }
        return try body()
    }

    /// Runs one backend primitive writing `destination` as an op range. It is named by the
    /// op that allocated `destination` (`Tensor(uninitialized:op:)`), by the op before it when
    /// that one ran the same primitive into the same buffer (a primitive run in chunks), or
    /// else `fallback` + `_`
    /// (a write into existing storage, like PyTorch's in-place `add_`).
    func primitive<T>(_ fallback: String, destination: DeviceBuffer?, device: String, shapes: @autoclosure () -> [[Int]],
                      _ body: () throws -> T) rethrows -> T {
        guard activities.contains(.cpu) else { return try body() }
        let tid = Self.thread
        lock.lock()
        var name = fallback + "_"
        var bytes = 0
        var output: ObjectIdentifier?
        if let destination {
            let id = ObjectIdentifier(destination)
            if let claimed = fresh.removeValue(forKey: id) {
                (name, bytes, output) = (claimed.label, claimed.bytes, claimed.tensor)
            } else if let last = lastOp[tid], last.buffer == id, last.primitive == fallback {
                name = events[last.event].name
                output = outputs[last.event]
            }
        }
        lock.unlock()
        let index = begin(name, kind: .op, device: device, shapes: recordShapes ? shapes() : [], transferred: 0,
                          bytes: bytes, output: output)
        defer {
            end(index)
            if let destination {
                lock.lock()
                lastOp[tid] = (index, ObjectIdentifier(destination), fallback)
                lock.unlock()
            }
        }
        return try body()
    }

    private func begin(_ name: String, kind: ProfilerEvent.Kind, device: String?, shapes: [[Int]], transferred: Int,
                       bytes: Int, output: ObjectIdentifier?) -> Int {
        let tid = Self.thread
        let start = elapsed
        lock.lock(); defer { lock.unlock() }
        let index = events.count
        events.append(ProfilerEvent(name: name, kind: kind, gradFn: nil, inputShapes: shapes, device: device,
                                    thread: threadIndex(tid), start: start, duration: 0, parent: open[tid]?.last,
                                    bytesAllocated: bytes, bytesTransferred: transferred, deviceTime: 0))
        outputs.append(output)
        open[tid, default: []].append(index)
        return index
    }

    private func end(_ index: Int) {
        let tid = Self.thread
        let stop = elapsed
        lock.lock(); defer { lock.unlock() }
        events[index].duration = stop - events[index].start
        if open[tid]?.last == index { open[tid]?.removeLast() }
    }

    // MARK: Notes from the tensor layer and the backends

    /// A buffer allocated for an op's output (`label` is the op).
    func noteAllocation(_ buffer: DeviceBuffer, bytes: Int, label: String, tensor: Tensor?) {
        guard activities.contains(.cpu) else { return }
        let name = label.firstIndex(of: "(").map { String(label[..<$0]) } ?? label
        lock.lock(); defer { lock.unlock() }
        fresh[ObjectIdentifier(buffer)] = (name, bytes, tensor.map(ObjectIdentifier.init))
    }

    /// An op attached its gradFn to `output`: the op event that just wrote `output` gets the
    /// node's name and the inputs' shapes; an op that ran no primitive of its own (a view, or
    /// an op composed from others with one backward rule) is recorded as an instant event.
    func noteRecorded(_ output: Tensor, gradFn: String, inputs: [Tensor]) {
        guard activities.contains(.cpu) else { return }
        let tid = Self.thread
        let now = elapsed
        let shapes = recordShapes ? inputs.map(\.shape) : []
        lock.lock(); defer { lock.unlock() }
        if let last = lastOp[tid], outputs[last.event] == ObjectIdentifier(output), events[last.event].gradFn == nil {
            events[last.event].gradFn = gradFn
            if recordShapes { events[last.event].inputShapes = shapes }
            return
        }
        var name = gradFn.hasSuffix("Backward") ? String(gradFn.dropLast("Backward".count)) : gradFn
        if let first = name.first { name = first.lowercased() + name.dropFirst() }
        events.append(ProfilerEvent(name: name, kind: .op, gradFn: gradFn, inputShapes: shapes, device: output.device.description,
                                    thread: threadIndex(tid), start: now, duration: 0, parent: open[tid]?.last,
                                    bytesAllocated: 0, bytesTransferred: 0, deviceTime: 0))
        outputs.append(ObjectIdentifier(output))
    }

    /// A kernel or copy enqueued with a profiling event; read back when the profile ends.
    func noteDeviceEvent(_ event: cl_event, name: String, device: String) {
        let tid = Self.thread
        let enqueued = ProfileCollector.now()
        lock.lock(); defer { lock.unlock() }
        pendingDevice.append((event, name, device, enqueued, open[tid]?.last))
    }

    // MARK: Result

    /// Waits for the device events, reads their times and returns the profile.
    func finish() -> ProfileResult {
        lock.lock(); defer { lock.unlock() }
        var deviceEvents: [DeviceEvent] = []
        var offsets: [String: Int] = [:]
        for pending in pendingDevice {
            var event: cl_event? = pending.event
            defer { clReleaseEvent(pending.event) }
            guard clWaitForEvents(1, &event) == CL_SUCCESS else { continue }
            func time(_ what: Int32) -> UInt64? {
                var value: cl_ulong = 0
                let status = clGetEventProfilingInfo(pending.event, cl_profiling_info(what), MemoryLayout<cl_ulong>.size, &value, nil)
                return status == CL_SUCCESS ? UInt64(value) : nil
            }
            guard let queued = time(CL_PROFILING_COMMAND_QUEUED), let start = time(CL_PROFILING_COMMAND_START),
                  let stop = time(CL_PROFILING_COMMAND_END) else { continue }
            // The device clock is aligned to the host's at the device's first enqueue.
            let offset = offsets[pending.device] ?? {
                let o = Int(pending.enqueued &- origin) - Int(bitPattern: UInt(queued))
                offsets[pending.device] = o
                return o
            }()
            let duration = Int(stop >= start ? stop - start : 0)
            deviceEvents.append(DeviceEvent(name: pending.name, device: pending.device, queue: 0,
                                            start: Int(bitPattern: UInt(start)) + offset, duration: duration,
                                            hostEvent: pending.host))
            if let host = pending.host { events[host].deviceTime += duration }
        }
        pendingDevice.removeAll()
        deviceEvents.sort { $0.start < $1.start }
        return ProfileResult(events: events, deviceEvents: deviceEvents)
    }
}
