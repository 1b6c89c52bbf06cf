import Foundation

/// A character-level tokenizer, as nanoGPT's shakespeare_char: the vocabulary is the sorted
/// set of Unicode scalars of a text, and a token is a scalar's index in it.
public struct CharTokenizer: Equatable, Sendable {
    /// The characters in token order (sorted by code point, each once).
    public let vocabulary: [Unicode.Scalar]
    private let index: [Unicode.Scalar: Int32]

    /// The vocabulary of `text`: its distinct characters, sorted.
    public init(text: String) {
        self.init(vocabulary: Array(Set(text.unicodeScalars)).sorted())
    }

    /// A tokenizer with this vocabulary, in this order (as saved by `vocabularyString`).
    /// Stops when a character repeats or the vocabulary is empty.
    public init(vocabulary: [Unicode.Scalar]) {
        check(!vocabulary.isEmpty, "CharTokenizer: the vocabulary is empty")
        var index: [Unicode.Scalar: Int32] = [:]
        for (i, c) in vocabulary.enumerated() {
            check(index.updateValue(Int32(i), forKey: c) == nil,
                  "CharTokenizer: character \(c.escaped(asASCII: true)) appears twice in the vocabulary")
        }
        self.vocabulary = vocabulary
        self.index = index
    }

    /// A tokenizer whose vocabulary is the characters of `vocabularyString`, in order.
    public init(vocabularyString: String) {
        self.init(vocabulary: Array(vocabularyString.unicodeScalars))
    }

    /// The vocabulary as one string, character `i` being token `i` (what checkpoints store).
    public var vocabularyString: String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: vocabulary)
        return String(s)
    }

    /// The number of tokens.
    public var vocabSize: Int { vocabulary.count }

    /// The characters of `text` that are not in the vocabulary, each once, in order of appearance.
    public func unknownCharacters(in text: String) -> [Unicode.Scalar] {
        var seen = Set<Unicode.Scalar>()
        return text.unicodeScalars.filter { index[$0] == nil && seen.insert($0).inserted }
    }

    /// The tokens of `text`; stops when a character is not in the vocabulary (check with
    /// `unknownCharacters(in:)` first for user input).
    public func encode(_ text: String) -> [Int32] {
        text.unicodeScalars.map { c in
            guard let token = index[c] else {
                fatalError("CharTokenizer.encode: character \(c.escaped(asASCII: true)) is not in the vocabulary of \(vocabSize) characters")
            }
            return token
        }
    }

    /// The text of `tokens`; stops when a token is out of range.
    public func decode(_ tokens: [Int32]) -> String {
        var s = String.UnicodeScalarView()
        for t in tokens {
            check(t >= 0 && Int(t) < vocabSize, "CharTokenizer.decode: token \(t) is out of range for a vocabulary of \(vocabSize)")
            s.append(vocabulary[Int(t)])
        }
        return String(s)
    }

    /// The text of an Int32 tensor of tokens (any shape, read in row-major order).
    public func decode(_ tokens: Tensor) -> String {
        check(!tokens.dtype.isFloatingPoint && tokens.dtype != .bool, "CharTokenizer.decode: tokens must be integers, got \(tokens.dtype)")
        return decode(tokens.toIntArray())
    }
}

/// Which part of a `TextDataset` a batch comes from.
public enum TextSplit: String, Sendable, CaseIterable {
    /// The first part of the tokens (nanoGPT: 90%).
    case train
    /// The rest.
    case validation
}

/// A token stream cut into a training and a validation part, handing out random batches of
/// (block, next block) windows as nanoGPT's `get_batch`: for a start `i`, the input is
/// `tokens[i..<i+T]` and the target `tokens[i+1...i+T]`.
public final class TextDataset {
    /// All tokens.
    public let tokens: [Int32]
    /// The window length `T`.
    public let blockSize: Int
    /// The tokens of the training part: `tokens[..<trainCount]`.
    public let trainCount: Int
    private var seed: UInt64
    private var counter: UInt64 = 0

    /// Splits `tokens` after the first `trainFraction` (nanoGPT: `int(0.9 * n)`); `seed`
    /// fixes the sequence of batches. Each part must hold more than `blockSize` tokens.
    public init(tokens: [Int32], blockSize: Int, trainFraction: Double = 0.9, seed: UInt64 = 0) {
        check(blockSize > 0, "TextDataset: blockSize must be positive, got \(blockSize)")
        check(trainFraction > 0 && trainFraction < 1, "TextDataset: trainFraction must be in (0, 1), got \(trainFraction)")
        let cut = Int(trainFraction * Double(tokens.count))
        check(cut > blockSize && tokens.count - cut > blockSize,
              "TextDataset: \(tokens.count) tokens split at \(cut) leave a part of at most blockSize (\(blockSize)) tokens")
        self.tokens = tokens
        self.blockSize = blockSize
        self.trainCount = cut
        self.seed = seed
    }

    /// The token range of `split`.
    public func range(_ split: TextSplit) -> Range<Int> {
        split == .train ? 0..<trainCount : trainCount..<tokens.count
    }

    /// Restarts the batch sequence from `seed`.
    public func manualSeed(_ seed: UInt64) {
        self.seed = seed
        counter = 0
    }

    /// `batchSize` windows of `split` at uniformly drawn starts (each in
    /// `0..<(count - blockSize)` of the part, as nanoGPT's `torch.randint(len(data) - block_size)`):
    /// Int32 inputs and targets `[batchSize, blockSize]` on `device`.
    public func getBatch(split: TextSplit, batchSize: Int, device: Device = .cpu) -> (inputs: Tensor, targets: Tensor) {
        check(batchSize > 0, "TextDataset.getBatch: batchSize must be positive, got \(batchSize)")
        let part = range(split)
        let starts = UInt64(part.count - blockSize)
        var x: [Int32] = [], y: [Int32] = []
        x.reserveCapacity(batchSize * blockSize)
        y.reserveCapacity(batchSize * blockSize)
        for _ in 0..<batchSize {
            let i = part.lowerBound + Int(CPUBackend.randomBits(seed: seed, counter: counter) % starts)
            counter += 1
            x += tokens[i..<i + blockSize]
            y += tokens[i + 1...i + blockSize]
        }
        return (Tensor(shape: [batchSize, blockSize], data: x, device: device),
                Tensor(shape: [batchSize, blockSize], data: y, device: device))
    }
}

/// The Shakespeare corpus bundled with Ember: seven plays from Project Gutenberg's public-domain
/// texts, about 1 MB of ASCII (see Resources/Data/SHAKESPEARE-LICENSE.md).
public struct Shakespeare: Sendable {
    /// The whole text.
    public let text: String
    /// The tokenizer of `text` (73 characters).
    public let tokenizer: CharTokenizer

    /// Reads the bundled `shakespeare.txt.gz` (from `EMBER_DATA_PATH`, the resource bundle
    /// or the source tree, as `Digits.load()`).
    public static func load() throws -> Shakespeare {
        let paths = ResourceBundle.searchPaths(environment: "EMBER_DATA_PATH", bundleFolder: "Data",
                                               sourceFolder: "Sources/Ember/Resources/Data")
        guard let url = ResourceBundle.locate("shakespeare.txt.gz", in: paths) else {
            throw EmberError.invalidFile(path: "shakespeare.txt.gz", reason: "not found in \(paths.joined(separator: ", "))")
        }
        let data = try Gzip.readFile(url, limit: 1 << 24)
        guard let text = String(data: data, encoding: .utf8), !text.isEmpty else {
            throw EmberError.invalidFile(path: url.path, reason: "is not UTF-8 text")
        }
        return Shakespeare(text: text, tokenizer: CharTokenizer(text: text))
    }

    /// The tokens of `text`.
    public var tokens: [Int32] { tokenizer.encode(text) }

    /// The text as a `TextDataset` of `blockSize` windows, split 90/10 as nanoGPT does.
    public func dataset(blockSize: Int, seed: UInt64 = 0) -> TextDataset {
        TextDataset(tokens: tokens, blockSize: blockSize, seed: seed)
    }
}
