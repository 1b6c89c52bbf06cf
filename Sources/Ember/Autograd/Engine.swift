/// Runs the backward pass: walks the graph from a root in reverse topological order,
/// calls each node's rule once with the sum of the gradients that reached it (joined, for a
/// node with several outputs), and accumulates into the leaves' `.grad`.
enum Engine {
    /// Backpropagates `gradient` from `root`. Without `capture`, gradients accumulate into the
    /// leaves' `.grad`; with it, the gradients of exactly those tensors are returned (in order)
    /// and no `.grad` changes.
    @discardableResult
    static func run(root: Tensor, gradient: Tensor, retainGraph: Bool, createGraph: Bool,
                    capture: [Tensor]? = nil) -> [Tensor?] {
        GradMode.$enabled.withValue(createGraph) {
            // Backward rules run in their forward's types, not the caller's autocast scope.
            guard Autocast.current != nil else { return execute(root, gradient, retainGraph, capture) }
            return Autocast.$scope.withValue(nil) { execute(root, gradient, retainGraph, capture) }
        }
    }

    private static func execute(_ root: Tensor, _ gradient: Tensor, _ retainGraph: Bool, _ capture: [Tensor]?) -> [Tensor?] {
        var captured = [Tensor?](repeating: nil, count: capture?.count ?? 0)
        let pass = BackwardPass()
        func deliver(toLeaf leaf: Tensor, _ grad: inout Tensor) {
            guard let capture else { return accumulate(into: leaf, &grad) }
            for (i, t) in capture.enumerated() where t === leaf {
                captured[i] = captured[i].map { $0 + grad } ?? grad
            }
        }
        guard let rootNode = root.gradFn else {
            var gradient = gradient
            deliver(toLeaf: root, &gradient)
            if capture == nil { pass.runHooks(of: root) }
            pass.finish()
            return captured
        }
        let order = topologicalOrder(from: rootNode)
        // Leaves with post-accumulate hooks: how many edges into each are still to be settled
        // (a node settles its edges when it runs or when no gradient reaches it).
        var unsettled: [ObjectIdentifier: Int] = [:]
        var reached = Set<ObjectIdentifier>()
        if capture == nil {
            for node in order {
                for case .leaf(let leaf) in node.edges where !leaf.postAccumulateGradHooks.isEmpty {
                    unsettled[ObjectIdentifier(leaf), default: 0] += 1
                }
            }
        }
        func settle(_ node: Node) {
            guard !unsettled.isEmpty else { return }
            for case .leaf(let leaf) in node.edges {
                let key = ObjectIdentifier(leaf)
                guard let left = unsettled[key] else { continue }
                if left > 1 { unsettled[key] = left - 1; continue }
                unsettled[key] = nil
                if reached.contains(key) { pass.runHooks(of: leaf) }
            }
        }
        // The gradients reaching each node so far, one sum per output of the node.
        var pending: [ObjectIdentifier: [Tensor?]] = [:]
        func send(_ grad: Tensor, to node: Node, output: Int) {
            let key = ObjectIdentifier(node)
            var sums = pending.removeValue(forKey: key) ?? [Tensor?](repeating: nil, count: node.outputs)
            sums[output] = sums[output].map { $0 + grad } ?? grad
            pending[key] = sums
        }
        send(gradient, to: rootNode, output: root.outputIndex)
        for node in order {
            guard var grads = pending.removeValue(forKey: ObjectIdentifier(node)) else { settle(node); continue }
            for (index, grad) in grads.enumerated() {
                guard let grad else { continue }
                if let capture {
                    for (i, t) in capture.enumerated() where t.gradFn === node && t.outputIndex == index { captured[i] = grad }
                } else if let output = node.retainedOutput(index) {
                    output.grad = output.grad.map { $0 + grad } ?? grad.contiguous()
                }
            }
            guard let rule = node.rule else {
                fatalError("backward: trying to backward through \(node.name) a second time; its saved tensors were freed after the first backward (call backward(retainGraph: true) the first time)")
            }
            if !retainGraph { node.rule = nil }
            var inputGrads = Profiler.backward(node.name) { rule(node.join.map { $0(grads) } ?? grads[0]!) }
            check(inputGrads.count == node.edges.count, "\(node.name): rule returned \(inputGrads.count) gradients for \(node.edges.count) inputs")
            // Each gradient is moved out of the lists that held it, so that one nothing else
            // refers to can become a leaf's `.grad` without a copy.
            grads = []
            for (i, edge) in node.edges.enumerated() {
                guard var inputGrad = inputGrads[i] else { continue }
                inputGrads[i] = nil
                // A gradient has its input's dtype, as in PyTorch (a rule's Float32 mask would
                // otherwise widen a bfloat16 gradient).
                if let type = edge.tensorType, inputGrad.dtype != type { inputGrad = inputGrad.to(type) }
                if AnomalyMode.enabled { AnomalyMode.check(inputGrad, op: node.name, phase: "backward") }
                switch edge {
                case .none: break
                case .leaf(let leaf):
                    deliver(toLeaf: leaf, &inputGrad)
                    if !unsettled.isEmpty { reached.insert(ObjectIdentifier(leaf)) }
                case .node(let next, let output):
                    send(inputGrad, to: next, output: output)
                }
            }
            settle(node)
        }
        pass.finish()
        return captured
    }

    /// Adds `gradient` to a leaf's `.grad` (out of place, so a created graph stays valid).
    /// A first gradient becomes `.grad` itself when nothing else can see it or its memory (no
    /// other reference to the tensor or its storage, dense over the whole storage, no graph
    /// being created), as PyTorch's AccumulateGrad steals it; any other is copied, since a rule
    /// may hand one gradient to several inputs and optimizers and clipGradNorm update `.grad`
    /// in place.
    private static func accumulate(into leaf: Tensor, _ gradient: inout Tensor) {
        check(gradient.shape == leaf.shape,
              "backward: gradient of shape \(Shape.describe(gradient.shape)) for a tensor of shape \(Shape.describe(leaf.shape))")
        if let grad = leaf.grad {
            leaf.grad = grad + gradient
        } else if GradMode.enabled {
            leaf.grad = gradient.clone()
        } else if isKnownUniquelyReferenced(&gradient) && isKnownUniquelyReferenced(&gradient.storage)
                    && gradient.isContiguous && gradient.offset == 0 && gradient.count == gradient.storage.elementCount {
            leaf.grad = gradient
        } else {
            leaf.grad = gradient.contiguousCopy()
        }
    }

    /// Nodes reachable from `root`, each after every node that feeds gradient into it.
    private static func topologicalOrder(from root: Node) -> [Node] {
        var visited = Set<ObjectIdentifier>()
        var postOrder: [Node] = []
        var stack: [(Node, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (node, next) = stack.popLast() {
            if next < node.edges.count {
                stack.append((node, next + 1))
                if case .node(let child, _) = node.edges[next], visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((child, 0))
                }
            } else {
                postOrder.append(node)
            }
        }
        return postOrder.reversed()
    }
}

extension Tensor {
    /// Computes gradients of this tensor with respect to every leaf that requires grad and
    /// adds them to the leaves' `.grad`. Without `gradient` the tensor must hold one element.
    /// - Parameters:
    ///   - gradient: d(something)/d(self), shaped like self; defaults to 1 for a scalar.
    ///   - retainGraph: keep the graph so backward can run through it again.
    ///   - createGraph: record the backward ops too, so gradients can be differentiated again.
    public func backward(gradient: Tensor? = nil, retainGraph: Bool = false, createGraph: Bool = false) {
        Engine.run(root: self, gradient: backwardSeed(gradient), retainGraph: retainGraph || createGraph, createGraph: createGraph)
        backend.flush()
    }

    /// The gradient backward starts from: the given one (checked), or 1 for a one-element tensor.
    private func backwardSeed(_ gradient: Tensor?) -> Tensor {
        check(requiresGradFlag, "backward: tensor does not require grad and has no gradFn")
        if let gradient {
            check(gradient.shape == shape,
                  "backward: gradient shape \(Shape.describe(gradient.shape)) does not match tensor shape \(Shape.describe(shape))")
            check(gradient.device == device, "backward: gradient on \(gradient.device), tensor on \(device)")
            // Gradients have their tensor's dtype (each edge converts the ones after this).
            return gradient.to(dtype)
        }
        check(count == 1, "backward: gradient can be implicit only for one-element tensors, got shape \(Shape.describe(shape))")
        return Tensor.ones(shape, dtype: dtype, device: device)
    }

    /// The gradients of `output` with respect to `inputs`, returned instead of accumulated
    /// into `.grad` (no `.grad` changes). nil where an input does not affect the output.
    /// With `createGraph` the results can be differentiated again.
    public static func grad(of output: Tensor, wrt inputs: [Tensor], gradient: Tensor? = nil,
                            retainGraph: Bool = false, createGraph: Bool = false) -> [Tensor?] {
        let seed = output.backwardSeed(gradient)
        return Engine.run(root: output, gradient: seed, retainGraph: retainGraph || createGraph,
                          createGraph: createGraph, capture: inputs)
    }
}

// MARK: Gradient hooks

/// One registered post-accumulate hook.
final class GradientHook {
    let body: (Tensor, BackwardPass) -> Void
    init(_ body: @escaping (Tensor, BackwardPass) -> Void) { self.body = body }
}

/// The backward pass that runs a gradient hook. A hook may queue work for the end of the
/// pass (PyTorch's `Variable._execution_engine.queue_callback`), e.g. to wait for
/// communication it started.
public final class BackwardPass {
    private var finishers: [() -> Void] = []

    init() {}

    /// Runs `body` once this backward pass has run its last node and every hook, on the same
    /// thread, before `backward()` returns; callbacks run in the order queued (a callback may
    /// queue more).
    public func whenFinished(_ body: @escaping () -> Void) {
        finishers.append(body)
    }

    /// Runs `leaf`'s hooks (in the order registered).
    func runHooks(of leaf: Tensor) {
        for hook in leaf.postAccumulateGradHooks { hook.body(leaf, self) }
    }

    /// Runs the queued callbacks.
    func finish() {
        var next = 0
        while next < finishers.count {
            finishers[next]()
            next += 1
        }
        finishers.removeAll()
    }
}

/// A registered gradient hook; `remove()` unregisters it.
public final class GradientHookHandle {
    private weak var tensor: Tensor?
    private let hook: GradientHook

    init(tensor: Tensor, hook: GradientHook) {
        self.tensor = tensor
        self.hook = hook
    }

    /// Unregisters the hook (no effect when already removed).
    public func remove() {
        tensor?.postAccumulateGradHooks.removeAll { $0 === hook }
    }
}

extension Tensor {
    /// Registers `hook` to run each time `backward()` has finished accumulating this leaf's
    /// gradient into `.grad` (every contribution of that pass summed in), like PyTorch's
    /// `register_post_accumulate_grad_hook`. The hook gets the tensor and the running pass
    /// (to queue work for the end of the pass with `whenFinished`); it runs on the thread
    /// running backward, while the rest of the graph is still to be differentiated, so it can
    /// start communication that overlaps the remaining backward. Hooks do not run for
    /// `Tensor.grad(of:wrt:)` (no `.grad` is accumulated) nor when no gradient reached the leaf.
    @discardableResult
    public func registerPostAccumulateGradHook(_ hook: @escaping (Tensor, BackwardPass) -> Void) -> GradientHookHandle {
        check(isLeaf && requiresGradFlag, "registerPostAccumulateGradHook: the tensor must be a leaf that requires grad")
        let entry = GradientHook(hook)
        postAccumulateGradHooks.append(entry)
        return GradientHookHandle(tensor: self, hook: entry)
    }
}
