import Foundation

/// The safetensors format (as written by Python's `safetensors` and read by PyTorch):
/// an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
/// and byte range, then the raw little-endian data.
public enum SafeTensors {
    /// Largest header accepted (100 MB, as the reference implementation).
    static let maxHeaderBytes = 100_000_000

    /// Writes `tensors` (in order) to `url` atomically: a temporary file in the same folder is
    /// written and synced, then renamed over `url`, so the previous file survives a crash.
    /// Each tensor keeps its dtype: `float32` as F32, `int32` as I32, `bool` as BOOL (one
    /// byte per element, as Python's safetensors writes `torch.bool`).
    public static func write(_ tensors: StateDict, to url: URL, metadata: [String: String] = [:]) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var payload = Data()
        for (name, tensor) in tensors {
            guard name != "__metadata__" else {
                throw EmberError.invalidFile(path: url.path, reason: "reserved tensor name '\(name)'")
            }
            let begin = payload.count
            let bits = tensor.hostBits()
            let dtype: String
            switch tensor.dtype {
            case .float32, .int32:
                dtype = tensor.dtype == .int32 ? "I32" : "F32"
                bits.withUnsafeBytes { payload.append(contentsOf: $0) }
            case .bool:
                dtype = "BOOL"
                payload.append(contentsOf: bits.map { Float(bitPattern: $0) != 0 ? UInt8(1) : 0 })
            }
            header[name] = ["dtype": dtype, "shape": tensor.shape, "data_offsets": [begin, payload.count]] as [String: Any]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(payload)
        try writeAtomically(file, to: url)
    }

    /// Writes `data` to a temporary sibling of `url`, syncs it, and renames it over `url`.
    static func writeAtomically(_ data: Data, to url: URL) throws {
        let folder = url.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).\(UInt64.random(in: 0...UInt64.max)).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw EmberError.invalidFile(path: url.path, reason: "cannot create \(temporary.lastPathComponent): \(String(cString: strerror(errno)))") }
        var failure: String?
        data.withUnsafeBytes { bytes in
            var written = 0
            while written < bytes.count {
                let n = Foundation.write(fd, bytes.baseAddress! + written, bytes.count - written)
                if n <= 0 { failure = String(cString: strerror(errno)); return }
                written += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if failure == nil && rename(temporary.path, url.path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary.path)
            throw EmberError.invalidFile(path: url.path, reason: "write failed: \(failure)")
        }
    }

    /// Reads every tensor of a safetensors file onto the CPU, in file order. Every size and
    /// offset is checked against the file before anything is allocated. F32, I32 and BOOL
    /// load exactly as `float32`, `int32` and `bool`; F16, BF16 and F64 are converted to
    /// `float32`, I64 (when in range), I8 and U8 to `int32`.
    public static func read(from url: URL) throws -> StateDict {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw EmberError.invalidFile(path: url.path, reason: "cannot be read: \(error.localizedDescription)")
        }
        return try parse(data, path: url.path)
    }

    /// The metadata strings of a safetensors file.
    public static func metadata(from url: URL) throws -> [String: String] {
        let data = try Data(contentsOf: url, options: .alwaysMapped)
        let (header, _) = try parseHeader(data, path: url.path)
        return header["__metadata__"] as? [String: String] ?? [:]
    }

    private static func parseHeader(_ data: Data, path: String) throws -> ([String: Any], Int) {
        func fail(_ reason: String) -> EmberError { .invalidFile(path: path, reason: reason) }
        guard data.count >= 8 else { throw fail("file of \(data.count) bytes is too short for a safetensors header") }
        let length = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(maxHeaderBytes), Int(length) <= data.count - 8 else {
            throw fail("header length \(length) exceeds the file (\(data.count) bytes)")
        }
        let json = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + Int(length)))
        guard let header = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        return (header, 8 + Int(length))
    }

    static func parse(_ data: Data, path: String) throws -> StateDict {
        func fail(_ reason: String) -> EmberError { .invalidFile(path: path, reason: reason) }
        let (header, dataStart) = try parseHeader(data, path: path)
        let available = data.count - dataStart
        var entries: [(name: String, dtype: String, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw fail("tensor '\(name)' has a malformed entry")
            }
            guard let size = elementSize[dtype] else { throw fail("tensor '\(name)' has unsupported dtype '\(dtype)'") }
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard d >= 0, !overflow else { throw fail("tensor '\(name)' has invalid shape \(shape)") }
                count = product
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= available else {
                throw fail("tensor '\(name)' data offsets \(offsets) lie outside the \(available)-byte data area")
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, end - begin == bytes else {
                throw fail("tensor '\(name)' of shape \(shape) and dtype \(dtype) needs \(overflow ? "more than Int.max" : String(bytes)) bytes, its offsets span \(end - begin)")
            }
            entries.append((name, dtype, shape, begin, end))
        }
        let spans = entries.filter { $0.end > $0.begin }.sorted { $0.begin < $1.begin }
        for (a, b) in zip(spans, spans.dropFirst()) where b.begin < a.end {
            throw fail("tensors '\(a.name)' and '\(b.name)' overlap")
        }
        return StateDict(try entries.sorted { ($0.begin, $0.name) < ($1.begin, $1.name) }.map { entry in
            let bytes = data.subdata(in: (data.startIndex + dataStart + entry.begin)..<(data.startIndex + dataStart + entry.end))
            return (entry.name, try decode(bytes, dtype: entry.dtype, shape: entry.shape, name: entry.name, path: path))
        })
    }

    /// Bytes per element of each supported dtype.
    static let elementSize: [String: Int] = ["F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I32": 4, "I64": 8, "U8": 1, "I8": 1, "BOOL": 1]

    private static func decode(_ bytes: Data, dtype: String, shape: [Int], name: String, path: String) throws -> Tensor {
        func load<T: FixedWidthInteger>(_ type: T.Type) -> [T] {
            bytes.withUnsafeBytes { raw in (0..<(bytes.count / MemoryLayout<T>.size)).map { T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) } }
        }
        switch dtype {
        case "F32": return Tensor(shape: shape, data: load(UInt32.self).map(Float.init(bitPattern:)))
        case "F64": return Tensor(shape: shape, data: load(UInt64.self).map { Float(Double(bitPattern: $0)) })
        case "F16": return Tensor(shape: shape, data: load(UInt16.self).map { Float(Float16(bitPattern: $0)) })
        case "BF16": return Tensor(shape: shape, data: load(UInt16.self).map { Float(bitPattern: UInt32($0) << 16) })
        case "I32": return Tensor(shape: shape, data: load(Int32.self))
        case "I64":
            let values = load(Int64.self)
            guard values.allSatisfy({ $0 >= Int64(Int32.min) && $0 <= Int64(Int32.max) }) else {
                throw EmberError.invalidFile(path: path, reason: "tensor '\(name)' holds int64 values outside the int32 range")
            }
            return Tensor(shape: shape, data: values.map { Int32($0) })
        case "I8": return Tensor(shape: shape, data: load(Int8.self).map { Int32($0) })
        case "U8": return Tensor(shape: shape, data: load(UInt8.self).map { Int32($0) })
        default:
            return Tensor(shape: shape, values: load(UInt8.self).map { $0 != 0 ? 1 : 0 }, dtype: .bool, device: .cpu, requiresGrad: false)
        }
    }
}
