import Ember

/// Gives each process its own share of a data set every epoch, like PyTorch's
/// `torch.utils.data.distributed.DistributedSampler`: the (optionally shuffled) indices are
/// padded by repeating the first ones until they divide evenly among the processes (or,
/// with `dropLast`, cut to a multiple), and process r takes every `worldSize`-th index from
/// r on. Every process must use the same `seed` and call `setEpoch(_:)` with the same epoch
/// before each epoch so that all of them agree on the order. Pass it to
/// `DataLoader(_:batchSize:sampler:)`.
public final class DistributedSampler: Sampler {
    /// Examples in the data set.
    public let datasetCount: Int
    /// This process's index.
    public let rank: Int
    /// Number of processes.
    public let worldSize: Int
    /// Whether each epoch uses a new seeded permutation.
    public let shuffle: Bool
    /// The shuffling seed (the same on every process).
    public let seed: UInt64
    /// Whether the tail that does not divide evenly is dropped instead of padded.
    public let dropLast: Bool
    /// The epoch whose order `indices()` returns.
    public private(set) var epoch = 0

    /// A sampler over `dataset` for process `rank` of `worldSize`.
    public init(_ dataset: Dataset, rank: Int, worldSize: Int, shuffle: Bool = true, seed: UInt64 = 0, dropLast: Bool = false) {
        check(worldSize > 0, "DistributedSampler: worldSize must be positive, got \(worldSize)")
        check(rank >= 0 && rank < worldSize, "DistributedSampler: rank \(rank) is out of range for worldSize \(worldSize)")
        check(dataset.count > 0, "DistributedSampler: the dataset is empty")
        check(!dropLast || dataset.count >= worldSize, "DistributedSampler: dropLast with \(dataset.count) examples for \(worldSize) processes leaves none")
        datasetCount = dataset.count
        self.rank = rank
        self.worldSize = worldSize
        self.shuffle = shuffle
        self.seed = seed
        self.dropLast = dropLast
    }

    /// A sampler for this process of `group`.
    public convenience init(_ dataset: Dataset, group: ProcessGroup, shuffle: Bool = true, seed: UInt64 = 0, dropLast: Bool = false) {
        self.init(dataset, rank: group.rank, worldSize: group.worldSize, shuffle: shuffle, seed: seed, dropLast: dropLast)
    }

    /// Sets the epoch that the next `indices()` orders (PyTorch's `set_epoch`).
    public func setEpoch(_ epoch: Int) {
        self.epoch = epoch
    }

    /// Indices this process reads per epoch: `ceil(n / worldSize)`, or `floor` with `dropLast`.
    public var count: Int {
        dropLast ? datasetCount / worldSize : (datasetCount + worldSize - 1) / worldSize
    }

    /// This process's indices for the current epoch.
    public func indices() -> [Int] {
        var order = shuffle ? DistributedSampler.permutation(datasetCount, seed: seed &+ UInt64(epoch)) : Array(0..<datasetCount)
        let total = count * worldSize
        if total > order.count {
            let base = order
            var next = 0
            while order.count < total { order.append(base[next % base.count]); next += 1 }
        } else {
            order.removeLast(order.count - total)
        }
        return stride(from: rank, to: total, by: worldSize).map { order[$0] }
    }

    /// A seeded Fisher-Yates permutation of `0..<n` (splitmix64), the same on every machine.
    static func permutation(_ n: Int, seed: UInt64) -> [Int] {
        var order = Array(0..<n)
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 0xD1B5_4A32_D192_ED03
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var i = n - 1
        while i > 0 {
            order.swapAt(i, Int(next() % UInt64(i + 1)))
            i -= 1
        }
        return order
    }
}
