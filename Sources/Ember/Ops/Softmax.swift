/// Softmax and log-softmax: a fused, numerically stable row kernel on the last dim (other
/// dims are moved last and back), with backward rules in Tensor ops.
extension Tensor {
    private func softmaxForward(dim: Int, log: Bool) -> Tensor {
        let d = Tensor.normalizeDim(dim, rank: rank, op: log ? "logSoftmax" : "softmax")
        let last = rank - 1
        let moved = d == last || rank == 0 ? self : transpose(d, last)
        let source = moved.floatStorage.dense
        let out = Tensor(uninitialized: source.shape, device: device, op: log ? "logSoftmax" : "softmax")
        let cols = rank == 0 ? 1 : source.shape[last]
        if out.count > 0 {
            backend.softmax(source.storage.buffer, offset: source.offset, rows: out.count / cols, cols: cols,
                            log: log, destination: out.storage.buffer)
        }
        return d == last || rank == 0 ? out : out.detach().transpose(d, last)
    }

    /// Softmax along `dim`: exp(x) / sum(exp(x)). Float32 under `Tensor.autocast`.
    public func softmax(dim: Int = -1) -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.softmax(dim: dim) }
        if let narrow = viaFloat32({ $0.softmax(dim: dim) }) { return narrow }
        let y = softmaxForward(dim: dim, log: false)
        return y.recording("SoftmaxBackward", inputs: [self]) {
            let x = SavedTensor(self, op: "SoftmaxBackward")
            let saved = SavedTensor(y.detach(), op: "SoftmaxBackward")
            return { g in
                let s = GradMode.enabled ? x.value.softmax(dim: dim) : saved.value
                return [s * (g - (g * s).sum(dim: dim, keepDim: true))]
            }
        }
    }

    /// Log-softmax along `dim`: x - logSumExp(x). Float32 under `Tensor.autocast`.
    public func logSoftmax(dim: Int = -1) -> Tensor {
        if let x = Autocast.fullPrecision(self) { return x.logSoftmax(dim: dim) }
        if let narrow = viaFloat32({ $0.logSoftmax(dim: dim) }) { return narrow }
        let y = softmaxForward(dim: dim, log: true)
        return y.recording("LogSoftmaxBackward", inputs: [self]) {
            let x = SavedTensor(self, op: "LogSoftmaxBackward")
            let saved = SavedTensor(y.detach(), op: "LogSoftmaxBackward")
            return { g in
                let s = GradMode.enabled ? x.value.softmax(dim: dim) : saved.value.exp()
                return [g - s * g.sum(dim: dim, keepDim: true)]
            }
        }
    }
}
