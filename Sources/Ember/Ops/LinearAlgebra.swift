/// Matrix multiplication: 1-D, 2-D and batched with broadcast batch dims, through the
/// backend's GEMM. Transposed views are passed to GEMM as transposes, not copied.
extension Tensor {
    /// Matrix product with `torch.matmul` semantics: vectors are promoted and squeezed back,
    /// leading (batch) dims broadcast. Under `Tensor.autocast` float operands are cast to its type.
    public func matmul(_ other: Tensor) -> Tensor {
        product(other, bias: nil, biasPerRow: false)
    }

    /// `matmul(other) + bias`, as PyTorch's `addmm`: the GEMM adds `bias` to each row of the
    /// product (`[n]`, a Linear layer's) or, `perRow`, to each column (`[m]`, one value per
    /// row: a convolution's channels) in the pass that writes it, so it is one kernel, not two.
    /// Where that does not apply (`EMBER_FUSION=0`, a vector operand, a bias of another dtype
    /// or device than the product, an empty inner dimension) it is the composed ops.
    /// Under `Tensor.autocast` all three are cast to its type first, so the bias keeps the
    /// product's type.
    func matmul(_ other: Tensor, adding bias: Tensor, perRow: Bool) -> Tensor {
        if case let (a, b, c)? = Autocast.lowPrecision(self, other, bias) { return a.matmul(b, adding: c, perRow: perRow) }
        let fused = Fusion.enabled && rank >= 2 && other.rank >= 2 && shape[rank - 1] > 0 && bias.rank == 1
            && bias.device == device && other.device == device && bias.dtype == Tensor.productType(dtype, other.dtype)
        guard fused else { return matmul(other) + (perRow ? bias.reshape([-1, 1]) : bias) }
        return product(other, bias: bias, biasPerRow: perRow)
    }

    /// `matmul`, with a bias added by the GEMM when one is given (both operands of rank >= 2).
    private func product(_ other: Tensor, bias: Tensor?, biasPerRow: Bool) -> Tensor {
        if case let (a, b)? = Autocast.lowPrecision(self, other) { return a.product(b, bias: bias, biasPerRow: biasPerRow) }
        Tensor.checkSameDevice("matmul", self, other)
        check(rank >= 1 && other.rank >= 1,
              "matmul: both arguments need at least one dimension, got \(Shape.describe(shape)) and \(Shape.describe(other.shape))")
        switch (rank, other.rank) {
        case (1, 1):
            check(shape[0] == other.shape[0],
                  "matmul: \(Shape.describe(shape)) x \(Shape.describe(other.shape)): inner dimensions \(shape[0]) and \(other.shape[0]) differ")
            return unsqueeze(0).matrixProduct(other.unsqueeze(1)).reshape([])
        case (1, _):
            return unsqueeze(0).matrixProduct(other).squeeze(-2)
        case (_, 1):
            return matrixProduct(other.unsqueeze(1)).squeeze(-1)
        case (3..., 2):
            // A batch times one matrix (a Linear layer on [B, T, C]) is one product of
            // [B·T, C] rows, as PyTorch folds it: one large GEMM, and the matrix's gradient is
            // one GEMM over every row instead of a batch of products summed.
            let k = shape[rank - 1]
            check(k == other.shape[0],
                  "matmul: \(Shape.describe(shape)) x \(Shape.describe(other.shape)): inner dimensions \(k) and \(other.shape[0]) differ")
            let rows = shape.dropLast().reduce(1, *)
            return reshape([rows, k]).matrixProduct(other, bias: bias, biasPerRow: biasPerRow)
                .reshape(Array(shape.dropLast()) + [other.shape[1]])
        default:
            return matrixProduct(other, bias: bias, biasPerRow: biasPerRow)
        }
    }


    /// Whether this is a matrix stored transposed (a `.T` of a contiguous matrix, as a Linear
    /// layer's weight enters its product).
    private var isTransposedMatrix: Bool {
        rank == 2 && shape[0] > 1 && shape[1] > 1 && strides == [1, shape[0]]
    }

    /// The product of two tensors of rank >= 2, batch dims broadcast, plus `bias` when given;
    /// records MatmulBackward (AddmmBackward with a bias, whose gradient is the product's
    /// gradient summed as the bias was broadcast). The gradient of an operand stored transposed
    /// is computed in its storage layout and handed back as a transposed view, so it reaches
    /// the stored matrix without a copy.
    private func matrixProduct(_ other: Tensor, bias: Tensor? = nil, biasPerRow: Bool = false) -> Tensor {
        let name = bias == nil ? "MatmulBackward" : "AddmmBackward"
        return Tensor.matmulForward(self, other, bias: bias, biasPerRow: biasPerRow)
            .recording(name, inputs: [self, other] + (bias.map { [$0] } ?? [])) {
            // Only the gradients an input requires are computed (and only what they read is
            // saved), as PyTorch's needs_input_grad: a first layer's input gradient is a whole
            // GEMM no one reads.
            let needsA = requiresGradFlag, needsB = other.requiresGradFlag
            let a = needsB ? SavedTensor(self, op: name) : nil, b = needsA ? SavedTensor(other, op: name) : nil
            let shapeA = shape, shapeB = other.shape
            let biasShape = bias.map { biasPerRow ? [$0.count, 1] : [$0.count] }
            let transposedA = isTransposedMatrix, transposedB = other.isTransposedMatrix
            return { g in
                let gT = g.transpose(-1, -2)
                let gradA = b.map { b in
                    transposedA ? b.value.matrixProduct(gT).sumTo([shapeA[1], shapeA[0]]).transpose(0, 1)
                                : g.matrixProduct(b.value.transpose(-1, -2)).sumTo(shapeA)
                }
                let gradB = a.map { a in
                    transposedB ? gT.matrixProduct(a.value).sumTo([shapeB[1], shapeB[0]]).transpose(0, 1)
                                : a.value.transpose(-1, -2).matrixProduct(g).sumTo(shapeB)
                }
                return [gradA, gradB] + (biasShape.map { [g.sumTo($0).reshape([-1])] } ?? [])
            }
        }
    }

    /// The dtype of `matmul`'s result: the operands' promoted type when it is float16 or
    /// bfloat16, else Float32 (integer operands multiply as Float32).
    private static func productType(_ a: DType, _ b: DType) -> DType {
        let type = a.promoted(with: b)
        return type.isReducedFloat ? type : .float32
    }

    /// GEMM of two tensors of rank >= 2 (no autograd). Operands promote to one type; float16
    /// and bfloat16 products are computed from the narrow operands with Float32 accumulation
    /// and rounded to that type by the GEMM; integer operands multiply as Float32. A `bias`
    /// (of the product's dtype, `k > 0`) is added by the GEMM to each row, or `biasPerRow` to
    /// each column.
    static func matmulForward(_ a: Tensor, _ b: Tensor, bias: Tensor? = nil, biasPerRow: Bool = false) -> Tensor {
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1]
        let k2 = b.shape[b.rank - 2], n = b.shape[b.rank - 1]
        check(k == k2, "matmul: \(Shape.describe(a.shape)) x \(Shape.describe(b.shape)): inner dimensions \(k) and \(k2) differ")
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        guard let batchShape = Shape.broadcast(batchA, batchB) else {
            fatalError("matmul: \(Shape.describe(a.shape)) x \(Shape.describe(b.shape)): batch dimensions \(Shape.describe(batchA)) and \(Shape.describe(batchB)) cannot be broadcast")
        }
        let batch = Shape.count(batchShape)
        let compute = productType(a.dtype, b.dtype)
        let out = Tensor(uninitialized: batchShape + [m, n], dtype: compute, device: a.device, op: "matmul")
        if out.count > 0 && k == 0 { a.backend.fill(out.storage.buffer, count: out.count, value: 0, dtype: compute) }
        if out.count > 0 && k > 0 {
            func operand(_ t: Tensor) -> GemmOperand {
                t.castStorage(to: compute).gemmOperand(batchShape: batchShape)
            }
            let vector = bias?.contiguous()
            if let vector {
                check(vector.count == (biasPerRow ? m : n) && vector.dtype == compute,
                      "matmul: \(vector.dtype) bias of shape \(Shape.describe(vector.shape)) for a \(compute) product of shape \(Shape.describe(out.shape))")
            }
            a.backend.gemm(m: m, n: n, k: k, batch: batch, alpha: 1, a: operand(a), b: operand(b), beta: 0,
                           bias: vector.map { GemmBias(buffer: $0.storage.buffer, offset: $0.offset, perRow: biasPerRow) },
                           c: out.storage.buffer, cOffset: 0)
        }
        return out
    }

    /// Describes this tensor (rank >= 2), broadcast to `batchShape` + its matrix dims, as a GEMM
    /// operand; copies only when the layout has no GEMM form.
    private func gemmOperand(batchShape: [Int]) -> GemmOperand {
        let r = shape[rank - 2], c = shape[rank - 1]
        let target = batchShape + [r, c]
        let expanded = Shape.broadcastStrides(shape: shape, strides: strides, to: target)
        let sr = expanded[target.count - 2], sc = expanded[target.count - 1]
        let batchStrides = Array(expanded.dropLast(2))
        let collapsed = Shape.collapse(batchShape, [batchStrides])
        let batchStride: Int? = collapsed.shape.count == 1 ? collapsed.strides[0][0] : nil
        if let batchStride {
            if sc == 1 && (sr >= Swift.max(c, 1) || r == 1) {
                return GemmOperand(buffer: storage.buffer, offset: offset, ld: r == 1 ? Swift.max(c, 1) : sr,
                                   transposed: false, batchStride: batchStride, dtype: dtype)
            }
            if sr == 1 && (sc >= Swift.max(r, 1) || c == 1) {
                return GemmOperand(buffer: storage.buffer, offset: offset, ld: c == 1 ? Swift.max(r, 1) : sc,
                                   transposed: true, batchStride: batchStride, dtype: dtype)
            }
        }
        let dense = Tensor(storage: storage, shape: target, strides: expanded, offset: offset, dtype: dtype).contiguousCopy()
        return GemmOperand(buffer: dense.storage.buffer, offset: 0, ld: Swift.max(c, 1), transposed: false,
                           batchStride: Shape.count(batchShape) > 1 ? r * c : 0, dtype: dtype)
    }
}

extension Tensor {
    /// The outer product of two vectors (`torch.outer`): `[n] x [m] -> [n, m]`.
    public func outer(_ other: Tensor) -> Tensor {
        check(rank == 1 && other.rank == 1, "outer: expected two vectors, got \(Shape.describe(shape)) and \(Shape.describe(other.shape))")
        return unsqueeze(1) * other.unsqueeze(0)
    }

    /// As `torch.diag`: of a matrix, its `diagonal`-th diagonal (above the main one for
    /// positive values) as a vector view; of a vector, the square matrix with it on that diagonal.
    public func diag(diagonal k: Int = 0) -> Tensor {
        check(rank == 1 || rank == 2, "diag: expected a vector or a matrix, got \(Shape.describe(shape))")
        if rank == 1 {
            let n = shape[0]
            let square = Tensor.eye(n, device: device).to(dtype) * unsqueeze(0)
            return k == 0 ? square : pad(square, k > 0 ? [k, 0, 0, k] : [0, -k, -k, 0])
        }
        let (rows, cols) = (shape[0], shape[1])
        let length = Swift.max(0, k >= 0 ? Swift.min(rows, cols - k) : Swift.min(rows + k, cols))
        guard length > 0 else { return Tensor.zeros([0], dtype: dtype, device: device) }
        let start = k >= 0 ? k : -k * cols
        return contiguous().reshape([-1]).slice(dim: 0, start: start, end: start + (length - 1) * (cols + 1) + 1, step: cols + 1)
    }

    /// The sum of a matrix's main diagonal (`torch.trace`).
    public func trace() -> Tensor {
        check(rank == 2, "trace: expected a matrix, got \(Shape.describe(shape))")
        return diag().sum()
    }
}