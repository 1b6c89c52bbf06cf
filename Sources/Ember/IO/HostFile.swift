import Foundation

/// A file opened for reading with POSIX calls: its size is known before anything is read,
/// reads go straight into the caller's memory, and every failure is an `EmberError` naming
/// the path. (Foundation's `Data(contentsOf:)` leaks 4 KiB per read of an empty file on
/// Linux and throws Foundation errors.)
final class HostFile {
    /// The path, for error messages.
    let path: String
    /// The file's size in bytes when it was opened.
    let size: Int
    private let descriptor: Int32

    /// Opens `url` for reading.
    init(_ url: URL) throws {
        path = url.path
        descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw EmberError.invalidFile(path: url.path, reason: "cannot be read: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw EmberError.invalidFile(path: url.path, reason: "cannot be read: \(reason)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            throw EmberError.invalidFile(path: url.path, reason: "cannot be read: not a regular file")
        }
        size = Int(info.st_size)
    }

    deinit { close(descriptor) }

    /// Fills `destination` with the bytes from `offset` on; throws when the file ends first.
    func read(at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < destination.count {
            let n = pread(descriptor, destination.baseAddress! + done, destination.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = n < 0 ? String(cString: strerror(errno)) : "the file ended after \(offset + done) bytes"
                throw EmberError.invalidFile(path: path, reason: "read failed: \(reason)")
            }
            done += n
        }
    }

    /// The whole file.
    func readAll() throws -> Data {
        var data = Data(count: size)
        if size > 0 { try data.withUnsafeMutableBytes { try read(at: 0, into: $0) } }
        return data
    }

    /// The whole file at `url`.
    static func contents(of url: URL) throws -> Data {
        try HostFile(url).readAll()
    }
}
