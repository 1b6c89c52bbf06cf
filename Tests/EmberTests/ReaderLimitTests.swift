import Foundation
import Testing
@testable import Ember

/// The file readers' bounds: gzip members and bombs, CSV line endings and size limits,
/// empty files.
@Suite("Reader limits")
struct ReaderLimitTests {
    /// `members` copies of the gzip member of `block`: `cat a.gz a.gz ...`, which inflates to
    /// `members * block.count` bytes from about a thousandth of that.
    static func repeatedMembers(_ block: Data, _ members: Int, in folder: URL) throws -> Data {
        let member = try gzipped(block, in: folder)
        var out = Data(capacity: member.count * members)
        for _ in 0..<members { out.append(member) }
        return out
    }

    @Test("every member of a multi-member gzip file is read; trailing zeros are padding, other trailing bytes an error")
    func multiMember() throws {
        let folder = temporaryFolder()
        let first = try gzipped(Data("1,2,0\n".utf8), in: folder), second = try gzipped(Data("3,4,1\n".utf8), in: folder)
        #expect(try Gzip.decompress(first + second, path: "two") == Data("1,2,0\n3,4,1\n".utf8))
        #expect(try Gzip.decompress(first + Data(count: 512), path: "padded") == Data("1,2,0\n".utf8))
        #expect(throws: EmberError.invalidFile(path: "garbage", reason: "3 bytes of trailing garbage after the gzip data")) {
            try Gzip.decompress(first + Data([1, 2, 3]), path: "garbage")
        }
        let url = folder.appendingPathComponent("two.csv.gz")
        try (first + second).write(to: url)
        let data = try CSVDataset(url: url, labelColumn: 2).dataset
        #expect(data.inputs.toArray() == [1, 2, 3, 4] && data.labels.toIntArray() == [0, 1])
    }

    @Test("an IDX file that inflates past its header's size stops there with an error")
    func idxBomb() throws {
        let folder = temporaryFolder()
        // A header for 2 images of 2 x 2, then 3 GiB of zeros in 3 KiB of gzip members.
        var block = idxFile(magic: 0x803, dims: [2, 2, 2], payload: [UInt8](repeating: 0, count: 8))
        block.append(Data(count: (1 << 20) - block.count))
        let header = try gzipped(block, in: folder)
        let zeros = try Self.repeatedMembers(Data(count: 1 << 20), 3 << 10, in: folder)
        let images = folder.appendingPathComponent("bomb-images.gz"), labels = folder.appendingPathComponent("labels")
        try (header + zeros).write(to: images)
        try idxFile(magic: 0x801, dims: [2], payload: [0, 1]).write(to: labels)
        #expect(throws: EmberError.invalidFile(path: images.path, reason: "IDX header promises 8 bytes of data, file has more")) {
            try IDXDataset(images: images, labels: labels)
        }
        let short = folder.appendingPathComponent("short-images.gz")
        try gzipped(idxFile(magic: 0x803, dims: [2, 2, 2], payload: [1, 2, 3]), in: folder).write(to: short)
        #expect(throws: EmberError.invalidFile(path: short.path, reason: "IDX header promises 8 bytes of data, file has 3")) {
            try IDXDataset(images: short, labels: labels)
        }
    }

    @Test("a CSV gzip file that inflates past maxBytes is rejected before it is parsed")
    func csvBomb() throws {
        let folder = temporaryFolder()
        let line = Data(("0," + String(repeating: "0,", count: 30) + "1\n").utf8)
        var block = Data()
        while block.count + line.count <= 1 << 16 { block.append(line) }
        let url = folder.appendingPathComponent("bomb.csv.gz")
        try Self.repeatedMembers(block, 64, in: folder).write(to: url)
        #expect(throws: EmberError.invalidFile(path: url.path, reason: "inflates to more than 1000000 bytes of CSV text (pass a larger maxBytes to read it)")) {
            try CSVDataset(url: url, labelColumn: 31, maxBytes: 1_000_000)
        }
        let all = try CSVDataset(url: url, labelColumn: 31, maxBytes: 8 << 20).dataset
        #expect(all.count == 64 * (block.count / line.count) && all.inputs.shape[1] == 31)
    }

    @Test("CSV lines may end in \\r\\n, and the last line needs no newline")
    func windowsLineEndings() throws {
        let url = temporaryFolder().appendingPathComponent("crlf.csv")
        try Data("a,b,label\r\n1,2,0\r\n3.5, -1 ,2\r\n\r\n4,5,1".utf8).write(to: url)
        let data = try CSVDataset(url: url, labelColumn: 2, hasHeader: true).dataset
        #expect(data.inputs.toArray() == [1, 2, 3.5, -1, 4, 5] && data.labels.toIntArray() == [0, 2, 1])
        try Data("1,2,0\r\n3,x\r,1\r\n".utf8).write(to: url)
        #expect(throws: EmberError.invalidFile(path: url.path, reason: "line 2, column 2: 'x\r' is not a number")) {
            try CSVDataset(url: url, labelColumn: 2)
        }
    }

    @Test("a missing file and an empty file throw EmberError naming the path")
    func missingAndEmpty() throws {
        let folder = temporaryFolder()
        let missing = folder.appendingPathComponent("missing.csv"), empty = folder.appendingPathComponent("empty.csv")
        try Data().write(to: empty)
        #expect(throws: EmberError.invalidFile(path: missing.path, reason: "cannot be read: No such file or directory")) {
            try CSVDataset(url: missing, labelColumn: 0)
        }
        #expect(throws: EmberError.invalidFile(path: empty.path, reason: "no data rows")) { try CSVDataset(url: empty, labelColumn: 0) }
        #expect(throws: EmberError.invalidFile(path: folder.path, reason: "cannot be read: not a regular file")) {
            try CSVDataset(url: folder, labelColumn: 0)
        }
    }

    @Test("reading an empty file many times does not grow the process")
    func emptyFileDoesNotLeak() async {
        await #expect(processExitsWith: .success) {
            let empty = FileManager.default.temporaryDirectory.appendingPathComponent("ember-empty-\(getpid())")
            FileManager.default.createFile(atPath: empty.path, contents: Data())
            defer { try? FileManager.default.removeItem(at: empty) }
            for _ in 0..<1000 { _ = try? CSVDataset(url: empty, labelColumn: 0) }
            let before = processMemory("VmRSS")
            // 4 KiB leaked per read would be 80 MB here.
            for _ in 0..<20_000 { _ = try? CSVDataset(url: empty, labelColumn: 0) }
            let grown = processMemory("VmRSS") - before
            precondition(grown < 16 << 20, "20,000 reads of an empty file grew the process by \(grown) bytes")
        }
    }
}

extension ReaderLimitTests {
    @Test("CSV numbers parse to strtof's float, on the fast path and off it")
    func csvNumbers() {
        var random = TestRandom(seed: 8)
        var texts = ["0", "-0", "+1", "1.", ".5", "0.0000001", "9999999", "99999999", "1234567.0", "0.12345678", "1e3", "-2.5E-3", "0x1p3", "7.0000001"]
        for _ in 0..<5000 { texts.append(String(format: "%.\(Int(random.next() % 9))f", random.float(-1000...1000))) }
        for text in texts {
            let bytes = Array(text.utf8)
            let parsed = bytes.withUnsafeBufferPointer { CSVParser.number($0[...]) }
            #expect(parsed?.bitPattern == strtof(text, nil).bitPattern, "\(text)")
        }
        for bad in ["", "-", ".", "1.2.3", "1,0", "--1", "1 2"] {
            #expect(Array(bad.utf8).withUnsafeBufferPointer { CSVParser.number($0[...]) } == nil, "\(bad)")
        }
    }
}
