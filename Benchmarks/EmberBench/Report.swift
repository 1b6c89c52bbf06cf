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

    /// One group of bars per workload, one bar per device, each scaled to the group's best.
    static func svg(_ results: [BenchResult]) -> String {
        let workloads = results.map(\.workload).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let devices = results.map(\.device).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"]
        let barHeight = 14, groupGap = 10, labelWidth = 330, chartWidth = 420
        let height = workloads.count * (devices.count * barHeight + groupGap) + 60
        var out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(labelWidth + chartWidth + 160)\" height=\(height) font-family=\"sans-serif\" font-size=\"11\">",
                   "<text x=\"10\" y=\"18\" font-size=\"14\">ember-bench: devices side by side (bar length relative to the best device of each workload)</text>"]
        for (i, device) in devices.enumerated() {
            out.append("<rect x=\"\(labelWidth + i * 110)\" y=\"28\" width=\"10\" height=\"10\" fill=\"\(colors[i % colors.count])\"/><text x=\"\(labelWidth + i * 110 + 14)\" y=\"37\">\(device)</text>")
        }
        var y = 50
        for workload in workloads {
            let rows = results.filter { $0.workload == workload }
            let best = rows.map { $0.higherIsBetter ? $0.value : 1 / $0.value }.max() ?? 1
            out.append("<text x=\"10\" y=\"\(y + barHeight)\">\(escape(workload))</text>")
            for (i, device) in devices.enumerated() {
                guard let r = rows.first(where: { $0.device == device }) else { continue }
                let score = (r.higherIsBetter ? r.value : 1 / r.value) / best
                let width = max(1, Int(Double(chartWidth) * score))
                let top = y + i * barHeight
                out.append("<rect x=\"\(labelWidth)\" y=\"\(top + 2)\" width=\"\(width)\" height=\"\(barHeight - 3)\" fill=\"\(colors[i % colors.count])\"/>")
                out.append("<text x=\"\(labelWidth + width + 4)\" y=\"\(top + barHeight - 2)\">\(figure(r.value)) \(escape(r.unit))</text>")
            }
            y += devices.count * barHeight + groupGap
        }
        out.append("</svg>")
        return out.joined(separator: "\n")
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
