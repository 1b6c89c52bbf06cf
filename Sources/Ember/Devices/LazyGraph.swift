import Foundation

/// How one value of a lazy elementwise graph is computed from earlier values (indices into
/// `LazyGraph.values`), its leaves (materialised views) and its scalars (kernel arguments).
enum LazyOperation: Hashable {
    case leaf(Int)
    case scalar(Int)
    /// A unary op of value `x`, its parameters the scalars `p0` and `p1`.
    case unary(UnaryKernel, x: Int, p0: Int, p1: Int)
    case binary(BinaryKernel, Int, Int)
    /// `condition != 0 ? a : b`.
    case select(Int, Int, Int)
    /// The value converted to the value's own dtype.
    case cast(Int)

    static func == (l: LazyOperation, r: LazyOperation) -> Bool {
        switch (l, r) {
        case let (.leaf(a), .leaf(b)), let (.scalar(a), .scalar(b)), let (.cast(a), .cast(b)): a == b
        case let (.unary(k, x, p, q), .unary(k2, x2, p2, q2)): k === k2 && x == x2 && p == p2 && q == q2
        case let (.binary(k, a, b), .binary(k2, a2, b2)): k === k2 && a == a2 && b == b2
        case let (.select(c, a, b), .select(c2, a2, b2)): c == c2 && a == a2 && b == b2
        default: false
        }
    }

    func hash(into h: inout Hasher) {
        switch self {
        case .leaf(let a): h.combine(0); h.combine(a)
        case .scalar(let a): h.combine(1); h.combine(a)
        case let .unary(k, x, p, q): h.combine(2); h.combine(ObjectIdentifier(k)); h.combine(x); h.combine(p); h.combine(q)
        case let .binary(k, a, b): h.combine(3); h.combine(ObjectIdentifier(k)); h.combine(a); h.combine(b)
        case let .select(c, a, b): h.combine(4); h.combine(c); h.combine(a); h.combine(b)
        case .cast(let a): h.combine(5); h.combine(a)
        }
    }

    /// The values this one reads.
    var operands: [Int] {
        switch self {
        case .leaf, .scalar: []
        case let .unary(_, x, _, _): [x]
        case let .binary(_, a, b): [a, b]
        case let .select(c, a, b): [c, a, b]
        case .cast(let a): [a]
        }
    }
}

/// One value of a lazy graph: its operation and the dtype it is stored in (each value is
/// rounded to it, as the eager op's output would be; `.bool` values are 0/1 masks).
struct LazyValue: Hashable {
    var operation: LazyOperation
    var dtype: DType
}

/// A buffer's pending contents: the graph whose last value it holds, and a token that names
/// this assignment (a buffer written again gets a new token, so an old graph's reference to
/// the buffer no longer matches).
final class LazyResult {
    let graph: LazyGraph
    let token: Int
    init(graph: LazyGraph, token: Int) { self.graph = graph; self.token = token }
}

/// A weak reference to a buffer with pending contents.
struct WeakBuffer {
    weak var buffer: DeviceBuffer?
}

/// An elementwise computation not run yet: values over one output `shape`, computed from
/// `leaves` (views of materialised buffers, each over `shape`) and `scalars`. The last value is
/// the result. Graphs are built by `LazyGraphBuilder` and never change afterwards.
///
/// `producers` lists the values that other pending buffers hold (producers inlined into this
/// graph while their tensors were alive): when the graph runs, those still pending with the
/// same token are written too, so nothing is computed twice.
final class LazyGraph {
    let shape: [Int]
    let leaves: [StridedView]
    let scalars: [Float]
    let values: [LazyValue]
    let producers: [(value: Int, buffer: WeakBuffer, token: Int)]
    /// The value the graph's own buffer holds.
    let root: Int

    init(shape: [Int], leaves: [StridedView], scalars: [Float], values: [LazyValue],
         producers: [(value: Int, buffer: WeakBuffer, token: Int)], root: Int) {
        self.shape = shape
        self.leaves = leaves
        self.scalars = scalars
        self.values = values
        self.producers = producers
        self.root = root
    }

    var count: Int { Shape.count(shape) }
    var dtype: DType { values[root].dtype }

    /// True when every leaf is dense over `shape` (so the graph reads element `i` of each leaf
    /// for its element `i`, and any view of its result can be computed by re-viewing the leaves).
    var isFlat: Bool { leaves.allSatisfy { $0.strides == Shape.contiguousStrides(shape) || count <= 1 } }
}

/// Builds a `LazyGraph` value by value, sharing equal leaves, scalars and values.
struct LazyGraphBuilder {
    let shape: [Int]
    private(set) var leaves: [StridedView] = []
    private(set) var scalars: [Float] = []
    private(set) var values: [LazyValue] = []
    private(set) var producers: [(value: Int, buffer: WeakBuffer, token: Int)] = []
    private var valueIndex: [LazyValue: Int] = [:]
    /// Graphs already inlined, with the view they were read through and their result here.
    private var inlined: [(graph: LazyGraph, offset: Int, shape: [Int], strides: [Int], result: Int)] = []

    init(shape: [Int]) { self.shape = shape }

    /// The value of a leaf view (one per distinct buffer, offset, strides and dtype).
    mutating func leaf(_ view: StridedView) -> Int {
        let at = leaves.firstIndex {
            $0.buffer === view.buffer && $0.offset == view.offset && $0.strides == view.strides && $0.dtype == view.dtype
        } ?? { leaves.append(view); return leaves.count - 1 }()
        return add(LazyValue(operation: .leaf(at), dtype: view.dtype))
    }

    /// A new scalar slot holding `s`. Slots are never shared by value, so the graph's structure
    /// (and its kernel) does not depend on which scalars happen to be equal.
    mutating func scalarSlot(_ s: Float) -> Int {
        scalars.append(s)
        return scalars.count - 1
    }

    /// The value of scalar `s`.
    mutating func scalar(_ s: Float) -> Int { add(LazyValue(operation: .scalar(scalarSlot(s)), dtype: .float32)) }

    /// Adds a value (or finds the equal one already there).
    mutating func add(_ value: LazyValue) -> Int {
        if let at = valueIndex[value] { return at }
        values.append(value)
        valueIndex[value] = values.count - 1
        return values.count - 1
    }

    /// Copies the values of `graph` (a pending buffer read through `view`) into this graph and
    /// returns the index of its result. The view must be the graph's own layout (`identity`) or
    /// the graph flat; a flat graph's leaves are then read through the view, and its values,
    /// computed in the view's layout, cannot be written to the buffers that hold them.
    mutating func inline(_ graph: LazyGraph, through view: StridedView, identity: Bool) -> Int {
        if let done = inlined.first(where: { $0.graph === graph && $0.offset == view.offset && $0.shape == view.shape && $0.strides == view.strides }) {
            return done.result
        }
        var map = [Int](repeating: 0, count: graph.values.count)
        var slots: [Int: Int] = [:]
        func slot(_ s: Int) -> Int {
            if let at = slots[s] { return at }
            let at = scalarSlot(graph.scalars[s])
            slots[s] = at
            return at
        }
        for (i, value) in graph.values.enumerated() {
            switch value.operation {
            case .leaf(let l):
                let source = graph.leaves[l]
                map[i] = leaf(identity ? source : StridedView(buffer: source.buffer, offset: source.offset + view.offset,
                                                              shape: view.shape, strides: view.strides, dtype: source.dtype))
            case .scalar(let s):
                map[i] = add(LazyValue(operation: .scalar(slot(s)), dtype: value.dtype))
            case let .unary(k, x, p0, p1):
                map[i] = add(LazyValue(operation: .unary(k, x: map[x], p0: slot(p0), p1: slot(p1)), dtype: value.dtype))
            case let .binary(k, a, b):
                map[i] = add(LazyValue(operation: .binary(k, map[a], map[b]), dtype: value.dtype))
            case let .select(c, a, b):
                map[i] = add(LazyValue(operation: .select(map[c], map[a], map[b]), dtype: value.dtype))
            case .cast(let a):
                map[i] = add(LazyValue(operation: .cast(map[a]), dtype: value.dtype))
            }
        }
        // A producer's value is in the graph's own layout: writable only when read in it.
        if identity { for p in graph.producers { producers.append((map[p.value], p.buffer, p.token)) } }
        inlined.append((graph, view.offset, view.shape, view.strides, map[graph.root]))
        return map[graph.root]
    }

    /// Records that `buffer` (pending with `token`) holds value `value`.
    mutating func produced(_ value: Int, by buffer: DeviceBuffer, token: Int) {
        producers.append((value, WeakBuffer(buffer: buffer), token))
    }

    /// The finished graph, whose result is value `root`.
    func build(root: Int) -> LazyGraph {
        LazyGraph(shape: shape, leaves: leaves, scalars: scalars, values: values, producers: producers, root: root)
    }
}

/// What running a graph takes: the values its outputs need (in order), the leaves and
/// scalars they read, and the OpenCL source of the kernel that computes them in one pass.
/// The source depends only on the graph's structure (operations, dtypes, which leaves are
/// strided), never on shapes, offsets or scalar values, which are kernel arguments: one kernel
/// serves every shape of a pattern, and the source is its cache key.
struct LazyKernelPlan {
    /// Values computed, in order (indices into the graph's values).
    let needed: [Int]
    /// Leaves read (indices into the graph's leaves), in argument order.
    let leaves: [Int]
    /// Scalars read (indices into the graph's scalars), in argument order.
    let scalars: [Int]
    /// (value, buffer) pairs written.
    let outputs: [(value: Int, buffer: DeviceBuffer)]
    /// Whether some leaf is strided: the kernel then walks runs of rows (`STRIDED_RUN`).
    let strided: Bool
    /// The kernel source with `KERNEL_NAME` for its name.
    let source: String
    /// The kind of each kernel parameter, in order.
    let parameters: [Parameter]

    /// A kernel parameter's kind.
    enum Parameter { case int, int8, pointer, float }

    init(graph: LazyGraph, outputs: [(value: Int, buffer: DeviceBuffer)]) {
        var live = [Bool](repeating: false, count: graph.values.count)
        for o in outputs { live[o.value] = true }
        for i in stride(from: graph.values.count - 1, through: 0, by: -1) where live[i] {
            for operand in graph.values[i].operation.operands { live[operand] = true }
        }
        let needed = live.indices.filter { live[$0] }
        self.needed = needed
        var leafSlot: [Int: Int] = [:], scalarSlot: [Int: Int] = [:]
        var leaves: [Int] = [], scalars: [Int] = []
        func scalarName(_ s: Int) -> String {
            if let at = scalarSlot[s] { return "s\(at)" }
            scalars.append(s)
            scalarSlot[s] = scalars.count - 1
            return "s\(scalars.count - 1)"
        }
        let contiguous = Shape.contiguousStrides(graph.shape)
        let strided = needed.contains { i in
            if case .leaf(let l) = graph.values[i].operation { return graph.leaves[l].strides != contiguous && graph.count > 1 }
            return false
        }
        // A value is rounded to its dtype where another value reads it; a leaf already is, and
        // an output only read by its store is rounded by the store.
        let read = Set(needed.flatMap { graph.values[$0].operation.operands })
        // Full runs of a dense kernel read float16 leaves and write float16 outputs a chunk of
        // eight at a time (storage.cl's half_chunk_in/half_chunk_out) where `staged`.
        func statements(staged: Bool) -> String {
            var body = ""
            for i in needed {
                let value = graph.values[i]
                let t = "t\(i)"
                switch value.operation {
                case .leaf(let l):
                    let slot = leafSlot[l] ?? { leaves.append(l); leafSlot[l] = leaves.count - 1; return leaves.count - 1 }()
                    let at = strided ? "a\(slot) + k * d\(slot)" : "o\(slot) + i"
                    let load = staged && value.dtype == .float16 ? "v\(slot)[k]" : Self.load(value.dtype, "l\(slot)[\(at)]")
                    body += "        float \(t) = \(load);\n"
                case .scalar(let s):
                    body += "        float \(t) = \(scalarName(s));\n"
                case let .unary(k, x, p0, p1):
                    body += "        float \(t); { float x = t\(x); float p0 = \(scalarName(p0)), p1 = \(scalarName(p1)); \(t) = \(k.expression); }\n"
                case let .binary(k, a, b):
                    let expression = k.producesMask ? "(\(k.expression)) ? 1.0f : 0.0f" : k.expression
                    body += "        float \(t); { float a = t\(a), b = t\(b); \(t) = \(expression); }\n"
                case let .select(c, a, b):
                    body += "        float \(t) = t\(c) != 0.0f ? t\(a) : t\(b);\n"
                case .cast(let a):
                    body += value.dtype == .bool ? "        float \(t) = t\(a) != 0.0f ? 1.0f : 0.0f;\n" : "        float \(t) = t\(a);\n"
                }
                if case .leaf = value.operation {} else if read.contains(i), let round = Self.rounding(value.dtype, t) {
                    body += "        \(t) = \(round);\n"
                }
            }
            for (slot, o) in outputs.enumerated() {
                let dtype = graph.values[o.value].dtype
                body += staged && dtype == .float16 ? "        w\(slot)[k] = t\(o.value);\n" : "        \(Self.store(dtype, "t\(o.value)", "r\(slot)[i]"));\n"
            }
            return body
        }
        let body = statements(staged: false)
        self.strided = strided
        self.leaves = leaves
        self.scalars = scalars
        self.outputs = outputs
        var declarations = ["int n", "int rank", "int8 shape"]
        var kinds: [Parameter] = [.int, .int, .int8]
        for (slot, l) in leaves.enumerated() {
            declarations += ["__global const \(Self.cType(graph.leaves[l].dtype))* l\(slot)", "int o\(slot)"]
            kinds += [.pointer, .int]
            if strided {
                declarations.append("int8 st\(slot)")
                kinds.append(.int8)
            }
        }
        for (slot, o) in outputs.enumerated() { declarations.append("__global \(Self.cType(graph.values[o.value].dtype))* r\(slot)") }
        kinds += outputs.map { _ in .pointer }
        for slot in scalars.indices { declarations.append("float s\(slot)") }
        kinds += scalars.map { _ in .float }
        parameters = kinds
        var source = "__kernel void KERNEL_NAME(\(declarations.joined(separator: ", "))) {\n"
        if strided {
            source += "    STRIDED_RUN(n, rank, shape)\n"
            for slot in leaves.indices {
                source += "    int a\(slot) = o\(slot) + view_offset(row, j0, rank, shape, st\(slot)), d\(slot) = int8_entry(rank - 1, st\(slot));\n"
            }
            source += "    for (int k = 0; k < len; ++k) {\n        int i = i0 + k;\n"
            self.source = source + body + "    }\n}\n"
            return
        }
        source += "    DENSE_RUN(n)\n"
        let halfLeaves = leaves.indices.filter { graph.leaves[leaves[$0]].dtype == .float16 }
        let halfOutputs = outputs.indices.filter { graph.values[outputs[$0].value].dtype == .float16 }
        if !halfLeaves.isEmpty || !halfOutputs.isEmpty {
            source += "#if HALF_RUNS\n    if (end - i0 == RUN) {\n    for (int c = i0; c < end; c += 8) {\n"
            for slot in halfLeaves {
                source += "    float8 v\(slot)_8 = half_chunk_in(l\(slot) + o\(slot) + c); const float* v\(slot) = (const float*)&v\(slot)_8;\n"
            }
            for slot in halfOutputs { source += "    float8 w\(slot)_8; float* w\(slot) = (float*)&w\(slot)_8;\n" }
            source += "    for (int k = 0; k < 8; ++k) {\n        int i = c + k;\n" + statements(staged: true) + "    }\n"
            for slot in halfOutputs { source += "    half_chunk_out(r\(slot) + c, w\(slot)_8);\n" }
            source += "    }\n    return;\n    }\n#endif\n"
        }
        self.source = source + "    for (int i = i0; i < end; ++i) {\n" + body + "    }\n}\n"
    }

    /// The OpenCL C element type of a buffer of `dtype` (float types and bool only).
    static func cType(_ dtype: DType) -> String {
        switch dtype {
        case .float32: "float"
        case .float16, .bfloat16: "ushort"
        default: "uchar"
        }
    }

    private static func load(_ dtype: DType, _ element: String) -> String {
        switch dtype {
        case .float32: element
        case .float16: "half_to_float(\(element))"
        case .bfloat16: "bf16_to_float(\(element))"
        default: "(float)\(element)"
        }
    }

    private static func rounding(_ dtype: DType, _ t: String) -> String? {
        switch dtype {
        case .float16: "half_to_float(float_to_half(\(t)))"
        case .bfloat16: "bf16_to_float(float_to_bf16(\(t)))"
        default: nil
        }
    }

    private static func store(_ dtype: DType, _ t: String, _ element: String) -> String {
        switch dtype {
        case .float32: "\(element) = \(t)"
        case .float16: "\(element) = float_to_half(\(t))"
        case .bfloat16: "\(element) = float_to_bf16(\(t))"
        default: "\(element) = \(t) != 0.0f ? 1 : 0"
        }
    }
}
