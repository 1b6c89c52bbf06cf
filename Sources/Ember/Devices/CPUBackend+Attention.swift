import CPUKernels
import Foundation

/// Attention's fused row kernels on the CPU: the masked, scaled softmax of a block of scores
/// (the causal mask is an index test, an additive mask is read through broadcast strides,
/// never expanded) and its backward. The exponentials run in the AVX softmax of `CPUKernels`
/// over each row's unmasked prefix.
extension CPUBackend {
    func attentionSoftmax(_ scores: DeviceBuffer, batch: Int, rows: Int, cols: Int, scale: Float, causal: Bool,
                          mask: StridedView?, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.elements(2 * batch * rows * cols) + (mask.map(Traffic.of) ?? 0))
        let src = UnsafePointer(floats(scores)), dst = floats(destination)
        let maskBase = mask.map { UnsafePointer(floats($0.buffer) + $0.offset) }
        let ms = mask?.strides ?? [0, 0, 0, 0], inner = mask?.shape[1] ?? 1
        parallelFor(batch * rows, grain: Swift.max(1, 8192 / Swift.max(cols, 1))) { s, e in
            for r in s..<e {
                let i = r % rows, b = r / rows
                let valid = causal ? Swift.min(i + 1, cols) : cols
                let x = src + r * cols, y = dst + r * cols
                var top = -Float.infinity
                if let maskBase {
                    let m = maskBase + (b / inner) * ms[0] + (b % inner) * ms[1] + i * ms[2]
                    let step = ms[3]
                    for j in 0..<valid {
                        let v = x[j] * scale + m[j * step]
                        y[j] = v
                        top = Swift.max(top, v)
                    }
                } else {
                    for j in 0..<valid {
                        let v = x[j] * scale
                        y[j] = v
                        top = Swift.max(top, v)
                    }
                }
                if top == -Float.infinity {
                    // Every key masked: PyTorch's fused attention gives zero weights.
                    for j in 0..<valid { y[j] = 0 }
                } else {
                    ember_softmax_rows(y, y, 1, valid, 0)
                }
                for j in valid..<cols { y[j] = 0 }
            }
        }
    }

    func attentionSoftmaxBackward(_ probs: DeviceBuffer, gradient: DeviceBuffer, batch: Int, rows: Int, cols: Int,
                                  scale: Float, causal: Bool, destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.elements(3 * batch * rows * cols))
        let p = UnsafePointer(floats(probs)), g = UnsafePointer(floats(gradient)), dst = floats(destination)
        parallelFor(batch * rows, grain: Swift.max(1, 8192 / Swift.max(cols, 1))) { s, e in
            for r in s..<e {
                let valid = causal ? Swift.min(r % rows + 1, cols) : cols
                let pr = p + r * cols, gr = g + r * cols, y = dst + r * cols
                var dot: Float = 0
                for j in 0..<valid { dot += pr[j] * gr[j] }
                for j in 0..<valid { y[j] = scale * pr[j] * (gr[j] - dot) }
                for j in valid..<cols { y[j] = 0 }
            }
        }
    }
}
