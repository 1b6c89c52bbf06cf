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

    /// Reads an image file (magic 0x00000803) and a label file (0x00000801). Sizes are checked
    /// against the file length before anything is allocated; errors name the file.
    public init(images: URL, labels: URL) throws {
        try self.init(imageData: try Gzip.readFile(images), imagePath: images.path,
                      labelData: try Gzip.readFile(labels), labelPath: labels.path)
    }

    /// Parses decompressed IDX bytes; the paths name the files in errors.
    init(imageData: Data, imagePath: String, labelData: Data, labelPath: String) throws {
        let imageDims = try IDXDataset.header(imageData, magic: 0x0803, dims: 3, path: imagePath)
        let labelDims = try IDXDataset.header(labelData, magic: 0x0801, dims: 1, path: labelPath)
        guard imageDims[0] == labelDims[0] else {
            throw EmberError.invalidFile(path: labelPath, reason: "\(labelDims[0]) labels for \(imageDims[0]) images in \(URL(fileURLWithPath: imagePath).lastPathComponent)")
        }
        let (n, rows, cols) = (imageDims[0], imageDims[1], imageDims[2])
        let pixels = imageData.dropFirst(16).prefix(n * rows * cols).map { Float($0) / 255 }
        let classes = labelData.dropFirst(8).prefix(n).map { Int32($0) }
        dataset = TensorDataset(inputs: Tensor(shape: [n, 1, rows, cols], data: pixels), labels: Tensor(shape: [n], data: classes))
    }

    /// Parses and checks an IDX header of unsigned-byte data with `dims` dimensions.
    static func header(_ data: Data, magic: UInt32, dims: Int, path: String) throws -> [Int] {
        let bytes = [UInt8](data.prefix(4 + 4 * dims))
        guard bytes.count == 4 + 4 * dims else { throw EmberError.invalidFile(path: path, reason: "truncated IDX header (\(data.count) bytes)") }
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
        guard data.count == 4 + 4 * dims + payload else {
            throw EmberError.invalidFile(path: path, reason: "IDX header promises \(payload) bytes of data, file has \(data.count - 4 - 4 * dims)")
        }
        return sizes
    }
}

/// A numeric CSV file: one example per line, one column holding the label.
public struct CSVDataset {
    /// Float32 inputs `[N, columns - 1]` and Int32 labels `[N]`.
    public let dataset: TensorDataset

    /// Reads `url` (gzip or plain). Errors name the file, line and column of a bad field.
    public init(url: URL, labelColumn: Int, hasHeader: Bool = false) throws {
        try self.init(data: try Gzip.readFile(url), path: url.path, labelColumn: labelColumn, hasHeader: hasHeader)
    }

    /// Parses decompressed CSV bytes; `path` names the file in errors.
    init(data: Data, path: String, labelColumn: Int, hasHeader: Bool) throws {
        let url = URL(fileURLWithPath: path)
        guard let text = String(data: data, encoding: .utf8) else {
            throw EmberError.invalidFile(path: url.path, reason: "not UTF-8 text")
        }
        var features: [Float] = []
        var labels: [Int32] = []
        var width: Int?
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let row = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if row.isEmpty || (hasHeader && number == 0) { continue }
            let fields = row.split(separator: ",", omittingEmptySubsequences: false)
            if let width, fields.count != width {
                throw EmberError.invalidFile(path: url.path, reason: "line \(number + 1) has \(fields.count) fields, expected \(width)")
            }
            guard labelColumn >= 0 && labelColumn < fields.count else {
                throw EmberError.invalidFile(path: url.path, reason: "label column \(labelColumn) does not exist on line \(number + 1) (\(fields.count) fields)")
            }
            width = fields.count
            for (column, field) in fields.enumerated() {
                guard let value = Float(field.trimmingCharacters(in: .whitespaces)), value.isFinite else {
                    throw EmberError.invalidFile(path: url.path, reason: "line \(number + 1), column \(column + 1): '\(field)' is not a number")
                }
                if column == labelColumn {
                    guard value == value.rounded(), Swift.abs(value) < 1e9 else {
                        throw EmberError.invalidFile(path: url.path, reason: "line \(number + 1), column \(column + 1): label '\(field)' is not an integer")
                    }
                    labels.append(Int32(value))
                } else {
                    features.append(value)
                }
            }
        }
        guard let width, !labels.isEmpty else { throw EmberError.invalidFile(path: url.path, reason: "no data rows") }
        dataset = TensorDataset(inputs: Tensor(shape: [labels.count, width - 1], data: features),
                                labels: Tensor(shape: [labels.count], data: labels))
    }
}
