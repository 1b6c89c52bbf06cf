import Foundation
import Synchronization
import Testing
@testable import Ember

/// Ops another task runs while `isolation` profiles.
private let profiledSines = Atomic<Int>(0)

/// The profiler: what it records, key averages, the Chrome trace, isolation between tasks.
@Suite("Profiler")
struct ProfilerTests {
    /// A small MLP step: forward, loss, backward.
    static func step(_ device: Device) {
        Tensor.withRandomSeed(7) {
            let w = Tensor.randn([16, 8], device: device, requiresGrad: true)
            let x = Tensor.randn([4, 16], device: device)
            let y = x.matmul(w).relu()
            (y * y).sum().backward()
            _ = w.grad!.toArray()
        }
    }

    @Test("records forward ops with their gradFn, backward rules with the ops they run, and memory", arguments: TestDevices.all)
    func records(_ device: Device) throws {
        // Eagerly, each op's kernels launch inside its own range (with lazy fusion, a fused
        // kernel belongs to the range of the op that runs the pending graph: checked below).
        let result = Profiler.profile(activities: [.cpu, .device], recordShapes: true) {
            Fusion.withElementwiseFusion(false) { ProfilerTests.step(device) }
        }
        let ops = result.events.filter { $0.kind == .op }
        let mul = try #require(ops.first { $0.gradFn == "MulBackward" })
        #expect(mul.name == "mul")
        #expect(mul.inputShapes == [[4, 8], [4, 8]])
        #expect(mul.device == device.description)
        #expect(mul.bytesAllocated >= 4 * 8 * 4)
        let matmul = try #require(ops.first { $0.name == "matmul" })
        #expect(matmul.gradFn != nil)
        #expect(matmul.inputShapes == [[4, 16], [16, 8]])
        // Backward: a range per node, with the ops of its rule nested inside.
        let backward = result.events.enumerated().filter { $0.element.kind == .backward }
        #expect(Set(backward.map(\.element.name)).isSuperset(of: ["MulBackward", "SumBackward", "ReluBackward"]))
        let mulBackward = try #require(backward.first { $0.element.name == "MulBackward" })
        let nested = result.events.filter { $0.parent == mulBackward.offset }
        #expect(nested.contains { $0.name == "mul" }, "MulBackward's rule multiplies")
        for child in nested {
            #expect(child.start >= mulBackward.element.start && child.end <= mulBackward.element.end)
        }
        #expect(result.events.contains { $0.kind == .transfer && $0.name == "download" && $0.bytesTransferred == 16 * 8 * 4 })
        let moved = Profiler.profile { _ = Tensor(shape: [100], data: [Float](repeating: 1, count: 100), device: device) }
        let upload = try #require(moved.events.first { $0.kind == .transfer && $0.name == "upload" })
        #expect(upload.bytesTransferred == 400 && upload.bytesAllocated >= 400, "the upload is charged its fresh buffer")
        if device.kind == .opencl {
            #expect(result.deviceEvents.contains { $0.name == "Memcpy DtoH" })
            #expect(mul.deviceTime > 0, "a kernel timed by the device")
            #expect(result.deviceEvents.allSatisfy { $0.duration >= 0 && $0.hostEvent != nil })
            #expect(result.events.reduce(0) { $0 + $1.deviceTime } == result.totalDeviceTime)
            LazyFusion.buildFailuresThrow = true
            LazyFusion.$queuesBuilds.withValue(true) { for _ in 0..<2 { ProfilerTests.step(device) } }
            (device.backend as! OpenCLBackend).waitForFusedBuilds()
            let fused = Profiler.profile(activities: [.cpu, .device]) { ProfilerTests.step(device) }
            let kernel = try #require(fused.deviceEvents.first { $0.name.hasPrefix("fused_") }, "a fused kernel among the device events")
            #expect(kernel.hostEvent != nil)
        } else {
            #expect(result.deviceEvents.isEmpty)
        }
    }

    @Test("key averages: calls, self <= total, grouping by shape, the table")
    func keyAverages() throws {
        let a = Tensor.ones([2, 3]), b = Tensor.ones([4])
        let result = Profiler.profile(recordShapes: true) {
            for _ in 0..<3 { _ = a * a }
            _ = b * b
            _ = Profiler.record("block") { (a + a).exp() }
        }
        let rows = result.keyAverages()
        let mul = try #require(rows.first { $0.name == "mul" })
        #expect(mul.calls == 4)
        let block = try #require(rows.first { $0.name == "block" })
        #expect(block.calls == 1)
        #expect(block.selfHostTime <= block.hostTime)
        let inside = rows.filter { $0.name == "add" || $0.name == "exp" }
        #expect(inside.count == 2)
        #expect(block.hostTime >= inside.reduce(0) { $0 + $1.hostTime })
        #expect(block.memory >= 2 * 512, "the block's total includes its ops' outputs")
        let byShape = result.keyAverages(groupBy: .opAndShape).filter { $0.name == "mul" }
        #expect(byShape.map(\.calls).sorted() == [1, 3])
        #expect(Set(byShape.map(\.inputShapes)) == [[[2, 3], [2, 3]], [[4], [4]]])
        let table = result.table(sortBy: .calls, limit: 2)
        let lines = table.split(separator: "\n")
        #expect(lines[1].hasPrefix("Name"))
        #expect(lines[3].hasPrefix("mul "), "mul has the most calls:\n\(table)")
        #expect(lines.count == 3 + 2 + 1 + 2, "two rows under the limit:\n\(table)")
    }

    @Test("only the profiled task's ops are recorded, not those another task runs meanwhile")
    func isolation() async {
        let other = Task.detached {
            let x = Tensor.ones([8])
            while !Task.isCancelled { _ = x.sin(); profiledSines.add(1, ordering: .relaxed); await Task.yield() }
        }
        let result = Profiler.profile {
            let x = Tensor.ones([8])
            // Keep profiling until the other task has run ops during the profile.
            let start = profiledSines.load(ordering: .relaxed)
            var spins = 0
            while profiledSines.load(ordering: .relaxed) < start + 50 && spins < 2_000_000 { _ = x.cos(); spins += 1 }
        }
        other.cancel()
        _ = await other.value
        let names = Set(result.events.map(\.name))
        #expect(names.contains("cos"))
        #expect(!names.contains("sin"))
        // And nothing is recorded outside a profile.
        let empty = Profiler.profile {}
        #expect(empty.events.map(\.name) == ["profile"])
    }

    @Test("the Chrome trace is valid trace JSON whose events nest and whose kernels sum to the device time", arguments: TestDevices.all)
    func chromeTrace(_ device: Device) throws {
        let result = Profiler.profile { ProfilerTests.step(device) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ember-trace-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try result.exportChromeTrace(to: url)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
        let top = try #require(object as? [String: Any])
        let events = try #require(top["traceEvents"] as? [[String: Any]])
        let complete = events.filter { $0["ph"] as? String == "X" }
        #expect(complete.count == result.events.count + result.deviceEvents.count)
        struct Span { var ts: Double; var end: Double }
        var tracks: [String: [Span]] = [:]
        for e in complete {
            let ts = try #require(e["ts"] as? Double), dur = try #require(e["dur"] as? Double)
            let pid = try #require(e["pid"] as? Int), tid = try #require(e["tid"] as? Int)
            #expect(e["name"] is String)
            #expect(dur >= 0)
            tracks["\(pid)/\(tid)", default: []].append(Span(ts: ts, end: ts + dur))
        }
        // On one track, two events are either disjoint or one holds the other.
        let slack = 0.002
        for (track, spans) in tracks {
            var open: [Span] = []
            for s in spans.sorted(by: { ($0.ts, -$0.end) < ($1.ts, -$1.end) }) {
                while let last = open.last, last.end <= s.ts + slack { open.removeLast() }
                if let last = open.last { #expect(s.end <= last.end + slack, "track \(track): events overlap without nesting") }
                open.append(s)
            }
        }
        let names = events.filter { $0["ph"] as? String == "M" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        #expect(names.contains("host"))
        let kernels = complete.filter { $0["cat"] as? String == "kernel" }
        let kernelMicroseconds = kernels.reduce(0.0) { $0 + ($1["dur"] as? Double ?? 0) }
        let reported = Double(result.keyAverages().reduce(0) { $0 + $1.selfDeviceTime }) / 1000
        #expect(abs(kernelMicroseconds - reported) <= 0.001 * Double(kernels.count) + 1e-9)
        #expect(abs(reported - Double(result.totalDeviceTime) / 1000) < 1e-6)
        if device.kind == .opencl {
            #expect(!kernels.isEmpty)
            #expect(names.contains(device.description))
        }
    }

    @Test("detectAnomaly works under the profiler, and its reads are recorded")
    func anomalyUnderProfiler() {
        let result = Profiler.profile {
            let x = Tensor([1, 4], requiresGrad: true)
            Tensor.detectAnomaly { x.sqrt().sum().backward() }
            #expect(x.grad!.toArray() == [0.5, 0.25])
        }
        #expect(result.events.contains { $0.gradFn == "SqrtBackward" })
        #expect(result.events.contains { $0.kind == .backward && $0.name == "SqrtBackward" })
        #expect(result.events.filter { $0.name == "download" }.count >= 3, "anomaly checks read values back")
    }

    @Test("detectAnomaly still stops at the first NaN under the profiler")
    func anomalyTrapUnderProfiler() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let x = Tensor([0, 1], requiresGrad: true)
            _ = Profiler.profile { Tensor.detectAnomaly { x.sqrt().sum().backward() } }
        }.map { result in
            #expect(stderrText(result).contains("SqrtBackward produced a non-finite value in backward"))
        }
    }

    @Test("OpenCL results are the same with and after device profiling (queues switch in order)")
    func queueSwitch() throws {
        guard let device = TestDevices.openCL else { return }
        let x = Tensor.arange(0, 1000, device: device) * 0.002
        var inside: [Float] = []
        let before = ((x * 2).exp() / 3).sum().item()
        _ = Profiler.profile(activities: [.device]) { inside = ((x * 2).exp() / 3).toArray() }
        let after = ((x * 2).exp() / 3).sum().item()
        #expect(before == after)
        #expect(inside.count == 1000)
    }
}
