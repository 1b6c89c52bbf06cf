import Foundation
import Testing
@testable import Ember

/// Out-of-range indices stop the program with the CPU's message on OpenCL too: the kernels
/// record the first bad index and the next synchronisation reports it. (Before, OpenCL read 0
/// and went on, so each of these exit tests would see the child succeed.)
@Suite("Out-of-range indices on OpenCL stop with the CPU's message")
struct IndexErrorTests {
    static var hasOpenCL: Bool { TestDevices.openCL != nil }

    @Test("gather past the end, reported at the next download")
    func gatherTooLarge() async {
        guard Self.hasOpenCL else { return }
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = try! Device.opencl()
            let x = Tensor.zeros([2, 3], device: gpu)
            _ = x.gather(dim: 1, index: Tensor([[0], [3]], dtype: .int32, device: gpu)).toArray()
        }
        #expect(stderrText(result).contains("gather: index 3 is out of bounds for dimension of size 3"))
    }

    @Test("an int64 index past Int32's range is read whole and reported as it is, on both devices")
    func int64Index() async {
        // 2^32 + 1: its low 32 bits, 1, would be a valid index.
        let cpu = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let index = Tensor([1], dtype: .int64) + Tensor([4_294_967_296], dtype: .int64)
            _ = Tensor.zeros([2, 3]).gather(dim: 1, index: index.reshape([1, 1])).toArray()
        }
        #expect(stderrText(cpu).contains("gather: index 4294967297 is out of bounds for dimension of size 3"))
        guard Self.hasOpenCL else { return }
        let gpu = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = try! Device.opencl()
            let index = Tensor([1], dtype: .int64, device: gpu) + Tensor([4_294_967_296], dtype: .int64, device: gpu)
            _ = Tensor.zeros([2, 3], device: gpu).gather(dim: 1, index: index.reshape([1, 1])).toArray()
        }
        #expect(stderrText(gpu).contains("gather: index 4294967297 is out of bounds for dimension of size 3"))
    }

    @Test("gather with a negative index (PyTorch rejects those too)")
    func gatherNegative() async {
        guard Self.hasOpenCL else { return }
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = try! Device.opencl()
            _ = Tensor.zeros([2, 3], device: gpu).gather(dim: 1, index: Tensor([[-1], [0]], dtype: .int32, device: gpu)).sum().item()
        }
        #expect(stderrText(result).contains("gather: index -1 is out of bounds for dimension of size 3"))
    }

    @Test("indexSelect, reported at synchronize() without any download")
    func indexSelectAtSynchronize() async {
        guard Self.hasOpenCL else { return }
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = try! Device.opencl()
            _ = Tensor.zeros([4, 2], device: gpu).indexSelect(dim: 0, index: Tensor([1, 5], dtype: .int32, device: gpu))
            try! gpu.synchronize()
        }
        #expect(stderrText(result).contains("indexSelect: index 5 is out of bounds for dimension of size 4"))
    }

    @Test("Embedding names embedding, on OpenCL and (for a negative index) on the CPU")
    func embeddingIndex() async {
        guard Self.hasOpenCL else { return }
        let gpuResult = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = try! Device.opencl()
            let table = Embedding(10, 4).to(gpu)
            _ = table(Tensor([[2, 10]], dtype: .int32, device: gpu)).toArray()
        }
        #expect(stderrText(gpuResult).contains("embedding: index 10 is out of bounds for dimension of size 10"))
        let cpuResult = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = embedding(Tensor([0, -1], dtype: .int32), weight: Tensor.zeros([3, 2]))
        }
        #expect(stderrText(cpuResult).contains("embedding: index -1 is out of bounds for dimension of size 3"))
    }

    @Test("scatterAdd past the end")
    func scatterAddIndex() async {
        guard Self.hasOpenCL else { return }
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = try! Device.opencl()
            let index = Tensor([[0, 2]], dtype: .int32, device: gpu)
            _ = Tensor.zeros([1, 2], device: gpu).scatterAdd(dim: 1, index: index, source: Tensor.ones([1, 2], device: gpu)).toArray()
        }
        #expect(stderrText(result).contains("scatterAdd: index 2 is out of bounds for dimension of size 2"))
    }

    @Test("a crossEntropy label outside the classes (and not ignoreIndex) names crossEntropy")
    func crossEntropyLabel() async {
        guard Self.hasOpenCL else { return }
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = try! Device.opencl()
            let logits = Tensor.zeros([3, 4], device: gpu, requiresGrad: true)
            let loss = crossEntropy(logits, Tensor([1, -100, -1], dtype: .int32, device: gpu))
            loss.backward()
            _ = logits.grad!.toArray()
        }
        #expect(stderrText(result).contains("crossEntropy: index -1 is out of bounds for dimension of size 4"))
    }

    @Test("of several bad indices before a synchronisation, the first op's is reported")
    func firstReported() async {
        guard Self.hasOpenCL else { return }
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = try! Device.opencl()
            let x = Tensor.zeros([3, 3], device: gpu)
            _ = x.gather(dim: 0, index: Tensor([[7, 0, 0]], dtype: .int32, device: gpu))
            _ = x.indexSelect(dim: 1, index: Tensor([9], dtype: .int32, device: gpu))
            _ = x.sum().item()
        }
        let text = stderrText(result)
        #expect(text.contains("gather: index 7 is out of bounds for dimension of size 3"))
        #expect(!text.contains("index 9"))
    }

    @Test("the GPU variants of the kernels report the same way")
    func gpuVariant() async {
        guard Self.hasOpenCL else { return }
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let gpu = gpuKernelVariantDevice()!
            _ = Tensor.zeros([5], device: gpu).indexSelect(dim: 0, index: Tensor([4, 5], dtype: .int32, device: gpu)).toArray()
        }
        #expect(stderrText(result).contains("indexSelect: index 5 is out of bounds for dimension of size 5"))
    }

    @Test("valid and ignored indices leave no report behind", arguments: TestDevices.all)
    func validIndices(_ d: Device) {
        let x = Tensor([[1, 2, 3], [4, 5, 6]], device: d)
        #expect(x.gather(dim: 1, index: Tensor([[2], [0]], dtype: .int32, device: d)).toArray() == [3, 4])
        let picked = x.gather(dim: 1, index: Tensor([[-100], [1]], dtype: .int32, device: d), rule: IndexRule(op: "test", ignored: -100))
        #expect(picked.toArray() == [0, 5])
        #expect(x.indexSelect(dim: 0, index: Tensor([1, 1], dtype: .int32, device: d)).toArray() == [4, 5, 6, 4, 5, 6])
        try? d.synchronize()
    }
}
