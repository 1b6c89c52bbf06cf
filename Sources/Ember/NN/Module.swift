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
        precondition(wrappedValue.isLeaf, "Parameter: a parameter must be a leaf tensor; use detach()")
        wrappedValue.requiresGradFlag = true
        self.wrappedValue = wrappedValue
        self.name = name
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
    public func namedChildren() -> [(name: String, module: Module)] {
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
        parameterBoxes().map { ($0.name, $0.box.wrappedValue) }
    }

    /// Every parameter, in the order of `namedParameters()`.
    public func parameters() -> [Tensor] {
        namedParameters().map(\.tensor)
    }

    /// Every buffer with its dotted name.
    public func namedBuffers() -> [(name: String, tensor: Tensor)] {
        bufferBoxes().map { ($0.name, $0.box.wrappedValue) }
    }

    /// Parameters and buffers by dotted name, as PyTorch's `state_dict()`.
    public func stateDict() -> [(name: String, tensor: Tensor)] {
        namedParameters() + namedBuffers()
    }

    func parameterBoxes(prefix: String = "") -> [(name: String, box: Parameter)] {
        var out: [(String, Parameter)] = []
        for child in Mirror(reflecting: self).allChildren {
            if let box = child.value as? Parameter, let label = child.label {
                out.append((prefix + (box.name ?? Module.propertyName(label)), box))
            }
        }
        for (name, module) in namedChildren() {
            out += module.parameterBoxes(prefix: prefix + name + ".")
        }
        return out
    }

    func bufferBoxes(prefix: String = "") -> [(name: String, box: Buffer)] {
        var out: [(String, Buffer)] = []
        for child in Mirror(reflecting: self).allChildren {
            if let box = child.value as? Buffer, let label = child.label {
                out.append((prefix + (box.name ?? Module.propertyName(label)), box))
            }
        }
        for (name, module) in namedChildren() {
            out += module.bufferBoxes(prefix: prefix + name + ".")
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
        for (_, box) in parameterBoxes() where box.wrappedValue.device != device {
            let moved = box.wrappedValue.to(device).detach()
            moved.requiresGradFlag = box.wrappedValue.requiresGradFlag
            box.wrappedValue = moved
        }
        for (_, box) in bufferBoxes() where box.wrappedValue.device != device {
            box.wrappedValue = box.wrappedValue.to(device).detach()
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
