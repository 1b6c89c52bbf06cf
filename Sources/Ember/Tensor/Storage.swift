/// The memory behind one or more tensors: a backend buffer, its device, and a version
/// counter that in-place ops bump so autograd can detect a saved tensor that changed.
final class Storage: @unchecked Sendable {
    /// The device buffer (4-byte elements).
    let buffer: DeviceBuffer
    /// The device the buffer lives on.
    let device: Device
    /// The backend that owns `buffer` (cached from `device`).
    let owner: Backend
    /// The backend ops call: the owner, or, while the current task is profiled, the owner
    /// wrapped so every primitive and transfer is recorded.
    var backend: Backend {
        if let collector = Profiler.current { return ProfilingBackend(owner, device: device, collector: collector) }
        return owner
    }
    /// Number of 4-byte elements the buffer was allocated for.
    let elementCount: Int
    /// Bumped by every in-place write.
    var version = 0

    init(buffer: DeviceBuffer, device: Device, backend: Backend, elementCount: Int) {
        self.buffer = buffer
        self.device = device
        self.owner = backend
        self.elementCount = elementCount
    }

    /// Fresh, uninitialised storage for `count` elements on `device`; stops the program with
    /// a message naming the op when the device is out of memory.
    static func allocate(_ count: Int, on device: Device, for op: @autoclosure () -> String) -> Storage {
        let backend = device.backend
        do {
            let buffer = try backend.allocate(bytes: count * 4)
            return Storage(buffer: buffer, device: device, backend: backend, elementCount: count)
        } catch {
            fatalError("\(op()): \(error)")
        }
    }
}
