import Foundation
import Testing
@testable import Ember

/// The functional forms of the layers: PyTorch's values (computed with PyTorch 2.13.0 on
/// these inputs), the modules giving the same result, gradients and messages.
@Suite("Functional forms: linear, embedding, layerNorm, batchNorm")
struct FunctionalTests {
    static let devices = TestDevices.all
    /// A `[2, 2, 3]` input.
    static let x: [Float] = [0.5, -1.0, 2.0, 0.3, 0.8, -0.2, 1.5, 0.0, -0.5, -1.2, 0.4, 0.9]

    @Test("batchNorm in training updates the running statistics in place (unbiased variance), then normalises with them in eval",
          arguments: devices)
    func batchNormValues(_ d: Device) {
        let x = Tensor(shape: [2, 2, 3], data: Self.x, device: d)
        let runningMean = Tensor([0.1, -0.2], device: d), runningVar = Tensor([1.5, 0.5], device: d)
        let weight = Tensor([2, 0.5], device: d), bias = Tensor([0.1, -0.3], device: d)
        let y = batchNorm(x, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias,
                          training: true, momentum: 0.2)
        // From torch.nn.functional.batch_norm.
        expectClose(y.toArray(), [0.25762141, -2.5795634, 3.0948062, -0.20592885, 0.14683796, -0.55869567,
                                  2.1490779, -0.68810683, -1.6338351, -1.2642293, -0.1353755, 0.2173913], rtol: 1e-4, atol: 1e-5)
        expectClose(runningMean.toArray(), [0.16333334, -0.12666668])
        expectClose(runningVar.toArray(), [1.4683334, 0.52053332])
        let eval = batchNorm(x, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias, eps: 1e-3)
        expectClose(eval.toArray(), [0.65548193, -1.8194377, 3.1304016, -0.0045950986, 0.34158251, -0.35077271,
                                     2.3054285, -0.16949126, -0.99446452, -1.043128, 0.064640418, 0.41081801], rtol: 1e-4, atol: 1e-5)
        // The module is the function with its own buffers.
        let module = BatchNorm1d(2, momentum: 0.2).to(d)
        Tensor.noGrad {
            module.weight!.copy(from: weight)
            module.bias!.copy(from: bias)
            module.runningMean!.copy(from: Tensor([0.1, -0.2], device: d))
            module.runningVar!.copy(from: Tensor([1.5, 0.5], device: d))
        }
        expectClose(module(x).toArray(), y.toArray())
        expectClose(module.runningVar!.toArray(), runningVar.toArray())
        #expect(module.numBatchesTracked!.item() == 1)
    }

    @Test("layerNorm with only a weight, or only a bias over two dims, matches PyTorch", arguments: devices)
    func layerNormValues(_ d: Device) {
        let x = Tensor(shape: [2, 2, 3], data: Self.x, device: d)
        // From torch.nn.functional.layer_norm.
        expectClose(layerNorm(x, normalizedShape: [3], weight: Tensor([1, 2, -1], device: d)).toArray(),
                    [0, -2.4494815, -1.2247407, 0, 2.4494162, 1.2247081, 1.3728034, -0.78445911, 0.98057395,
                     -1.3769889, 0.81875032, -0.96761382], rtol: 1e-4, atol: 1e-5)
        let bias = Tensor([[0.1, 0.2, 0.3], [0, -0.1, -0.2]], device: d)
        expectClose(layerNorm(x, normalizedShape: [2, 3], bias: bias).toArray(),
                    [0.20889246, -1.3244941, 2.042279, -0.1088924, 0.3355698, -0.85335463, 1.5863295, -0.0069572357,
                     -0.4713861, -1.5615865, 0.14458586, 0.60901469], rtol: 1e-4, atol: 1e-5)
        let module = LayerNorm([2, 3]).to(d)
        Tensor.noGrad { module.bias!.copy(from: bias) }
        expectClose(module(x).toArray(), layerNorm(x, normalizedShape: [2, 3], weight: module.weight, bias: bias).toArray())
    }

    @Test("linear and embedding are what Linear and Embedding compute", arguments: devices)
    func linearAndEmbedding(_ d: Device) {
        let layer = Linear(3, 2).to(d)
        let x = Tensor(shape: [2, 2, 3], data: Self.x, device: d)
        expectClose(linear(x, weight: layer.weight, bias: layer.bias).toArray(), layer(x).toArray())
        let w = Tensor([[1, 2, 3], [4, 5, 6]], device: d)
        #expect(linear(Tensor([1, 0, -1], device: d), weight: w).toArray() == [-2, -2])
        let table = Embedding(4, 2).to(d)
        let indices = Tensor([[3, 0, 3]], dtype: .int32, device: d)
        let rows = embedding(indices, weight: table.weight)
        #expect(rows.shape == [1, 3, 2])
        #expect(rows.toArray() == table(indices).toArray())
        #expect(rows.toArray() == Array(table.weight.toArray()[6...7] + table.weight.toArray()[0...1] + table.weight.toArray()[6...7]))
    }

    @Test("gradients of the functional forms match finite differences", arguments: devices)
    func gradients(_ d: Device) {
        var random = TestRandom(seed: 31)
        gradCheck("batchNorm training", device: d, inputs: [random.floats(12), random.floats(2, 0.5...1.5), random.floats(2)],
                  shapes: [[2, 2, 3], [2], [2]]) { t in
            batchNorm(t[0], runningMean: nil, runningVar: nil, weight: t[1], bias: t[2], training: true)
        }
        gradCheck("layerNorm", device: d, inputs: [random.floats(12), random.floats(6, 0.5...1.5), random.floats(6)],
                  shapes: [[2, 2, 3], [2, 3], [2, 3]]) { t in
            layerNorm(t[0], normalizedShape: [2, 3], weight: t[1], bias: t[2])
        }
        gradCheck("linear", device: d, inputs: [random.floats(6), random.floats(12), random.floats(4)],
                  shapes: [[2, 3], [4, 3], [4]]) { t in
            linear(t[0], weight: t[1], bias: t[2])
        }
        gradCheck("embedding", device: d, inputs: [random.floats(8)], shapes: [[4, 2]]) { t in
            embedding(Tensor([[1, 3], [1, 0]], dtype: .int32, device: t[0].device), weight: t[0]).exp()
        }
    }

    @Test("linear names the function and both shapes")
    func linearMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Linear(3, 4)(Tensor.zeros([2, 5]))
        }
        #expect(stderrText(result).contains("linear: input of shape [2, 5] does not end in 3 features (weight [4, 3])"))
    }

    @Test("batchNorm in eval without running statistics names the function")
    func batchNormMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = batchNorm(Tensor.zeros([2, 3]), runningMean: nil, runningVar: nil)
        }
        #expect(stderrText(result).contains("batchNorm: runningMean and runningVar must be given when not training (input [2, 3])"))
    }

    @Test("layerNorm names the input and normalizedShape")
    func layerNormMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = LayerNorm([4])(Tensor.zeros([2, 3]))
        }
        #expect(stderrText(result).contains("layerNorm: input of shape [2, 3] does not end in normalizedShape [4]"))
    }
}
