import Foundation
import Testing
@testable import Ember

/// One differentiable op under test: input shapes, where its inputs are drawn from, and
/// the function. Every case runs through CPU/OpenCL parity (values and gradients) and a
/// finite-difference gradient check on each device.
struct OpCase: Sendable, CustomTestStringConvertible {
    let name: String
    let shapes: [[Int]]
    var domain: ClosedRange<Float> = -1...1
    /// Points inputs keep at least 0.05 away from (kinks and ties).
    var avoid: [Float] = []
    /// Finite-difference tolerances for ops whose Float32 evaluation is noisier.
    var rtol: Float = 2e-2
    var atol: Float = 2e-3
    let function: @Sendable ([Tensor]) -> Tensor

    var testDescription: String { name }

    /// Deterministic inputs for this case.
    func inputs(seed: UInt64 = 1) -> [[Float]] {
        var random = TestRandom(seed: seed &+ UInt64(name.utf8.reduce(0) { $0 &* 31 &+ Int($1) } & 0xFFFF))
        return shapes.map { shape in
            (0..<Shape.count(shape)).map { _ in
                var v = random.float(domain)
                while avoid.contains(where: { Swift.abs($0 - v) < 0.05 }) { v = random.float(domain) }
                return v
            }
        }
    }
}

/// An Int32 index tensor on the device of `like`.
func indexTensor(_ values: [Int32], shape: [Int], like: Tensor) -> Tensor {
    Tensor(shape: shape, data: values, device: like.device)
}

extension OpCase {
    static let all: [OpCase] = unary + binary + reductions + linearAlgebra + shapes + indexing + zeroDim + transformer

    static let unary: [OpCase] = [
        OpCase(name: "neg", shapes: [[2, 3]]) { -$0[0] },
        OpCase(name: "abs", shapes: [[2, 3]], avoid: [0]) { $0[0].abs() },
        OpCase(name: "exp", shapes: [[2, 3]]) { $0[0].exp() },
        OpCase(name: "log", shapes: [[2, 3]], domain: 0.5...2) { $0[0].log() },
        OpCase(name: "sqrt", shapes: [[2, 3]], domain: 0.5...2) { $0[0].sqrt() },
        OpCase(name: "rsqrt", shapes: [[2, 3]], domain: 0.5...2) { $0[0].rsqrt() },
        OpCase(name: "reciprocal", shapes: [[2, 3]], domain: 0.5...2) { $0[0].reciprocal() },
        OpCase(name: "square", shapes: [[2, 3]]) { $0[0].square() },
        OpCase(name: "pow3", shapes: [[2, 3]]) { $0[0].pow(3) },
        OpCase(name: "pow0.5", shapes: [[2, 3]], domain: 0.5...2) { $0[0].pow(0.5) },
        OpCase(name: "sin", shapes: [[2, 3]]) { $0[0].sin() },
        OpCase(name: "cos", shapes: [[2, 3]]) { $0[0].cos() },
        OpCase(name: "tanh", shapes: [[2, 3]]) { $0[0].tanh() },
        OpCase(name: "sigmoid", shapes: [[2, 3]]) { $0[0].sigmoid() },
        OpCase(name: "relu", shapes: [[2, 3]], avoid: [0]) { $0[0].relu() },
        OpCase(name: "gelu", shapes: [[2, 3]], domain: -2...2) { $0[0].gelu() },
        OpCase(name: "gelu tanh", shapes: [[2, 3]], domain: -3...3) { $0[0].gelu(approximate: .tanh) },
        OpCase(name: "pow 2 of negatives", shapes: [[2, 3]], domain: -2...2) { $0[0].pow(2) },
        OpCase(name: "pow 4 7", shapes: [[2, 3]], domain: -1.5...1.5) { $0[0].pow(4) + $0[0].pow(7) },
        OpCase(name: "pow -1 -2 -3", shapes: [[2, 3]], domain: 0.5...2) { $0[0].pow(-1) + $0[0].pow(-2) - $0[0].pow(-3) },
        OpCase(name: "pow -0.5 2.5 0 1", shapes: [[2, 3]], domain: 0.5...2) { $0[0].pow(-0.5) + $0[0].pow(2.5) + $0[0].pow(0) + $0[0].pow(1) },
        OpCase(name: "erf", shapes: [[2, 3]]) { $0[0].erf() },
        OpCase(name: "leakyRelu", shapes: [[2, 3]], avoid: [0]) { $0[0].leakyRelu(slope: 0.1) },
        OpCase(name: "clamp", shapes: [[2, 3]], avoid: [-0.5, 0.5]) { $0[0].clamp(min: -0.5, max: 0.5) },
        OpCase(name: "silu", shapes: [[2, 3]], domain: -3...3) { $0[0].silu() },
        OpCase(name: "mish", shapes: [[2, 3]], domain: -3...3) { $0[0].mish() },
        OpCase(name: "softplus", shapes: [[2, 3]], domain: -3...3) { $0[0].softplus() },
        OpCase(name: "softplus beta 2 threshold 1", shapes: [[2, 3]], avoid: [0.5]) { $0[0].softplus(beta: 2, threshold: 1) },
        OpCase(name: "elu alpha 0.5", shapes: [[2, 3]], domain: -2...2, avoid: [0]) { $0[0].elu(alpha: 0.5) },
        OpCase(name: "selu", shapes: [[2, 3]], domain: -2...2, avoid: [0]) { $0[0].selu() },
        OpCase(name: "logSigmoid", shapes: [[2, 3]], domain: -4...4) { $0[0].logSigmoid() },
        OpCase(name: "hardSigmoid", shapes: [[2, 3]], domain: -4...4, avoid: [-3, 3]) { $0[0].hardSigmoid() },
        OpCase(name: "hardSwish", shapes: [[2, 3]], domain: -4...4, avoid: [-3, 3]) { $0[0].hardSwish() },
        OpCase(name: "log1p", shapes: [[2, 3]], domain: -0.5...2) { $0[0].log1p() },
        OpCase(name: "expm1", shapes: [[2, 3]]) { $0[0].expm1() },
        // Rounding is flat between its steps: the product with x keeps a nonzero gradient.
        OpCase(name: "floor ceil round trunc", shapes: [[2, 3]], domain: -2.4...2.4, avoid: [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2]) {
            ($0[0].floor() + 2 * $0[0].ceil() + 3 * $0[0].round() + 4 * $0[0].trunc()) * $0[0]
        },
        OpCase(name: "exp of transposed", shapes: [[3, 2]]) { $0[0].T.exp() },
        OpCase(name: "tanh of sliced", shapes: [[4, 3]]) { $0[0][1..<3].tanh() },
    ]

    static let binary: [OpCase] = [
        OpCase(name: "add broadcast", shapes: [[2, 3], [3]]) { $0[0] + $0[1] },
        OpCase(name: "sub broadcast", shapes: [[2, 1], [1, 3]]) { $0[0] - $0[1] },
        OpCase(name: "mul broadcast", shapes: [[2, 3], [2, 1]]) { $0[0] * $0[1] },
        OpCase(name: "div broadcast", shapes: [[2, 3], [3]], domain: 0.5...2) { $0[0] / $0[1] },
        OpCase(name: "pow tensor", shapes: [[2, 3], [2, 3]], domain: 0.5...2) { $0[0].pow($0[1]) },
        OpCase(name: "maximum", shapes: [[2, 3], [2, 3]], domain: -5...5) { $0[0].maximum($0[1]) },
        // Divisors in [2, 4] and dividends in [-1, 1]: the only jump is at a dividend of 0.
        OpCase(name: "remainder and floorDivide broadcast", shapes: [[2, 3], [3]], avoid: [0]) {
            $0[0] % ($0[1] + 3) + $0[0].floorDivide($0[1] + 3) * 2 + ($0[0] * 0.5) % 2
        },
        OpCase(name: "minimum broadcast", shapes: [[2, 3], [3]], domain: -5...5) { $0[0].minimum($0[1]) },
        OpCase(name: "scalar ops", shapes: [[2, 3]], domain: 0.5...2) { x in (x[0] + 2) * 3 - 1 + 2 / x[0] - (1 - x[0]) / 4 },
        OpCase(name: "mul of permuted", shapes: [[2, 3, 4], [4, 3, 2]]) { $0[0] * $0[1].permute([2, 1, 0]) },
        OpCase(name: "where", shapes: [[2, 3], [2, 3], [3]]) { x in Tensor.where(x[0] > 0, x[1], x[2]) },
        OpCase(name: "dropout p=0 identity", shapes: [[5]]) { $0[0].dropout(p: 0) * 2 },
    ]

    static let reductions: [OpCase] = [
        OpCase(name: "sum all", shapes: [[2, 3, 4]]) { $0[0].sum() },
        OpCase(name: "sum dim 1", shapes: [[2, 3, 4]]) { $0[0].sum(dim: 1) },
        OpCase(name: "sum dims 0,2 keepDim", shapes: [[2, 3, 4]]) { $0[0].sum(dims: [0, 2], keepDim: true) },
        OpCase(name: "mean dim -1", shapes: [[3, 5]]) { $0[0].mean(dim: -1) },
        OpCase(name: "variance dim 0", shapes: [[4, 3]]) { $0[0].variance(dim: 0) },
        OpCase(name: "max dim 1", shapes: [[3, 4]], domain: -5...5) { $0[0].max(dim: 1).values },
        OpCase(name: "min dim 0 keepDim", shapes: [[3, 4]], domain: -5...5) { $0[0].min(dim: 0, keepDim: true).values },
        OpCase(name: "max all", shapes: [[3, 4]], domain: -5...5) { $0[0].max() },
        OpCase(name: "logSumExp", shapes: [[3, 4]]) { $0[0].logSumExp(dim: 1) },
        OpCase(name: "logSumExp dims 0,2", shapes: [[2, 3, 4]], domain: -3...3) { $0[0].logSumExp(dims: [0, 2]) },
        OpCase(name: "logSumExp all keepDim", shapes: [[2, 3]]) { $0[0].logSumExp(dims: [], keepDim: true) },
        OpCase(name: "std dims 0,2", shapes: [[3, 2, 4]]) { $0[0].std(dims: [0, 2]) },
        OpCase(name: "std dim 1 biased keepDim", shapes: [[2, 5]]) { $0[0].std(dim: 1, keepDim: true, unbiased: false) },
        OpCase(name: "variance dims unbiased", shapes: [[2, 3, 2]]) { $0[0].variance(dims: [1, 2], unbiased: true) },
        OpCase(name: "min and max on ties with indices", shapes: [[4, 6]], avoid: [0]) { x in
            // Clamping makes ties at 0: the first one is picked and gets the gradient.
            let c = x[0].clamp(min: 0), a = c.min(dim: 1), b = (-c).max(dim: 0, keepDim: true)
            return a.values + a.indices.float() + (b.values + b.indices.float()).sum()
        },
        OpCase(name: "max dim 0 of 3-d keepDim", shapes: [[3, 2, 4]], domain: -5...5) { $0[0].max(dim: 0, keepDim: true).values },
        OpCase(name: "softmax dim 1", shapes: [[3, 4]]) { $0[0].softmax(dim: 1) },
        OpCase(name: "softmax dim 0", shapes: [[3, 4]]) { $0[0].softmax(dim: 0) },
        OpCase(name: "logSoftmax", shapes: [[2, 5]]) { $0[0].logSoftmax(dim: -1) },
        OpCase(name: "sum of transposed", shapes: [[3, 4]]) { $0[0].T.sum(dim: 1) },
        OpCase(name: "layerNorm weight and bias", shapes: [[3, 5], [5], [5]]) {
            layerNorm($0[0], normalizedShape: [5], weight: $0[1], bias: $0[2]).exp()
        },
        OpCase(name: "layerNorm over two dims of a transposed input", shapes: [[3, 4, 2]]) {
            layerNorm($0[0].transpose(0, 2), normalizedShape: [4, 3]).square()
        },
        OpCase(name: "norm p 2, 1, 3 and infinity", shapes: [[3, 4]], avoid: [0]) {
            $0[0].norm(dim: 1) + $0[0].norm(p: 1, dim: 1) + $0[0].norm(p: 3, dim: 1) + $0[0].norm(p: .infinity, dims: [1]) * $0[0].norm()
        },
        OpCase(name: "normalize and cosineSimilarity", shapes: [[3, 4], [4]]) {
            normalize($0[0], dim: 1) + cosineSimilarity($0[0], $0[1].unsqueeze(0), dim: 1).unsqueeze(1)
        },
        OpCase(name: "amax amin and median", shapes: [[3, 4, 2]]) {
            // Distinct offsets a step apart keep every comparison clear of finite differences' steps.
            let offsets = Tensor((0..<24).map { Float(($0 * 7) % 24) }, device: $0[0].device).reshape([3, 4, 2]).to($0[0].dtype)
            let x = $0[0] * 0.1 + offsets
            return x.amax(dims: [0, 2]) * x.amin(dims: [1]).sum(dim: 1).sum() + x.median(dim: 0).values.sum(dim: 1)
        },
        OpCase(name: "diag trace and outer", shapes: [[3, 4], [3]]) {
            $0[0].diag(diagonal: 1).outer($0[1]) * $0[0].trace() + $0[1].slice(dim: 0, end: 2).diag(diagonal: -1).sum(dim: 0).unsqueeze(1)
        },
        OpCase(name: "einsum attention scores and a three-operand chain", shapes: [[2, 3, 4], [2, 5, 4], [3, 2]]) {
            einsum("bqd,bkd->bqk", $0[0], $0[1]).exp() + einsum("bqd,bkd,qc->bqk", $0[0], $0[1], $0[2])
        },
        OpCase(name: "rmsNorm weight", shapes: [[3, 5], [5]]) { rmsNorm($0[0], normalizedShape: [5], weight: $0[1]).exp() },
        OpCase(name: "rmsNorm over two dims of a transposed input", shapes: [[3, 4, 2]]) {
            rmsNorm($0[0].transpose(0, 2), normalizedShape: [4, 3], eps: 1e-3).square()
        },
        OpCase(name: "layerNorm weight only", shapes: [[2, 2, 3], [3]]) { layerNorm($0[0], normalizedShape: [3], weight: $0[1]).exp() },
        // Rows of two whole runs of 16 columns and a tail (the CPU devices' vector sums).
        OpCase(name: "layerNorm over 37 columns", shapes: [[4, 37], [37], [37]]) {
            layerNorm($0[0], normalizedShape: [37], weight: $0[1], bias: $0[2]).exp()
        },
    ]

    static let linearAlgebra: [OpCase] = [
        OpCase(name: "matmul 2-D", shapes: [[3, 4], [4, 2]]) { $0[0].matmul($0[1]) },
        OpCase(name: "matmul transposed operands", shapes: [[4, 3], [2, 4]]) { $0[0].T.matmul($0[1].T) },
        OpCase(name: "matmul batched broadcast", shapes: [[2, 1, 3, 4], [3, 4, 2]]) { $0[0].matmul($0[1]) },
        OpCase(name: "matmul batch times a transposed matrix", shapes: [[2, 3, 4], [5, 4]]) { $0[0].matmul($0[1].T) },
        OpCase(name: "matmul permuted batch times a matrix", shapes: [[3, 2, 4], [4, 2]]) { $0[0].transpose(0, 1).matmul($0[1]) },
        OpCase(name: "matmul vector-matrix", shapes: [[4], [4, 3]]) { $0[0].matmul($0[1]) },
        OpCase(name: "matmul matrix-vector", shapes: [[3, 4], [4]]) { $0[0].matmul($0[1]) },
        OpCase(name: "matmul dot", shapes: [[5], [5]]) { $0[0].matmul($0[1]) },
        OpCase(name: "conv2d bias", shapes: [[2, 2, 5, 5], [3, 2, 3, 3], [3]]) { $0[0].conv2d(weight: $0[1], bias: $0[2]) },
        // The bias added by the GEMM along its rows, in whole 4 x 16 blocks of C and at edges.
        OpCase(name: "conv2d bias, whole blocks", shapes: [[2, 2, 4, 4], [4, 2, 1, 1], [4]]) { $0[0].conv2d(weight: $0[1], bias: $0[2]) },
        // The bias added by the GEMM along its columns: B is the transposed weight.
        OpCase(name: "linear bias", shapes: [[5, 7], [3, 7], [3]]) { linear($0[0], weight: $0[1], bias: $0[2]) },
        OpCase(name: "linear bias, whole blocks", shapes: [[4, 6], [16, 6], [16]]) { linear($0[0], weight: $0[1], bias: $0[2]) },
        OpCase(name: "linear bias, batched input", shapes: [[2, 3, 7], [17, 7], [17]]) { linear($0[0], weight: $0[1], bias: $0[2]) },
        OpCase(name: "linear bias, vector input", shapes: [[7], [3, 7], [3]]) { linear($0[0], weight: $0[1], bias: $0[2]) },
        // A computed bias (pending in a lazy graph on OpenCL until the GEMM reads it).
        OpCase(name: "linear computed bias", shapes: [[4, 6], [16, 6], [16]]) { linear($0[0], weight: $0[1], bias: $0[2] * 2 + 1) },
        OpCase(name: "conv2d stride padding dilation", shapes: [[1, 2, 6, 5], [2, 2, 3, 2]]) {
            $0[0].conv2d(weight: $0[1], stride: (2, 1), padding: (1, 2), dilation: (2, 1))
        },
        OpCase(name: "conv2d groups 2", shapes: [[2, 4, 5, 4], [6, 2, 3, 2], [6]]) { $0[0].conv2d(weight: $0[1], bias: $0[2], groups: 2) },
        OpCase(name: "conv2d depthwise strided padded", shapes: [[1, 3, 6, 5], [3, 1, 3, 3]]) {
            $0[0].conv2d(weight: $0[1], stride: (2, 1), padding: (1, 0), dilation: (1, 2), groups: 3)
        },
        OpCase(name: "conv1d groups stride padding", shapes: [[2, 4, 7], [6, 2, 3], [6]]) {
            $0[0].conv1d(weight: $0[1], bias: $0[2], stride: 2, padding: 1, groups: 2)
        },
        OpCase(name: "conv1d dilated", shapes: [[1, 2, 9], [3, 2, 3]]) { $0[0].conv1d(weight: $0[1], padding: 2, dilation: 2) },
        OpCase(name: "maxPool1d and avgPool1d", shapes: [[2, 3, 7]], domain: -5...5) {
            $0[0].maxPool1d(kernel: 3, stride: 2, padding: 1) + $0[0].avgPool1d(kernel: 3, stride: 2, padding: 1, countIncludePad: false)
        },
        OpCase(name: "adaptiveAvgPool2d uneven", shapes: [[2, 2, 5, 7]]) { $0[0].adaptiveAvgPool2d(outputSize: (3, 4)) },
        OpCase(name: "adaptiveAvgPool2d to 1 of CHW", shapes: [[3, 4, 6]]) { $0[0].adaptiveAvgPool2d(outputSize: 1) },
        OpCase(name: "convTranspose2d stride padding output padding", shapes: [[2, 3, 3, 3], [3, 2, 3, 2], [2]]) {
            $0[0].convTranspose2d(weight: $0[1], bias: $0[2], stride: 2, padding: 1, outputPadding: 1)
        },
        OpCase(name: "convTranspose2d groups dilation", shapes: [[1, 4, 3, 3], [4, 2, 2, 3]]) {
            $0[0].convTranspose2d(weight: $0[1], stride: (1, 2), padding: (0, 1), groups: 2, dilation: (2, 1))
        },
        OpCase(name: "groupNorm", shapes: [[2, 6, 2, 2], [6], [6]]) { groupNorm($0[0], numGroups: 3, weight: $0[1], bias: $0[2]).exp() },
        OpCase(name: "pad constant reflect replicate circular", shapes: [[2, 3, 4]]) {
            // Each pads the last dim to 7: weighted sums over dim 1 keep every gradient distinct.
            let weights = Tensor([1, 2, 3], device: $0[0].device).reshape([1, 3, 1]).to($0[0].dtype)
            return pad($0[0], [1, 2, -1, 0], value: 0.5).sum(dim: 1) + (pad($0[0], [2, 1], mode: .reflect) * weights).sum(dim: 1)
                + (pad($0[0], [1, 2], mode: .replicate) * weights).sum(dim: 1) + (pad($0[0], [3, 0], mode: .circular) * weights).sum(dim: 1)
        },
        OpCase(name: "interpolate nearest and bilinear", shapes: [[1, 2, 3, 4]]) {
            interpolate($0[0], size: [5, 7]) + interpolate($0[0], size: [5, 7], mode: .bilinear)
                + interpolate($0[0], size: [5, 7], mode: .bilinear, alignCorners: true)
        },
        OpCase(name: "interpolate linear by a scale factor, and down", shapes: [[1, 2, 5]]) {
            interpolate($0[0], scaleFactor: [1.5], mode: .linear).sum(dim: -1) + interpolate($0[0], size: [3], mode: .linear).sum(dim: -1)
        },
        OpCase(name: "convTranspose1d and adaptiveAvgPool1d", shapes: [[2, 4, 5], [4, 3, 3]]) {
            $0[0].convTranspose1d(weight: $0[1], stride: 2, padding: 1, outputPadding: 1).adaptiveAvgPool1d(outputSize: 4)
        },
        OpCase(name: "pixelShuffle, pixelUnshuffle and glu", shapes: [[1, 8, 2, 4]]) {
            glu($0[0].pixelShuffle(upscaleFactor: 2), dim: -1) + $0[0].pixelShuffle(upscaleFactor: 2).pixelUnshuffle(downscaleFactor: 2)
                .pixelShuffle(upscaleFactor: 2).slice(dim: -1, end: 4).exp()
        },
        OpCase(name: "unfold and fold", shapes: [[1, 2, 4, 5]]) {
            fold(unfold($0[0], kernelSize: (2, 3), padding: (1, 0), stride: (2, 1)).exp(), outputSize: (4, 5), kernelSize: (2, 3),
                 padding: (1, 0), stride: (2, 1))
        },
        OpCase(name: "maxPool2d", shapes: [[2, 2, 5, 5]], domain: -5...5) { $0[0].maxPool2d(kernel: 2) },
        OpCase(name: "maxPool2d tiling rectangular", shapes: [[2, 2, 4, 6]], domain: -5...5) { $0[0].maxPool2d(kernel: (2, 3)) },
        OpCase(name: "maxPool2d rectangular", shapes: [[1, 2, 4, 7]], domain: -5...5) {
            $0[0].maxPool2d(kernel: (2, 3), stride: (1, 2), padding: (0, 1))
        },
        OpCase(name: "maxPool2d rectangular overlapping dilated", shapes: [[1, 1, 6, 5]], domain: -5...5) {
            $0[0].maxPool2d(kernel: (3, 2), stride: (1, 1), padding: (1, 1), dilation: (1, 2))
        },
        OpCase(name: "avgPool2d rectangular", shapes: [[2, 1, 5, 6]]) {
            $0[0].avgPool2d(kernel: (3, 2), stride: (2, 1), padding: (1, 1), countIncludePad: false)
        },
        OpCase(name: "maxPool2d padded strided", shapes: [[1, 2, 5, 6]], domain: -5...5) { $0[0].maxPool2d(kernel: 3, stride: 2, padding: 1) },
        OpCase(name: "avgPool2d", shapes: [[2, 2, 4, 4]]) { $0[0].avgPool2d(kernel: 2) },
        OpCase(name: "avgPool2d padded exclude pad", shapes: [[1, 2, 5, 5]]) {
            $0[0].avgPool2d(kernel: 3, stride: 2, padding: 1, countIncludePad: false)
        },
    ]

    static let shapes: [OpCase] = [
        OpCase(name: "reshape", shapes: [[2, 6]]) { $0[0].reshape([3, -1]) * 2 },
        OpCase(name: "permute", shapes: [[2, 3, 4]]) { $0[0].permute([2, 0, 1]) * 2 },
        OpCase(name: "reshape of permuted", shapes: [[2, 3, 4]]) { $0[0].permute([1, 0, 2]).reshape([6, 4]).exp() },
        OpCase(name: "transpose", shapes: [[2, 3]]) { $0[0].transpose(0, 1).contiguous() * 2 },
        OpCase(name: "squeeze unsqueeze", shapes: [[2, 1, 3]]) { $0[0].squeeze().unsqueeze(0) * 2 },
        OpCase(name: "expand", shapes: [[3, 1]]) { $0[0].expand([2, 3, 4]).exp() },
        OpCase(name: "repeat with a new leading dim", shapes: [[2, 3]]) { $0[0].repeat([2, 1, 3]).exp() * Tensor.arange(0, 9, device: $0[0].device).to($0[0].dtype) },
        OpCase(name: "flatten", shapes: [[2, 3, 2]]) { $0[0].flatten(start: 1).square() },
        OpCase(name: "slice with step", shapes: [[5, 4]]) { $0[0].slice(dim: 0, start: 1, end: 5, step: 2).exp() },
        OpCase(name: "subscript", shapes: [[3, 4, 2]]) { $0[0][1, 1..<3].square() },
        OpCase(name: "subscript clamped", shapes: [[5, 3]]) { $0[0][2..<100, (-2)...].square() },
        OpCase(name: "subscript specs", shapes: [[3, 4, 5]]) { $0[0][[.newAxis, .ellipsis, .range(1, 100, step: 2), .index(-1)]].exp() },
        OpCase(name: "cat", shapes: [[2, 3], [2, 2]]) { Tensor.cat([$0[0], $0[1]], dim: 1).exp() },
        OpCase(name: "stack", shapes: [[2, 3], [2, 3]]) { Tensor.stack([$0[0], $0[1].exp()], dim: 1) },
    ]

    static let indexing: [OpCase] = [
        OpCase(name: "gather", shapes: [[3, 4]]) { x in
            x[0].gather(dim: 1, index: indexTensor([0, 3, 3, 1, 2, 0], shape: [3, 2], like: x[0]))
        },
        OpCase(name: "indexSelect repeated", shapes: [[4, 3]]) { x in
            x[0].indexSelect(dim: 0, index: indexTensor([2, 0, 2], shape: [3], like: x[0])).exp()
        },
        OpCase(name: "scatterAdd", shapes: [[3, 4], [3, 2]]) { x in
            x[0].scatterAdd(dim: 1, index: indexTensor([1, 1, 0, 3, 2, 2], shape: [3, 2], like: x[0]), source: x[1]).square()
        },
    ]

    /// The ops around attention (Structure.swift, Sorting.swift, Attention.swift).
    static let transformer: [OpCase] = [
        OpCase(name: "tril triu batched", shapes: [[2, 3, 4]]) { $0[0].tril(diagonal: -1) + $0[0].triu(diagonal: 1).exp() + $0[0].tril(diagonal: 5) },
        OpCase(name: "maskedFill broadcast", shapes: [[2, 3]]) { x in
            x[0].maskedFill(Tensor(shape: [3], data: [1, 0, 1], device: x[0].device).bool(), -2).exp()
        },
        OpCase(name: "split of the last dim, every piece used", shapes: [[2, 3, 6]]) { x in
            let p = x[0].split(2, dim: 2)
            return p[0] * p[1].exp() + p[2].square()
        },
        OpCase(name: "split and chunk views", shapes: [[2, 5]]) { x in
            let p = x[0].split(2, dim: 1), c = x[0].chunk(2, dim: 0)
            return Tensor.cat([p[2] * 3, p[0].exp()], dim: 1) + c[1].square().reshape([5]).slice(dim: 0, start: 2)
        },
        OpCase(name: "split with sizes, a piece used twice and an empty piece", shapes: [[3, 4, 2]]) { x in
            let p = x[0].split([1, 0, 2, 1], dim: 1), c = x[0].chunk(3, dim: 0)
            return p[0].exp() * p[3] + p[2].sum(dim: 1, keepDim: true) * p[0] + c[2].square().reshape([1, 4, 2])
        },
        OpCase(name: "cumsum", shapes: [[2, 5, 3]]) { $0[0].cumsum(dim: 1).square() + $0[0].cumsum(dim: -1) },
        OpCase(name: "flip", shapes: [[2, 3, 4]]) { $0[0].flip(dims: [0, 2]) * Tensor.arange(0, 4, device: $0[0].device) },
        OpCase(name: "sort and topk values", shapes: [[3, 5]], domain: -5...5) { x in
            let s = x[0].sort(dim: 1, descending: true).values, t = x[0].topk(2, dim: 0, largest: false).values
            return s.exp().sum(dim: 0) * 0.1 + t.square().sum(dim: 0)
        },
        OpCase(name: "sdpa", shapes: [[2, 3, 4], [2, 5, 4], [2, 5, 3]]) { scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2]) },
        OpCase(name: "sdpa causal broadcast batch", shapes: [[2, 2, 4, 3], [2, 1, 4, 3], [1, 2, 4, 2]]) {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], isCausal: true)
        },
        OpCase(name: "sdpa causal L < S, scale", shapes: [[1, 3, 4], [1, 5, 4], [1, 5, 2]]) {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], isCausal: true, scale: 0.7)
        },
        OpCase(name: "sdpa bool mask", shapes: [[2, 3, 4], [2, 4, 4], [2, 4, 2]]) { x in
            let mask = Tensor(shape: [3, 4], data: [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0], device: x[0].device).bool()
            return scaledDotProductAttention(query: x[0], key: x[1], value: x[2], attnMask: mask)
        },
        OpCase(name: "sdpa float mask with gradient", shapes: [[2, 3, 4], [2, 4, 4], [2, 4, 2], [2, 1, 4]]) { x in
            scaledDotProductAttention(query: x[0], key: x[1], value: x[2], attnMask: x[3])
        },
        OpCase(name: "MultiheadAttention causal, and weights with padding", shapes: [[3, 2, 4], [5, 2, 4]]) { x in
            let mha = Tensor.withRandomSeed(9) { MultiheadAttention(embedDim: 4, numHeads: 2) }.to(x[0].device).to(x[0].dtype)
            let padding = Tensor(shape: [2, 5], data: [0, 0, 1, 0, 0, 1, 0, 0, 0, 0], device: x[0].device).bool()
            let causal = mha(x[0], x[0], x[0], needWeights: false, isCausal: true).output
            let (out, weights) = mha(x[0], x[1], x[1], keyPaddingMask: padding)
            return causal.sum(dim: 2) + out.sum(dim: 2) + weights!.square().sum(dim: 2).transpose(0, 1)
        },
    ]

    /// 0-d inputs (PyTorch accepts dim 0 and -1 for a 0-d tensor's reductions).
    static let zeroDim: [OpCase] = [
        OpCase(name: "0-d sum", shapes: [[]]) { $0[0].sum() * 3 },
        OpCase(name: "0-d sum dim -1 keepDim", shapes: [[]]) { $0[0].sum(dim: -1, keepDim: true).exp() },
        OpCase(name: "0-d mean dim 0", shapes: [[]]) { $0[0].mean(dim: 0).square() },
        OpCase(name: "0-d variance correction 0", shapes: [[]]) { $0[0].variance(correction: 0) + $0[0] },
        OpCase(name: "0-d std correction 0", shapes: [[]]) { $0[0].std(correction: 0) + $0[0].std(dim: 0, keepDim: true, correction: 0) + $0[0] },
        OpCase(name: "0-d max min", shapes: [[]]) { $0[0].max() * 2 + $0[0].min() },
        OpCase(name: "0-d max min dim with indices", shapes: [[]]) { x in
            let m = x[0].max(dim: 0), n = x[0].min(dim: -1, keepDim: true)
            return m.values * 2 + n.values + m.indices.float() + n.indices.float()
        },
        OpCase(name: "0-d logSumExp", shapes: [[]]) { $0[0].logSumExp(dim: 0) * 2 },
        OpCase(name: "0-d softmax", shapes: [[]]) { $0[0].softmax(dim: 0) + $0[0].logSoftmax(dim: -1) + $0[0] },
        OpCase(name: "0-d shape ops", shapes: [[]]) { x in
            x[0].unsqueeze(0).expand([3]).exp() + x[0].flatten().square() + x[0].reshape([1, 1]).squeeze(0)
        },
        OpCase(name: "0-d transpose permute view", shapes: [[]]) { $0[0].transpose(0, -1).permute([]).view([1]).sin() },
        OpCase(name: "0-d stack", shapes: [[], []]) { Tensor.stack([$0[0], $0[1].exp()]) },
    ]
}

@Suite("Op cases: parity and gradients")
struct OpCaseTests {
    @Test("CPU and OpenCL agree on values and gradients", arguments: OpCase.all)
    func parity(_ op: OpCase) {
        expectParity(op.name, inputs: op.inputs(), shapes: op.shapes, op.function)
    }

    @Test("the GPU variants of the OpenCL kernels agree with the CPU on every op case and every GEMM path")
    func gpuKernelVariants() async {
        // EMBER_OPENCL_KERNELS=gpu builds the kernels as for a GPU (one element per work-item,
        // interleaved reductions, a work-group per softmax row) on this machine's OpenCL device.
        await #expect(processExitsWith: .success) {
            guard let gpu = gpuKernelVariantDevice() else { return }
            var problems: [String] = []
            for op in OpCase.all {
                problems += parityMismatches(op.name, on: gpu, inputs: op.inputs(), shapes: op.shapes, op.function)
            }
            // Long rows (chunked reductions, softmax rows longer than a work-group) and many
            // short ones, through strided views.
            var random = TestRandom(seed: 21)
            let values = random.floats(130 * 3 * 700)
            problems += parityMismatches("long and short rows", on: gpu, inputs: [values], shapes: [[390, 700]], rtol: 1e-4, atol: 1e-3) { x in
                x[0].T.softmax(dim: 0).sum(dim: 1) + x[0].max(dim: 1).values.sum() + x[0].reshape([-1]).sum() + x[0].argmax(dim: 1).float().sum()
                    + (layerNorm(x[0], normalizedShape: [700]) * x[0]).sum()
            }
            // Ember's GEMM kernels as built for a GPU (4-row blocks), B read by every path.
            problems += gemmPathMismatches(on: gpu)
            precondition(problems.isEmpty, problems.prefix(5).joined(separator: "\n"))
        }
    }

    @Test("Gradients match central finite differences on each device", arguments: OpCase.all)
    func gradients(_ op: OpCase) {
        for device in TestDevices.all {
            gradCheck(op.name, device: device, inputs: op.inputs(), shapes: op.shapes, rtol: op.rtol, atol: op.atol, op.function)
        }
    }
}
