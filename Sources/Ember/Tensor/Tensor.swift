import Foundation

/// An n-dimensional array on a `Device`, with reverse-mode automatic differentiation.
///
/// A tensor is a view (shape, strides, offset) onto shared `Storage`; views made by
/// `reshape`, `permute`, `transpose`, slicing and `expand` share memory with their base.
/// Ops run on the tensor's device and return new tensors; when any input requires a
/// gradient (and grad mode is on) the result records how to differentiate it.
public final class Tensor: @unchecked Sendable {
    /// The memory this tensor views. Replaced only by `moveStorage(to:sharing:)` and
    /// `replaceStorage(with:)` (`Module.to(_:)`, optimizer state following its parameter,
    /// loading a non-float buffer), which keep the object's identity as PyTorch does for
    /// parameters. Like any in-place write this must not race other uses of the tensor:
    /// move a model while no other thread runs it. Nothing may cache a tensor's storage
    /// beyond one op (kernels read `storage` afresh through `view`).
    var storage: Storage
    /// The size of each dimension.
    public let shape: [Int]
    /// Element strides of each dimension (0 on broadcast dims).
    public let strides: [Int]
    /// Element offset of the first element inside the storage.
    let offset: Int
    /// The element type. Changes only with the storage, in `convertStorage(to:sharing:)`
    /// (`Module.to(_ dtype:)`).
    public private(set) var dtype: DType

    var requiresGradFlag: Bool
    /// The node that produced this tensor (nil for leaves and for tensors made without grad).
    var gradFn: Node?
    /// Which output of `gradFn` this tensor is (0 unless the op has several).
    var outputIndex = 0
    /// Whether a non-leaf tensor keeps its `.grad` after backward (see `retainGrad()`).
    var retainsGrad = false
    /// The accumulated gradient (leaves, and non-leaves that called `retainGrad()`).
    public var grad: Tensor?
    /// Hooks run once a backward pass has accumulated this leaf's gradient (see
    /// `registerPostAccumulateGradHook` in Autograd/Engine.swift).
    var postAccumulateGradHooks: [GradientHook] = []

    init(storage: Storage, shape: [Int], strides: [Int], offset: Int, dtype: DType,
         requiresGrad: Bool = false, gradFn: Node? = nil) {
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.dtype = dtype
        self.requiresGradFlag = requiresGrad
        self.gradFn = gradFn
    }

    /// A fresh contiguous tensor with uninitialised contents.
    init(uninitialized shape: [Int], dtype: DType = .float32, device: Device, op: @autoclosure () -> String) {
        let count = Shape.count(shape)
        self.storage = Storage.allocate(count, dtype, on: device, for: op())
        self.shape = shape
        self.strides = Shape.contiguousStrides(shape)
        self.offset = 0
        self.dtype = dtype
        self.requiresGradFlag = false
        if let collector = Profiler.current {
            collector.noteAllocation(storage.buffer, bytes: storage.buffer.capacity, label: op(), tensor: self)
        }
    }

    /// The device this tensor lives on.
    public var device: Device { storage.device }
    /// Number of elements.
    public var count: Int { Shape.count(shape) }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// True when the elements are laid out densely in row-major order.
    public var isContiguous: Bool { Shape.isContiguous(shape, strides) }
    /// True for tensors not produced by a recorded op (user-created tensors and parameters).
    public var isLeaf: Bool { gradFn == nil }

    /// Whether gradients are computed for this tensor. Only leaves may change it.
    public var requiresGrad: Bool {
        get { requiresGradFlag }
        set {
            check(isLeaf, "requiresGrad: can only change the flag of a leaf tensor; use detach() on \(gradFnName ?? "this tensor")")
            check(!newValue || dtype.isFloatingPoint, "requiresGrad: only floating-point tensors can require gradients, not \(dtype)")
            requiresGradFlag = newValue
        }
    }

    /// Sets `requiresGrad` in place and returns self, for chaining.
    @discardableResult
    public func requiresGrad(_ flag: Bool) -> Tensor {
        requiresGrad = flag
        return self
    }

    /// Moves this tensor to `device` in place: its whole storage is copied there (keeping
    /// offset and strides) and replaces the old one, so the object, its `requiresGrad` and
    /// every reference to it (an optimizer's list) stay valid. `moved` maps storages already
    /// moved in this pass to their copies, so tensors that shared a storage still share it.
    /// Views made earlier keep the old storage. The new storage's version is one past the
    /// old one, so a graph that saved this tensor before the move refuses to run backward.
    func moveStorage(to device: Device, sharing moved: inout [ObjectIdentifier: (old: Storage, new: Storage)]) {
        guard storage.device != device else { return }
        if let done = moved[ObjectIdentifier(storage)] {
            storage = done.new
            return
        }
        let old = storage
        let whole = Tensor(storage: old, shape: [old.elementCount], strides: [1], offset: 0, dtype: dtype)
        let copy = whole.deviceCopy(to: device, op: "to(\(device))").storage
        copy.version = old.version + 1
        moved[ObjectIdentifier(old)] = (old, copy)
        storage = copy
    }

    /// Converts this float tensor to the float type `target` in place: its whole storage is cast
    /// (keeping offset and strides) and replaces the old one, so the object and every reference
    /// to it stay valid, as in `moveStorage(to:sharing:)`; `converted` maps storages already
    /// converted in this pass to their copies, so tensors that shared a storage still share it.
    /// The new storage's version is one past the old one, so a graph that saved this tensor
    /// before refuses to run backward.
    func convertStorage(to target: DType, sharing converted: inout [ObjectIdentifier: (old: Storage, new: Storage)]) {
        check(dtype.isFloatingPoint && target.isFloatingPoint, "convertStorage: \(dtype) to \(target) is not a conversion between float types")
        guard dtype != target else { return }
        if let done = converted[ObjectIdentifier(storage)] {
            storage = done.new
            dtype = target
            return
        }
        let old = storage
        let whole = Tensor(storage: old, shape: [old.elementCount], strides: [1], offset: 0, dtype: dtype)
        let copy = whole.castStorage(to: target).storage
        copy.version = old.version + 1
        converted[ObjectIdentifier(old)] = (old, copy)
        storage = copy
        dtype = target
    }

    /// Replaces this tensor's contents by `values` (same shape, dtype and device) by taking a
    /// dense copy's storage: an in-place load for dtypes the in-place ops refuse (integer and
    /// bool buffers). This tensor must own its whole storage contiguously.
    func replaceStorage(with values: Tensor) {
        check(values.shape == shape && values.dtype == dtype && values.device == device,
              "replaceStorage: \(Shape.describe(values.shape)) \(values.dtype) on \(values.device) does not match \(Shape.describe(shape)) \(dtype) on \(device)")
        check(offset == 0 && isContiguous && count == storage.elementCount,
              "replaceStorage: tensor of shape \(Shape.describe(shape)) does not own its whole storage contiguously")
        let copy = values.contiguousCopy()
        copy.storage.version = storage.version + 1
        storage = copy.storage
    }

    /// The strided view the backend kernels read.
    var view: StridedView {
        StridedView(buffer: storage.buffer, offset: offset, shape: shape, strides: strides, dtype: dtype)
    }

    var backend: Backend { storage.backend }

    /// A tensor that shares this one's storage with a new shape/strides/offset.
    func makeView(shape: [Int], strides: [Int], offset: Int) -> Tensor {
        Tensor(storage: storage, shape: shape, strides: strides, offset: offset, dtype: dtype)
    }

    // MARK: Creation from host data

    /// A tensor from nested Swift arrays (or a scalar): `Tensor([[1, 2], [3, 4]])`. Without
    /// `dtype` the scalars decide, as `torch.tensor`: numbers (integer literals too) give
    /// Float32, `Int32` values Int32, `Int64` values Int64, `Bool` values a `.bool` mask.
    public convenience init<T: TensorData>(_ data: T, dtype: DType? = nil, device: Device = .cpu, requiresGrad: Bool = false) {
        var values: [Double] = []
        var shape: [Int] = []
        data.flatten(into: &values, shape: &shape, depth: 0)
        self.init(shape: shape, values: values, dtype: dtype ?? T.defaultDType, device: device, requiresGrad: requiresGrad)
    }

    /// A tensor of `shape` filled from row-major `data` (Float32 unless `dtype` says
    /// otherwise; integer literals give Float32); the counts must match.
    public convenience init(shape: [Int], data: [Float], dtype: DType = .float32, device: Device = .cpu, requiresGrad: Bool = false) {
        self.init(shape: shape, values: data.map(Double.init), dtype: dtype, device: device, requiresGrad: requiresGrad)
    }

    /// An Int32 tensor of `shape` filled from row-major `[Int32]` data. Disfavoured, so that
    /// an array literal picks the Float32 initialiser.
    @_disfavoredOverload
    public convenience init(shape: [Int], data: [Int32], device: Device = .cpu) {
        self.init(shape: shape, values: data.map(Double.init), dtype: .int32, device: device, requiresGrad: false)
    }

    /// An Int64 tensor of `shape` filled from row-major `[Int64]` data, every value exact
    /// (labels and indices as PyTorch makes them). Disfavoured as the `[Int32]` initialiser is.
    @_disfavoredOverload
    public convenience init(shape: [Int], data: [Int64], device: Device = .cpu) {
        Tensor.checkFill(data.count, shape)
        self.init(uninitialized: shape, dtype: .int64, device: device, op: "Tensor")
        data.withUnsafeBytes { backend.upload($0, to: storage.buffer) }
    }

    convenience init(shape: [Int], values: [Double], dtype: DType, device: Device, requiresGrad: Bool) {
        Tensor.checkFill(values.count, shape)
        self.init(uninitialized: shape, dtype: dtype, device: device, op: "Tensor")
        if dtype == .float32 {
            values.map { Float($0) }.withUnsafeBytes { backend.upload($0, to: storage.buffer) }
        } else {
            if !dtype.isFloatingPoint && dtype != .bool {
                let (low, high): (Double, Double) = switch dtype {
                case .uint8: (0, 255)
                case .int32: (Double(Int32.min), Double(Int32.max))
                default: (-0x1p63, 0x1p63)
                }
                for v in values {
                    check(v.isFinite && v >= low && v < high + 1 && v == v.rounded(.towardZero),
                          "Tensor: value \(v) is not representable as \(dtype)")
                }
            }
            let width = dtype.byteSize
            var bytes = [UInt8](repeating: 0, count: values.count * width)
            for (i, v) in values.enumerated() {
                let bits = dtype.bits(of: v)
                for b in 0..<width { bytes[i * width + b] = UInt8(truncatingIfNeeded: bits >> (8 * b)) }
            }
            bytes.withUnsafeBytes { backend.upload($0, to: storage.buffer) }
        }
        if requiresGrad { self.requiresGrad = true }
    }

    /// Stops with a message when `shape` is invalid or `count` values do not fill it.
    static func checkFill(_ count: Int, _ shape: [Int]) {
        checkShape(shape, op: "Tensor")
        check(count == Shape.count(shape), "Tensor: \(count) values do not fill shape \(Shape.describe(shape)) (\(Shape.count(shape)) elements)")
    }

    /// Bytes of host memory `fromHost` fills and copies at a time.
    static let hostChunkBytes = 4 << 20

    /// A fresh contiguous tensor whose bytes `produce` writes on the host, one chunk of at
    /// most `hostChunkBytes` (whole elements) at a time, each copied into the storage before
    /// the next: reading a file of any size needs one chunk of host memory beside the tensor.
    /// `produce(chunk, byteOffset)` fills `chunk` with the tensor's bytes from `byteOffset` on.
    static func fromHost(shape: [Int], dtype: DType, device: Device, op: String,
                         _ produce: (_ chunk: UnsafeMutableRawBufferPointer, _ byteOffset: Int) throws -> Void) rethrows -> Tensor {
        let out = Tensor(uninitialized: shape, dtype: dtype, device: device, op: op)
        let total = out.count * dtype.byteSize
        // Whole elements per chunk.
        let chunk = Swift.min(total, hostChunkBytes / 8 * 8)
        guard chunk > 0 else { return out }
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { staging.deallocate() }
        var offset = 0
        while offset < total {
            let part = UnsafeMutableRawBufferPointer(rebasing: staging[..<Swift.min(chunk, total - offset)])
            try produce(part, offset)
            out.backend.upload(UnsafeRawBufferPointer(part), to: out.storage.buffer, byteOffset: offset)
            offset += part.count
        }
        return out
    }

    /// A contiguous copy of this tensor's elements on `target` (no autograd), passed through
    /// host memory one `fromHost` chunk at a time.
    func deviceCopy(to target: Device, op: String) -> Tensor {
        let source = dense
        return Tensor.fromHost(shape: shape, dtype: dtype, device: target, op: op) { chunk, byteOffset in
            source.readBytes(into: chunk, fromByte: byteOffset, failure: "\(op): reading from \(source.device)")
        }
    }

    /// Copies this contiguous tensor's bytes from byte `first` of its elements on into
    /// `destination` (waiting for the device); a device failure stops the program with
    /// `failure` and the error.
    func readBytes(into destination: UnsafeMutableRawBufferPointer, fromByte first: Int = 0,
                   failure: @autoclosure () -> String) {
        do { try backend.download(storage.buffer, byteOffset: offset * dtype.byteSize + first, into: destination) } catch {
            fatalError("\(failure()): \(error)")
        }
    }

    /// Hands this tensor's bytes, row-major, to `body` in chunks of at most `hostChunkBytes`
    /// read from the device one after another (waiting for it): writing a tensor of any size
    /// to a file needs one chunk of host memory.
    func forEachHostChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let source = dense, total = count * dtype.byteSize
        let chunk = Swift.min(total, Tensor.hostChunkBytes / 8 * 8)
        guard chunk > 0 else { return }
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { staging.deallocate() }
        var offset = 0
        while offset < total {
            let part = UnsafeMutableRawBufferPointer(rebasing: staging[..<Swift.min(chunk, total - offset)])
            try source.backend.download(source.storage.buffer, byteOffset: source.offset * dtype.byteSize + offset, into: part)
            try body(UnsafeRawBufferPointer(part))
            offset += part.count
        }
    }

    /// Stops with a message when a shape has a negative dimension.
    static func checkShape(_ shape: [Int], op: String) {
        for d in shape where d < 0 {
            fatalError("\(op): invalid shape \(Shape.describe(shape)): dimensions must be >= 0")
        }
    }

    // MARK: Reading back

    /// Copies the elements to the host in row-major order, as Float (other dtypes converted).
    /// Waits for the device.
    public func toArray() -> [Float] {
        if dtype == .float32 {
            var out = [Float](repeating: 0, count: count)
            if count > 0 { out.withUnsafeMutableBytes { dense.readBytes(into: $0, failure: "reading \(device) tensor") } }
            return out
        }
        return hostValues().map { Float($0) }
    }

    /// Copies the elements to the host as Int32 (floats truncated toward zero).
    public func toIntArray() -> [Int32] {
        hostValues().map { Int32(truncatingIfNeeded: Int64($0.isFinite ? $0.rounded(.towardZero) : 0)) }
    }

    /// Copies the elements to the host as Int64 (exact for int64 tensors; floats truncated).
    public func toInt64Array() -> [Int64] {
        guard dtype == .int64 else { return hostValues().map { Int64($0.isFinite ? $0.rounded(.towardZero) : 0) } }
        var out = [Int64](repeating: 0, count: count)
        if count > 0 { out.withUnsafeMutableBytes { dense.readBytes(into: $0, failure: "reading \(device) tensor") } }
        return out
    }

    /// Copies the elements of a mask to the host as Bool (non-zero is true).
    public func toBoolArray() -> [Bool] {
        toArray().map { $0 != 0 }
    }

    /// The single element of a one-element tensor, as Float.
    public func item() -> Float {
        check(count == 1, "item(): tensor of shape \(Shape.describe(shape)) has \(count) elements, expected 1")
        return toArray()[0]
    }

    /// The raw bytes of every element, row-major.
    func hostBytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count * dtype.byteSize)
        if count > 0 { out.withUnsafeMutableBytes { dense.readBytes(into: $0, failure: "reading \(device) tensor") } }
        return out
    }

    /// Every element's value, row-major (int64 exact below 2^53).
    private func hostValues() -> [Double] {
        let raw = hostBytes(), type = dtype
        return raw.withUnsafeBytes { bytes in (0..<count).map { type.value(in: bytes, at: $0) } }
    }

    /// This tensor when its elements are dense, else a contiguous copy (no autograd): what
    /// kernels that need dense input read.
    var dense: Tensor { isContiguous ? self : contiguousCopy() }

    /// A contiguous copy of this tensor's elements (no autograd).
    func contiguousCopy() -> Tensor {
        let out = Tensor(uninitialized: shape, dtype: dtype, device: device, op: "contiguous")
        if count > 0 { backend.copy(view, to: out.storage.buffer) }
        return out
    }
}
