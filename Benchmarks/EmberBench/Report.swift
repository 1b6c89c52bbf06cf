import EmberPlot
import Foundation

/// The closing markdown table, the JSON file and the SVG chart of a run.
enum Report {
    /// The results as a markdown table under a line naming the machine; the note column
    /// holds the GEMM behind a row or the peak memory of a training workload.
    static func markdown(_ results: [BenchResult], machine: String) -> String {
        var lines = ["Machine: \(machine)", "", "| workload | device | median | min | max | first call | figure | note |",
                     "|---|---|---:|---:|---:|---:|---:|---|"]
        for r in results {
            lines.append("| \(r.workload) | \(r.device) | \(duration(r.median)) | \(duration(r.min)) | \(duration(r.max)) | \(duration(r.firstCall)) | \(figure(r.value)) \(r.unit) | \(r.note ?? "") |")
        }
        return lines.joined(separator: "\n")
    }

    static func duration(_ seconds: Double) -> String {
        if seconds.isNaN { return "-" }
        if seconds >= 1 { return String(format: "%.2f s", seconds) }
        if seconds >= 1e-3 { return String(format: "%.2f ms", seconds * 1e3) }
        return String(format: "%.1f µs", seconds * 1e6)
    }

    static func figure(_ value: Double) -> String {
        value >= 1000 ? String(format: "%.0f", value) : value >= 10 ? String(format: "%.1f", value) : String(format: "%.2f", value)
    }

    static func json(_ results: [BenchResult], machine: String) throws -> Data {
        struct Document: Codable { var machine: String; var date: String; var results: [BenchResult] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(Document(machine: machine, date: ISO8601DateFormatter().string(from: Date()), results: results))
    }

    /// One group of bars per workload, one bar per device, each as a percentage of the
    /// group's best device, with the figure beside it.
    static func svg(_ results: [BenchResult]) -> String {
        let workloads = results.map(\.workload).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let devices = results.map(\.device).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let groups = workloads.map { workload in
            let rows = results.filter { $0.workload == workload }
            let best = rows.map { $0.higherIsBetter ? $0.value : 1 / $0.value }.max() ?? 1
            return BarChart.Group(label: workload, bars: devices.map { device in
                rows.first { $0.device == device }.map { r in
                    (value: 100 * (r.higherIsBetter ? r.value : 1 / r.value) / best, text: "\(figure(r.value)) \(r.unit)")
                }
            })
        }
        return BarChart(title: "ember-bench: devices side by side", axisLabel: "% of the best device of each workload (longer is better)",
                        series: devices, groups: groups).svg()
    }
}
