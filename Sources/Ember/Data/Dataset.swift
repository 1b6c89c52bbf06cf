import Foundation

/// A collection of (input, label) examples that can hand out whole batches.
public protocol Dataset {
    /// Number of examples.
    var count: Int { get }
    /// The examples at `indices`, stacked along a new first dim, on the dataset's device.
    func batch(_ indices: [Int]) -> (inputs: Tensor, labels: Tensor)
}

/// Examples held in two tensors whose first dim indexes the examples.
public struct TensorDataset: Dataset {
    /// All inputs, `[count, ...]`.
    public let inputs: Tensor
    /// All labels, `[count, ...]`.
    public let labels: Tensor

    /// Pairs `inputs[i]` with `labels[i]`; the first dims must match.
    public init(inputs: Tensor, labels: Tensor) {
        check(inputs.rank >= 1 && labels.rank >= 1 && inputs.shape[0] == labels.shape[0],
              "TensorDataset: inputs \(Shape.describe(inputs.shape)) and labels \(Shape.describe(labels.shape)) differ in their first dimension")
        check(inputs.device == labels.device, "TensorDataset: inputs on \(inputs.device), labels on \(labels.device)")
        self.inputs = inputs
        self.labels = labels
    }

    /// Number of examples.
    public var count: Int { inputs.shape[0] }

    /// The examples at `indices` (gathered with one `indexSelect` each).
    public func batch(_ indices: [Int]) -> (inputs: Tensor, labels: Tensor) {
        for i in indices where i < 0 || i >= count {
            fatalError("TensorDataset: index \(i) is out of range for \(count) examples")
        }
        let index = Tensor(shape: [indices.count], data: indices.map { Int32($0) }, device: inputs.device)
        return (inputs.indexSelect(dim: 0, index: index), labels.indexSelect(dim: 0, index: index))
    }

    /// The examples at `indices` as a new dataset.
    public func subset(_ indices: [Int]) -> TensorDataset {
        let (x, y) = batch(indices)
        return TensorDataset(inputs: x, labels: y)
    }

    /// This dataset with both tensors on `device`.
    public func to(_ device: Device) -> TensorDataset {
        TensorDataset(inputs: inputs.to(device), labels: labels.to(device))
    }

    /// A seeded random split: `fraction` of the examples for the first part, the rest for the second.
    public func split(fraction: Double, seed: UInt64 = 0) -> (first: TensorDataset, second: TensorDataset) {
        check(fraction > 0 && fraction < 1, "split: fraction must be in (0, 1), got \(fraction)")
        let order = seededPermutation(count, seed: seed)
        let cut = Int((Double(count) * fraction).rounded())
        return (subset(Array(order[..<cut])), subset(Array(order[cut...])))
    }
}

/// A permutation of `0..<n` from a seeded Fisher-Yates shuffle (the same on every machine).
func seededPermutation(_ n: Int, seed: UInt64) -> [Int] {
    var order = Array(0..<n)
    var state = seed
    var i = n - 1
    while i > 0 {
        state &+= 0x9E37_79B9_7F4A_7C15
        let bits = CPUBackend.randomBits(seed: state, counter: 0)
        let j = Int(bits % UInt64(i + 1))
        order.swapAt(i, j)
        i -= 1
    }
    return order
}

/// Chooses which examples an epoch reads and in what order (PyTorch's
/// `torch.utils.data.Sampler`); `DataLoader(_:batchSize:sampler:)` reads through one, e.g.
/// EmberDistributed's `DistributedSampler`, which gives each process its share.
public protocol Sampler {
    /// Indices one epoch yields.
    var count: Int { get }
    /// The indices of the next epoch, in order (`count` of them, each in `0..<dataset.count`).
    func indices() -> [Int]
}

/// Iterates a dataset in batches, optionally shuffled (a new seeded order every epoch) and
/// moved to a device, like `torch.utils.data.DataLoader`.
public final class DataLoader: Sequence {
    /// The dataset read.
    public let dataset: Dataset
    /// Examples per batch.
    public let batchSize: Int
    /// Whether each epoch reads the examples in a new random order.
    public let shuffle: Bool
    /// Whether a last, smaller batch is dropped.
    public let dropLast: Bool
    /// Where batches are delivered.
    public let device: Device
    /// Where the indices come from instead of `shuffle`, when given.
    public let sampler: Sampler?
    private let seed: UInt64
    /// Epochs started so far (each `makeIterator()` starts one).
    public private(set) var epoch = 0

    /// A loader over `dataset`; `seed` fixes the shuffling order of every epoch.
    public convenience init(_ dataset: Dataset, batchSize: Int, shuffle: Bool = false, seed: UInt64 = 0, dropLast: Bool = false,
                            device: Device = .cpu) {
        self.init(dataset, batchSize: batchSize, shuffle: shuffle, seed: seed, sampler: nil, dropLast: dropLast, device: device)
    }

    /// A loader reading the examples `sampler` yields each epoch, in its order (PyTorch's
    /// `DataLoader(dataset, sampler=...)`; shuffling is the sampler's business).
    public convenience init(_ dataset: Dataset, batchSize: Int, sampler: Sampler, dropLast: Bool = false, device: Device = .cpu) {
        self.init(dataset, batchSize: batchSize, shuffle: false, seed: 0, sampler: sampler, dropLast: dropLast, device: device)
    }

    private init(_ dataset: Dataset, batchSize: Int, shuffle: Bool, seed: UInt64, sampler: Sampler?, dropLast: Bool, device: Device) {
        check(batchSize > 0, "DataLoader: batchSize must be positive, got \(batchSize)")
        if let sampler {
            check(sampler.count > 0, "DataLoader: the sampler yields no examples")
        } else {
            check(dataset.count > 0, "DataLoader: the dataset is empty")
        }
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
        self.sampler = sampler
        self.dropLast = dropLast
        self.device = device
    }

    /// Batches per epoch.
    public var count: Int {
        let examples = sampler?.count ?? dataset.count
        return dropLast ? examples / batchSize : (examples + batchSize - 1) / batchSize
    }

    /// The batches of the next epoch.
    public func makeIterator() -> AnyIterator<(inputs: Tensor, labels: Tensor)> {
        let order = sampler?.indices()
            ?? (shuffle ? seededPermutation(dataset.count, seed: seed &+ UInt64(epoch) &* 0x2545_F491_4F6C_DD1D) : Array(0..<dataset.count))
        check(sampler == nil || order.count == sampler!.count, "DataLoader: the sampler promised \(sampler?.count ?? 0) indices and gave \(order.count)")
        epoch += 1
        var start = 0
        let total = count
        var produced = 0
        return AnyIterator { [dataset, batchSize, device] in
            guard produced < total else { return nil }
            let end = Swift.min(start + batchSize, order.count)
            let (x, y) = dataset.batch(Array(order[start..<end]))
            start = end
            produced += 1
            return (x.to(device), y.to(device))
        }
    }
}
