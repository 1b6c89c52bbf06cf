import Foundation

extension ProfileResult {
    /// The profile in Trace Event Format (what `chrome://tracing`, Perfetto and
    /// `torch.profiler`'s `export_chrome_trace` use): host events as complete ("X") events on
    /// one track per host thread of process "host", device kernels and copies on one track
    /// per queue of a process per device; timestamps in microseconds since the profile began.
    public func chromeTrace() -> String {
        var items: [String] = []
        func string(_ s: String) -> String {
            var out = "\""
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
        func micro(_ ns: Int) -> String { String(format: "%.3f", Double(ns) / 1000) }
        func metadata(_ kind: String, pid: Int, tid: Int, _ name: String) {
            items.append("{\"ph\":\"M\",\"name\":\"\(kind)\",\"pid\":\(pid),\"tid\":\(tid),\"args\":{\"name\":\(string(name))}}")
        }
        metadata("process_name", pid: 0, tid: 0, "host")
        for thread in Set(events.map(\.thread)).sorted() {
            metadata("thread_name", pid: 0, tid: thread, "thread \(thread)")
        }
        let devices = deviceEvents.map(\.device).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        for (i, device) in devices.enumerated() {
            metadata("process_name", pid: i + 1, tid: 0, device)
            for queue in Set(deviceEvents.filter { $0.device == device }.map(\.queue)).sorted() {
                metadata("thread_name", pid: i + 1, tid: queue, "queue \(queue)")
            }
        }
        for e in events {
            var args = ["\"kind\":\(string(e.kind.rawValue))"]
            if let gradFn = e.gradFn { args.append("\"gradFn\":\(string(gradFn))") }
            if let device = e.device { args.append("\"device\":\(string(device))") }
            if !e.inputShapes.isEmpty {
                args.append("\"input shapes\":[" + e.inputShapes.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: ",") + "]")
            }
            if e.bytesAllocated > 0 { args.append("\"bytes allocated\":\(e.bytesAllocated)") }
            if e.bytesTransferred > 0 { args.append("\"bytes transferred\":\(e.bytesTransferred)") }
            if e.deviceTime > 0 { args.append("\"device time us\":\(micro(e.deviceTime))") }
            items.append("{\"ph\":\"X\",\"cat\":\(string(e.kind.rawValue)),\"name\":\(string(e.name)),\"pid\":0,\"tid\":\(e.thread),\"ts\":\(micro(e.start)),\"dur\":\(micro(e.duration)),\"args\":{\(args.joined(separator: ","))}}")
        }
        for d in deviceEvents {
            let pid = (devices.firstIndex(of: d.device) ?? 0) + 1
            var args: [String] = []
            if let host = d.hostEvent { args.append("\"launched by\":\(string(events[host].name))") }
            items.append("{\"ph\":\"X\",\"cat\":\"kernel\",\"name\":\(string(d.name)),\"pid\":\(pid),\"tid\":\(d.queue),\"ts\":\(micro(d.start)),\"dur\":\(micro(d.duration)),\"args\":{\(args.joined(separator: ","))}}")
        }
        return "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n" + items.joined(separator: ",\n") + "\n]}\n"
    }

    /// Writes `chromeTrace()` to `url` (open it in https://ui.perfetto.dev or `chrome://tracing`).
    public func exportChromeTrace(to url: URL) throws {
        do { try Data(chromeTrace().utf8).write(to: url, options: .atomic) } catch {
            throw EmberError.invalidFile(path: url.path, reason: "cannot write the trace: \(error.localizedDescription)")
        }
    }
}
