import Foundation

/// How `ProfileResult.keyAverages(groupBy:)` groups events.
public enum ProfilerGrouping: Sendable {
    /// One row per name (`key_averages()`).
    case op
    /// One row per name and input shapes (`key_averages(group_by_input_shape=True)`);
    /// needs `recordShapes`.
    case opAndShape
}

/// The column `ProfileResult.table(sortBy:limit:)` sorts by (largest first).
public enum ProfilerSortKey: Sendable {
    /// Host time spent in the event itself, excluding events nested inside it.
    case selfHostTime
    /// Host time including nested events.
    case hostTime
    /// Device time of the kernels the event launched itself.
    case selfDeviceTime
    /// Device time including nested events' kernels.
    case deviceTime
    /// Number of calls.
    case calls
    /// Bytes allocated, nested events included.
    case memory
}

/// One row of `keyAverages`: the totals of every event with one name (and shapes).
/// Times are in nanoseconds.
public struct ProfilerKeyAverage: Sendable, Equatable {
    /// The event name (`matmul`, `MulBackward`, `upload`).
    public var name: String
    /// The input shapes (grouping `.opAndShape`), else empty.
    public var inputShapes: [[Int]]
    /// The gradFn the op records (`MmBackward`), when it recorded one.
    public var gradFn: String?
    /// Number of events.
    public var calls: Int
    /// Host time excluding nested events.
    public var selfHostTime: Int
    /// Host time including nested events (a nested event with the same name, a recursion,
    /// counts once).
    public var hostTime: Int
    /// Device time of the kernels and copies the events launched themselves.
    public var selfDeviceTime: Int
    /// Device time including nested events.
    public var deviceTime: Int
    /// Bytes allocated by the events themselves.
    public var selfMemory: Int
    /// Bytes allocated including nested events.
    public var memory: Int

    /// Average host time per call, nested events included.
    public var averageHostTime: Int { calls == 0 ? 0 : hostTime / calls }
}

extension ProfileResult {
    /// PyTorch's `key_averages()`: one row per event name (or name and input shapes) with its
    /// calls, self and total host time, device time and memory, in order of first appearance.
    /// The range `profile` that wraps the whole closure is left out.
    public func keyAverages(groupBy grouping: ProfilerGrouping = .op) -> [ProfilerKeyAverage] {
        var children = [[Int]](repeating: [], count: events.count)
        for (i, e) in events.enumerated() { if let p = e.parent { children[p].append(i) } }
        var selfHost = [Int](repeating: 0, count: events.count)
        var totalDevice = [Int](repeating: 0, count: events.count)
        var totalMemory = [Int](repeating: 0, count: events.count)
        // Children come after their parent, so one backward pass sums them up.
        for i in events.indices.reversed() {
            selfHost[i] = events[i].duration - children[i].reduce(0) { $0 + events[$1].duration }
            totalDevice[i] = events[i].deviceTime + children[i].reduce(0) { $0 + totalDevice[$1] }
            totalMemory[i] = events[i].bytesAllocated + children[i].reduce(0) { $0 + totalMemory[$1] }
        }
        struct Key: Hashable { var name: String; var shapes: [[Int]] }
        var rows: [Key: Int] = [:]
        var out: [ProfilerKeyAverage] = []
        for (i, e) in events.enumerated() where !(e.kind == .scope && e.name == "profile" && e.parent == nil) {
            let key = Key(name: e.name, shapes: grouping == .opAndShape ? e.inputShapes : [])
            let row = rows[key] ?? {
                out.append(ProfilerKeyAverage(name: e.name, inputShapes: key.shapes, gradFn: nil, calls: 0, selfHostTime: 0,
                                              hostTime: 0, selfDeviceTime: 0, deviceTime: 0, selfMemory: 0, memory: 0))
                rows[key] = out.count - 1
                return out.count - 1
            }()
            // A recursive event (a backward rule nested in one of its own name) counts its
            // total once, through the outermost.
            var nested = false
            var p = e.parent
            while let q = p { if events[q].name == e.name { nested = true; break }; p = events[q].parent }
            out[row].calls += 1
            out[row].gradFn = out[row].gradFn ?? e.gradFn
            out[row].selfHostTime += selfHost[i]
            out[row].selfDeviceTime += e.deviceTime
            out[row].selfMemory += e.bytesAllocated
            if !nested {
                out[row].hostTime += e.duration
                out[row].deviceTime += totalDevice[i]
                out[row].memory += totalMemory[i]
            }
        }
        return out
    }

    /// The key averages as a text table (`key_averages().table(sort_by:, row_limit:)`),
    /// largest first, with the totals of the profile underneath.
    public func table(sortBy key: ProfilerSortKey = .selfHostTime, limit: Int? = nil,
                      groupBy grouping: ProfilerGrouping = .op) -> String {
        let value: (ProfilerKeyAverage) -> Int = switch key {
        case .selfHostTime: \.selfHostTime
        case .hostTime: \.hostTime
        case .selfDeviceTime: \.selfDeviceTime
        case .deviceTime: \.deviceTime
        case .calls: \.calls
        case .memory: \.memory
        }
        let all = keyAverages(groupBy: grouping)
        let rows = all.enumerated().sorted { (value($0.element), $1.offset) > (value($1.element), $0.offset) }
            .prefix(limit ?? all.count).map(\.element)
        let totalSelfHost = max(1, all.reduce(0) { $0 + $1.selfHostTime })
        let totalDevice = totalDeviceTime
        let hasShapes = grouping == .opAndShape
        var header = ["Name", "gradFn", "Self host %", "Self host", "Host total", "Host avg", "Self device", "Device total", "Memory", "Calls"]
        if hasShapes { header.append("Input shapes") }
        var lines = [header]
        for r in rows {
            var line = [r.name, r.gradFn ?? "", String(format: "%.1f%%", Double(r.selfHostTime) * 100 / Double(totalSelfHost)),
                        Self.time(r.selfHostTime), Self.time(r.hostTime), Self.time(r.averageHostTime),
                        Self.time(r.selfDeviceTime), Self.time(r.deviceTime), Self.bytes(r.memory), "\(r.calls)"]
            if hasShapes { line.append(r.inputShapes.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: ", ")) }
            lines.append(line)
        }
        let widths = header.indices.map { c in lines.map { $0[c].count }.max() ?? 0 }
        func render(_ line: [String]) -> String {
            line.enumerated().map { c, cell in
                c <= 1 || c == header.count - 1 && hasShapes
                    ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1))
        var out = [rule, render(lines[0]), rule] + lines.dropFirst().map(render) + [rule]
        let profileTime = events.first { $0.kind == .scope && $0.name == "profile" }?.duration ?? 0
        out.append("Self host time total: \(Self.time(all.reduce(0) { $0 + $1.selfHostTime })) (profiled range \(Self.time(profileTime)))")
        out.append("Device time total: \(Self.time(totalDevice))")
        return out.joined(separator: "\n")
    }

    static func time(_ nanoseconds: Int) -> String {
        let n = Double(nanoseconds)
        if nanoseconds == 0 { return "0" }
        if n >= 1e9 { return String(format: "%.2fs", n / 1e9) }
        if n >= 1e6 { return String(format: "%.2fms", n / 1e6) }
        return String(format: "%.1fus", n / 1e3)
    }

    static func bytes(_ count: Int) -> String {
        let b = Double(count)
        if count == 0 { return "0" }
        if count >= 1 << 30 { return String(format: "%.2f GiB", b / Double(1 << 30)) }
        if count >= 1 << 20 { return String(format: "%.2f MiB", b / Double(1 << 20)) }
        if count >= 1 << 10 { return String(format: "%.1f KiB", b / Double(1 << 10)) }
        return "\(count) B"
    }
}
