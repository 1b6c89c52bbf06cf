// Makes one of the mistakes a new user makes, chosen by name, so a test can check what an
// optimized build prints for it (`swift build -c release --product EmberMisuse`; `make test`
// builds it). Only the public API is used, as a user's program would.
import Ember

/// Each mistake by name: the code a user would write.
let mistakes: [String: () -> Void] = [
    "matmul": { _ = Tensor.ones([2, 3]).matmul(Tensor.ones([4, 5])) },
    "linear": { _ = Linear(4, 2)(Tensor.ones([3, 5])) },
    "backward-non-scalar": { Tensor.ones([2, 2], requiresGrad: true).exp().backward() },
    "item-non-scalar": { _ = Tensor.ones([3]).item() },
    "index-out-of-range": { _ = Tensor.ones([3, 2])[5] },
    "reshape": { _ = Tensor.ones([2, 3]).reshape([4, 2]) },
    "softmax-dim": { _ = Tensor.ones([2, 3]).softmax(dim: 2) },
    "float-labels": { _ = crossEntropy(Tensor.ones([2, 3]), Tensor([0, 1])) },
    "float-indices": { _ = Tensor.ones([4, 2]).indexSelect(dim: 0, index: Tensor([0, 1])) },
    "ragged": { _ = Tensor([[1, 2], [3]]) },
    "int-requires-grad": { _ = Tensor([1, 2], dtype: .int32).requiresGrad(true) },
    "in-place-leaf": { let w = Tensor.ones([2], requiresGrad: true); w += 1 },
    "nan-lr": { _ = SGD([Tensor.ones([2], requiresGrad: true)], lr: .nan) },
    "batchnorm-batch-of-one": { _ = BatchNorm1d(3)(Tensor.ones([1, 3])) },
    "broadcast": { _ = Tensor.ones([2, 3]) + Tensor.ones([4]) },
    "cat": { _ = Tensor.cat([Tensor.ones([2, 3]), Tensor.ones([2, 4])], dim: 0) },
    "conv2d-channels": { _ = Conv2d(3, 4, kernelSize: 3)(Tensor.ones([1, 2, 8, 8])) },
    "one-hot-range": { _ = oneHot(Tensor([0, 3], dtype: .int64), numClasses: 3) },
    "conv1d-channels": { _ = Conv1d(3, 4, kernelSize: 3)(Tensor.ones([2, 5, 9])) },
    "repeat-dims": { _ = Tensor.ones([2, 3]).repeat([2]) },
    "conv-transpose-channels": { _ = ConvTranspose2d(3, 4, kernelSize: 2)(Tensor.ones([1, 2, 5, 5])) },
    "rmsnorm-shape": { _ = RMSNorm(8)(Tensor.ones([2, 6])) },
    "bool-sub": { _ = Tensor([true]) - Tensor([false]) },
    // Control: a plain `precondition` message, which an optimized build drops.
    "precondition-control": { precondition(Int.random(in: 0..<2) > 5, "control message from precondition") },
]

let arguments = CommandLine.arguments.dropFirst()
if arguments.first == "--configuration" {
    #if DEBUG
    print("debug")
    #else
    print("release")
    #endif
} else if let name = arguments.first, let mistake = mistakes[name] {
    mistake()
    print("\(name): no error")
} else {
    print("usage: EmberMisuse --configuration | \(mistakes.keys.sorted().joined(separator: " | "))")
}
