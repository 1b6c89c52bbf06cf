import CZlib
import Foundation

/// gzip decompression through zlib, streamed: readers pull as many bytes as the format says
/// they need, so a small file that inflates to gigabytes (a decompression bomb) is stopped as
/// soon as it passes what its header declares.
enum Gzip {
    /// True when `data` starts with the gzip magic bytes 1f 8b.
    static func isCompressed(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B
    }

    /// The decompressed bytes of gzip `data`, every member of it (`cat a.gz b.gz`), at most
    /// `limit` of them; `path` names the file in errors.
    static func decompress(_ data: Data, path: String, limit: Int = 1 << 31) throws -> Data {
        var stream = try Stream(data, path: path)
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try stream.read(into: $0) }
            if n == 0 { return output }
            guard output.count + n <= limit else {
                throw EmberError.invalidFile(path: path, reason: "decompressed size exceeds \(limit) bytes")
            }
            output.append(contentsOf: chunk[..<n])
        }
    }

    /// The bytes of the file at `url`, decompressed when it is gzip, at most `limit` of them
    /// after decompression.
    static func readFile(_ url: URL, limit: Int = 1 << 31) throws -> Data {
        let data = try HostFile.contents(of: url)
        return isCompressed(data) ? try decompress(data, path: url.path, limit: limit) : data
    }

    /// The bytes of a file, plain or gzip, read on demand.
    struct Source {
        private var plain: Data?
        private var position = 0
        private var stream: Stream?

        /// The path, for error messages.
        let path: String

        /// The file at `url`: its compressed bytes are read, its output only on demand.
        init(_ url: URL) throws {
            try self.init(HostFile.contents(of: url), path: url.path)
        }

        /// The bytes of a file already read (`path` names it in errors).
        init(_ data: Data, path: String) throws {
            self.path = path
            if Gzip.isCompressed(data) { stream = try Stream(data, path: path) } else { plain = data }
        }

        /// Fills `destination` completely, or throws `ended(readCount)` when the data ends first.
        mutating func readExactly(into destination: UnsafeMutableRawBufferPointer,
                                  ended: (Int) -> EmberError) throws {
            let n = try read(into: destination)
            if n < destination.count { throw ended(n) }
        }

        /// True when no byte is left.
        mutating func atEnd() throws -> Bool {
            var byte: UInt8 = 0
            return try withUnsafeMutableBytes(of: &byte) { try read(into: $0) } == 0
        }

        /// Fills `destination` as far as the data goes; returns the number of bytes written
        /// (less than its size only at the end).
        mutating func read(into destination: UnsafeMutableRawBufferPointer) throws -> Int {
            if let plain {
                let n = Swift.min(destination.count, plain.count - position)
                if n > 0 {
                    plain.copyBytes(to: destination.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                    from: plain.startIndex + position..<plain.startIndex + position + n)
                }
                position += n
                return n
            }
            return try stream!.read(into: destination)
        }
    }

    /// An inflating stream over gzip bytes held in memory, one member after another.
    struct Stream {
        private let input: [UInt8]
        private let path: String
        private var state: StreamState
        private var finished = false

        /// Starts inflating `data`; `path` names the file in errors.
        init(_ data: Data, path: String) throws {
            guard data.count >= 2 else { throw EmberError.invalidFile(path: path, reason: "truncated gzip stream") }
            input = [UInt8](data)
            self.path = path
            state = try StreamState(path: path)
        }

        /// Fills `destination` as far as the data goes; returns the number of bytes written
        /// (less than its size only at the end of the last member). Trailing zero bytes
        /// (padding) are allowed after a member; anything else is an error.
        mutating func read(into destination: UnsafeMutableRawBufferPointer) throws -> Int {
            var written = 0
            while written < destination.count && !finished {
                let consumed = Int(state.stream.pointee.total_in)
                let result: Int32 = input.withUnsafeBufferPointer { bytes in
                    state.stream.pointee.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress! + state.memberStart + consumed)
                    state.stream.pointee.avail_in = uInt(bytes.count - state.memberStart - consumed)
                    state.stream.pointee.next_out = (destination.baseAddress! + written).assumingMemoryBound(to: Bytef.self)
                    state.stream.pointee.avail_out = uInt(destination.count - written)
                    let before = state.stream.pointee.avail_out
                    let r = inflate(state.stream, Z_NO_FLUSH)
                    written += Int(before - state.stream.pointee.avail_out)
                    return r
                }
                switch result {
                case Z_OK: continue
                case Z_STREAM_END:
                    let next = state.memberStart + Int(state.stream.pointee.total_in)
                    let rest = input[next...]
                    if rest.count >= 2 && rest[next] == 0x1F && rest[next + 1] == 0x8B {
                        guard inflateReset(state.stream) == Z_OK else { throw fail("zlib could not start the next member") }
                        state.memberStart = next
                    } else if rest.allSatisfy({ $0 == 0 }) {
                        finished = true
                    } else {
                        throw fail("\(rest.count) bytes of trailing garbage after the gzip data")
                    }
                case Z_BUF_ERROR:
                    // No progress: with input left and room for output this cannot happen, so the input ran out.
                    throw fail("truncated gzip stream")
                default:
                    throw fail("corrupt gzip stream (zlib error \(result))")
                }
            }
            return written
        }

        private func fail(_ reason: String) -> EmberError { .invalidFile(path: path, reason: reason) }
    }

    /// A zlib inflate state, ended when released. zlib keeps the address of its `z_stream`,
    /// so it lives in memory of its own that never moves.
    final class StreamState {
        /// The zlib stream.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        /// Where the current member starts in the input.
        var memberStart = 0

        init(path: String) throws {
            stream.initialize(to: z_stream())
            guard inflateInit2_(stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                stream.deallocate()
                throw EmberError.invalidFile(path: path, reason: "zlib could not start inflating")
            }
        }

        deinit {
            inflateEnd(stream)
            stream.deallocate()
        }
    }
}
