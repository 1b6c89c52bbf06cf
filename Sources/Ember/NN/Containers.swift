/// Modules in a list, named "0", "1", ... (`torch.nn.ModuleList`): `blocks.0.weight`.
/// It registers its modules for traversal but has no forward pass of its own.
public final class ModuleList: Module, RandomAccessCollection {
    private var items: [Module]

    /// A list holding `modules`, in order.
    public init(_ modules: [Module] = []) {
        items = modules
    }

    /// Adds `module` at the end.
    public func append(_ module: Module) {
        items.append(module)
    }

    /// Adds `modules` at the end, in order.
    public func append(contentsOf modules: [Module]) {
        items += modules
    }

    /// Position of the first module (0).
    public var startIndex: Int { 0 }
    /// One past the last module's position (`count`).
    public var endIndex: Int { items.count }

    /// The module at `index`; setting replaces it.
    public subscript(index: Int) -> Module {
        get {
            check(items.indices.contains(index), "ModuleList: index \(index) is out of range for \(items.count) modules")
            return items[index]
        }
        set {
            check(items.indices.contains(index), "ModuleList: index \(index) is out of range for \(items.count) modules")
            items[index] = newValue
        }
    }

    override public func namedChildren() -> [(name: String, module: Module)] {
        items.enumerated().map { ("\($0.offset)", $0.element) }
    }
}

/// Modules by name, in insertion order (`torch.nn.ModuleDict`): `heads.query.weight`.
/// Names must be non-empty and contain no "."; assigning to an existing name replaces the
/// module in its place, assigning nil removes it.
public final class ModuleDict: Module, Sequence, ExpressibleByDictionaryLiteral {
    private var names: [String] = []
    private var table: [String: Module] = [:]

    /// An empty dictionary, or `pairs` in order; a name given twice stops with a message.
    public init(_ pairs: [(String, Module)] = []) {
        super.init()
        for (name, module) in pairs {
            check(table[name] == nil, "ModuleDict: name '\(name)' given twice")
            self[name] = module
        }
    }

    /// The literal's modules in the order written.
    public convenience init(dictionaryLiteral elements: (String, Module)...) {
        self.init(elements)
    }

    /// The module named `name`, or nil; setting appends, replaces in place, or removes.
    public subscript(name: String) -> Module? {
        get { table[name] }
        set {
            if let newValue {
                check(!name.isEmpty && !name.contains("."), "ModuleDict: name '\(name)' must be non-empty and contain no '.'")
                if table[name] == nil { names.append(name) }
                table[name] = newValue
            } else if table.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }

    /// The names, in insertion order.
    public var keys: [String] { names }
    /// The modules, in insertion order.
    public var values: [Module] { names.map { table[$0]! } }
    /// The number of modules.
    public var count: Int { names.count }

    /// The `(name, module)` pairs in insertion order.
    public func makeIterator() -> IndexingIterator<[(name: String, module: Module)]> {
        namedChildren().makeIterator()
    }

    override public func namedChildren() -> [(name: String, module: Module)] {
        names.map { ($0, table[$0]!) }
    }
}
