import Foundation
import Testing
@testable import Ember

/// The folder that holds this test process's temporary folders; removed when the process
/// exits (the first `temporaryFolder()` registers that).
let temporaryRoot: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("ember-tests-\(getpid())")
    atexit { try? FileManager.default.removeItem(at: temporaryRoot) }
    return url
}()

/// A fresh temporary folder for one test, removed with `temporaryRoot` when the tests end.
func temporaryFolder() -> URL {
    let url = temporaryRoot.appendingPathComponent(UUID().uuidString)
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// gzip-compresses `data` with the system's gzip.
func gzipped(_ data: Data, in folder: URL) throws -> Data {
    let file = folder.appendingPathComponent("blob-\(UUID().uuidString)")
    try data.write(to: file)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/gzip")
    process.arguments = ["-f", file.path]
    try process.run()
    process.waitUntilExit()
    return try Data(contentsOf: URL(fileURLWithPath: file.path + ".gz"))
}

/// The bytes of an IDX file: magic, big-endian dims, payload.
func idxFile(magic: UInt32, dims: [UInt32], payload: [UInt8]) -> Data {
    var out = Data()
    for word in [magic] + dims { withUnsafeBytes(of: word.bigEndian) { out.append(contentsOf: $0) } }
    out.append(contentsOf: payload)
    return out
}

@Suite("Data loading")
struct DataTests {
    @Test("DataLoader batches, drops the last batch on request and covers every example once")
    func loader() {
        let data = TensorDataset(inputs: Tensor.arange(0, 10).reshape([10, 1]), labels: Tensor.arange(10))
        let plain = DataLoader(data, batchSize: 4)
        #expect(plain.count == 3)
        #expect(plain.map { $0.inputs.shape[0] } == [4, 4, 2])
        #expect(plain.flatMap { $0.labels.toIntArray() } == Array(0..<10).map(Int32.init))
        let dropping = DataLoader(data, batchSize: 4, dropLast: true)
        #expect(dropping.count == 2 && Array(dropping).count == 2)
        let shuffled = DataLoader(data, batchSize: 3, shuffle: true, seed: 7)
        let epoch1 = shuffled.flatMap { $0.labels.toIntArray() }
        let epoch2 = shuffled.flatMap { $0.labels.toIntArray() }
        #expect(epoch1.sorted() == Array(0..<10).map(Int32.init) && epoch2.sorted() == epoch1.sorted())
        #expect(epoch1 != epoch2)
        let again = DataLoader(data, batchSize: 3, shuffle: true, seed: 7)
        #expect(again.flatMap { $0.labels.toIntArray() } == epoch1)
        let batch = shuffled.makeIterator().next()!
        #expect(batch.inputs.toArray().map { Int32($0) } == batch.labels.toIntArray())
        if let gpu = TestDevices.openCL {
            #expect(DataLoader(data, batchSize: 5, device: gpu).allSatisfy { $0.inputs.device == gpu && $0.labels.device == gpu })
        }
    }

    @Test("the bundled digits: 1,797 images, stratified 1,437 / 360 split, pixels in [0, 1]")
    func digits() throws {
        let digits = try Digits.load()
        #expect(digits.train.count == 1437 && digits.test.count == 360)
        #expect(digits.train.inputs.shape == [1437, 64] && digits.train.labels.dtype == .int32)
        let testLabels = digits.test.labels.toIntArray()
        #expect((0..<10).allSatisfy { c in testLabels.filter { $0 == c }.count == 36 })
        let pixels = digits.train.inputs.toArray()
        #expect(pixels.min()! == 0 && pixels.max()! == 1)
        #expect(try Digits.load(images: true).test.inputs.shape == [360, 1, 8, 8])
        // The first row of the file is a zero: its label and first pixels are known.
        let all = try CSVDataset(url: ResourceBundle.locate("digits.csv.gz", in: ResourceBundle.searchPaths(
            environment: "EMBER_DATA_PATH", bundleFolder: "Data", sourceFolder: "Sources/Ember/Resources/Data"))!, labelColumn: 64).dataset
        #expect(all.labels.toIntArray()[0] == 0)
        #expect(Array(all.inputs[0].toArray()[0..<4]) == [0, 0, 5, 13])
    }

    @Test("IDX files load from plain and gzip files and corrupt ones throw naming the file")
    func idx() throws {
        let folder = temporaryFolder()
        let images = idxFile(magic: 0x803, dims: [2, 2, 3], payload: [0, 255, 51, 102, 0, 0, 1, 2, 3, 4, 5, 6])
        let labels = idxFile(magic: 0x801, dims: [2], payload: [7, 3])
        for compressed in [false, true] {
            let imageURL = folder.appendingPathComponent("images\(compressed)"), labelURL = folder.appendingPathComponent("labels\(compressed)")
            try (compressed ? gzipped(images, in: folder) : images).write(to: imageURL)
            try (compressed ? gzipped(labels, in: folder) : labels).write(to: labelURL)
            let data = try IDXDataset(images: imageURL, labels: labelURL).dataset
            #expect(data.inputs.shape == [2, 1, 2, 3])
            expectClose(Array(data.inputs.toArray()[0..<4]), [0, 1, 0.2, 0.4])
            #expect(data.labels.toIntArray() == [7, 3])
        }
        let good = folder.appendingPathComponent("labelsfalse")
        let cases: [(String, Data, String)] = [
            ("badmagic", idxFile(magic: 0x802, dims: [2, 2, 3], payload: [UInt8](repeating: 0, count: 12)), "bad IDX magic"),
            ("truncated", idxFile(magic: 0x803, dims: [2, 2, 3], payload: [1, 2, 3]), "promises 12 bytes"),
            ("short", Data([0, 0, 8]), "truncated IDX header"),
            ("mismatch", idxFile(magic: 0x803, dims: [3, 1, 1], payload: [1, 2, 3]), "2 labels for 3 images"),
            ("huge", idxFile(magic: 0x803, dims: [1 << 27, 1 << 27, 1 << 27], payload: []), "implausibly large"),
        ]
        for (name, bytes, message) in cases {
            let url = folder.appendingPathComponent(name)
            try bytes.write(to: url)
            do {
                _ = try IDXDataset(images: url, labels: good)
                Issue.record("\(name) did not throw")
            } catch let error as EmberError {
                #expect(error.description.contains(name) || error.description.contains("labelsfalse"), "\(error)")
                #expect(error.description.contains(message), "\(error)")
            }
        }
        let corruptGzip = folder.appendingPathComponent("corrupt.gz")
        var zipped = try gzipped(images, in: folder)
        zipped.removeLast(10)
        try zipped.write(to: corruptGzip)
        #expect(throws: EmberError.self) { try IDXDataset(images: corruptGzip, labels: good) }
    }

    @Test("CSV files load and bad fields throw with file, line and column")
    func csv() throws {
        let folder = temporaryFolder()
        let url = folder.appendingPathComponent("data.csv")
        try "a,b,label\n1,2,0\n3.5,-1,2\n".write(to: url, atomically: true, encoding: .utf8)
        let data = try CSVDataset(url: url, labelColumn: 2, hasHeader: true).dataset
        #expect(data.inputs.toArray() == [1, 2, 3.5, -1] && data.labels.toIntArray() == [0, 2])
        for (text, message) in [("1,2,0\n3,x,1\n", "line 2, column 2: 'x' is not a number"),
                                ("1,2,0\n3,1\n", "line 2 has 2 fields, expected 3"),
                                ("1,2,0.5\n", "line 1, column 3: label '0.5' is not an integer")] {
            try text.write(to: url, atomically: true, encoding: .utf8)
            #expect(throws: EmberError.invalidFile(path: url.path, reason: message)) { try CSVDataset(url: url, labelColumn: 2) }
        }
    }

    @Test("TensorDataset split is seeded and disjoint")
    func split() {
        let data = TensorDataset(inputs: Tensor.arange(0, 10).reshape([10, 1]), labels: Tensor.arange(10))
        let (a, b) = data.split(fraction: 0.7, seed: 3)
        #expect(a.count == 7 && b.count == 3)
        #expect(Set(a.labels.toIntArray() + b.labels.toIntArray()).count == 10)
        #expect(data.split(fraction: 0.7, seed: 3).first.labels.toIntArray() == a.labels.toIntArray())
    }
}
