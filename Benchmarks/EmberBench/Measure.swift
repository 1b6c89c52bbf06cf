import Ember
import Foundation

/// One measured row: a workload on a device.
struct BenchResult: Codable {
    var workload: String
    var device: String
    /// Seconds of the first call (kernel compilation included).
    var firstCall: Double
    var median: Double
    var min: Double
    var max: Double
    var repetitions: Int
    /// The derived figure (GFLOP/s, GB/s, samples/s, µs/op, MiB) and its unit.
    var value: Double
    var unit: String
    /// Whether a larger value is better (throughputs) or a smaller one (times).
    var higherIsBetter: Bool
    var note: String?
}

/// Times closures: the first call alone, two warm-up calls, then `repetitions` timed calls,
/// each followed by a device synchronisation.
struct Timer {
    let repetitions: Int

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Runs `body` and returns (first, sorted repetition times).
    func time(on device: Device, _ body: () -> Void) -> (first: Double, times: [Double]) {
        func once() -> Double {
            let start = Timer.now()
            body()
            try? device.synchronize()
            return Timer.now() - start
        }
        let first = once()
        for _ in 0..<2 { _ = once() }
        return (first, (0..<repetitions).map { _ in once() }.sorted())
    }
}

extension Array where Element == Double {
    /// The median of sorted values.
    var median: Double { isEmpty ? .nan : (count % 2 == 1 ? self[count / 2] : (self[count / 2 - 1] + self[count / 2]) / 2) }
}

/// Peak resident set size of this process, in MiB.
func peakResidentMiB() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
}
