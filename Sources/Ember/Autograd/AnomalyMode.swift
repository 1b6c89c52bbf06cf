/// Anomaly detection: while on, every recorded op's output and every gradient produced
/// in backward is checked for NaN or Inf, and the first offender stops the program with
/// the op's name. Slow (it reads every value back); for debugging only.
enum AnomalyMode {
    @TaskLocal static var enabled = false

    static func check(_ tensor: Tensor, op: String, phase: String) {
        let bad = tensor.toArray().firstIndex { !$0.isFinite }
        if let bad {
            fatalError("detectAnomaly: \(op) produced a non-finite value in \(phase) at flat index \(bad) (shape \(Shape.describe(tensor.shape)))")
        }
    }
}

extension Tensor {
    /// Runs `body` with anomaly detection on: the first op whose output (forward) or input
    /// gradient (backward) holds NaN or Inf stops the program with its gradFn name.
    public static func detectAnomaly<T>(_ body: () throws -> T) rethrows -> T {
        try AnomalyMode.$enabled.withValue(true, operation: body)
    }
}
