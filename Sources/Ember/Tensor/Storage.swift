/// The memory behind one or more tensors: a backend buffer, its device, and a version
/// counter that in-place ops bump so autograd can detect a saved tensor that changed.
final class Storage: @unchecked Sendable {
    /// The device buffer (elements of the dtype it was allocated for).
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
    /// Number of elements the buffer was allocated for.
    let elementCount: Int
    /// The element type the buffer was allocated for.
    let dtype: DType
    /// Bumped by every in-place write.
    var version = 0

    init(buffer: DeviceBuffer, device: Device, backend: Backend, elementCount: Int, dtype: DType) {
        self.buffer = buffer
        self.device = device
        self.owner = backend
        self.elementCount = elementCount
        self.dtype = dtype
    }

    /// Fresh, uninitialised storage for `count` elements of `dtype` on `device`; stops the
    /// program with a message naming the op when the device is out of memory.
    static func allocate(_ count: Int, _ dtype: DType, on device: Device, for op: @autoclosure () -> String) -> Storage {
        let backend = device.backend
        do {
            let buffer = try backend.allocate(bytes: count * dtype.byteSize)
            return Storage(buffer: buffer, device: device, backend: backend, elementCount: count, dtype: dtype)
        } catch {
            fatalError("\(op()): \(error)")
        }
    }
}
