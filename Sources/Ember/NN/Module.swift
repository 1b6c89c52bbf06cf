/// A trainable tensor owned by a module: `@Parameter var weight: Tensor`.
/// The wrapper is a reference, so `Module.to(_:)` and checkpoint loading can replace
/// the tensor it holds.
@propertyWrapper
public final class Parameter {
    /// The parameter tensor (a leaf; requires grad unless frozen with `requiresGrad = false`).
    public var wrappedValue: Tensor
    /// The name used in state dicts instead of the property name (e.g. PyTorch's snake_case).
    public let name: String?

    /// Wraps `tensor`, marking it as requiring grad; `name` overrides the state-dict name.
    public init(wrappedValue: Tensor, name: String? = nil) {
        check(wrappedValue.isLeaf, "Parameter: a parameter must be a leaf tensor; use detach()")
        wrappedValue.requiresGradFlag = true
        self.wrappedValue = wrappedValue
        self.name = name
    }
}

/// A parameter that may be absent, e.g. the bias of `Linear(..., bias: false)`: absent
/// parameters do not appear in `parameters()` or state dicts.
@propertyWrapper
public final class OptionalParameter {
    /// The parameter tensor, or nil.
    public var wrappedValue: Tensor?
    /// The name used in state dicts instead of the property name.
    public let name: String?

    /// Wraps `tensor` (marking it as requiring grad); `name` overrides the state-dict name.
    public init(wrappedValue: Tensor?, name: String? = nil) {
        wrappedValue?.requiresGradFlag = true
        self.wrappedValue = wrappedValue
        self.name = name
    }
}

/// What module traversal sees of `Parameter`, `OptionalParameter` and `Buffer`.
protocol TensorSlot: AnyObject {
    /// Whether the slot holds a buffer (state) rather than a parameter.
    var isBuffer: Bool { get }
    /// The state-dict name override.
    var name: String? { get }
    /// The held tensor (nil for an absent optional parameter).
    var tensor: Tensor? { get set }
}

extension Parameter: TensorSlot {
    var isBuffer: Bool { false }
    var tensor: Tensor? {
        get { wrappedValue }
        set { if let newValue { wrappedValue = newValue } }
    }
}

extension OptionalParameter: TensorSlot {
    var isBuffer: Bool { false }
    var tensor: Tensor? {
        get { wrappedValue }
        set { wrappedValue = newValue }
    }
}

extension Buffer: TensorSlot {
    var isBuffer: Bool { true }
    var tensor: Tensor? {
        get { wrappedValue }
        set { if let newValue { wrappedValue = newValue } }
    }
}

/// A non-trainable tensor that is part of a module's state (BatchNorm running statistics):
/// saved in checkpoints and moved by `to(_:)`, never returned by `parameters()`.
@propertyWrapper
public final class Buffer {
    /// The buffer tensor.
    public var wrappedValue: Tensor
    /// The name used in state dicts instead of the property name (`running_mean`).
    public let name: String?

    /// Wraps `tensor`; `name` overrides the state-dict name.
    public init(wrappedValue: Tensor, name: String? = nil) {
        self.wrappedValue = wrappedValue
        self.name = name
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

    /// Wraps `tensor`; `name` overrides the state-dict name.
    public init(wrappedValue: Tensor?, name: String? = nil) {
        self.wrappedValue = wrappedValue
        self.name = name
    }
}

extension OptionalBuffer: TensorSlot {
    var isBuffer: Bool { true }
    var tensor: Tensor? {
        get { wrappedValue }
        set { wrappedValue = newValue }
    }
}

/// A module that maps one tensor to another: every built-in layer, and any model that
/// should sit inside `Sequential` (`final class Net: Module, Layer`).
public protocol Layer: Module {
    /// The forward pass.
    func callAsFunction(_ input: Tensor) -> Tensor
}

/// The base class of every layer and model, like `torch.nn.Module`.
///
/// Subclasses declare parameters with `@Parameter`, buffers with `@Buffer`, and
/// sub-modules as plain stored properties (single, optional or arrays of modules);
/// they are found by reflection and named with dotted paths (`fc1.weight`, `layers.0.bias`).
open class Module {
    /// Whether the module is in training mode (dropout active, batch statistics used).
    public private(set) var isTraining = true

    /// Creates a module in training mode.
    public init() {}

    /// Direct children with their property names, in declaration order.
    open func namedChildren() -> [(name: String, module: Module)] {
        var out: [(String, Module)] = []
        for child in Mirror(reflecting: self).allChildren {
            let name = child.label.map(Module.propertyName) ?? "\(out.count)"
            switch child.value {
            case let module as Module: out.append((name, module))
            case let modules as [Module]:
                for (i, m) in modules.enumerated() { out.append(("\(name).\(i)", m)) }
            case let optional as Module?:
                if let m = optional { out.append((name, m)) }
            default: break
            }
        }
        return out
    }

    /// Every parameter with its dotted name, depth first in declaration order.
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        slots(buffers: false).compactMap { slot in slot.slot.tensor.map { (slot.name, $0) } }
    }

    /// Every parameter, in the order of `namedParameters()`.
    public func parameters() -> [Tensor] {
        namedParameters().map(\.tensor)
    }

    /// Every buffer with its dotted name.
    public func namedBuffers() -> [(name: String, tensor: Tensor)] {
        slots(buffers: true).compactMap { slot in slot.slot.tensor.map { (slot.name, $0) } }
    }

    /// Parameters and buffers by dotted name, in PyTorch's `state_dict()` order: each
    /// module's own parameters, then its own buffers, then its children's entries.
    public func stateDict() -> [(name: String, tensor: Tensor)] {
        slots().compactMap { slot in slot.slot.tensor.map { (slot.name, $0) } }
    }

    /// The parameter slots (or buffer slots) of this module and its descendants, with dotted
    /// names; absent optional parameters are included with a nil tensor.
    func slots(buffers: Bool) -> [(name: String, slot: TensorSlot)] {
        slots().filter { $0.slot.isBuffer == buffers }
    }

    /// Every parameter and buffer slot in state-dict order, with dotted names.
    private func slots(prefix: String = "") -> [(name: String, slot: TensorSlot)] {
        var own: [(name: String, slot: TensorSlot)] = []
        for child in Mirror(reflecting: self).allChildren {
            guard let slot = child.value as? TensorSlot, let label = child.label else { continue }
            own.append((prefix + (slot.name ?? Module.propertyName(label)), slot))
        }
        var out = own.filter { !$0.slot.isBuffer } + own.filter { $0.slot.isBuffer }
        for (name, module) in namedChildren() {
            out += module.slots(prefix: prefix + name + ".")
        }
        return out
    }

    /// Sets training mode here and in every sub-module; returns self.
    @discardableResult
    public func train(_ mode: Bool = true) -> Self {
        isTraining = mode
        for (_, child) in namedChildren() { child.train(mode) }
        return self
    }

    /// Sets evaluation mode (`train(false)`); returns self.
    @discardableResult
    public func eval() -> Self { train(false) }

    /// Moves every parameter and buffer to `device` (parameters stay leaves that require
    /// grad; their gradients are dropped). Create optimizers after moving the model.
    @discardableResult
    public func to(_ device: Device) -> Self {
        for (_, slot) in slots(buffers: false) + slots(buffers: true) {
            guard let tensor = slot.tensor, tensor.device != device else { continue }
            let moved = tensor.to(device).detach()
            moved.requiresGradFlag = tensor.requiresGradFlag
            slot.tensor = moved
        }
        return self
    }

    /// Clears the gradient of every parameter.
    public func zeroGrad() {
        for p in parameters() { p.zeroGrad() }
    }

    /// The number of scalar parameters.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    private static func propertyName(_ label: String) -> String {
        label.hasPrefix("_") ? String(label.dropFirst()) : label
    }
}

extension Mirror {
    /// Children of this type and of every superclass, base class first.
    var allChildren: [Mirror.Child] {
        (superclassMirror?.allChildren ?? []) + Array(children)
    }
}
