import Foundation
import Testing
@testable import Ember

/// Reference inputs shared by the value tests; every expected number below was computed with
/// PyTorch 2.13.0 (`torch.nn.functional`) on these exact inputs.
private enum Reference {
    /// `[3, 4]` logits.
    static let logits: [Float] = [0.2, -1.0, 0.5, 1.5, 1.0, 0.3, -0.7, 0.1, -0.4, 0.8, 2.0, -1.2]
    static let labels: [Int32] = [1, -100, 3]
    static let weight: [Float] = [0.5, 1.0, 2.0, 1.5]
    /// `[2, 3, 2]` logits (class dim 1), labels `[2, 2]`, weight `[3]`.
    static let spatial: [Float] = [0.1, -0.3, 0.7, 0.2, -1.1, 0.4, 0.9, 0.0, -0.5, 1.3, 0.25, -0.6]
    static let spatialLabels: [Int32] = [0, 2, 1, -100]
    static let spatialWeight: [Float] = [1.0, 2.0, 0.5]
    /// Class probabilities for `logits`.
    static let probabilities: [Float] = [0.1, 0.2, 0.3, 0.4, 0.0, 0.0, 1.0, 0.0, 0.25, 0.25, 0.25, 0.25]
    /// `softmax` over dim 1 of a `[2, 3, 2]` tensor: probabilities for `spatial`.
    static let spatialProbabilities: [Float] = [0.42601252, 0.27143875, 0.31559783, 0.18195082, 0.25838965, 0.54661047,
                                                0.5064804, 0.18632373, 0.18632373, 0.5064804, 0.3071959, 0.3071959]
}

@Suite("Losses: PyTorch's values, layouts, weights, ignoreIndex and smoothing")
struct LossValueTests {
    static let devices = TestDevices.all

    @Test("crossEntropy on [N, C] with ignoreIndex, weight and label smoothing matches PyTorch", arguments: devices)
    func crossEntropy2D(_ d: Device) {
        let x = Tensor(shape: [3, 4], data: Reference.logits, device: d)
        let y = Tensor(shape: [3], data: Reference.labels, device: d)
        let w = Tensor(Reference.weight, device: d)
        // From torch.nn.functional.cross_entropy.
        expectClose(crossEntropy(x, y, reduction: .none).toArray(), [3.0437746, 0, 3.5595429])
        expectClose([crossEntropy(x, y, reduction: .sum).item()], [6.6033173])
        expectClose([crossEntropy(x, y).item()], [3.3016586])
        expectClose(crossEntropy(x, y, weight: w, reduction: .none).toArray(), [3.0437746, 0, 5.3393145])
        expectClose([crossEntropy(x, y, weight: w, reduction: .sum).item()], [8.3830891])
        expectClose([crossEntropy(x, y, weight: w).item()], [3.3532357])
        expectClose(crossEntropy(x, y, reduction: .none, labelSmoothing: 0.2).toArray(), [2.7837746, 0, 3.2595429])
        expectClose([crossEntropy(x, y, labelSmoothing: 0.2).item()], [3.0216587])
        expectClose(crossEntropy(x, y, weight: w, reduction: .none, labelSmoothing: 0.2).toArray(), [2.8284633, 0, 4.7213373])
        expectClose([crossEntropy(x, y, weight: w, reduction: .sum, labelSmoothing: 0.2).item()], [7.5498009])
        expectClose([crossEntropy(x, y, weight: w, labelSmoothing: 0.2).item()], [3.0199203])
        // An ignoreIndex inside 0..<C: those targets drop out of the sum and the weight total.
        let y1 = Tensor([1, 0, 1], dtype: .int32, device: d)
        expectClose(crossEntropy(x, y1, weight: w, ignoreIndex: 1, reduction: .none).toArray(), [0, 0.36758548, 0])
        expectClose([crossEntropy(x, y1, weight: w, ignoreIndex: 1).item()], [0.73517096])
        // Without weights the mean divides by the count of kept targets (one here).
        expectClose([crossEntropy(x, y1, ignoreIndex: 1).item()], [0.73517096])
        expectClose(crossEntropy(x, y1, ignoreIndex: 1, reduction: .none, labelSmoothing: 0.2).toArray(), [0, 0.90017104, 0])
        expectClose([crossEntropy(x, y1, ignoreIndex: 1, labelSmoothing: 0.2).item()], [0.90017104])
    }

    @Test("crossEntropy's gradient with weight, ignoreIndex and smoothing matches PyTorch", arguments: devices)
    func crossEntropyGradient(_ d: Device) {
        let x = Tensor(shape: [3, 4], data: Reference.logits, device: d, requiresGrad: true)
        crossEntropy(x, Tensor(shape: [3], data: Reference.labels, device: d), weight: Tensor(Reference.weight, device: d),
                     labelSmoothing: 0.2).backward()
        // From torch: the ignored row gets no gradient.
        expectClose(x.grad!.toArray(), [0.056452021, -0.31998503, 0.049700838, 0.21383217, 0, 0, 0, 0,
                                        0.026726007, 0.10193465, 0.36483729, -0.49349794])
    }

    @Test("crossEntropy and nllLoss on [N, C, d] with class dim 1, and unbatched [C] with a 0-d target", arguments: devices)
    func spatialAndUnbatched(_ d: Device) {
        let x = Tensor(shape: [2, 3, 2], data: Reference.spatial, device: d)
        let y = Tensor(shape: [2, 2], data: Reference.spatialLabels, device: d)
        let w = Tensor(Reference.spatialWeight, device: d)
        // From torch.
        let none = crossEntropy(x, y, reduction: .none)
        #expect(none.shape == [2, 2])
        expectClose(none.toArray(), [1.1388943, 0.83954626, 1.9702125, 0])
        expectClose([crossEntropy(x, y, reduction: .sum).item()], [3.948653])
        expectClose([crossEntropy(x, y).item()], [1.3162177])
        expectClose(crossEntropy(x, y, weight: w, reduction: .none, labelSmoothing: 0.1).toArray(), [1.1378759, 0.51240957, 3.7170739, 0])
        expectClose([crossEntropy(x, y, weight: w, reduction: .sum, labelSmoothing: 0.1).item()], [5.3673592])
        expectClose([crossEntropy(x, y, weight: w, labelSmoothing: 0.1).item()], [1.5335311])
        // nllLoss takes the input as log-probabilities as it is.
        expectClose(nllLoss(x, y, weight: w, reduction: .none).toArray(), [-0.1, -0.2, 1, 0])
        expectClose([nllLoss(x, y, weight: w, reduction: .sum).item()], [0.7])
        expectClose([nllLoss(x, y, weight: w).item()], [0.2])
        // Unbatched: input [C], target 0-d, output 0-d.
        let v = Tensor([0.3, -0.2, 1.1], device: d)
        let single = crossEntropy(v, Tensor(shape: [], data: [Int32(2)], device: d), reduction: .none)
        #expect(single.shape == [])
        expectClose([single.item()], [0.54340553])
        expectClose([crossEntropy(v, Tensor(shape: [], data: [Int32(0)], device: d), labelSmoothing: 0.3).item()], [1.3134055])
        expectClose([nllLoss(v, Tensor(shape: [], data: [Int32(1)], device: d), weight: w).item()], [0.2])
    }

    @Test("crossEntropy with class-probability targets, weight and smoothing matches PyTorch", arguments: devices)
    func probabilityTargets(_ d: Device) {
        let x = Tensor(shape: [3, 4], data: Reference.logits, device: d)
        let t = Tensor(shape: [3, 4], data: Reference.probabilities, device: d)
        let w = Tensor(Reference.weight, device: d)
        // From torch.
        expectClose(crossEntropy(x, t, reduction: .none).toArray(), [1.4737747, 2.4351711, 2.0595429])
        expectClose([crossEntropy(x, t, reduction: .sum).item()], [5.9684887])
        expectClose([crossEntropy(x, t).item()], [1.9894962])
        expectClose(crossEntropy(x, t, weight: w, reduction: .none, labelSmoothing: 0.1).toArray(), [1.9548477, 4.611454, 2.2494287])
        expectClose([crossEntropy(x, t, weight: w, reduction: .sum, labelSmoothing: 0.1).item()], [8.815731])
        // The mean of probability targets is over positions, not weights (PyTorch).
        expectClose([crossEntropy(x, t, weight: w, labelSmoothing: 0.1).item()], [2.9385769])
        let xs = Tensor(shape: [2, 3, 2], data: Reference.spatial, device: d)
        expectClose([crossEntropy(xs, Tensor(shape: [2, 3, 2], data: Reference.spatialProbabilities, device: d)).item()], [1.1335794])
    }

    @Test("with every target ignored the mean is NaN and the sum 0, as PyTorch", arguments: devices)
    func allIgnored(_ d: Device) {
        let x = Tensor(shape: [3, 4], data: Reference.logits, device: d)
        let y = Tensor([-100, -100, -100], dtype: .int32, device: d)
        #expect(crossEntropy(x, y).item().isNaN)
        #expect(nllLoss(x, y, weight: Tensor(Reference.weight, device: d)).item().isNaN)
        #expect(crossEntropy(x, y, reduction: .sum).item() == 0)
        #expect(crossEntropy(x, y, labelSmoothing: 0.1).item().isNaN)
    }

    @Test("binary cross-entropy with weight, and on logits with weight and posWeight, match PyTorch", arguments: devices)
    func binaryCrossEntropies(_ d: Device) {
        let p = Tensor([[0.8, 0.1, 0.5], [0.3, 0.9, 0.6]], device: d)
        let t = Tensor([[1, 0, 0.3], [0, 1, 1]], device: d)
        let w = Tensor([1, 2, 0.5], device: d)
        // From torch.
        expectClose(binaryCrossEntropy(p, t, weight: w, reduction: .none).toArray(),
                    [0.22314353, 0.21072103, 0.34657359, 0.35667497, 0.21072109, 0.25541279])
        expectClose([binaryCrossEntropy(p, t, weight: w, reduction: .sum).item()], [1.6032469])
        expectClose([binaryCrossEntropy(p, t, weight: w).item()], [0.26720783])
        let x = Tensor([[1.5, -0.5, 0], [-2, 3, 0.7]], device: d)
        let pw = Tensor([2, 0.5, 1.5], device: d)
        expectClose(binaryCrossEntropyWithLogits(x, t, weight: w, posWeight: pw, reduction: .none).toArray(),
                    [0.40282658, 0.94815397, 0.39855963, 0.12692809, 0.048587352, 0.30238953])
        expectClose([binaryCrossEntropyWithLogits(x, t, weight: w, posWeight: pw, reduction: .sum).item()], [2.2274451])
        expectClose([binaryCrossEntropyWithLogits(x, t, weight: w, posWeight: pw).item()], [0.37124085])
        // Stable at ±100 with a positive weight (torch: [1.18e-43, 300, ln 2]).
        let extreme = binaryCrossEntropyWithLogits(Tensor([100, -100, 0], device: d), Tensor([1, 1, 0], device: d),
                                                   posWeight: Tensor([3, 3, 3], device: d), reduction: .none)
        expectClose(extreme.toArray(), [0, 300, 0.69314718], atol: 1e-5)
    }

    @Test("smoothL1Loss and huberLoss match PyTorch for several beta and delta", arguments: devices)
    func smoothL1AndHuber(_ d: Device) {
        let a = Tensor([0.2, -1.5, 3.0, 0.9, -0.05], device: d), b = Tensor([0, 0, 1, 1.2, 0.5], device: d)
        // From torch.nn.functional.smooth_l1_loss and huber_loss.
        expectClose(smoothL1Loss(a, b, reduction: .none).toArray(), [0.02, 1, 1.5, 0.04500002, 0.15125])
        expectClose([smoothL1Loss(a, b).item()], [0.54324996])
        expectClose(smoothL1Loss(a, b, reduction: .none, beta: 0.5).toArray(), [0.04, 1.25, 1.75, 0.090000041, 0.3])
        expectClose([smoothL1Loss(a, b, beta: 0.5).item()], [0.68600005])
        expectClose([smoothL1Loss(a, b, beta: 0).item()], [0.91000003])
        expectClose(huberLoss(a, b, reduction: .none, delta: 2).toArray(), [0.02, 1.125, 2, 0.04500002, 0.15125])
        expectClose([huberLoss(a, b, delta: 2).item()], [0.66824996])
        expectClose(huberLoss(a, b, reduction: .none, delta: 0.5).toArray(), [0.02, 0.625, 0.875, 0.04500002, 0.15])
        expectClose([huberLoss(a, b, delta: 0.5).item()], [0.34300002])
        expectClose([mseLoss(a, b, reduction: .sum).item()], [0.04 + 2.25 + 4 + 0.09 + 0.3025], rtol: 1e-6)
    }
}

/// One loss under parity and finite-difference tests, its inputs drawn from `domain`.
struct LossCase: Sendable, CustomTestStringConvertible {
    let name: String
    let shapes: [[Int]]
    var domain: ClosedRange<Float> = -2...2
    let function: @Sendable ([Tensor]) -> Tensor
    var testDescription: String { name }

    func inputs() -> [[Float]] {
        var random = TestRandom(seed: UInt64(name.utf8.reduce(7) { ($0 &* 31 &+ Int($1)) & 0xFFFF }))
        return shapes.map { random.floats(Shape.count($0), domain) }
    }

    /// Int32 class indices on the device of `like`.
    static func labels(_ values: [Int32], _ shape: [Int], like: Tensor) -> Tensor {
        Tensor(shape: shape, data: values, device: like.device)
    }

    static let all: [LossCase] = [
        LossCase(name: "crossEntropy [N, C] mean", shapes: [[4, 3]]) { x in
            crossEntropy(x[0], labels([0, 2, 1, 2], [4], like: x[0]))
        },
        LossCase(name: "crossEntropy ignoreIndex weight smoothing", shapes: [[4, 3], [3]], domain: 0.5...2) { x in
            crossEntropy(x[0], labels([0, -100, 1, 2], [4], like: x[0]), weight: x[1], labelSmoothing: 0.2)
        },
        LossCase(name: "crossEntropy [N, C, d1, d2] none", shapes: [[2, 3, 2, 2]]) { x in
            crossEntropy(x[0], labels([0, 1, 2, 2, 1, -100, 0, 2], [2, 2, 2], like: x[0]), reduction: .none, labelSmoothing: 0.1)
        },
        LossCase(name: "crossEntropy [N, C, d] weighted sum", shapes: [[2, 3, 2], [3]], domain: 0.5...2) { x in
            crossEntropy(x[0], labels([2, 0, 1, 1], [2, 2], like: x[0]), weight: x[1], ignoreIndex: 0, reduction: .sum)
        },
        LossCase(name: "crossEntropy unbatched", shapes: [[4]]) { x in
            crossEntropy(x[0], labels([3], [], like: x[0]), labelSmoothing: 0.3)
        },
        LossCase(name: "crossEntropy probability targets", shapes: [[3, 4], [3, 4], [4]], domain: 0.2...1.5) { x in
            crossEntropy(x[0], x[1], weight: x[2], labelSmoothing: 0.1)
        },
        LossCase(name: "nllLoss [N, C, d] weighted mean", shapes: [[2, 3, 2], [3]], domain: 0.5...2) { x in
            nllLoss(x[0], labels([2, -100, 1, 0], [2, 2], like: x[0]), weight: x[1])
        },
        LossCase(name: "klDiv batchMean and logTarget", shapes: [[2, 3], [2, 3]], domain: 0.2...1) { x in
            klDiv(x[0].log(), x[1], reduction: .batchMean) + klDiv(x[0], x[1].log(), reduction: .sum, logTarget: true)
        },
        LossCase(name: "mseLoss", shapes: [[2, 3], [2, 3]]) { mseLoss($0[0], $0[1]) },
        LossCase(name: "l1Loss", shapes: [[2, 3], [2, 3]]) { l1Loss($0[0] * 3, $0[1], reduction: .sum) },
        LossCase(name: "smoothL1Loss", shapes: [[2, 3], [2, 3]]) { smoothL1Loss($0[0] * 3, $0[1], reduction: .none, beta: 0.7) },
        LossCase(name: "huberLoss", shapes: [[2, 3], [2, 3]]) { huberLoss($0[0] * 3, $0[1], delta: 1.3) },
        LossCase(name: "binaryCrossEntropy weight", shapes: [[2, 3], [2, 3], [3]], domain: 0.2...0.8) { x in
            binaryCrossEntropy(x[0], x[1], weight: x[2])
        },
        LossCase(name: "binaryCrossEntropyWithLogits weight posWeight", shapes: [[2, 3], [2, 3], [3], [3]], domain: 0.1...2) { x in
            binaryCrossEntropyWithLogits(x[0] * 2 - 2, x[1] / 2, weight: x[2], posWeight: x[3], reduction: .sum)
        },
    ]
}

extension LossValueTests {
    @Test("klDiv matches PyTorch in each reduction, zero targets contributing 0, and with log targets", arguments: devices)
    func klDivValues(_ d: Device) {
        // F.kl_div(inp, tgt, reduction=...) and its gradient with respect to inp.
        let expected: [(KLDivReduction, Float, [Float])] = [
            (.mean, 0.024979472, [-0.033333335, -0.13333334, 0, -0.083333336, -0.041666668, -0.041666668]),
            (.batchMean, 0.074938416, [-0.1, -0.4, 0, -0.25, -0.125, -0.125]),
            (.sum, 0.14987683, [-0.2, -0.8, 0, -0.5, -0.25, -0.25]),
        ]
        for (reduction, value, gradient) in expected {
            let input = Tensor([[-1.2, -0.5, -2.0], [-0.1, -3.0, -1.0]], device: d, requiresGrad: true)
            let target = Tensor([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]], device: d, requiresGrad: true)
            let loss = KLDivLoss(reduction: reduction)(input, target)
            expectClose([loss.item()], [value], "\(reduction)")
            loss.backward()
            expectClose(input.grad!.toArray(), gradient, "\(reduction) gradient")
            // Where the target is 0 the term and its gradients are 0 (PyTorch's target gradient there is NaN).
            #expect(target.grad!.toArray()[2] == 0)
        }
        let input = Tensor([[-1.2, -0.5, -2.0], [-0.1, -3.0, -1.0]], device: d)
        let logTarget = Tensor([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]], device: d).log()
        expectClose(klDiv(input, logTarget, reduction: .none, logTarget: true).toArray(),
                    [-0.081887573, 0.10032752, -0.030258510, -0.29657358, 0.40342641, -0.096573591])
    }
}

@Suite("Losses: CPU/OpenCL parity and finite-difference gradients")
struct LossGradientTests {
    @Test("CPU and OpenCL agree on loss values and gradients", arguments: LossCase.all)
    func parity(_ loss: LossCase) {
        expectParity(loss.name, inputs: loss.inputs(), shapes: loss.shapes, loss.function)
    }

    @Test("loss gradients match central finite differences on each device", arguments: LossCase.all)
    func gradients(_ loss: LossCase) {
        for device in TestDevices.all {
            gradCheck(loss.name, device: device, inputs: loss.inputs(), shapes: loss.shapes, loss.function)
        }
    }
}

@Suite("Losses: misuse stops with a message naming the loss and the shapes")
struct LossMessageTests {
    @Test("a target that does not match the input's layout names both shapes")
    func targetShape() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = crossEntropy(Tensor.zeros([2, 3, 4]), Tensor.zeros([2, 3], dtype: .int32))
        }
        #expect(stderrText(result).contains("crossEntropy: target of shape [2, 3] does not match input of shape [2, 3, 4] (expected [2, 4])"))
    }

    @Test("a class weight of the wrong size names its shape and the classes")
    func weightShape() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = nllLoss(Tensor.zeros([2, 3]), Tensor([0, 1], dtype: .int32), weight: Tensor.ones([4]))
        }
        #expect(stderrText(result).contains("nllLoss: weight must be a float tensor of shape [3] for input of shape [2, 3], got float32 [4]"))
    }

    @Test("a label outside the classes names the loss, the label and the class count")
    func labelOutOfRange() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = crossEntropy(Tensor.zeros([2, 3]), Tensor([0, 3], dtype: .int32)).item()
        }
        #expect(stderrText(result).contains("crossEntropy: index 3 is out of bounds for dimension of size 3"))
    }

    @Test("ignoreIndex with probability targets is refused, as PyTorch")
    func ignoreIndexWithProbabilities() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = crossEntropy(Tensor.zeros([2, 3]), Tensor.zeros([2, 3]), ignoreIndex: 1)
        }
        #expect(stderrText(result).contains("crossEntropy: ignoreIndex is not supported for class-probability targets, got 1"))
    }
}

@Suite("Loss modules")
struct LossModuleTests {
    @Test("loss modules call their functions with their options; weights are buffers with PyTorch's names", arguments: TestDevices.all)
    func modules(_ d: Device) {
        let x = Tensor(shape: [3, 4], data: Reference.logits, device: d)
        let y = Tensor(shape: [3], data: Reference.labels, device: d)
        let ce = CrossEntropyLoss(weight: Tensor(Reference.weight), labelSmoothing: 0.2).to(d)
        #expect(ce.namedBuffers().map(\.name) == ["weight"])
        #expect(ce.weight!.device == d)
        // From torch (the same values as the functional test).
        expectClose([ce(x, y).item()], [3.0199203])
        expectClose([NLLLoss(reduction: .sum)(x.logSoftmax(dim: 1), y).item()], [6.6033173])
        let bce = BCEWithLogitsLoss(weight: Tensor([1, 2, 0.5]), posWeight: Tensor([2, 0.5, 1.5])).to(d)
        #expect(bce.stateDict().map(\.name) == ["weight", "pos_weight"])
        let t = Tensor([[1, 0, 0.3], [0, 1, 1]], device: d)
        expectClose([bce(Tensor([[1.5, -0.5, 0], [-2, 3, 0.7]], device: d), t).item()], [0.37124085])
        let p = Tensor([[0.8, 0.1, 0.5], [0.3, 0.9, 0.6]], device: d)
        expectClose([BCELoss(weight: Tensor([1, 2, 0.5], device: d), reduction: .sum)(p, t).item()], [1.6032469])
        let a = Tensor([0.2, -1.5, 3.0, 0.9, -0.05], device: d), b = Tensor([0, 0, 1, 1.2, 0.5], device: d)
        expectClose([SmoothL1Loss(beta: 0.5)(a, b).item()], [0.68600005])
        expectClose([HuberLoss(delta: 0.5)(a, b).item()], [0.34300002])
        expectClose([MSELoss(reduction: .sum)(a, b).item()], [mseLoss(a, b, reduction: .sum).item()])
        expectClose([L1Loss()(a, b).item()], [l1Loss(a, b).item()])
    }
}
