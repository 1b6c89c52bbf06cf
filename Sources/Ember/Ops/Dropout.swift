/// Inverted dropout: zeroes elements with probability `p` and scales the rest by 1/(1-p).
extension Tensor {
    /// Randomly zeroes elements with probability `p` while `training`; identity otherwise.
    /// The mask comes from the global generator (`Tensor.manualSeed`).
    public func dropout(p: Float = 0.5, training: Bool = true) -> Tensor {
        check(p >= 0 && p <= 1, "dropout: probability p must be in [0, 1], got \(p)")
        if !training || p == 0 { return self }
        if p == 1 { return self * 0 }
        let keep = Tensor.rand(shape, device: device) >= p
        return Tensor.where(keep, self * (1 / (1 - p)), 0)
    }
}
