import Foundation
import Synchronization

/// What a profile records (`torch.profiler.ProfilerActivity`).
public enum ProfilerActivity: String, Sendable, Hashable, CaseIterable {
    /// Host-side events: ops (forward and backward), transfers, allocations, user scopes.
    case cpu
    /// Device-side events: every OpenCL kernel and transfer, timed by the device's
    /// profiling events.
    case device
}

/// The profiler (`torch.profiler.profile`): records what the ops run inside a closure do.
///
/// ```swift
/// let result = try Profiler.profile(activities: [.cpu, .device], recordShapes: true) {
///     let loss = crossEntropy(model(x), y)
///     loss.backward()
/// }
/// print(result.table(sortBy: .selfHostTime, limit: 10))
/// try result.exportChromeTrace(to: URL(fileURLWithPath: "trace.json"))
/// ```
///
/// Recording is per task: only ops run by the profiled closure (and by child tasks it
/// creates) are recorded, never ops that other tasks or threads run at the same time.
/// When nothing is being profiled the hooks cost one relaxed atomic load.
public enum Profiler {
    /// Number of profiles running in the process; the hooks read it before anything else.
    static let activeSessions = Atomic<Int>(0)
    /// Number of running profiles that record device activity: OpenCL devices switch to
    /// their profiling queue while it is above zero.
    static let deviceSessions = Atomic<Int>(0)
    /// The profile the current task records into.
    @TaskLocal static var session: ProfileCollector?

    /// The collector of the current task, or nil (cheaply) when nothing is profiled.
    @inline(__always)
    static var current: ProfileCollector? {
        activeSessions.load(ordering: .relaxed) == 0 ? nil : session
    }

    /// Whether any task is recording device activity (OpenCL backends use their profiling queue).
    @inline(__always)
    static var deviceProfiling: Bool { deviceSessions.load(ordering: .relaxed) > 0 }

    /// Runs `body` and returns what it did: its ops, kernels and transfers with their host
    /// and device times and the memory they allocated. Waits for the devices' work at the end,
    /// so device times are complete.
    /// - Parameters:
    ///   - activities: `.cpu` records host events; `.device` records kernel and transfer
    ///     times measured by the device.
    ///   - recordShapes: record each op's input shapes (for `keyAverages(groupBy: .opAndShape)`).
    ///   - body: the work to profile.
    public static func profile(activities: Set<ProfilerActivity> = [.cpu, .device], recordShapes: Bool = false,
                               _ body: () throws -> Void) rethrows -> ProfileResult {
        let collector = ProfileCollector(activities: activities, recordShapes: recordShapes)
        activeSessions.add(1, ordering: .relaxed)
        if activities.contains(.device) { deviceSessions.add(1, ordering: .relaxed) }
        defer {
            if activities.contains(.device) { deviceSessions.subtract(1, ordering: .relaxed) }
            activeSessions.subtract(1, ordering: .relaxed)
        }
        try $session.withValue(collector) {
            try collector.scope("profile", kind: .scope, body)
        }
        return collector.finish()
    }

    /// Labels the work `body` does as one range in the current profile
    /// (`torch.profiler.record_function`); just runs `body` when nothing is profiled.
    /// - Parameters:
    ///   - name: the range's name in the profile.
    ///   - body: the work the range covers; its result is returned.
    public static func record<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        guard let collector = current else { return try body() }
        return try collector.scope(name, kind: .scope, body)
    }

    /// Runs one backward rule as a range named after its node (`MulBackward`).
    @inline(__always)
    static func backward<T>(_ name: String, _ body: () -> T) -> T {
        guard let collector = current else { return body() }
        return collector.scope(name, kind: .backward, body)
    }
}

/// One host-side range of a profile: an op, a backward rule, a transfer or a user scope.
public struct ProfilerEvent: Sendable, Equatable {
    /// What kind of range this is.
    public enum Kind: String, Sendable {
        /// An op's primitive (forward, or one run inside a backward rule).
        case op
        /// A backward rule (named like its node, `MulBackward`); the ops it runs nest inside.
        case backward
        /// A host<->device copy (`upload`, `download`).
        case transfer
        /// A range from `Profiler.record` (and the whole profile, `profile`).
        case scope
    }

    /// The op's name (`matmul`, `add`, `relu`), the node's name for backward rules, or the
    /// scope's name. An in-place write into existing storage ends in `_` (`add_`).
    public var name: String
    /// The kind of range.
    public var kind: Kind
    /// The gradFn the op recorded (`MulBackward`), when it recorded one.
    public var gradFn: String?
    /// The shapes of the op's inputs (only with `recordShapes`).
    public var inputShapes: [[Int]]
    /// The device the op ran on (`cpu`, `opencl:0`), nil for scopes.
    public var device: String?
    /// The host thread (0, 1, ... in order of first appearance).
    public var thread: Int
    /// Start, in nanoseconds since the profile began.
    public var start: Int
    /// Host duration in nanoseconds.
    public var duration: Int
    /// Index of the enclosing event in `ProfileResult.events`, nil at the top.
    public var parent: Int?
    /// Bytes of device or host memory allocated for the op's outputs.
    public var bytesAllocated: Int
    /// Bytes copied by a transfer.
    public var bytesTransferred: Int
    /// Device time in nanoseconds of the kernels and copies this event launched itself.
    public var deviceTime: Int

    /// End, in nanoseconds since the profile began.
    public var end: Int { start + duration }
}

/// One kernel or copy as the device ran it (from OpenCL profiling events).
public struct DeviceEvent: Sendable, Equatable {
    /// The kernel's name (`binary_mul`, `gemm_block`, `CLBlastSgemm`) or `Memcpy HtoD`/`Memcpy DtoH`.
    public var name: String
    /// The device (`opencl:0`).
    public var device: String
    /// The queue it ran on (a device has one).
    public var queue: Int
    /// Start on the device, in nanoseconds since the profile began (device clock aligned
    /// to the host clock at the first enqueue).
    public var start: Int
    /// Device duration in nanoseconds.
    public var duration: Int
    /// Index of the host event that launched it, when host events were recorded.
    public var hostEvent: Int?
}

/// What `Profiler.profile` recorded.
public struct ProfileResult: Sendable {
    /// Host ranges in order of their start; `parent` links give the nesting.
    public var events: [ProfilerEvent]
    /// Device kernels and copies in order of their start.
    public var deviceEvents: [DeviceEvent]

    /// Total device time in nanoseconds (the sum of every device event's duration).
    public var totalDeviceTime: Int { deviceEvents.reduce(0) { $0 + $1.duration } }
}
