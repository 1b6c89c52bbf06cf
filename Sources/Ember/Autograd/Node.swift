/// Where a gradient flowing out of a node goes next.
enum Edge {
    /// The input does not require grad.
    case none
    /// A leaf that accumulates into `.grad`.
    case leaf(Tensor)
    /// The node that produced a non-leaf input.
    case node(Node)

    /// The dtype of the input this edge leads to (nil for `.none`).
    var tensorType: DType? {
        switch self {
        case .none: nil
        case .leaf(let tensor): tensor.dtype
        case .node(let node): node.outputType
        }
    }
}

/// One recorded op in the autograd graph: its name, where its input gradients go, and
/// the rule that maps the output's gradient to the inputs' gradients (written with
/// Tensor ops, so it runs on the tensor's device and can itself be differentiated).
final class Node {
    /// PyTorch-style name, e.g. `MulBackward`.
    let name: String
    /// One edge per input of the op, in the order the rule returns gradients.
    let edges: [Edge]
    /// The backward rule; released after it runs unless the graph is retained.
    var rule: ((Tensor) -> [Tensor?])?
    /// The output tensor, held weakly, when it asked to retain its gradient.
    weak var retainedOutput: Tensor?
    /// The output's dtype: the engine converts gradients flowing into this node to it.
    let outputType: DType

    init(name: String, edges: [Edge], outputType: DType, rule: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.edges = edges
        self.outputType = outputType
        self.rule = rule
    }
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
        gradFn?.retainedOutput = self
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

    private func attach(_ name: String, inputs: [Tensor], rule: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        let edges: [Edge] = inputs.map { input in
            guard input.requiresGradFlag else { return .none }
            if let node = input.gradFn { return .node(node) }
            return .leaf(input)
        }
        gradFn = Node(name: name, edges: edges, outputType: dtype, rule: rule)
        requiresGradFlag = true
        if let collector = Profiler.current { collector.noteRecorded(self, gradFn: name, inputs: inputs) }
        if AnomalyMode.enabled { AnomalyMode.check(self, op: name, phase: "forward") }
        return self
    }
}
