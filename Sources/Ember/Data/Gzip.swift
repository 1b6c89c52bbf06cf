import CZlib
import Foundation

/// gzip decompression through zlib.
enum Gzip {
    /// True when `data` starts with the gzip magic bytes 1f 8b.
    static func isCompressed(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B
    }

    /// The decompressed bytes of gzip `data` (at most `limit` bytes); `path` names the file in errors.
    static func decompress(_ data: Data, path: String, limit: Int = 1 << 31) throws -> Data {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw EmberError.invalidFile(path: path, reason: "zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        let chunk = 1 << 16
        var buffer = [UInt8](repeating: 0, count: chunk)
        var input = [UInt8](data)
        let status: Int32 = input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = uInt(inputBuffer.count)
            var result = Z_OK
            while result == Z_OK {
                result = buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(chunk)
                    let r = inflate(&stream, Z_NO_FLUSH)
                    output.append(out.baseAddress!, count: chunk - Int(stream.avail_out))
                    return r
                }
                if output.count > limit { return Z_MEM_ERROR }
                if result == Z_BUF_ERROR && stream.avail_in == 0 { return Z_BUF_ERROR }
            }
            return result
        }
        switch status {
        case Z_STREAM_END: return output
        case Z_MEM_ERROR: throw EmberError.invalidFile(path: path, reason: "decompressed size exceeds \(limit) bytes")
        case Z_BUF_ERROR: throw EmberError.invalidFile(path: path, reason: "truncated gzip stream")
        default: throw EmberError.invalidFile(path: path, reason: "corrupt gzip stream (zlib error \(status))")
        }
    }

    /// The bytes of the file at `url`, decompressed when it is gzip.
    static func readFile(_ url: URL) throws -> Data {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw EmberError.invalidFile(path: url.path, reason: "cannot be read: \(error.localizedDescription)")
        }
        return isCompressed(data) ? try decompress(data, path: url.path) : data
    }
}
