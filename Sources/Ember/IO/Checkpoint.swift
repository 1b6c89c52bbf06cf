import Foundation

extension Module {
    /// Saves `stateDict()` to `url` as safetensors with PyTorch-compatible names
    /// (`fc1.weight`, `0.bias`, `bn.running_mean`), atomically.
    public func save(to url: URL) throws {
        try SafeTensors.write(stateDict(), to: url, metadata: ["format": "pt"])
    }

    /// Loads parameters and buffers saved by `save(to:)` or by PyTorch's safetensors.
    public func load(from url: URL, strict: Bool = true) throws {
        try loadStateDict(SafeTensors.read(from: url), strict: strict)
    }

    /// Copies `dict`'s tensors into this module's parameters and persistent buffers, in
    /// place (so an optimizer made earlier still holds them) and on their devices, converted
    /// to each target's dtype. A tensor reached under several names (tied weights, a shared
    /// module) loads from whichever of its names `dict` has; if it has several, their values
    /// must agree. With `strict`, missing and unexpected keys are errors; a shape mismatch
    /// always is. Every key and shape is checked first: nothing is changed when an error is
    /// thrown.
    public func loadStateDict(_ dict: StateDict, strict: Bool = true) throws {
        let targets = slotEntries().filter { $0.slot.persistent && $0.tensor != nil }
        var missing: [String] = [], shapes: [String] = []
        var updates: [(Tensor, Tensor)] = []
        for entry in targets {
            let current = entry.tensor!
            let present = entry.names.filter { dict[$0] != nil }
            guard let first = present.first else { missing.append(entry.name); continue }
            var ok = true
            for name in present where dict[name]!.shape != current.shape {
                shapes.append("\(name): expected \(Shape.describe(current.shape)), got \(Shape.describe(dict[name]!.shape))")
                ok = false
            }
            guard ok else { continue }
            let value = dict[first]!
            for name in present.dropFirst() where dict[name]!.float().toArray() != value.float().toArray() {
                shapes.append("\(name): holds other values than \(first), but both name one tied tensor")
                ok = false
            }
            if ok { updates.append((current, value)) }
        }
        let known = Set(targets.flatMap(\.names))
        let unexpected = dict.keys.filter { !known.contains($0) }.sorted()
        if !shapes.isEmpty || (strict && (!missing.isEmpty || !unexpected.isEmpty)) {
            throw EmberError.stateDictMismatch(missing: missing.sorted(), unexpected: strict ? unexpected : [], shapeMismatches: shapes)
        }
        for (current, value) in updates {
            if current.dtype.isFloatingPoint {
                Tensor.noGrad { current.copy(from: value.to(current.dtype).to(current.device)) }
            } else {
                current.replaceStorage(with: value.to(current.dtype).to(current.device))
            }
        }
    }
}

extension Optimizer {
    /// Saves the optimizer's state (step count, learning rate, per-parameter buffers).
    public func save(to url: URL) throws {
        try SafeTensors.write(stateDict(), to: url)
    }

    /// Restores state saved by `save(to:)`.
    public func load(from url: URL) throws {
        try loadStateDict(SafeTensors.read(from: url))
    }
}
