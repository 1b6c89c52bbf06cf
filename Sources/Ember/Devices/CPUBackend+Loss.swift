import CPUKernels
import Foundation

/// The fused cross-entropy rows on the CPU: each row's log-softmax (or softmax, for the
/// gradient) from the AVX softmax of `CPUKernels` into a scratch row, then the target's pick
/// and the smoothing sum, as the composed log-softmax, gather and sum compute them.
extension CPUBackend {
    func crossEntropy(_ logits: StridedView, target: StridedView, weight: DeviceBuffer?, smoothing: Float,
                      indices: IndexRule, destination: DeviceBuffer) {
        let rows = logits.shape[0], classes = logits.shape[1]
        pool.noteKernels(1, bytes: Traffic.crossEntropy(logits, target))
        let x = UnsafePointer(floats(logits.buffer) + logits.offset), rowStride = logits.strides[0]
        let w = weight.map { UnsafePointer(floats($0)) }, out = floats(destination), keptOut = out + rows
        let label = labels(target)
        let ignored = indices.ignored ?? Int.min
        parallelFor(rows, grain: Swift.max(1, 8192 / Swift.max(classes, 1))) { s, e in
            let logProbs = UnsafeMutablePointer<Float>.allocate(capacity: classes)
            defer { logProbs.deallocate() }
            for i in s..<e {
                let y = label(i)
                if y == ignored {
                    out[i] = 0
                    keptOut[i] = 0
                    continue
                }
                check(y >= 0 && y < classes, indices.outOfBounds(y, size: classes))
                ember_softmax_rows(x + i * rowStride, logProbs, 1, classes, 1)
                let wy = w.map { $0[y] } ?? 1
                var smooth: Float = 0
                if smoothing != 0 {
                    if let w { for c in 0..<classes { smooth += logProbs[c] * w[c] } } else { for c in 0..<classes { smooth += logProbs[c] } }
                }
                out[i] = -(logProbs[y] * wy * (1 - smoothing) + smooth * (smoothing / Float(classes)))
                keptOut[i] = wy
            }
        }
    }

    func crossEntropyBackward(_ logits: StridedView, target: StridedView, weight: DeviceBuffer?, smoothing: Float,
                              indices: IndexRule, gradient: StridedView, divisor: StridedView?, destination: DeviceBuffer) {
        let rows = logits.shape[0], classes = logits.shape[1]
        pool.noteKernels(1, bytes: Traffic.crossEntropyBackward(logits, target, gradient))
        let x = UnsafePointer(floats(logits.buffer) + logits.offset), rowStride = logits.strides[0]
        let w = weight.map { UnsafePointer(floats($0)) }, dst = floats(destination)
        let g = UnsafePointer(floats(gradient.buffer) + gradient.offset), gs = gradient.strides[0]
        let scale = divisor.map { floats($0.buffer)[$0.offset] }
        let label = labels(target)
        let ignored = indices.ignored ?? Int.min
        let share = smoothing / Float(classes)
        var total = Float(classes)
        if let w { total = (0..<classes).reduce(0) { $0 + w[$1] } }
        parallelFor(rows, grain: Swift.max(1, 8192 / Swift.max(classes, 1))) { s, e in
            for i in s..<e {
                let d = dst + i * classes, y = label(i)
                if y == ignored || y < 0 || y >= classes {
                    d.update(repeating: 0, count: classes)
                    continue
                }
                ember_softmax_rows(x + i * rowStride, d, 1, classes, 0)
                let wy = w.map { $0[y] } ?? 1, gi = scale.map { g[i * gs] / $0 } ?? g[i * gs]
                let a = (1 - smoothing) * wy + share * total
                if let w {
                    for c in 0..<classes { d[c] = gi * (d[c] * a - share * w[c]) }
                } else {
                    for c in 0..<classes { d[c] = gi * (d[c] * a - share) }
                }
                d[y] -= gi * (1 - smoothing) * wy
            }
        }
    }

    /// Entry `i` of a 1-D Int32 or Int64 view of class indices.
    private func labels(_ target: StridedView) -> (Int) -> Int {
        let stride = target.strides[0]
        if target.dtype == .int64 {
            let p = UnsafePointer(elements(target.buffer, as: Int64.self) + target.offset)
            return { Int(p[$0 * stride]) }
        }
        let p = UnsafePointer(elements(target.buffer, as: Int32.self) + target.offset)
        return { Int(p[$0 * stride]) }
    }
}
