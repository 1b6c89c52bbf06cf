import Foundation

/// The safetensors format (as written by Python's `safetensors` and read by PyTorch):
/// an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
/// and byte range, then the raw little-endian data.
///
/// Reading follows the reference implementation's rules: the header is strict JSON, names
/// are compared byte for byte and may not repeat, shapes and offsets are non-negative
/// integers, `__metadata__` maps strings to strings, and the tensors tile the data area
/// from its first byte to the end of the file. Tensor bytes are read from the file straight
/// into each tensor's storage, a chunk at a time, so loading needs the file's size in
/// memory and little more; writing streams the same way.
public enum SafeTensors {
    /// Largest header accepted (100 MB, as the reference implementation).
    static let maxHeaderBytes = 100_000_000

    /// Writes `tensors` (in order) to `url` atomically: a temporary file in the same folder is
    /// written and synced, then renamed over `url`, so the previous file survives a crash.
    /// Each tensor keeps its dtype and bytes: F32, F16, BF16, I32, I64, U8 and BOOL (one byte
    /// per element), as Python's `safetensors.torch` writes them. Tensor bytes go from the
    /// device to the file a chunk at a time.
    public static func write(_ tensors: StateDict, to url: URL, metadata: [String: String] = [:]) throws {
        var header: [(key: String, value: JSON)] = []
        if !metadata.isEmpty {
            header.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        var offset = 0
        for (name, tensor) in tensors {
            guard name != "__metadata__" else {
                throw EmberError.invalidFile(path: url.path, reason: "reserved tensor name '\(name)'")
            }
            let dtype = FileType(tensor.dtype)
            let end = offset + tensor.count * dtype.size
            header.append((name, .object([("dtype", .string(dtype.rawValue)), ("shape", .array(tensor.shape.map { .integer($0) })),
                                          ("data_offsets", .array([.integer(offset), .integer(end)]))])))
            offset = end
        }
        var json = JSON.object(header).encoded()
        while json.count % 8 != 0 { json.append(0x20) }
        try writeAtomically(to: url) { emit in
            try withUnsafeBytes(of: UInt64(json.count).littleEndian) { try emit($0) }
            try json.withUnsafeBytes { try emit($0) }
            for (_, tensor) in tensors {
                try tensor.forEachHostChunk { try emit($0) }
            }
        }
    }

    /// Writes what `produce` emits to a temporary sibling of `url`, syncs it, and renames it
    /// over `url`; on any failure the temporary file is removed and `url` is left as it was.
    static func writeAtomically(to url: URL, _ produce: (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let folder = url.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).\(UInt64.random(in: 0...UInt64.max)).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EmberError.invalidFile(path: url.path, reason: "cannot create \(temporary.lastPathComponent): \(String(cString: strerror(errno)))") }
        func systemFailure() -> EmberError { .invalidFile(path: url.path, reason: "write failed: \(String(cString: strerror(errno)))") }
        do {
            try produce { bytes in
                var written = 0
                while written < bytes.count {
                    let n = Foundation.write(fd, bytes.baseAddress! + written, bytes.count - written)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw systemFailure() }
                    written += n
                }
            }
            guard fsync(fd) == 0 else { throw systemFailure() }
            close(fd)
            guard rename(temporary.path, url.path) == 0 else { throw systemFailure() }
        } catch {
            close(fd)
            unlink(temporary.path)
            throw error
        }
    }

    /// Reads every tensor of a safetensors file onto the CPU, in file order. Every size and
    /// offset is checked against the file before anything is allocated. F32, F16, BF16, I32,
    /// I64, U8 and BOOL load bit for bit as the dtype of that name; F64 is converted to
    /// `float32` and I8 to `int32` (Ember has neither type).
    public static func read(from url: URL) throws -> StateDict {
        try read(HostFile(url))
    }

    /// The metadata strings of a safetensors file (empty when it has none).
    public static func metadata(from url: URL) throws -> [String: String] {
        try Header(HostFile(url)).metadata
    }

    /// Reads every tensor of a safetensors file held in memory; `path` names it in errors.
    static func parse(_ data: Data, path: String) throws -> StateDict {
        try read(BytesInMemory(data: data, path: path))
    }

    private static func read(_ file: some ReadableBytes) throws -> StateDict {
        let header = try Header(file)
        var out = StateDict()
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * Tensor.hostChunkBytes, alignment: 64)
        defer { staging.deallocate() }
        for entry in header.entries {
            let start = header.dataStart + entry.begin
            out[entry.name] = try Tensor.fromHost(shape: entry.shape, dtype: entry.dtype.tensorType, device: .cpu, op: "SafeTensors.read") { chunk, byteOffset in
                let width = entry.dtype.tensorType.byteSize
                let first = byteOffset / width, count = chunk.count / width
                let source = start + first * entry.dtype.size
                if entry.dtype.size == width { return try file.read(at: source, into: chunk) }
                let raw = UnsafeMutableRawBufferPointer(rebasing: staging[..<(count * entry.dtype.size)])
                try file.read(at: source, into: raw)
                entry.dtype.widen(UnsafeRawBufferPointer(raw), into: chunk, count: count)
            }
        }
        return out
    }

    /// The element types a file may hold, with their sizes and how they load (hosts are
    /// little-endian, like the format).
    enum FileType: String {
        case f32 = "F32", f64 = "F64", f16 = "F16", bf16 = "BF16", i32 = "I32", i64 = "I64", i8 = "I8", u8 = "U8", bool = "BOOL"

        /// How Ember's dtypes are stored.
        init(_ dtype: DType) {
            switch dtype {
            case .float32: self = .f32
            case .float16: self = .f16
            case .bfloat16: self = .bf16
            case .int32: self = .i32
            case .int64: self = .i64
            case .uint8: self = .u8
            case .bool: self = .bool
            }
        }

        /// Bytes per element in the file.
        var size: Int {
            switch self {
            case .f64, .i64: return 8
            case .f32, .i32: return 4
            case .f16, .bf16: return 2
            case .i8, .u8, .bool: return 1
            }
        }

        /// The dtype of the tensor it loads as.
        var tensorType: DType {
            switch self {
            case .f32, .f64: return .float32
            case .f16: return .float16
            case .bf16: return .bfloat16
            case .i32, .i8: return .int32
            case .i64: return .int64
            case .u8: return .uint8
            case .bool: return .bool
            }
        }

        /// Converts `count` elements of the two types Ember has no dtype for (F64, I8) into
        /// `tensorType`'s elements.
        func widen(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, count: Int) {
            func map<Source, Target>(_: Source.Type, _: Target.Type, _ transform: (Source) -> Target) {
                let from = source.bindMemory(to: Source.self), to = destination.bindMemory(to: Target.self)
                for i in 0..<count { to[i] = transform(from[i]) }
            }
            switch self {
            case .f64: map(Double.self, Float.self) { Float($0) }
            case .i8: map(Int8.self, Int32.self) { Int32($0) }
            default: destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[..<(count * size)]))
            }
        }
    }

    /// A parsed, validated header.
    struct Header {
        /// One tensor's entry.
        struct Entry {
            let name: String
            let dtype: FileType
            let shape: [Int]
            let begin: Int, end: Int
        }
        /// The tensors in file order.
        var entries: [Entry] = []
        /// The `__metadata__` strings.
        var metadata: [String: String] = [:]
        /// Where the data area starts in the file.
        var dataStart = 0

        init(_ file: some ReadableBytes) throws {
            func fail(_ reason: String) -> EmberError { .invalidFile(path: file.path, reason: reason) }
            guard file.size >= 8 else { throw fail("file of \(file.size) bytes is too short for a safetensors header") }
            var lengthField: UInt64 = 0
            try withUnsafeMutableBytes(of: &lengthField) { try file.read(at: 0, into: $0) }
            let length = UInt64(littleEndian: lengthField)
            guard length <= UInt64(maxHeaderBytes), Int(length) <= file.size - 8 else {
                throw fail("header length \(length) exceeds the file (\(file.size) bytes)")
            }
            var text = [UInt8](repeating: 0, count: Int(length))
            try text.withUnsafeMutableBytes { try file.read(at: 8, into: $0) }
            dataStart = 8 + Int(length)
            let json: JSON
            do { json = try JSON.parse(text) } catch let error as JSON.ParseError {
                throw fail("header is not valid JSON: \(error)")
            }
            guard case let .object(members) = json else { throw fail("header is not a JSON object but \(json.kind)") }
            var seen = Set<[UInt8]>()
            for (name, value) in members {
                guard seen.insert(Array(name.utf8)).inserted else { throw fail("the header names '\(name)' twice") }
                if name == "__metadata__" {
                    metadata = try Header.metadata(value, fail)
                } else {
                    entries.append(try Header.entry(name, value, fail))
                }
            }
            // Sorted by offsets, the tensors must tile the data area exactly.
            entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
            var position = 0
            for entry in entries {
                guard entry.begin == position else {
                    throw fail(entry.begin < position ? "tensor '\(entry.name)' overlaps the one before it"
                                                      : "tensor '\(entry.name)' starts at data byte \(entry.begin), leaving a gap after byte \(position)")
                }
                position = entry.end
            }
            guard dataStart + position == file.size else {
                throw fail(dataStart + position > file.size
                           ? "tensors extend to data byte \(position), outside the \(file.size - dataStart)-byte data area"
                           : "the data area has \(file.size - dataStart) bytes, the tensors cover \(position)")
            }
        }

        private static func metadata(_ value: JSON, _ fail: (String) -> EmberError) throws -> [String: String] {
            switch value {
            case .null: return [:]
            case let .object(members):
                var out: [String: String] = [:]
                for (key, entry) in members {
                    guard case let .string(text) = entry else { throw fail("__metadata__ '\(key)' is \(entry.kind), not a string") }
                    out[key] = text
                }
                return out
            default: throw fail("__metadata__ is \(value.kind), not an object of strings")
            }
        }

        private static func entry(_ name: String, _ value: JSON, _ fail: (String) -> EmberError) throws -> Entry {
            guard case let .object(fields) = value else { throw fail("tensor '\(name)' has a malformed entry: \(value.kind), not an object") }
            func field(_ key: String) throws -> JSON {
                guard let found = fields.first(where: { $0.key == key }) else { throw fail("tensor '\(name)' has a malformed entry: no \(key)") }
                return found.value
            }
            func naturals(_ key: String) throws -> [Int] {
                guard case let .array(items) = try field(key) else { throw fail("tensor '\(name)': \(key) is not a list") }
                return try items.map { item in
                    guard case let .integer(n) = item, n >= 0 else {
                        let shown = item.kind == "a number" ? String(decoding: item.encoded(), as: UTF8.self) : item.kind
                        throw fail("tensor '\(name)': \(key) holds \(shown), not a non-negative integer")
                    }
                    return n
                }
            }
            guard case let .string(typeName) = try field("dtype") else { throw fail("tensor '\(name)': dtype is not a string") }
            guard let dtype = FileType(rawValue: typeName) else { throw fail("tensor '\(name)' has unsupported dtype '\(typeName)'") }
            let shape = try naturals("shape"), offsets = try naturals("data_offsets")
            guard offsets.count == 2, offsets[0] <= offsets[1] else {
                throw fail("tensor '\(name)': data_offsets \(offsets) is not a [begin, end] pair")
            }
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("tensor '\(name)' has invalid shape \(shape)") }
                count = product
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, offsets[1] - offsets[0] == bytes else {
                throw fail("tensor '\(name)' of shape \(shape) and dtype \(typeName) needs \(overflow ? "more than Int.max" : String(bytes)) bytes, its offsets span \(offsets[1] - offsets[0])")
            }
            return Entry(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
        }
    }
}

/// Bytes that can be read at any offset: a file (`HostFile`) or bytes in memory.
protocol ReadableBytes {
    /// The path, for error messages.
    var path: String { get }
    /// The number of bytes.
    var size: Int { get }
    /// Fills `destination` with the bytes from `offset` on; throws when they end first.
    func read(at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws
}

extension HostFile: ReadableBytes {}

/// Bytes in memory read like a file.
struct BytesInMemory: ReadableBytes {
    let data: Data
    let path: String
    var size: Int { data.count }

    func read(at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        guard offset >= 0, offset + destination.count <= data.count else {
            throw EmberError.invalidFile(path: path, reason: "read failed: the file ended after \(data.count) bytes")
        }
        data.copyBytes(to: destination.bindMemory(to: UInt8.self), from: data.startIndex + offset..<data.startIndex + offset + destination.count)
    }
}
