/// The recurrent layers' shared machinery (`torch.nn.RNNBase`): `numLayers` stacked layers,
/// each one or two directions, with PyTorch's parameters per layer and direction
/// (`weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, `_reverse` for the
/// backward direction) in PyTorch's order and layout, all initialised from
/// U(-1/√hiddenSize, 1/√hiddenSize). Each layer's input projection is one GEMM over the whole
/// sequence; the steps then run the hidden projection and the cell's ops, so autograd gives
/// backpropagation through time.
public class RNNBase: Module {
    /// The cell of every layer.
    enum Cell {
        case tanh, relu, lstm, gru

        /// Gate blocks stacked in the weights' rows.
        var gates: Int {
            switch self {
            case .tanh, .relu: return 1
            case .lstm: return 4
            case .gru: return 3
            }
        }
    }

    let cell: Cell
    /// Features of each input step, of the hidden state, and stacked layers.
    public let inputSize: Int, hiddenSize: Int, numLayers: Int
    /// Whether there are biases, inputs and outputs are `[N, L, *]`, and there is a backward direction.
    public let bias: Bool, batchFirst: Bool, bidirectional: Bool
    /// Dropout between layers while training (not after the last).
    public let dropout: Float
    let weights: [Parameter]

    init(_ cell: Cell, _ op: String, inputSize: Int, hiddenSize: Int, numLayers: Int, bias: Bool, batchFirst: Bool, dropout: Float,
         bidirectional: Bool) {
        check(inputSize > 0 && hiddenSize > 0 && numLayers > 0,
              "\(op): inputSize, hiddenSize and numLayers must be positive, got \(inputSize), \(hiddenSize) and \(numLayers)")
        check(dropout >= 0 && dropout <= 1, "\(op): dropout must be in [0, 1], got \(dropout)")
        self.cell = cell
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
        self.bias = bias
        self.batchFirst = batchFirst
        self.dropout = dropout
        self.bidirectional = bidirectional
        let bound = 1 / Float(hiddenSize).squareRoot(), rows = cell.gates * hiddenSize, directions = bidirectional ? 2 : 1
        var weights: [Parameter] = []
        for layer in 0..<numLayers {
            for direction in 0..<directions {
                let suffix = "_l\(layer)" + (direction == 1 ? "_reverse" : "")
                let shapes = [("weight_ih", [rows, layer == 0 ? inputSize : hiddenSize * directions]), ("weight_hh", [rows, hiddenSize])]
                    + (bias ? [("bias_ih", [rows]), ("bias_hh", [rows])] : [])
                weights += shapes.map { Parameter(wrappedValue: Tensor.rand($0.1, low: -bound, high: bound), name: $0.0 + suffix) }
            }
        }
        self.weights = weights
    }

    /// Layer `layer`'s parameters in `direction`: input and hidden weights and biases.
    private func parameters(layer: Int, direction: Int) -> (wih: Tensor, whh: Tensor, bih: Tensor?, bhh: Tensor?) {
        let perDirection = bias ? 4 : 2, start = (layer * (bidirectional ? 2 : 1) + direction) * perDirection
        let p = weights[start..<(start + perDirection)].map(\.wrappedValue)
        return (p[0], p[1], bias ? p[2] : nil, bias ? p[3] : nil)
    }

    /// Runs the stack over `input` from the initial hidden (and, for LSTM, cell) states:
    /// the output of the last layer at every step and each layer and direction's final states.
    func run(_ input: Tensor, h0: Tensor?, c0: Tensor?, op: String) -> (output: Tensor, h: Tensor, c: Tensor?) {
        check(input.rank == 2 || input.rank == 3, "\(op): expected a 2-D (unbatched) or 3-D input, got \(Shape.describe(input.shape))")
        let unbatched = input.rank == 2
        var x = unbatched ? input.unsqueeze(1) : (batchFirst ? input.transpose(0, 1) : input)
        check(x.shape[2] == inputSize, "\(op): input of shape \(Shape.describe(input.shape)) should have \(inputSize) features in its last dim")
        let steps = x.shape[0], batch = x.shape[1], directions = bidirectional ? 2 : 1
        func initial(_ state: Tensor?, _ name: String) -> [Tensor]? {
            guard let state else { return nil }
            let expected = unbatched ? [numLayers * directions, hiddenSize] : [numLayers * directions, batch, hiddenSize]
            check(state.shape == expected, "\(op): \(name) of shape \(Shape.describe(state.shape)) should be \(Shape.describe(expected))")
            return (unbatched ? state.unsqueeze(1) : state).unbind(dim: 0)
        }
        let hs = initial(h0, "h0"), cs = initial(c0, "c0")
        let zeros = Tensor.zeros([batch, hiddenSize], dtype: x.dtype, device: x.device)
        var finalH: [Tensor] = [], finalC: [Tensor] = []
        for layer in 0..<numLayers {
            var outputs: [Tensor] = []
            for direction in 0..<directions {
                let p = parameters(layer: layer, direction: direction), index = layer * directions + direction
                let projected = linear(x, weight: p.wih, bias: p.bih)
                var h = hs?[index] ?? zeros, c = cs?[index] ?? zeros
                var sequence = [Tensor](repeating: zeros, count: steps)
                for t in direction == 0 ? Array(0..<steps) : Array((0..<steps).reversed()) {
                    (h, c) = step(projected.select(dim: 0, index: t), h: h, c: c, whh: p.whh, bhh: p.bhh)
                    sequence[t] = h
                }
                outputs.append(steps > 0 ? Tensor.stack(sequence) : Tensor.zeros([0, batch, hiddenSize], dtype: x.dtype, device: x.device))
                finalH.append(h)
                finalC.append(c)
            }
            x = outputs.count == 1 ? outputs[0] : Tensor.cat(outputs, dim: 2)
            if layer < numLayers - 1 && dropout > 0 { x = x.dropout(p: dropout, training: isTraining) }
        }
        let output = unbatched ? x.squeeze(1) : (batchFirst ? x.transpose(0, 1) : x)
        func stacked(_ states: [Tensor]) -> Tensor { unbatched ? Tensor.stack(states).squeeze(1) : Tensor.stack(states) }
        return (output, stacked(finalH), cell == .lstm ? stacked(finalC) : nil)
    }

    /// One step of the cell from the input's projection `xw` ([N, gates * H]).
    private func step(_ xw: Tensor, h: Tensor, c: Tensor, whh: Tensor, bhh: Tensor?) -> (h: Tensor, c: Tensor) {
        let hw = linear(h, weight: whh, bias: bhh)
        switch cell {
        case .tanh: return ((xw + hw).tanh(), c)
        case .relu: return ((xw + hw).relu(), c)
        case .lstm:
            let g = (xw + hw).chunk(4, dim: 1)
            let next = g[1].sigmoid() * c + g[0].sigmoid() * g[2].tanh()
            return (g[3].sigmoid() * next.tanh(), next)
        case .gru:
            let x3 = xw.chunk(3, dim: 1), h3 = hw.chunk(3, dim: 1)
            let r = (x3[0] + h3[0]).sigmoid(), z = (x3[1] + h3[1]).sigmoid()
            let n = (x3[2] + r * h3[2]).tanh()
            return ((1 - z) * n + z * h, c)
        }
    }
}

/// The nonlinearity of an Elman `RNN`.
public enum RNNNonlinearity: String, Sendable {
    /// tanh (PyTorch's default).
    case tanh
    /// relu.
    case relu
}

/// An Elman recurrent layer (`torch.nn.RNN`): h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
/// (or relu), stacked and optionally bidirectional.
public final class RNN: RNNBase {
    /// A layer with PyTorch's parameters and initialisation.
    public init(inputSize: Int, hiddenSize: Int, numLayers: Int = 1, nonlinearity: RNNNonlinearity = .tanh, bias: Bool = true,
                batchFirst: Bool = false, dropout: Float = 0, bidirectional: Bool = false) {
        super.init(nonlinearity == .tanh ? .tanh : .relu, "RNN", inputSize: inputSize, hiddenSize: hiddenSize, numLayers: numLayers,
                   bias: bias, batchFirst: batchFirst, dropout: dropout, bidirectional: bidirectional)
    }

    /// `input` `[L, N, inputSize]` (`[N, L, ...]` when batch first, or unbatched `[L, ...]`)
    /// from `h0` `[numLayers * directions, N, hiddenSize]` (zeros when nil): every step's last
    /// layer output `[L, N, directions * hiddenSize]` and the final hidden states.
    public func callAsFunction(_ input: Tensor, h0: Tensor? = nil) -> (output: Tensor, h: Tensor) {
        let r = run(input, h0: h0, c0: nil, op: "RNN")
        return (r.output, r.h)
    }
}

/// A long short-term memory layer (`torch.nn.LSTM`): input, forget, cell and output gates
/// (PyTorch's order in the weights' rows), stacked and optionally bidirectional.
public final class LSTM: RNNBase {
    /// A layer with PyTorch's parameters and initialisation.
    public init(inputSize: Int, hiddenSize: Int, numLayers: Int = 1, bias: Bool = true, batchFirst: Bool = false, dropout: Float = 0,
                bidirectional: Bool = false) {
        super.init(.lstm, "LSTM", inputSize: inputSize, hiddenSize: hiddenSize, numLayers: numLayers, bias: bias, batchFirst: batchFirst,
                   dropout: dropout, bidirectional: bidirectional)
    }

    /// `input` as `RNN`'s from `state` (`h0`, `c0`, each `[numLayers * directions, N,
    /// hiddenSize]`; zeros when nil): every step's output and the final hidden and cell states.
    public func callAsFunction(_ input: Tensor, state: (h: Tensor, c: Tensor)? = nil) -> (output: Tensor, state: (h: Tensor, c: Tensor)) {
        let r = run(input, h0: state?.h, c0: state?.c, op: "LSTM")
        return (r.output, (r.h, r.c!))
    }
}

/// A gated recurrent unit layer (`torch.nn.GRU`): reset, update and new gates (PyTorch's
/// order), the reset gate applied to the hidden projection with its bias, stacked and
/// optionally bidirectional.
public final class GRU: RNNBase {
    /// A layer with PyTorch's parameters and initialisation.
    public init(inputSize: Int, hiddenSize: Int, numLayers: Int = 1, bias: Bool = true, batchFirst: Bool = false, dropout: Float = 0,
                bidirectional: Bool = false) {
        super.init(.gru, "GRU", inputSize: inputSize, hiddenSize: hiddenSize, numLayers: numLayers, bias: bias, batchFirst: batchFirst,
                   dropout: dropout, bidirectional: bidirectional)
    }

    /// `input` as `RNN`'s from `h0`: every step's output and the final hidden states.
    public func callAsFunction(_ input: Tensor, h0: Tensor? = nil) -> (output: Tensor, h: Tensor) {
        let r = run(input, h0: h0, c0: nil, op: "GRU")
        return (r.output, r.h)
    }
}
