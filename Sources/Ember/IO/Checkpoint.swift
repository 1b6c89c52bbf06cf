import Foundation

extension Module {
    /// Saves `stateDict()` to `url` as safetensors with PyTorch-compatible names
    /// (`fc1.weight`, `0.bias`, `bn.running_mean`), atomically.
    public func save(to url: URL) throws {
        try SafeTensors.write(stateDict(), to: url, metadata: ["format": "pt"])
    }

    /// Loads parameters and buffers saved by `save(to:)` or by PyTorch's safetensors.
    public func load(from url: URL, strict: Bool = true) throws {
        try loadStateDict(Dictionary(uniqueKeysWithValues: SafeTensors.read(from: url).map { ($0.name, $0.tensor) }), strict: strict)
    }

    /// Copies `dict`'s tensors into this module's parameters and buffers, in place (so an
    /// optimizer made earlier still holds them) and on their devices.
    /// With `strict`, missing and unexpected keys are errors; a shape mismatch always is.
    /// Nothing is changed when an error is thrown.
    public func loadStateDict(_ dict: [String: Tensor], strict: Bool = true) throws {
        let targets = slots(buffers: false) + slots(buffers: true)
        var missing: [String] = [], shapes: [String] = []
        var updates: [(TensorSlot, Tensor)] = []
        for (name, slot) in targets {
            guard let current = slot.tensor else { continue }
            guard let value = dict[name] else { missing.append(name); continue }
            guard value.shape == current.shape else {
                shapes.append("\(name): expected \(Shape.describe(current.shape)), got \(Shape.describe(value.shape))")
                continue
            }
            updates.append((slot, value))
        }
        let known = Set(targets.filter { $0.slot.tensor != nil }.map(\.name))
        let unexpected = dict.keys.filter { !known.contains($0) }.sorted()
        if !shapes.isEmpty || (strict && (!missing.isEmpty || !unexpected.isEmpty)) {
            throw EmberError.stateDictMismatch(missing: missing.sorted(), unexpected: strict ? unexpected : [], shapeMismatches: shapes)
        }
        for (slot, value) in updates {
            let current = slot.tensor!
            if current.dtype == .float32 {
                Tensor.noGrad { current.copy(from: value.float().to(current.device)) }
            } else {
                slot.tensor = value.int().to(current.device).detach().contiguousCopy()
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
        try loadStateDict(Dictionary(uniqueKeysWithValues: SafeTensors.read(from: url).map { ($0.name, $0.tensor) }))
    }
}
