import CBLAS
import Foundation

/// GEMM (OpenBLAS), convolution and pooling building blocks, gather and scatter-add on the CPU.
extension CPUBackend {
    func gemm(m: Int, n: Int, k: Int, batch: Int, alpha: Float, a: GemmOperand, b: GemmOperand,
              beta: Float, c: DeviceBuffer, cOffset: Int) {
        let pa = floats(a.buffer), pb = floats(b.buffer), pc = floats(c)
        for i in 0..<batch {
            cblas_sgemm(CblasRowMajor, a.transposed ? CblasTrans : CblasNoTrans, b.transposed ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha,
                        pa + a.offset + i * a.batchStride, Int32(a.ld),
                        pb + b.offset + i * b.batchStride, Int32(b.ld),
                        beta, pc + cOffset + i * m * n, Int32(n))
        }
    }

    func im2col(_ source: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, destination: DeviceBuffer) {
        let src = floats(source) + offset, dst = floats(destination)
        let (oh, ow) = (g.outHeight, g.outWidth)
        let plane = g.height * g.width, cols = oh * ow, taps = g.kernelH * g.kernelW
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let n = nc / g.channels, c = nc % g.channels
                let input = src + nc * plane
                for ki in 0..<g.kernelH {
                    for kj in 0..<g.kernelW {
                        let row = (n * g.channels * taps + c * taps + ki * g.kernelW + kj) * cols
                        for y in 0..<oh {
                            let ih = y * g.strideH - g.padH + ki * g.dilationH
                            let out = dst + row + y * ow
                            if ih < 0 || ih >= g.height {
                                for x in 0..<ow { out[x] = 0 }
                                continue
                            }
                            let line = input + ih * g.width
                            for x in 0..<ow {
                                let iw = x * g.strideW - g.padW + kj * g.dilationW
                                out[x] = iw >= 0 && iw < g.width ? line[iw] : 0
                            }
                        }
                    }
                }
            }
        }
    }

    func col2im(_ columns: DeviceBuffer, geometry g: Conv2dGeometry, destination: DeviceBuffer) {
        let src = floats(columns), dst = floats(destination)
        let (oh, ow) = (g.outHeight, g.outWidth)
        let plane = g.height * g.width, cols = oh * ow, taps = g.kernelH * g.kernelW
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let n = nc / g.channels, c = nc % g.channels
                let output = dst + nc * plane
                output.initialize(repeating: 0, count: plane)
                for ki in 0..<g.kernelH {
                    for kj in 0..<g.kernelW {
                        let row = src + (n * g.channels * taps + c * taps + ki * g.kernelW + kj) * cols
                        for y in 0..<oh {
                            let ih = y * g.strideH - g.padH + ki * g.dilationH
                            if ih < 0 || ih >= g.height { continue }
                            for x in 0..<ow {
                                let iw = x * g.strideW - g.padW + kj * g.dilationW
                                if iw >= 0 && iw < g.width { output[ih * g.width + iw] += row[y * ow + x] }
                            }
                        }
                    }
                }
            }
        }
    }

    func maxPool2d(_ source: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, destination: DeviceBuffer, indices: DeviceBuffer) {
        let src = floats(source) + offset, dst = floats(destination), idx = ints(indices)
        let (oh, ow) = (g.outHeight, g.outWidth)
        let plane = g.height * g.width
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let input = src + nc * plane
                for y in 0..<oh {
                    for x in 0..<ow {
                        var best = -Float.infinity, at = -1
                        for ki in 0..<g.kernelH {
                            let ih = y * g.strideH - g.padH + ki * g.dilationH
                            if ih < 0 || ih >= g.height { continue }
                            for kj in 0..<g.kernelW {
                                let iw = x * g.strideW - g.padW + kj * g.dilationW
                                if iw < 0 || iw >= g.width { continue }
                                let v = input[ih * g.width + iw]
                                if at < 0 || v > best || (v.isNaN && !best.isNaN) {
                                    best = v
                                    at = ih * g.width + iw
                                }
                            }
                        }
                        let o = nc * oh * ow + y * ow + x
                        dst[o] = best
                        idx[o] = Int32(Swift.max(at, 0))
                    }
                }
            }
        }
    }

    func maxPool2dBackward(_ gradient: DeviceBuffer, indices: DeviceBuffer, geometry g: Conv2dGeometry, destination: DeviceBuffer) {
        let grad = floats(gradient), idx = ints(indices), dst = floats(destination)
        let plane = g.height * g.width, outputs = g.outHeight * g.outWidth
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let output = dst + nc * plane
                output.initialize(repeating: 0, count: plane)
                for o in 0..<outputs { output[Int(idx[nc * outputs + o])] += grad[nc * outputs + o] }
            }
        }
    }

    /// Window bounds and divisor of average-pooling output (y, x).
    @inline(__always)
    private func avgWindow(_ g: Conv2dGeometry, _ y: Int, _ x: Int, _ countPadding: Bool) -> (Range<Int>, Range<Int>, Float) {
        let h0 = y * g.strideH - g.padH, w0 = x * g.strideW - g.padW
        let rows = Swift.max(h0, 0)..<Swift.min(h0 + g.kernelH, g.height)
        let cols = Swift.max(w0, 0)..<Swift.min(w0 + g.kernelW, g.width)
        let divisor = countPadding ? Float(g.kernelH * g.kernelW) : Float(rows.count * cols.count)
        return (rows, cols, divisor)
    }

    func avgPool2d(_ source: DeviceBuffer, offset: Int, geometry g: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer) {
        let src = floats(source) + offset, dst = floats(destination)
        let (oh, ow) = (g.outHeight, g.outWidth)
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let input = src + nc * g.height * g.width
                for y in 0..<oh {
                    for x in 0..<ow {
                        let (rows, cols, divisor) = avgWindow(g, y, x, countPadding)
                        var total: Float = 0
                        for ih in rows { for iw in cols { total += input[ih * g.width + iw] } }
                        dst[nc * oh * ow + y * ow + x] = total / divisor
                    }
                }
            }
        }
    }

    func avgPool2dBackward(_ gradient: DeviceBuffer, geometry g: Conv2dGeometry, countPadding: Bool, destination: DeviceBuffer) {
        let grad = floats(gradient), dst = floats(destination)
        let (oh, ow) = (g.outHeight, g.outWidth)
        parallelFor(g.batch * g.channels, grain: 1) { s, e in
            for nc in s..<e {
                let output = dst + nc * g.height * g.width
                output.initialize(repeating: 0, count: g.height * g.width)
                for y in 0..<oh {
                    for x in 0..<ow {
                        let (rows, cols, divisor) = avgWindow(g, y, x, countPadding)
                        let share = grad[nc * oh * ow + y * ow + x] / divisor
                        for ih in rows { for iw in cols { output[ih * g.width + iw] += share } }
                    }
                }
            }
        }
    }

    func gather(_ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int,
                index: StridedView, destination: DeviceBuffer) {
        let src = floats(source) + offset, dst = floats(destination), idx = ints(index.buffer) + index.offset
        let j = index.shape[1]
        let (s0, s1, s2) = (index.strides[0], index.strides[1], index.strides[2])
        parallelFor(outer * j * inner) { s, e in
            for t in s..<e {
                let o = t / (j * inner), r = t % (j * inner), jj = r / inner, i = r % inner
                let k = Int(idx[o * s0 + jj * s1 + i * s2])
                dst[t] = k >= 0 && k < size ? src[(o * size + k) * inner + i] : 0
            }
        }
    }

    func scatterAdd(_ values: StridedView, index: StridedView, outer: Int, size: Int, inner: Int, destination: DeviceBuffer) {
        let val = floats(values.buffer) + values.offset, idx = ints(index.buffer) + index.offset, dst = floats(destination)
        let j = index.shape[1]
        // Different `o` write disjoint rows, so the outer dimension can run in parallel.
        parallelFor(outer, grain: Swift.max(1, CPUBackend.parallelThreshold / Swift.max(j * inner, 1))) { s, e in
            for o in s..<e {
                for jj in 0..<j {
                    for i in 0..<inner {
                        let k = Int(idx[o * index.strides[0] + jj * index.strides[1] + i * index.strides[2]])
                        if k >= 0 && k < size {
                            dst[(o * size + k) * inner + i] += val[o * values.strides[0] + jj * values.strides[1] + i * values.strides[2]]
                        }
                    }
                }
            }
        }
    }
}
