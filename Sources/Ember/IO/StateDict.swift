/// Named tensors in insertion order, like PyTorch's `state_dict()` (an `OrderedDict`): what
/// `Module`, `Optimizer` and `LRScheduler` give from `stateDict()` and take in
/// `loadStateDict(_:)`, and what `SafeTensors` writes and reads.
///
/// `dict["fc.weight"]` looks a tensor up by name; iterating (or `dict[0]`) gives
/// `(name, tensor)` pairs in order. Names are compared byte for byte, as Python compares
/// them: "é" (NFC) and "e" + combining accent (NFD) name two entries, though Swift's `==`
/// calls them equal. Assigning to a new name appends it; assigning to an
/// existing name replaces the tensor in its place; assigning nil removes the entry.
public struct StateDict: RandomAccessCollection, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// One entry: a name and its tensor.
    public typealias Element = (name: String, tensor: Tensor)

    private var entries: [Element] = []
    private var positions: [Name: Int] = [:]

    /// A name as its UTF-8 bytes, hashed and compared byte for byte.
    private struct Name: Hashable {
        let bytes: [UInt8]
        init(_ name: String) { bytes = Array(name.utf8) }
    }

    /// An empty state dict.
    public init() {}

    /// The pairs in order; a name given twice stops with a message.
    public init(_ pairs: [(String, Tensor)]) {
        for (name, tensor) in pairs {
            check(positions[Name(name)] == nil, "StateDict: name '\(name)' given twice")
            append(name, tensor)
        }
    }

    /// The literal's pairs in the order written; a name given twice stops with a message.
    public init(dictionaryLiteral elements: (String, Tensor)...) {
        self.init(elements)
    }

    /// Position of the first entry (0).
    public var startIndex: Int { 0 }
    /// One past the last entry's position (`count`).
    public var endIndex: Int { entries.count }
    /// The entry at `position`, in insertion order.
    public subscript(position: Int) -> Element { entries[position] }

    /// The tensor stored under `name`, or nil; setting appends, replaces in place, or removes.
    public subscript(name: String) -> Tensor? {
        get { positions[Name(name)].map { entries[$0].tensor } }
        set {
            switch (positions[Name(name)], newValue) {
            case let (i?, tensor?): entries[i].tensor = tensor
            case let (nil, tensor?): append(name, tensor)
            case let (i?, nil):
                entries.remove(at: i)
                positions[Name(name)] = nil
                for j in i..<entries.count { positions[Name(entries[j].name)] = j }
            case (nil, nil): break
            }
        }
    }

    /// The names, in order.
    public var keys: [String] { entries.map(\.name) }

    /// One line per entry: name, shape and dtype.
    public var description: String {
        entries.isEmpty ? "StateDict()" : entries.map { "\($0.name): \(Shape.describe($0.tensor.shape)) \($0.tensor.dtype)" }.joined(separator: "\n")
    }

    private mutating func append(_ name: String, _ tensor: Tensor) {
        positions[Name(name)] = entries.count
        entries.append((name, tensor))
    }
}
