import Foundation
import Synchronization
import Testing
@testable import Ember

/// Tensors used from several tasks and threads at once (different tensors, same device).
@Suite("Concurrency")
struct ConcurrencyTests {
    /// A deterministic forward and backward pass whose results depend only on `seed`.
    static func work(_ device: Device, seed: UInt64) -> [Float] {
        Tensor.withRandomSeed(seed) {
            let w = Tensor.randn([32, 16], device: device, requiresGrad: true)
            let x = Tensor.randn([8, 32], device: device)
            let y = x.matmul(w).tanh().softmax(dim: 1)
            (y * y).sum().backward()
            return y.toArray() + w.grad!.toArray()
        }
    }

    @Test("tasks on one device give the same results as sequential runs", arguments: TestDevices.all)
    func tasks(_ device: Device) async {
        let expected = (0..<8).map { ConcurrencyTests.work(device, seed: UInt64($0)) }
        let results = await withTaskGroup(of: (Int, [Float]).self) { group in
            for _ in 0..<4 {
                for i in 0..<8 { group.addTask { (i, ConcurrencyTests.work(device, seed: UInt64(i))) } }
            }
            var out: [(Int, [Float])] = []
            for await r in group { out.append(r) }
            return out
        }
        #expect(results.count == 32)
        for (i, values) in results { #expect(values == expected[i], "task \(i) on \(device)") }
    }

    @Test("threads on one device give the same results as sequential runs", arguments: TestDevices.all)
    func threads(_ device: Device) {
        let expected = (0..<6).map { ConcurrencyTests.work(device, seed: UInt64($0) + 100) }
        let mismatches = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            let values = ConcurrencyTests.work(device, seed: UInt64(i % 6) + 100)
            if values != expected[i % 6] { mismatches.withLock { $0 += 1 } }
        }
        #expect(mismatches.withLock { $0 } == 0)
    }
}
