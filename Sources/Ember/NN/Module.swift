import Foundation

/// A trainable tensor owned by a module: `@Parameter var weight: Tensor`.
///
/// Whatever is assigned becomes a parameter, as in PyTorch (`nn.Parameter`): a float32 leaf
/// that requires grad (`layer.weight = Tensor.randn([4, 3])` is trainable). Assigning a
/// tensor made by a recorded op stops with a message: detach it first. Assigning another
/// module's parameter ties the two (one tensor object in both slots, as PyTorch's weight
/// tying); traversal, optimizers and state dicts then see it once. Assignment always sets
/// `requiresGrad`, so freeze a parameter after assigning it.
@propertyWrapper
public final class Parameter {
    /// The parameter tensor (a leaf; requires grad unless frozen with `requiresGrad = false`
    /// after assignment).
    public var wrappedValue: Tensor {
        didSet { Parameter.adopt(wrappedValue, name) }
    }
    /// The name used in state dicts instead of the property name (e.g. PyTorch's snake_case).
    public let name: String?

    /// Wraps `tensor`, marking it as requiring grad; `name` overrides the state-dict name.
    public init(wrappedValue: Tensor, name: String? = nil) {
        Parameter.adopt(wrappedValue, name)
        self.wrappedValue = wrappedValue
        self.name = name
    }

    /// Makes `tensor` a parameter: checks it is a floating-point leaf and sets `requiresGrad`.
    static func adopt(_ tensor: Tensor, _ name: String?) {
        let what = name.map { "parameter '\($0)'" } ?? "a parameter"
        check(tensor.isLeaf, "Parameter: \(what) must be a leaf tensor, got the output of \(tensor.gradFnName ?? "an op"); assign tensor.detach() instead")
        check(tensor.dtype.isFloatingPoint, "Parameter: \(what) must be a floating-point tensor, got \(tensor.dtype)")
        tensor.requiresGradFlag = true
    }
}

/// A parameter that may be absent, e.g. the bias of `Linear(..., bias: false)`: absent
/// parameters do not appear in `parameters()` or state dicts. Assignment follows
/// `Parameter`'s rules.
@propertyWrapper
public final class OptionalParameter {
    /// The parameter tensor, or nil.
    public var wrappedValue: Tensor? {
        didSet { wrappedValue.map { Parameter.adopt($0, name) } }
    }
    /// The name used in state dicts instead of the property name.
    public let name: String?

    /// Wraps `tensor` (marking it as requiring grad); `name` overrides the state-dict name.
    public init(wrappedValue: Tensor?, name: String? = nil) {
        wrappedValue.map { Parameter.adopt($0, name) }
        self.wrappedValue = wrappedValue
        self.name = name
    }
}

/// A non-trainable tensor that is part of a module's state (BatchNorm running statistics):
/// moved by `to(_:)` and listed by `namedBuffers()`, never returned by `parameters()`.
/// Persistent buffers (the default) are saved in state dicts and checkpoints;
/// `@Buffer(persistent: false)` ones (PyTorch's `register_buffer(..., persistent=False)`,
/// e.g. a cached mask) are not.
@propertyWrapper
public final class Buffer {
    /// The buffer tensor.
    public var wrappedValue: Tensor
    /// The name used in state dicts instead of the property name (`running_mean`).
    public let name: String?
    /// Whether the buffer is part of `stateDict()`.
    public let persistent: Bool

    /// Wraps `tensor`; `name` overrides the state-dict name.
    public init(wrappedValue: Tensor, name: String? = nil, persistent: Bool = true) {
        self.wrappedValue = wrappedValue
        self.name = name
        self.persistent = persistent
    }
}

/// A buffer that may be absent, e.g. the running statistics of
/// `BatchNorm1d(..., trackRunningStats: false)`: absent buffers do not appear in state dicts.
@propertyWrapper
public final class OptionalBuffer {
    /// The buffer tensor, or nil.
    public var wrappedValue: Tensor?
    /// The name used in state dicts instead of the property name.
    public let name: String?
    /// Whether the buffer is part of `stateDict()`.
    public let persistent: Bool

    /// Wraps `tensor`; `name` overrides the state-dict name.
    public init(wrappedValue: Tensor?, name: String? = nil, persistent: Bool = true) {
        self.wrappedValue = wrappedValue
        self.name = name
        self.persistent = persistent
    }
}

/// What module traversal sees of `Parameter`, `OptionalParameter`, `Buffer` and `OptionalBuffer`.
protocol TensorSlot: AnyObject {
    /// Whether the slot holds a buffer (state) rather than a parameter.
    var isBuffer: Bool { get }
    /// Whether the slot is part of state dicts (always for parameters).
    var persistent: Bool { get }
    /// The state-dict name override.
    var name: String? { get }
    /// The held tensor (nil for an absent optional parameter or buffer).
    var tensor: Tensor? { get }
}

extension Parameter: TensorSlot {
    var isBuffer: Bool { false }
    var persistent: Bool { true }
    var tensor: Tensor? { wrappedValue }
}

extension OptionalParameter: TensorSlot {
    var isBuffer: Bool { false }
    var persistent: Bool { true }
    var tensor: Tensor? { wrappedValue }
}

extension Buffer: TensorSlot {
    var isBuffer: Bool { true }
    var tensor: Tensor? { wrappedValue }
}

extension OptionalBuffer: TensorSlot {
    var isBuffer: Bool { true }
    var tensor: Tensor? { wrappedValue }
}

/// A module that maps one tensor to another: every built-in layer, and any model that
/// should sit inside `Sequential` (`final class Net: Module, Layer`).
public protocol Layer: Module {
    /// The forward pass.
    func callAsFunction(_ input: Tensor) -> Tensor
}

/// One parameter or buffer of a module tree: the slot, every dotted name it is reached by
/// (first name first), and its tensor.
struct SlotEntry {
    let slot: TensorSlot
    var names: [String]
    let tensor: Tensor?
    var name: String { names[0] }
}

/// The base class of every layer and model, like `torch.nn.Module`.
///
/// Subclasses declare parameters with `@Parameter`, buffers with `@Buffer`, and
/// sub-modules as plain stored properties; they are found by reflection and named with
/// dotted paths (`fc1.weight`, `layers.0.bias`). Sub-modules may sit in a property directly,
/// in an optional, an array (nested arrays and arrays of optionals too: `blocks.0.1`), a
/// tuple (`pair.0`, or the label of a labelled tuple), a dictionary keyed by `String` or
/// `Int` (entries in sorted key order: `heads.query`; use `ModuleDict` to keep insertion
/// order), `ModuleList` or `ModuleDict`. A property holding modules in any other shape (a
/// struct, an enum, a `Set`, a class that is not a module) stops with a message naming it
/// rather than being skipped. Modules inside closures cannot be seen.
///
/// A plain `Tensor` property (not `@Parameter`/`@Buffer`) is not module state, like a
/// plain attribute in PyTorch: it is not trained, saved or moved by `to(_:)`.
///
/// A module or tensor reached twice (`Sequential(shared, ReLU(), shared)`, a tied
/// `head.weight = embedding.weight`) counts once: `parameters()`, `namedModules()` and
/// `stateDict()` list it under the first name it is reached by, and `loadStateDict(_:)`
/// accepts any of its names.
open class Module {
    /// Whether the module is in training mode (dropout active, batch statistics used).
    public private(set) var isTraining = true

    /// Creates a module in training mode.
    public init() {}

    /// Direct children with their names, in declaration order, as discovered from stored
    /// properties; override to list children another way (as `Sequential` does). A module
    /// held twice is listed under each of its names: traversal de-duplicates.
    open func namedChildren() -> [(name: String, module: Module)] {
        var out: [(name: String, module: Module)] = []
        for child in Mirror(reflecting: self).allChildren {
            guard let label = child.label, !(child.value is TensorSlot), !(child.value is [TensorSlot]) else { continue }
            let name = Module.propertyName(label)
            ModuleDiscovery.collect(child.value, path: name, owner: self, property: name, into: &out)
        }
        return out
    }

    /// The distinct direct children, in order (`torch.nn.Module.children`).
    public func children() -> [Module] {
        var seen = Set<ObjectIdentifier>()
        return namedChildren().map(\.module).filter { seen.insert(ObjectIdentifier($0)).inserted }
    }

    /// This module and every distinct descendant with its dotted path ("" for self), depth
    /// first, each module once under its first path (`torch.nn.Module.named_modules`).
    public func namedModules() -> [(name: String, module: Module)] {
        var seen = Set<ObjectIdentifier>()
        var out: [(name: String, module: Module)] = []
        func visit(_ module: Module, _ path: String) {
            guard seen.insert(ObjectIdentifier(module)).inserted else { return }
            out.append((path, module))
            for (name, child) in module.namedChildren() { visit(child, path.isEmpty ? name : path + "." + name) }
        }
        visit(self, "")
        return out
    }

    /// This module and every distinct descendant, in the order of `namedModules()`.
    public func modules() -> [Module] { namedModules().map(\.module) }

    /// Calls `fn` on every distinct descendant and then on this module (children before their
    /// parent, as `torch.nn.Module.apply`; a shared module is visited once); returns self.
    /// Typical use: custom initialisation with the in-place `Init` functions.
    @discardableResult
    public func apply(_ fn: (Module) -> Void) -> Self {
        var seen = Set<ObjectIdentifier>()
        func visit(_ module: Module) {
            guard seen.insert(ObjectIdentifier(module)).inserted else { return }
            for child in module.children() { visit(child) }
            fn(module)
        }
        visit(self)
        return self
    }

    /// Every parameter with its dotted name, depth first in declaration order; a tensor
    /// reached twice appears once, under its first name.
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        slotEntries().compactMap { entry in entry.slot.isBuffer ? nil : entry.tensor.map { (entry.name, $0) } }
    }

    /// Every distinct parameter, in the order of `namedParameters()`.
    public func parameters() -> [Tensor] {
        namedParameters().map(\.tensor)
    }

    /// Every buffer (persistent or not) with its dotted name.
    public func namedBuffers() -> [(name: String, tensor: Tensor)] {
        slotEntries().compactMap { entry in entry.slot.isBuffer ? entry.tensor.map { (entry.name, $0) } : nil }
    }

    /// Every distinct buffer, in the order of `namedBuffers()`.
    public func buffers() -> [Tensor] {
        namedBuffers().map(\.tensor)
    }

    /// Parameters and persistent buffers by dotted name, in PyTorch's `state_dict()` order:
    /// each module's own parameters, then its own buffers, then its children's entries. The
    /// tensors are the live ones. A tied tensor appears once, under its first name (as
    /// safetensors' `save_model` writes it; PyTorch's own `state_dict()` repeats it).
    public func stateDict() -> StateDict {
        StateDict(slotEntries().compactMap { entry in entry.slot.persistent ? entry.tensor.map { (entry.name, $0) } : nil })
    }

    /// Every distinct parameter and buffer slot in state-dict order, with all its names;
    /// absent optional ones are included with a nil tensor.
    func slotEntries() -> [SlotEntry] {
        var raw: [(name: String, slot: TensorSlot)] = []
        var ancestors: [ObjectIdentifier] = []
        collectSlots(prefix: "", ancestors: &ancestors, into: &raw)
        var out: [SlotEntry] = []
        var index: [ObjectIdentifier: Int] = [:]
        for (name, slot) in raw {
            let tensor = slot.tensor
            let key = tensor.map { ObjectIdentifier($0) } ?? ObjectIdentifier(slot)
            if let i = index[key] {
                out[i].names.append(name)
            } else {
                index[key] = out.count
                out.append(SlotEntry(slot: slot, names: [name], tensor: tensor))
            }
        }
        return out
    }

    /// Every slot reached from this module with its dotted name, repeats included (a module
    /// on its own ancestor path is skipped, so a back reference cannot recurse forever).
    private func collectSlots(prefix: String, ancestors: inout [ObjectIdentifier], into out: inout [(name: String, slot: TensorSlot)]) {
        ancestors.append(ObjectIdentifier(self))
        defer { ancestors.removeLast() }
        var own: [(name: String, slot: TensorSlot)] = []
        for child in Mirror(reflecting: self).allChildren {
            if let slot = child.value as? TensorSlot, let label = child.label {
                own.append((prefix + (slot.name ?? Module.propertyName(label)), slot))
            } else if let slots = child.value as? [TensorSlot] {
                // A stored array of named slots (a recurrent layer's per-layer weights).
                own += slots.map { slot in
                    guard let name = slot.name else {
                        fatalError("Module: \(type(of: self)).\(child.label ?? "?") holds a parameter or buffer without a name; give each in an array name:")
                    }
                    return (prefix + name, slot)
                }
            }
        }
        out += own.filter { !$0.slot.isBuffer } + own.filter { $0.slot.isBuffer }
        for (name, module) in namedChildren() where !ancestors.contains(ObjectIdentifier(module)) {
            module.collectSlots(prefix: prefix + name + ".", ancestors: &ancestors, into: &out)
        }
    }

    /// Sets training mode here and in every sub-module; returns self.
    @discardableResult
    public func train(_ mode: Bool = true) -> Self {
        for module in modules() { module.isTraining = mode }
        return self
    }

    /// Sets evaluation mode (`train(false)`); returns self.
    @discardableResult
    public func eval() -> Self { train(false) }

    /// Moves every parameter, buffer (persistent or not) and parameter gradient to `device`
    /// in place, as PyTorch does: each tensor object stays the same and gets its storage
    /// copied to `device`, so an optimizer made before the move keeps updating the model
    /// (its state follows at the next `step()`). Tensors that shared storage still do; views
    /// taken before the move (`weight.T`) keep the old storage, and a graph recorded before
    /// the move cannot run backward. Must not run while another thread uses the model.
    @discardableResult
    public func to(_ device: Device) -> Self {
        var moved: [ObjectIdentifier: (old: Storage, new: Storage)] = [:]
        for entry in slotEntries() {
            guard let tensor = entry.tensor else { continue }
            tensor.moveStorage(to: device, sharing: &moved)
            tensor.grad?.moveStorage(to: device, sharing: &moved)
        }
        return self
    }

    /// Converts every floating-point parameter, buffer and parameter gradient to the float type
    /// `dtype` in place (`torch.nn.Module.to(dtype)`; integer and bool buffers keep their type),
    /// keeping each tensor object as `to(_ device:)` does: references held elsewhere see the
    /// new type, and tensors that shared storage still do. A graph recorded before the
    /// conversion cannot run backward. Must not run while another thread uses the model.
    @discardableResult
    public func to(_ dtype: DType) -> Self {
        check(dtype.isFloatingPoint, "Module.to: dtype must be a floating-point type, got \(dtype)")
        var converted: [ObjectIdentifier: (old: Storage, new: Storage)] = [:]
        for entry in slotEntries() {
            guard let tensor = entry.tensor, tensor.dtype.isFloatingPoint else { continue }
            tensor.convertStorage(to: dtype, sharing: &converted)
            tensor.grad?.convertStorage(to: dtype, sharing: &converted)
        }
        return self
    }

    /// Clears the gradient of every parameter.
    public func zeroGrad() {
        for p in parameters() { p.zeroGrad() }
    }

    /// The number of scalar parameters (each distinct tensor counted once).
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// The name of a stored property from its reflected label: property wrappers' storage
    /// (`_weight`) and lazy properties' storage (`$__lazy_storage_$_head`) by their declared name.
    static func propertyName(_ label: String) -> String {
        let lazyPrefix = "$__lazy_storage_$_"
        if label.hasPrefix(lazyPrefix) { return String(label.dropFirst(lazyPrefix.count)) }
        return label.hasPrefix("_") ? String(label.dropFirst()) : label
    }
}

/// Finds the modules inside a stored property's value and names them.
enum ModuleDiscovery {
    /// Appends the modules inside `value` to `out`, named from `path`; stops with a message
    /// naming `owner`'s `property` when modules sit in a shape that has no names.
    static func collect(_ value: Any, path: String, owner: Module, property: String, into out: inout [(name: String, module: Module)]) {
        if let module = value as? Module { out.append((path, module)); return }
        if isLeafValue(value) { return }
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .optional:
            if let wrapped = mirror.children.first?.value {
                collect(wrapped, path: path, owner: owner, property: property, into: &out)
            }
        case .collection:
            for (i, element) in mirror.children.enumerated() {
                collect(element.value, path: "\(path).\(i)", owner: owner, property: property, into: &out)
            }
        case .tuple:
            for (i, element) in mirror.children.enumerated() {
                let label = element.label.flatMap { $0.hasPrefix(".") ? nil : $0 } ?? "\(i)"
                collect(element.value, path: "\(path).\(label)", owner: owner, property: property, into: &out)
            }
        case .dictionary:
            let pairs = mirror.children.map { entry -> (key: Any, value: Any) in
                let parts = Array(Mirror(reflecting: entry.value).children)
                return (parts[0].value, parts[1].value)
            }
            if pairs.allSatisfy({ $0.key is String }) {
                for (key, element) in pairs.map({ ($0.key as! String, $0.value) }).sorted(by: { $0.0 < $1.0 }) {
                    var found: [(name: String, module: Module)] = []
                    collect(element, path: "\(path).\(key)", owner: owner, property: property, into: &found)
                    check(found.isEmpty || (!key.isEmpty && !key.contains(".")),
                          "Module: property '\(property)' of \(type(of: owner)) holds a module under key '\(key)'; keys of module dictionaries must be non-empty and contain no '.'")
                    out += found
                }
            } else if pairs.allSatisfy({ $0.key is Int }) {
                for (key, element) in pairs.map({ ($0.key as! Int, $0.value) }).sorted(by: { $0.0 < $1.0 }) {
                    collect(element, path: "\(path).\(key)", owner: owner, property: property, into: &out)
                }
            } else {
                refuseIfHoldsModules(value, owner: owner, property: property, shape: "a dictionary whose keys are not String or Int")
            }
        case .set:
            refuseIfHoldsModules(value, owner: owner, property: property, shape: "a Set (unordered, so its modules have no stable names)")
        case .struct:
            refuseIfHoldsModules(value, owner: owner, property: property, shape: "a struct")
        case .enum:
            refuseIfHoldsModules(value, owner: owner, property: property, shape: "an enum")
        default:
            refuseIfHoldsModules(value, owner: owner, property: property, shape: "a class that is not a Module")
        }
    }

    /// Values that never hold modules, skipped without reflecting into them (tensors,
    /// numbers, strings, devices and arrays of them).
    private static func isLeafValue(_ value: Any) -> Bool {
        switch value {
        case is Tensor, is TensorSlot, is Storage, is Int, is Float, is Double, is Bool, is String, is Int32,
             is Device, is DType, is [Tensor], is [Float], is [Int], is [Double], is [Int32], is [Bool], is [String],
             is [UInt8], is [UInt32], is Set<Int>, is Data:
            return true
        default:
            return false
        }
    }

    /// Stops with a message when `value` holds a module anywhere inside.
    private static func refuseIfHoldsModules(_ value: Any, owner: Module, property: String, shape: String) {
        var visited = Set<ObjectIdentifier>()
        guard holdsModule(value, visited: &visited) else { return }
        check(false, "Module: property '\(property)' of \(type(of: owner)) holds modules inside \(type(of: value)), \(shape), which module discovery cannot name; hold them in a property of their own, an array, a tuple, a [String: Module] dictionary, ModuleList or ModuleDict")
    }

    /// Whether `value` holds a module anywhere inside (classes are visited once).
    private static func holdsModule(_ value: Any, visited: inout Set<ObjectIdentifier>) -> Bool {
        if value is Module { return true }
        if isLeafValue(value) { return false }
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .class {
            guard visited.insert(ObjectIdentifier(value as AnyObject)).inserted else { return false }
        }
        for child in mirror.children where holdsModule(child.value, visited: &visited) { return true }
        var parent = mirror.superclassMirror
        while let p = parent {
            for child in p.children where holdsModule(child.value, visited: &visited) { return true }
            parent = p.superclassMirror
        }
        return false
    }
}

extension Mirror {
    /// Children of this type and of every superclass, base class first.
    var allChildren: [Mirror.Child] {
        (superclassMirror?.allChildren ?? []) + Array(children)
    }
}
