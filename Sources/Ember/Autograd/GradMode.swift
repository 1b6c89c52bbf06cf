/// Whether ops record the autograd graph. Per task and per thread, like PyTorch's grad mode.
enum GradMode {
    @TaskLocal static var enabled = true
}

extension Tensor {
    /// Runs `body` without recording gradients: results of ops inside never require grad.
    public static func noGrad<T>(_ body: () throws -> T) rethrows -> T {
        try GradMode.$enabled.withValue(false, operation: body)
    }

    /// Runs `body` with gradient recording on (inside `noGrad`, turns it back on).
    public static func enableGrad<T>(_ body: () throws -> T) rethrows -> T {
        try GradMode.$enabled.withValue(true, operation: body)
    }

    /// Whether ops currently record the graph.
    public static var isGradEnabled: Bool { GradMode.enabled }
}
