/// 2-D max and average pooling over NCHW tensors.
extension Tensor {
    /// Max over `kernel` x `kernel` windows (stride defaults to the kernel size); the gradient
    /// flows to the first maximum of each window.
    public func maxPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0, dilation: Int = 1) -> Tensor {
        let s = stride ?? kernel
        let g = windowGeometry("maxPool2d", kernel: (kernel, kernel), stride: (s, s), padding: (padding, padding), dilation: (dilation, dilation))
        check(padding <= kernel / 2, "maxPool2d: padding \(padding) must be at most half the kernel size \(kernel)")
        let source = floatStorage.dense
        let outShape = [g.batch, g.channels, g.outHeight, g.outWidth]
        let out = Tensor(uninitialized: outShape, device: device, op: "maxPool2d")
        let indices = Tensor(uninitialized: outShape, dtype: .int32, device: device, op: "maxPool2d")
        if out.count > 0 {
            backend.maxPool2d(source.storage.buffer, offset: source.offset, geometry: g,
                              destination: out.storage.buffer, indices: indices.storage.buffer)
        }
        return out.recording("MaxPool2DBackward", inputs: [self]) {
            { grad in [grad.maxPoolAdjoint(g, indices)] }
        }
    }

    /// The backward of max pooling: gradients `[N, C, outH, outW]` moved to the positions in
    /// `indices`. Differentiable: its own adjoint reads the gradient back at those positions.
    private func maxPoolAdjoint(_ g: Conv2dGeometry, _ indices: Tensor) -> Tensor {
        let source = dense
        let out = Tensor(uninitialized: [g.batch, g.channels, g.height, g.width], device: device, op: "maxPool2dBackward")
        if out.count > 0 {
            backend.maxPool2dBackward(source.storage.buffer, indices: indices.storage.buffer, geometry: g, destination: out.storage.buffer)
        }
        return out.recording("MaxPool2DBackwardBackward", inputs: [self]) {
            { grad in
                let planes = g.batch * g.channels
                return [grad.reshape([planes, g.height * g.width])
                    .gather(dim: 1, index: indices.reshape([planes, g.outHeight * g.outWidth]))
                    .reshape([g.batch, g.channels, g.outHeight, g.outWidth])]
            }
        }
    }

    /// Mean over `kernel` x `kernel` windows (stride defaults to the kernel size); padding is
    /// counted in the divisor when `countIncludePad` (PyTorch's default).
    public func avgPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) -> Tensor {
        let s = stride ?? kernel
        let g = windowGeometry("avgPool2d", kernel: (kernel, kernel), stride: (s, s), padding: (padding, padding), dilation: (1, 1))
        check(padding <= kernel / 2, "avgPool2d: padding \(padding) must be at most half the kernel size \(kernel)")
        return avgPool(g, countIncludePad)
    }

    private func avgPool(_ g: Conv2dGeometry, _ countPadding: Bool) -> Tensor {
        let source = floatStorage.dense
        let out = Tensor(uninitialized: [g.batch, g.channels, g.outHeight, g.outWidth], device: device, op: "avgPool2d")
        if out.count > 0 {
            backend.avgPool2d(source.storage.buffer, offset: source.offset, geometry: g, countPadding: countPadding,
                              destination: out.storage.buffer)
        }
        return out.recording("AvgPool2DBackward", inputs: [self]) { { grad in [grad.avgPoolAdjoint(g, countPadding)] } }
    }

    /// The adjoint of average pooling (its backward); differentiable, its own adjoint being the pool.
    private func avgPoolAdjoint(_ g: Conv2dGeometry, _ countPadding: Bool) -> Tensor {
        let source = dense
        let out = Tensor(uninitialized: [g.batch, g.channels, g.height, g.width], device: device, op: "avgPool2dBackward")
        if out.count > 0 {
            backend.avgPool2dBackward(source.storage.buffer, geometry: g, countPadding: countPadding, destination: out.storage.buffer)
        }
        return out.recording("AvgPool2DBackwardBackward", inputs: [self]) { { grad in [grad.avgPool(g, countPadding)] } }
    }
}
