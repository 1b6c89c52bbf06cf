/// Shape arithmetic shared by the tensor layer and the backends: element counts,
/// contiguous strides, broadcasting and dimension collapsing.
enum Shape {
    /// Number of elements of `shape` (1 for a scalar).
    @inline(__always)
    static func count(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape { n &*= d }
        return n
    }

    /// Row-major (C-order) strides for `shape`, in elements.
    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var acc = 1
        var i = shape.count - 1
        while i >= 0 {
            strides[i] = acc
            acc &*= max(shape[i], 1)
            i -= 1
        }
        return strides
    }

    /// True when `strides` describe a dense row-major layout of `shape`.
    static func isContiguous(_ shape: [Int], _ strides: [Int]) -> Bool {
        var expected = 1
        var i = shape.count - 1
        while i >= 0 {
            if shape[i] != 1 && strides[i] != expected { return false }
            expected &*= shape[i]
            i -= 1
        }
        return true
    }

    /// The NumPy broadcast of two shapes, or nil when they are incompatible.
    static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    /// Strides that read a tensor of `shape`/`strides` as if it had shape `target`
    /// (a broadcast of it): missing leading dims and size-1 dims get stride 0.
    static func broadcastStrides(shape: [Int], strides: [Int], to target: [Int]) -> [Int] {
        let lead = target.count - shape.count
        var out = [Int](repeating: 0, count: target.count)
        for i in 0..<shape.count where shape[i] != 1 {
            out[i + lead] = strides[i]
        }
        return out
    }

    /// Merges adjacent dimensions that every operand walks contiguously, and drops size-1
    /// dimensions, so kernels index as few dimensions as possible. Returns the collapsed
    /// shape and one collapsed stride array per operand (same order as given).
    static func collapse(_ shape: [Int], _ strides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
        var outShape: [Int] = []
        var outStrides = [[Int]](repeating: [], count: strides.count)
        for d in 0..<shape.count where shape[d] != 1 {
            if let last = outShape.indices.last,
               strides.indices.allSatisfy({ k in outStrides[k][last] == strides[k][d] &* shape[d] }) {
                outShape[last] &*= shape[d]
                for k in strides.indices { outStrides[k][last] = strides[k][d] }
            } else {
                outShape.append(shape[d])
                for k in strides.indices { outStrides[k].append(strides[k][d]) }
            }
        }
        if outShape.isEmpty && Shape.count(shape) != 0 {
            outShape = [1]
            for k in strides.indices { outStrides[k] = [0] }
        }
        if Shape.count(shape) == 0 {
            return ([0], [[Int]](repeating: [1], count: strides.count))
        }
        return (outShape, outStrides)
    }

    /// Formats a shape as PyTorch prints it: `[2, 3]`.
    static func describe(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }
}
