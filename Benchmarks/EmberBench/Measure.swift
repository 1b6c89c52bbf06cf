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

/// The profile of the last timed workload (`ember-bench --profile`), printed with its row.
final class ProfileSlot {
    /// How many ops the printed table lists.
    let rows: Int
    /// Whether events are recorded with their input shapes and a row is one op and shapes.
    let shapes: Bool
    /// The column the table sorts by.
    let sortBy: ProfilerSortKey
    var last: ProfileResult?
    init(rows: Int, shapes: Bool = false, sortBy: ProfilerSortKey = .selfHostTime) {
        self.rows = rows
        self.shapes = shapes
        self.sortBy = sortBy
    }

    /// The table of the last profile.
    func table(_ profile: ProfileResult) -> String {
        profile.table(sortBy: sortBy, limit: rows, groupBy: shapes ? .opAndShape : .op)
    }

    /// `--profile-sort`'s values.
    static let sortKeys: [String: ProfilerSortKey] = [
        "self-host": .selfHostTime, "host": .hostTime, "self-device": .selfDeviceTime, "device": .deviceTime, "calls": .calls, "memory": .memory,
    ]
}

/// Times closures: the first call alone, two warm-up calls, then `repetitions` timed calls,
/// each followed by a device synchronisation. With a `profiles` slot, one more call runs
/// under the profiler after the timed ones (so it never slows them).
struct Timer {
    let repetitions: Int
    var profiles: ProfileSlot? = nil

    /// Profiles one more call of `body` into `profiles`.
    private func profile(on device: Device, _ body: () -> Void) {
        guard let profiles else { return }
        profiles.last = Profiler.profile(activities: [.cpu, .device], recordShapes: profiles.shapes) {
            body()
            try? device.synchronize()
        }
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Seconds of one call of `body` and the synchronisation after it.
    private func once(on device: Device, _ body: () -> Void) -> Double {
        let start = Timer.now()
        body()
        try? device.synchronize()
        return Timer.now() - start
    }

    /// Runs `body` and returns (first, sorted repetition times). The repetitions start once
    /// the kernels OpenCL builds in the background are ready, so they time the steady state
    /// (the fused kernels) and the first call times what a fresh process runs.
    func time(on device: Device, _ body: () -> Void) -> (first: Double, times: [Double]) {
        let first = once(on: device, body)
        for _ in 0..<2 { _ = once(on: device, body) }
        device.waitForKernelBuilds()
        let times = (0..<repetitions).map { _ in once(on: device, body) }.sorted()
        profile(on: device, body)
        return (first, times)
    }

    /// Times two closures in alternation, so a burst of load on this shared machine slows
    /// both alike and their ratio stays meaningful; returns each one's (first, sorted times),
    /// the repetitions after the background builds, as `time`.
    func timeAlternating(on device: Device, _ a: () -> Void, _ b: () -> Void)
        -> (a: (first: Double, times: [Double]), b: (first: Double, times: [Double])) {
        let firstA = once(on: device, a), firstB = once(on: device, b)
        for _ in 0..<2 {
            _ = once(on: device, a)
            _ = once(on: device, b)
        }
        device.waitForKernelBuilds()
        var timesA: [Double] = [], timesB: [Double] = []
        for _ in 0..<repetitions {
            timesA.append(once(on: device, a))
            timesB.append(once(on: device, b))
        }
        profile(on: device, a)
        return ((firstA, timesA.sorted()), (firstB, timesB.sorted()))
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

/// The most resident memory `body` added above what the process held when it started:
/// Linux's peak (VmHWM) is reset to the current size first (`/proc/self/clear_refs`).
func peakBytesAbove(_ body: () -> Void) -> Int {
    func status(_ field: String) -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    let baseline = status("VmRSS")
    body()
    return status("VmHWM") - baseline
}
