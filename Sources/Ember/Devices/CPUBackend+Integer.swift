/// Exact integer arithmetic of the CPU backend: the ops' integer forms (`IntegerForm`) and
/// the reductions over dense Int64 elements, split across cores like the float loops.
extension CPUBackend {
    func integerUnary(_ op: UnaryKernel, _ source: DeviceBuffer, offset: Int, count: Int, destination: DeviceBuffer) {
        guard let form = op.integer else { fatalError("\(op.name) has no integer form") }
        pool.noteKernels(1, bytes: Traffic.elements(2 * count, .int64))
        let x = UnsafePointer(elements(source, as: Int64.self) + offset), y = elements(destination, as: Int64.self)
        parallelFor(count) { s, e in
            for i in s..<e { y[i] = form.apply(x[i]) }
        }
    }

    func integerBinary(_ op: BinaryKernel, _ a: IntegerOperand, _ b: IntegerOperand, count: Int, destination: DeviceBuffer) {
        guard let form = op.integer else { fatalError("\(op.name) has no integer form") }
        pool.noteKernels(1, bytes: Traffic.integerBinary(op, a, b, count: count))
        // A constant operand reads as a one-element run with stride 0.
        func run(_ operand: IntegerOperand, _ constant: UnsafeMutablePointer<Int64>) -> (UnsafePointer<Int64>, Int) {
            switch operand {
            case .dense(let buffer, let offset): return (UnsafePointer(elements(buffer, as: Int64.self) + offset), 1)
            case .scalar(let value):
                constant.pointee = value
                return (UnsafePointer(constant), 0)
            }
        }
        withUnsafeTemporaryAllocation(of: Int64.self, capacity: 2) { constants in
            let (x, xs) = run(a, constants.baseAddress!), (y, ys) = run(b, constants.baseAddress! + 1)
            if op.producesMask {
                let out = elements(destination, as: UInt8.self)
                parallelFor(count) { s, e in
                    for i in s..<e { out[i] = UInt8(truncatingIfNeeded: form.apply(x[i * xs], y[i * ys])) }
                }
            } else {
                let out = elements(destination, as: Int64.self)
                parallelFor(count) { s, e in
                    for i in s..<e { out[i] = form.apply(x[i * xs], y[i * ys]) }
                }
            }
        }
    }

    func integerReduce(_ op: ReduceOp, _ source: DeviceBuffer, offset: Int, outer: Int, size: Int, inner: Int,
                       destination: DeviceBuffer) {
        pool.noteKernels(1, bytes: Traffic.elements(outer * (size + 1) * inner, .int64))
        let src = UnsafePointer(elements(source, as: Int64.self) + offset), out = elements(destination, as: Int64.self)
        parallelFor(outer * inner, grain: Swift.max(1, CPUBackend.parallelThreshold / Swift.max(size, 1))) { s, e in
            for index in s..<e {
                let o = index / inner, i = index % inner
                let base = src + o * size * inner + i
                var best = base[0], at = 0
                for k in 1..<Swift.max(size, 1) {
                    let x = base[k * inner]
                    switch op {
                    case .sum: best &+= x
                    case .max, .argmax: if x > best { best = x; at = k }
                    case .min, .argmin: if x < best { best = x; at = k }
                    }
                }
                out[index] = op.producesIndices ? Int64(at) : best
            }
        }
    }
}
