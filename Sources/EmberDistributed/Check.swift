/// Programmer-error checks, as in Ember: stops the program with `message` (kept under `-O`)
/// when `condition` is false. Under mpirun the stopped rank makes mpirun end the others.
@inline(__always)
func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if _slowPath(!condition) { failCheck(message()) }
}

/// The failing branch of `check`.
@inline(never)
func failCheck(_ message: String) -> Never {
    fatalError(message)
}
