import Foundation

/// The scikit-learn "digits" set bundled with Ember: 1,797 8x8 grey-level images of
/// handwritten digits (UCI optdigits, CC BY 4.0; see Resources/Data/DIGITS-LICENSE.md).
public struct Digits {
    /// 1,437 training examples.
    public let train: TensorDataset
    /// 360 test examples.
    public let test: TensorDataset

    /// Loads the bundled file. Inputs are Float32 in [0, 1] (pixel / 16), shaped `[N, 64]`
    /// or, with `images: true`, `[N, 1, 8, 8]`; labels are Int32 `[N]`. The split is fixed and
    /// stratified: walking a seeded shuffle, the first 36 images of each digit form the test
    /// set (360), the other 1,437 the training set, both in shuffled order.
    public static func load(images: Bool = false) throws -> Digits {
        let paths = ResourceBundle.searchPaths(environment: "EMBER_DATA_PATH", bundleFolder: "Data",
                                               sourceFolder: "Sources/Ember/Resources/Data")
        guard let url = ResourceBundle.locate("digits.csv.gz", in: paths) else {
            throw EmberError.invalidFile(path: "digits.csv.gz", reason: "not found in \(paths.joined(separator: ", "))")
        }
        let all = try CSVDataset(url: url, labelColumn: 64, hasHeader: false).dataset
        guard all.count == 1797, all.inputs.shape == [1797, 64] else {
            throw EmberError.invalidFile(path: url.path, reason: "expected 1797 rows of 64 pixels and a label, got \(Shape.describe(all.inputs.shape))")
        }
        let scaled = TensorDataset(inputs: (all.inputs / 16).reshape(images ? [1797, 1, 8, 8] : [1797, 64]), labels: all.labels)
        let labels = all.labels.toIntArray()
        var perClass = [Int](repeating: 0, count: 10)
        var train: [Int] = [], test: [Int] = []
        for i in seededPermutation(1797, seed: 0) {
            let label = Int(labels[i])
            guard (0..<10).contains(label) else {
                throw EmberError.invalidFile(path: url.path, reason: "label \(label) on row \(i + 1) is not a digit")
            }
            if perClass[label] < 36 { test.append(i); perClass[label] += 1 } else { train.append(i) }
        }
        return Digits(train: scaled.subset(train), test: scaled.subset(test))
    }
}

/// Images and labels in the MNIST IDX format (gzip or plain files).
public struct IDXDataset {
    /// Images scaled to [0, 1], `[N, 1, rows, cols]`, and Int32 labels `[N]`.
    public let dataset: TensorDataset

    /// Reads an image file (magic 0x00000803) and a label file (0x00000801). The header's
    /// sizes are checked before the data is read, and gzip files are inflated only as far as
    /// the header says (a file that inflates past it is rejected there); the bytes go
    /// straight into the tensors' storage. Errors name the file.
    public init(images: URL, labels: URL) throws {
        var imageSource = try Gzip.Source(images)
        var labelSource = try Gzip.Source(labels)
        try self.init(images: &imageSource, labels: &labelSource)
    }

    /// Parses IDX bytes already read; the paths name the files in errors.
    init(imageData: Data, imagePath: String, labelData: Data, labelPath: String) throws {
        var imageSource = try Gzip.Source(imageData, path: imagePath)
        var labelSource = try Gzip.Source(labelData, path: labelPath)
        try self.init(images: &imageSource, labels: &labelSource)
    }

    private init(images: inout Gzip.Source, labels: inout Gzip.Source) throws {
        let imageDims = try IDXDataset.header(&images, magic: 0x0803, dims: 3)
        let labelDims = try IDXDataset.header(&labels, magic: 0x0801, dims: 1)
        guard imageDims[0] == labelDims[0] else {
            throw EmberError.invalidFile(path: labels.path, reason: "\(labelDims[0]) labels for \(imageDims[0]) images in \(URL(fileURLWithPath: images.path).lastPathComponent)")
        }
        let (n, rows, cols) = (imageDims[0], imageDims[1], imageDims[2])
        let pixels = try IDXDataset.payload(&images, shape: [n, 1, rows, cols], dtype: .float32) { byte in
            Float(byte) / 255
        }
        let classes = try IDXDataset.payload(&labels, shape: [n], dtype: .int32) { Int32($0) }
        dataset = TensorDataset(inputs: pixels, labels: classes)
    }

    /// Reads and checks an IDX header of unsigned-byte data with `dims` dimensions.
    static func header(_ source: inout Gzip.Source, magic: UInt32, dims: Int) throws -> [Int] {
        let path = source.path
        var bytes = [UInt8](repeating: 0, count: 4 + 4 * dims)
        try bytes.withUnsafeMutableBytes { buffer in
            try source.readExactly(into: buffer) {
                EmberError.invalidFile(path: path, reason: "truncated IDX header (\($0) bytes)")
            }
        }
        func word(_ at: Int) -> UInt32 { bytes[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        guard word(0) == magic else {
            throw EmberError.invalidFile(path: path, reason: String(format: "bad IDX magic 0x%08X, expected 0x%08X", word(0), magic))
        }
        let sizes = (0..<dims).map { Int(word(4 + 4 * $0)) }
        var payload = 1
        for s in sizes {
            let (product, overflow) = payload.multipliedReportingOverflow(by: s)
            guard !overflow, product <= 1 << 31 else {
                throw EmberError.invalidFile(path: path, reason: "IDX dimensions \(sizes) are implausibly large")
            }
            payload = product
        }
        return sizes
    }

    /// The unsigned bytes after the header, converted by `convert` straight into a tensor of
    /// `shape`; throws when the file holds fewer or more bytes than the header promises.
    static func payload<Element>(_ source: inout Gzip.Source, shape: [Int], dtype: DType,
                                 _ convert: (UInt8) -> Element) throws -> Tensor {
        let expected = Shape.count(shape)
        let path = source.path
        var bytes = [UInt8](repeating: 0, count: Swift.min(expected, Tensor.hostChunkBytes / 4))
        var done = 0
        let tensor = try Tensor.fromHost(shape: shape, dtype: dtype, device: .cpu, op: "IDXDataset") { chunk, _ in
            let values = chunk.bindMemory(to: Element.self)
            try bytes.withUnsafeMutableBytes { raw in
                try source.readExactly(into: UnsafeMutableRawBufferPointer(rebasing: raw[..<values.count])) {
                    EmberError.invalidFile(path: path, reason: "IDX header promises \(expected) bytes of data, file has \(done + $0)")
                }
            }
            for i in 0..<values.count { values[i] = convert(bytes[i]) }
            done += values.count
        }
        guard try source.atEnd() else {
            throw EmberError.invalidFile(path: path, reason: "IDX header promises \(expected) bytes of data, file has more")
        }
        return tensor
    }
}

/// A numeric CSV file: one example per line, one column holding the label.
public struct CSVDataset {
    /// Float32 inputs `[N, columns - 1]` and Int32 labels `[N]`.
    public let dataset: TensorDataset

    /// The default `maxBytes`: 256 MiB of CSV text inflated from one gzip file.
    public static let defaultMaxBytes = 1 << 28

    /// Reads `url` (gzip or plain), in one pass over its bytes. Lines end in `\n` or `\r\n`;
    /// fields are trimmed of spaces and tabs; empty lines are skipped. A gzip file may inflate
    /// to at most `maxBytes` of text (a decompression bomb stops there with an error). Errors
    /// name the file, line and column of a bad field.
    public init(url: URL, labelColumn: Int, hasHeader: Bool = false, maxBytes: Int = CSVDataset.defaultMaxBytes) throws {
        try self.init(data: HostFile.contents(of: url), path: url.path, labelColumn: labelColumn, hasHeader: hasHeader,
                      maxBytes: maxBytes)
    }

    /// Parses CSV bytes already read (plain or gzip); `path` names the file in errors. A gzip
    /// file is inflated once without keeping its output to check `maxBytes`, so a bomb costs
    /// no memory, then again to parse.
    init(data: Data, path: String, labelColumn: Int, hasHeader: Bool, maxBytes: Int = CSVDataset.defaultMaxBytes) throws {
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        if Gzip.isCompressed(data) {
            var sizing = try Gzip.Source(data, path: path)
            var total = 0
            while case let n = try chunk.withUnsafeMutableBytes({ try sizing.read(into: $0) }), n > 0 {
                total += n
                guard total <= maxBytes else {
                    throw EmberError.invalidFile(path: path, reason: "inflates to more than \(maxBytes) bytes of CSV text (pass a larger maxBytes to read it)")
                }
            }
        }
        var source = try Gzip.Source(data, path: path)
        var parser = CSVParser(path: path, labelColumn: labelColumn, hasHeader: hasHeader)
        while case let n = try chunk.withUnsafeMutableBytes({ try source.read(into: $0) }), n > 0 {
            try chunk.withUnsafeBufferPointer { try parser.consume(UnsafeBufferPointer(rebasing: $0[..<n])) }
        }
        try parser.finish()
        guard let width = parser.width, !parser.labels.isEmpty else {
            throw EmberError.invalidFile(path: path, reason: "no data rows")
        }
        let features = parser.features, labels = parser.labels
        let inputs = Tensor.fromHost(shape: [labels.count, width - 1], dtype: .float32, device: .cpu, op: "CSVDataset") { chunk, offset in
            features.withUnsafeBytes { chunk.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + chunk.count])) }
        }
        dataset = TensorDataset(inputs: inputs, labels: Tensor(shape: [labels.count], data: labels))
    }
}

/// The state of a one-pass CSV parse: the values so far, the current line and column, and
/// the bytes of a field that a chunk boundary cut.
struct CSVParser {
    let path: String
    let labelColumn: Int
    let hasHeader: Bool
    /// Feature values, row-major.
    var features: [Float] = []
    /// One label per row.
    var labels: [Int32] = []
    /// The number of fields of the first data row.
    var width: Int?
    /// The start of a field cut by the end of the previous chunk.
    private var carried: [UInt8] = []
    private var rowLabel: Int32 = 0
    private var column = 0
    private var line = 1

    init(path: String, labelColumn: Int, hasHeader: Bool) {
        self.path = path
        self.labelColumn = labelColumn
        self.hasHeader = hasHeader
    }

    /// Parses the next bytes of the file: each field is read where it lies in `bytes`, and
    /// only a field cut by the chunk's end is copied.
    mutating func consume(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        var start = 0
        for i in 0..<bytes.count {
            let byte = bytes[i]
            guard byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\n") else { continue }
            if carried.isEmpty {
                try endField(UnsafeBufferPointer(rebasing: bytes[start..<i]), endsLine: byte != UInt8(ascii: ","))
            } else {
                carried.append(contentsOf: bytes[start..<i])
                let whole = carried
                carried.removeAll(keepingCapacity: true)
                try whole.withUnsafeBufferPointer { try endField($0, endsLine: byte != UInt8(ascii: ",")) }
            }
            start = i + 1
        }
        carried.append(contentsOf: bytes[start...])
    }

    /// Ends the last line (a file need not end in a newline).
    mutating func finish() throws {
        let last = carried
        carried.removeAll()
        try last.withUnsafeBufferPointer { try endField($0, endsLine: true) }
    }

    private var skipping: Bool { hasHeader && line == 1 }

    /// Takes one field; at the end of a line, also the line (a line of nothing but spaces,
    /// tabs and a `\r` is skipped).
    private mutating func endField(_ raw: UnsafeBufferPointer<UInt8>, endsLine: Bool) throws {
        var text = CSVParser.trimmed(raw)
        if endsLine, text.last == UInt8(ascii: "\r") { text = CSVParser.trimmed(UnsafeBufferPointer(rebasing: text.dropLast())) }
        if endsLine && column == 0 && text.isEmpty {
            line += 1
            return
        }
        if !skipping {
            guard let value = CSVParser.number(text), value.isFinite else {
                throw fail("line \(line), column \(column + 1): '\(String(decoding: text, as: UTF8.self))' is not a number")
            }
            if column == labelColumn {
                guard value == value.rounded(), Swift.abs(value) < 1e9 else {
                    throw fail("line \(line), column \(column + 1): label '\(String(decoding: text, as: UTF8.self))' is not an integer")
                }
                rowLabel = Int32(value)
            } else {
                features.append(value)
            }
        }
        column += 1
        guard endsLine else { return }
        if !skipping {
            if let width, column != width {
                throw fail("line \(line) has \(column) fields, expected \(width)")
            }
            guard labelColumn >= 0 && labelColumn < column else {
                throw fail("label column \(labelColumn) does not exist on line \(line) (\(column) fields)")
            }
            width = column
            labels.append(rowLabel)
        }
        column = 0
        line += 1
    }

    /// `field` without surrounding spaces and tabs.
    private static func trimmed(_ field: UnsafeBufferPointer<UInt8>) -> Slice<UnsafeBufferPointer<UInt8>> {
        var start = field.startIndex, end = field.endIndex
        while start < end && (field[start] == UInt8(ascii: " ") || field[start] == UInt8(ascii: "\t")) { start += 1 }
        while end > start && (field[end - 1] == UInt8(ascii: " ") || field[end - 1] == UInt8(ascii: "\t")) { end -= 1 }
        return field[start..<end]
    }

    /// Powers of ten that are exact in Float.
    private static let exactPowersOfTen: [Float] = (0...10).map { Float(pow(10.0, Double($0))) }

    /// The decimal number spelled by all of `text`, or nil. Plain decimals of at most seven
    /// significant digits and ten decimals (most CSV fields) take Clinger's fast path: the
    /// digits as an exact Float divided by an exact power of ten, one correctly rounded
    /// operation, so the result is strtof's; anything else goes to strtof.
    static func number(_ text: Slice<UnsafeBufferPointer<UInt8>>) -> Float? {
        guard !text.isEmpty, text.count < 64 else { return nil }
        if let value = fastDecimal(text) { return value }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { chars -> Float? in
            let base = chars.baseAddress!
            UnsafeMutableRawPointer(base).copyMemory(from: text.base.baseAddress! + text.startIndex, byteCount: text.count)
            base[text.count] = 0
            var end: UnsafeMutablePointer<CChar>?
            let value = strtof(base, &end)
            return end == base + text.count ? value : nil
        }
    }

    /// `[+-]digits[.digits]` with at most seven significant digits and ten decimals, or nil.
    private static func fastDecimal(_ text: Slice<UnsafeBufferPointer<UInt8>>) -> Float? {
        var i = text.startIndex
        var negative = false
        if text[i] == UInt8(ascii: "-") || text[i] == UInt8(ascii: "+") {
            negative = text[i] == UInt8(ascii: "-")
            i += 1
        }
        var mantissa: UInt32 = 0, significant = 0, decimals = 0, digits = 0
        var seenPoint = false
        while i < text.endIndex {
            let byte = text[i]
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                if mantissa != 0 || byte != UInt8(ascii: "0") { significant += 1 }
                guard significant <= 7 else { return nil }
                mantissa = mantissa * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                if seenPoint { decimals += 1 }
            } else if byte == UInt8(ascii: ".") && !seenPoint {
                seenPoint = true
            } else {
                return nil
            }
            i += 1
        }
        guard digits > 0, decimals <= 10 else { return nil }
        let value = Float(mantissa) / exactPowersOfTen[decimals]
        return negative ? -value : value
    }

    private func fail(_ reason: String) -> EmberError { .invalidFile(path: path, reason: reason) }
}
