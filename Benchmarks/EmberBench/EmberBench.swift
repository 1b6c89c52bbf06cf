import ArgumentParser
import Ember
import Foundation

/// `ember-bench`: runs Ember's workloads on each device and compares them side by side.
@main
struct EmberBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ember-bench", abstract: "Compare Ember's devices on GEMM, elementwise, reductions, convolution, training and dispatch workloads.")

    @Option(help: "all, cpu, opencl or opencl:N.") var device = "all"
    @Option(help: "Only workloads whose name matches this regular expression.") var filter: String?
    @Option(help: "Timed repetitions per workload (after warm-up).") var reps = 10
    @Flag(help: "Fewer sizes and repetitions.") var quick = false
    @Option(help: "Write the results as JSON to this path.") var json: String?
    @Option(help: "Draw an SVG bar chart of the devices to this path.") var chart: String?
    @Flag(help: "Profile one more run of each workload after timing it and print the ops that took the most time.") var profile = false
    @Option(name: .customLong("profile-rows"), help: "How many ops each --profile table lists.") var profileRows = 8
    @Flag(name: .customLong("profile-shapes"), help: "Give each --profile row one op and input shapes (as PyTorch's group_by_input_shape).")
    var profileShapes = false
    @Option(name: .customLong("profile-sort"), help: "The column --profile tables sort by: self-host, host, self-device, device, calls or memory.")
    var profileSort = "self-host"
    @Option(help: "Instead of the workloads: train the digits MLP for this many steps per device (e.g. 10000) and check that host memory and live device buffers stay flat.")
    var soak: Int?
    @Flag(help: "Under mpirun (mpirun -np 2 ember-bench --distributed): DDP step time, communication not hidden by backward and bytes all-reduced per step, against one all-reduce after backward; all-reduce times by size. Uses --device (default cpu) and --reps timed steps.")
    var distributed = false
    @Flag(name: .customLong("cold-cache"), help: "Start PoCL with an empty kernel cache (a fresh POCL_CACHE_DIR), so first calls include every compilation.") var coldCache = false

    func validate() throws {
        guard reps > 0 else { throw ValidationError("--reps must be positive, got \(reps)") }
        guard profileRows > 0 else { throw ValidationError("--profile-rows must be positive, got \(profileRows)") }
        guard ProfileSlot.sortKeys[profileSort] != nil else {
            throw ValidationError("--profile-sort must be one of \(ProfileSlot.sortKeys.keys.sorted().joined(separator: ", ")), got '\(profileSort)'")
        }
        if let filter, (try? Regex(filter)) == nil { throw ValidationError("--filter '\(filter)' is not a valid regular expression") }
    }

    func run() throws {
        if distributed {
            let target: Device
            do { target = device == "all" ? .cpu : try Device.parse(device) } catch { throw ValidationError("--device \(device): \(error)") }
            return try DistributedBench.run(device: target, steps: max(reps, 20))
        }
        let coldFolder = FileManager.default.temporaryDirectory.appendingPathComponent("ember-bench-pocl-\(getpid())")
        if coldCache {
            try FileManager.default.createDirectory(at: coldFolder, withIntermediateDirectories: true)
            setenv("POCL_CACHE_DIR", coldFolder.path, 1)
        }
        defer { if coldCache { try? FileManager.default.removeItem(at: coldFolder) } }
        let devices: [Device]
        let resolveStart = Timer.now()
        do { devices = device == "all" ? Device.available : [try Device.parse(device)] } catch {
            throw ValidationError("--device \(device): \(error)")
        }
        // Opening an OpenCL device builds Ember's programs (a spec naming one device opened
        // it while being parsed, so that time counts too).
        var openSeconds: [Device: Double] = [:]
        for d in devices where d.kind == .opencl {
            let start = Timer.now()
            _ = try Device.opencl(index: d.index)
            openSeconds[d] = Timer.now() - (device == "all" ? start : resolveStart)
        }
        if let soak {
            return try Soak.run(devices: devices, steps: soak)
        }
        let pattern = try filter.map { try Regex($0) }
        let matches: (String) -> Bool = { name in pattern.map { name.contains($0) } ?? true }
        var results: [BenchResult] = []
        let workloads = Workloads(timer: Timer(repetitions: quick ? min(reps, 5) : reps, profiles: profile ? ProfileSlot(rows: profileRows, shapes: profileShapes, sortBy: ProfileSlot.sortKeys[profileSort]!) : nil), quick: quick) { r in
            results.append(r)
            print(String(format: "%-52@ %-9@ median %@  min %@  max %@  first %@  %@ %@%@", r.workload, r.device,
                         Report.duration(r.median), Report.duration(r.min), Report.duration(r.max), Report.duration(r.firstCall),
                         Report.figure(r.value), r.unit, r.note.map { "  (\($0))" } ?? ""))
            fflush(nil)
        }
        let machine = devices.map { "\($0): \($0.info.name) (\($0.info.computeUnits) compute units)" }.joined(separator: "; ")
        print("ember-bench on \(machine)")
        for d in devices {
            if let seconds = openSeconds[d], matches("open device") {
                workloads.report("open device (build Ember's programs)", d, (seconds, [seconds]), unit: "s", higherIsBetter: false) { $0 }
            }
            workloads.sgemm(d, filter: matches)
            workloads.elementwise(d, filter: matches)
            workloads.convolution(d, filter: matches)
            try workloads.training(d, filter: matches)
            workloads.gpt(d, filter: matches)
            workloads.dispatch(d, filter: matches)
            workloads.attention(d, filter: matches)
            workloads.precision(d, filter: matches)
            workloads.optimizerStep(d, filter: matches)
            workloads.fusion(d, filter: matches)
        }
        try workloads.checkpoint(filter: matches)
        try workloads.csv(filter: matches)
        print("\n" + Report.markdown(results, machine: machine))
        if let json { try Report.json(results, machine: machine).write(to: URL(fileURLWithPath: json)) }
        if let chart { try Report.svg(results).write(toFile: chart, atomically: true, encoding: .utf8) }
    }
}
