/// Where a gradient flowing out of a node goes next.
enum Edge {
    /// The input does not require grad.
    case none
    /// A leaf that accumulates into `.grad`.
    case leaf(Tensor)
    /// The node that produced a non-leaf input, and which of its outputs that input is.
    case node(Node, output: Int)

    /// The dtype of the input this edge leads to (nil for `.none`).
    var tensorType: DType? {
        switch self {
        case .none: nil
        case .leaf(let tensor): tensor.dtype
        case .node(let node, _): node.outputType
        }
    }
}

/// One recorded op in the autograd graph: its name, where its input gradients go, and
/// the rule that maps the output's gradient to the inputs' gradients (written with
/// Tensor ops, so it runs on the tensor's device and can itself be differentiated).
///
/// An op with several outputs (`split`) records one node for all of them: the engine
/// collects one gradient per output and `join` makes them the one gradient the rule takes,
/// as PyTorch's multi-output nodes do.
final class Node {
    /// PyTorch-style name, e.g. `MulBackward`.
    let name: String
    /// One edge per input of the op, in the order the rule returns gradients.
    let edges: [Edge]
    /// The backward rule; released after it runs unless the graph is retained.
    var rule: ((Tensor) -> [Tensor?])?
    /// How many outputs the op has (1 unless `join` is set).
    let outputs: Int
    /// The outputs' gradients (nil where none reached an output) as the one tensor `rule` takes.
    let join: (([Tensor?]) -> Tensor)?
    /// The outputs, held weakly, that asked to retain their gradient, by output index.
    private var retained: [Int: WeakTensor] = [:]
    /// The outputs' dtype: the engine converts gradients flowing into this node to it.
    let outputType: DType

    init(name: String, edges: [Edge], outputType: DType, outputs: Int = 1, join: (([Tensor?]) -> Tensor)? = nil,
         rule: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.edges = edges
        self.outputType = outputType
        self.outputs = outputs
        self.join = join
        self.rule = rule
    }

    /// Keeps `output`'s gradient after backward.
    func retain(_ output: Tensor) { retained[output.outputIndex] = WeakTensor(tensor: output) }

    /// The output `index`, when it asked to retain its gradient and is still alive.
    func retainedOutput(_ index: Int) -> Tensor? {
        guard let output = retained[index]?.tensor, output.retainsGrad else { return nil }
        return output
    }
}

/// A tensor held weakly.
struct WeakTensor {
    weak var tensor: Tensor?
}

/// A tensor saved for backward, with the storage version it had when saved: reading it
/// after an in-place op changed it stops with a message instead of a wrong gradient.
/// Inputs are saved as they are (so a created graph can differentiate through them); an
/// op's own output must be saved detached (`output.detach()`) to avoid a reference cycle.
struct SavedTensor {
    private let tensor: Tensor
    private let version: Int
    private let op: String

    init(_ tensor: Tensor, op: String) {
        self.tensor = tensor
        self.version = tensor.storage.version
        self.op = op
    }

    /// The saved value; stops if it was modified in place since it was saved.
    var value: Tensor {
        check(tensor.storage.version == version,
              "\(op): a tensor saved for backward was modified by an in-place operation (version \(version) → \(tensor.storage.version)); clone it before modifying it")
        return tensor
    }
}

extension Tensor {
    /// The name of the op that produced this tensor (`MulBackward`), or nil for leaves.
    public var gradFnName: String? { gradFn?.name }

    /// Keep `.grad` on this non-leaf tensor after backward.
    public func retainGrad() {
        check(requiresGradFlag, "retainGrad(): tensor does not require grad")
        retainsGrad = true
        gradFn?.retain(self)
    }

    /// Clears the accumulated gradient.
    public func zeroGrad() {
        grad = nil
    }

    /// A tensor sharing this one's storage, cut from the graph (never requires grad).
    public func detach() -> Tensor {
        Tensor(storage: storage, shape: shape, strides: strides, offset: offset, dtype: dtype)
    }

    /// Attaches a backward rule to this freshly made output when grad mode is on and any
    /// input requires grad. `rule` maps the output's gradient to one gradient per input
    /// (nil where none flows).
    func recording(_ name: String, inputs: [Tensor], rule: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        guard Tensor.needsGraph(inputs) else { return self }
        return attach(name, inputs: inputs, rule: rule)
    }

    /// Like `recording`, but builds the rule (and whatever it saves) only when a graph is
    /// recorded, so ops under `noGrad` save nothing.
    func recording(_ name: String, inputs: [Tensor], makeRule: () -> (Tensor) -> [Tensor?]) -> Tensor {
        guard Tensor.needsGraph(inputs) else { return self }
        return attach(name, inputs: inputs, rule: makeRule())
    }

    /// True when grad mode is on and an input requires grad.
    @inline(__always)
    static func needsGraph(_ inputs: [Tensor]) -> Bool {
        for input in inputs where input.requiresGradFlag { return GradMode.enabled }
        return false
    }

    /// Records `outputs`, freshly made from `inputs` by one op, as that op's outputs when
    /// grad mode is on and an input requires grad: one node, whose backward `join`s the
    /// outputs' gradients (nil where none flowed) into the one tensor `rule` maps to the
    /// inputs' gradients.
    static func recording(_ name: String, outputs: [Tensor], inputs: [Tensor], join: @escaping ([Tensor?]) -> Tensor,
                          rule: @escaping (Tensor) -> [Tensor?]) -> [Tensor] {
        guard needsGraph(inputs), let first = outputs.first else { return outputs }
        let node = Node(name: name, edges: edges(to: inputs), outputType: first.dtype, outputs: outputs.count, join: join, rule: rule)
        for (index, output) in outputs.enumerated() { output.attach(node, output: index, inputs: inputs) }
        return outputs
    }

    /// Where gradients for `inputs` go.
    private static func edges(to inputs: [Tensor]) -> [Edge] {
        inputs.map { input in
            guard input.requiresGradFlag else { return .none }
            if let node = input.gradFn { return .node(node, output: input.outputIndex) }
            return .leaf(input)
        }
    }

    private func attach(_ name: String, inputs: [Tensor], rule: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        attach(Node(name: name, edges: Tensor.edges(to: inputs), outputType: dtype, rule: rule), output: 0, inputs: inputs)
        return self
    }

    /// Makes this tensor output `output` of `node`.
    private func attach(_ node: Node, output: Int, inputs: [Tensor]) {
        gradFn = node
        outputIndex = output
        requiresGradFlag = true
        if let collector = Profiler.current { collector.noteRecorded(self, gradFn: node.name, inputs: inputs) }
        if AnomalyMode.enabled { AnomalyMode.check(self, op: node.name, phase: "forward") }
    }
}
