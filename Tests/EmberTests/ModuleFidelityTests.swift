import Foundation
import Testing
@testable import Ember

final class DictNet: Module, Layer {
    let heads: [String: Linear] = ["b": Linear(2, 2), "a": Linear(2, 1)]
    func callAsFunction(_ x: Tensor) -> Tensor { heads["a"]!(x) }
}

final class TupleNet: Module {
    let pair = (Linear(2, 2), Linear(2, 1))
}

struct Holder { let layer = Linear(2, 2) }
final class StructNet: Module {
    let holder = Holder()
}

final class MaskNet: Module {
    @Buffer var mask = Tensor([1, 0, 1], dtype: .bool)
    @Buffer var counts = Tensor([3, -1], dtype: .int32)
}

@Suite("old-code failures")
struct OldFailures {
    @Test func moveAfterOptimizer() throws {
        guard let gpu = TestDevices.openCL else { Issue.record("no OpenCL"); return }
        let model = Tensor.withRandomSeed(3) { Linear(3, 2) }
        let opt = SGD(model.parameters(), lr: 0.1, momentum: 0.9)
        model.to(gpu)
        let before = model.weight.toArray()
        model(Tensor.ones([1, 3], device: gpu)).sum().backward()
        opt.step()
        #expect(model.weight.toArray() != before)
    }

    @Test func sharedDoubleStep() {
        let shared = Linear(2, 2)
        let seq = Sequential(shared, ReLU(), shared)
        #expect(seq.parameters().count == 2)
        #expect(seq.stateDict().map(\.name) == ["0.weight", "0.bias"])
    }

    @Test func assignedParameterRequiresGrad() {
        let l = Linear(2, 2)
        l.weight = Tensor.randn([2, 2])
        #expect(l.weight.requiresGrad)
    }

    @Test func containers() {
        #expect(DictNet().parameterCount == 6 + 3)
        #expect(TupleNet().parameterCount == 6 + 3)
    }

    @Test func structHoldingModulesIsNotSkipped() async {
        await #expect(processExitsWith: .failure) { _ = StructNet().parameters() }
    }

    @Test func boolBufferRoundTrip() throws {
        let url = temporaryFolder().appendingPathComponent("mask.safetensors")
        let net = MaskNet()
        try net.save(to: url)
        let other = MaskNet()
        try other.load(from: url)
        #expect(other.mask.dtype == .bool && other.counts.dtype == .int32)
        #expect(try SafeTensors.read(from: url).first { $0.name == "mask" }!.tensor.dtype == .bool)
    }
}
