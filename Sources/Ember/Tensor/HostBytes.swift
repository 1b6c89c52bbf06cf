/// Raw host access to a tensor's elements for communication libraries (EmberDistributed):
/// `import Ember` with `@_spi(Distributed)` to see it. Elements are `dtype.byteSize` bytes each, in the
/// dtype's little-endian layout.
extension Tensor {
    /// The tensor's elements in place, when it is a contiguous tensor on the CPU: writing
    /// through the pointer changes the tensor (call `noteHostWrite()` afterwards). nil on
    /// other devices or layouts; use `copyBytes(into:)` / `overwriteBytes(from:)` there.
    @_spi(Distributed)
    public var cpuElementBytes: UnsafeMutableRawBufferPointer? {
        guard device.kind == .cpu, isContiguous else { return nil }
        let base = UnsafeMutableRawPointer(storage.buffer.handle) + offset * dtype.byteSize
        return UnsafeMutableRawBufferPointer(start: count > 0 ? base : nil, count: count * dtype.byteSize)
    }

    /// Copies the elements, row-major, into `destination` (exactly `count * dtype.byteSize` bytes); waits
    /// for the device.
    @_spi(Distributed)
    public func copyBytes(into destination: UnsafeMutableRawBufferPointer) {
        check(destination.count == count * dtype.byteSize, "copyBytes(into:): \(destination.count) bytes for a tensor of \(count * dtype.byteSize) bytes")
        guard count > 0 else { return }
        dense.readBytes(into: destination, failure: "copyBytes(into:)")
    }

    /// Overwrites the elements in place with `source` (exactly `count * dtype.byteSize` bytes, row-major).
    /// The tensor must own its whole storage contiguously and, while grad mode is on, not
    /// require grad (as for every in-place op).
    @_spi(Distributed)
    public func overwriteBytes(from source: UnsafeRawBufferPointer) {
        checkHostWrite("overwriteBytes(from:)")
        check(source.count == count * dtype.byteSize, "overwriteBytes(from:): \(source.count) bytes for a tensor of \(count * dtype.byteSize) bytes")
        guard count > 0 else { return }
        backend.upload(source, to: storage.buffer, byteOffset: 0)
        storage.version += 1
    }

    /// Records an in-place write made through `cpuElementBytes` (bumps the storage version, so
    /// autograd notices a saved tensor that changed); checks the write was allowed.
    @_spi(Distributed)
    public func noteHostWrite() {
        checkHostWrite("noteHostWrite()")
        storage.version += 1
    }

    private func checkHostWrite(_ op: String) {
        check(!(requiresGradFlag && GradMode.enabled),
              "\(op): in-place update of a tensor that requires grad; wrap it in Tensor.noGrad { }")
        check(offset == 0 && isContiguous && count == storage.elementCount || count == 0,
              "\(op): needs a tensor that owns its whole storage contiguously (shape \(Shape.describe(shape))); use clone() first")
    }
}
