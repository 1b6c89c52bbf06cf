import ArgumentParser
import Ember
import Foundation

/// The long run of `ember-bench --soak N`: N training steps of the digits MLP per device,
/// with host memory and live device buffers sampled after warm-up and at the end.
enum Soak {
    /// Current resident set size of this process, in MiB.
    static func residentMiB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = text.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return .nan }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }

    static func run(devices: [Device], steps: Int) throws {
        guard steps >= 200 else { throw ValidationError("--soak needs at least 200 steps, got \(steps)") }
        var grew = false
        for device in devices {
            Tensor.manualSeed(0)
            let digits = try Digits.load()
            let model = Sequential(Linear(64, 128), ReLU(), Linear(128, 10)).to(device)
            let opt = SGD(model.parameters(), lr: 0.05, momentum: 0.9)
            let loader = DataLoader(digits.train, batchSize: 64, shuffle: true, seed: 0, dropLast: true, device: device)
            var step = 0
            var baseline: (rss: Double, live: Int, allocations: Int)?
            var loss: Float = 0
            let start = Date()
            while step < steps {
                for (x, y) in loader where step < steps {
                    let l = crossEntropy(model(x), y)
                    opt.zeroGrad()
                    l.backward()
                    opt.step()
                    step += 1
                    if step == 100 {
                        loss = l.item()
                        baseline = (residentMiB(), device.stats.liveBuffers, device.stats.allocations)
                    }
                    if step == steps { loss = l.item() }
                }
            }
            let end = (rss: residentMiB(), live: device.stats.liveBuffers, allocations: device.stats.allocations)
            let flat = end.live <= baseline!.live && end.allocations == baseline!.allocations && end.rss < baseline!.rss + 16
            grew = grew || !flat
            print(String(format: "%@: %d steps in %.1f s, final loss %.4f; after 100 steps RSS %.1f MiB, %d live buffers, %d allocations; at the end RSS %.1f MiB, %d live buffers, %d allocations: %@",
                         device.description, steps, Date().timeIntervalSince(start), loss, baseline!.rss, baseline!.live, baseline!.allocations,
                         end.rss, end.live, end.allocations, flat ? "flat" : "GREW"))
        }
        if grew { throw ExitCode.failure }
    }
}
