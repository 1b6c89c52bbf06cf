/// The one mechanism for programmer-error checks (shape mismatches, bad dimensions,
/// out-of-range indices, misuse of the API): stops the program with `message` when
/// `condition` is false.
///
/// Unlike `precondition`, whose message is dropped under `-O`, the message is printed in
/// debug and optimized builds alike, so a user of `swift build -c release` sees which op
/// failed and why. The message is built only when the check fails. The package's other
/// libraries (EmberDistributed) use this same check (`package` access).
@inline(__always)
package func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if _slowPath(!condition) { failCheck(message()) }
}

/// Stops the program with a programmer-error message (the failing branch of `check`).
@inline(never)
package func failCheck(_ message: String) -> Never {
    fatalError(message)
}
