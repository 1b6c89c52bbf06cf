import Foundation
import Testing
@testable import Ember

/// RNN, LSTM and GRU against PyTorch: a fixture written by torch 2.13
/// (`Fixtures/make_rnn_fixture.py`) loads by PyTorch's parameter names and gives PyTorch's
/// outputs, final states and input gradients (backpropagation through time) on each device.
@Suite("Recurrent layers")
struct RecurrentTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/rnn.safetensors")

    /// The fixture's tensors on `device`.
    static func tensors(on device: Device) throws -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: try SafeTensors.read(from: fixture).map { ($0.name, $0.tensor.to(device)) })
    }

    /// Loads the fixture's state dict under `prefix` into `layer`.
    static func load(_ layer: RNNBase, _ t: [String: Tensor], prefix: String) throws {
        try layer.loadStateDict(StateDict(layer.stateDict().map { ($0.name, t[prefix + $0.name]!) }))
    }

    @Test("parameter names, order and shapes are PyTorch's")
    func names() {
        let lstm = LSTM(inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true)
        let expected = ["l0", "l0_reverse", "l1", "l1_reverse"].flatMap { s in ["weight_ih_\(s)", "weight_hh_\(s)", "bias_ih_\(s)", "bias_hh_\(s)"] }
        #expect(lstm.stateDict().map(\.name) == expected)
        #expect(lstm.namedParameters().map(\.tensor.shape) == [[16, 3], [16, 4], [16], [16], [16, 3], [16, 4], [16], [16],
                                                                [16, 8], [16, 4], [16], [16], [16, 8], [16, 4], [16], [16]])
        #expect(GRU(inputSize: 3, hiddenSize: 4, bias: false).stateDict().map(\.name) == ["weight_ih_l0", "weight_hh_l0"])
        let bound = 1 / Float(4).squareRoot()
        #expect(RNN(inputSize: 3, hiddenSize: 4).parameters().allSatisfy { $0.toArray().allSatisfy { Swift.abs($0) <= bound } })
    }

    @Test("LSTM, GRU and RNN give PyTorch's outputs, final states and input gradients", arguments: TestDevices.all)
    func matchesTorch(_ device: Device) throws {
        let t = try Self.tensors(on: device)
        func check(_ name: String, _ x: Tensor, _ output: Tensor, _ h: Tensor, extra: [(String, Tensor)] = []) {
            expectClose(output.toArray(), t[name + "output"]!.toArray(), rtol: 1e-5, atol: 1e-5, name + " output")
            expectClose(h.toArray(), t[name + "h_n"]!.toArray(), rtol: 1e-5, atol: 1e-5, name + " h_n")
            for (key, value) in extra { expectClose(value.toArray(), t[name + key]!.toArray(), rtol: 1e-5, atol: 1e-5, name + key) }
            ((output * t[name + "upstream"]!).sum() + h.sum()).backward()
            expectClose(x.grad!.toArray(), t[name + "x_grad"]!.toArray(), rtol: 1e-4, atol: 1e-5, name + " input gradient")
        }
        let lstm = LSTM(inputSize: 3, hiddenSize: 4, numLayers: 2, batchFirst: true, bidirectional: true).to(device)
        try Self.load(lstm, t, prefix: "lstm.")
        let xb = t["x_batch_first"]!.detach().requiresGrad(true)
        let l = lstm(xb, state: (t["lstm.h0"]!, t["lstm.c0"]!))
        #expect(l.output.shape == [2, 5, 8] && l.state.h.shape == [4, 2, 4])
        check("lstm.", xb, l.output, l.state.h, extra: [("c_n", l.state.c)])

        let gru = GRU(inputSize: 3, hiddenSize: 4, numLayers: 2).to(device)
        try Self.load(gru, t, prefix: "gru.")
        let x = t["x"]!.detach().requiresGrad(true)
        let g = gru(x)
        check("gru.", x, g.output, g.h)

        let rnn = RNN(inputSize: 3, hiddenSize: 4, nonlinearity: .relu, bidirectional: true).to(device)
        try Self.load(rnn, t, prefix: "rnn.")
        let x2 = t["x"]!.detach().requiresGrad(true)
        let r = rnn(x2, h0: t["rnn.h0"]!)
        check("rnn.", x2, r.output, r.h)
    }

    @Test("an unbatched sequence gives the batched numbers of its batch entry; bfloat16 layers run in bfloat16", arguments: TestDevices.all)
    func unbatchedAndNarrow(_ device: Device) throws {
        let gru = GRU(inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true).to(device)
        let x = Tensor.withRandomSeed(8) { Tensor.randn([5, 2, 3], device: device) }
        let batched = gru(x), single = gru(x.select(dim: 1, index: 1))
        #expect(single.output.shape == [5, 8] && single.h.shape == [4, 4])
        expectClose(single.output.toArray(), batched.output.select(dim: 1, index: 1).toArray(), atol: 1e-6)
        expectClose(single.h.toArray(), batched.h.select(dim: 1, index: 1).toArray(), atol: 1e-6)
        let lstm = LSTM(inputSize: 3, hiddenSize: 4).to(device)
        let wide = lstm(x).output
        lstm.to(.bfloat16)
        let narrow = lstm(x.to(.bfloat16)).output
        #expect(narrow.dtype == .bfloat16)
        expectClose(narrow.float().toArray(), wide.toArray(), rtol: 2e-2, atol: 2e-2)
    }

    @Test("a wrong input or state size stops with a message naming the layer and shapes")
    func errors() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = LSTM(inputSize: 3, hiddenSize: 4)(Tensor.zeros([5, 2, 6]))
        }.map { #expect(stderrText($0).contains("LSTM: input of shape [5, 2, 6] should have 3 features in its last dim")) }
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = GRU(inputSize: 3, hiddenSize: 4, numLayers: 2)(Tensor.zeros([5, 2, 3]), h0: Tensor.zeros([1, 2, 4]))
        }.map { #expect(stderrText($0).contains("GRU: h0 of shape [1, 2, 4] should be [2, 2, 4]")) }
    }
}
