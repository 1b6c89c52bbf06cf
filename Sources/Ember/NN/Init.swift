/// PyTorch's default initialisations, drawn from the global generator (`Tensor.manualSeed`).
public enum Init {
    /// Uniform in `[-bound, bound)`.
    public static func uniform(_ shape: [Int], bound: Float) -> Tensor {
        Tensor.rand(shape, low: -bound, high: bound)
    }

    /// Kaiming-uniform with `a = sqrt(5)`, PyTorch's default for Linear and Conv2d weights:
    /// uniform in ±1/sqrt(fanIn).
    public static func kaimingUniform(_ shape: [Int], fanIn: Int) -> Tensor {
        uniform(shape, bound: fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0)
    }
}
