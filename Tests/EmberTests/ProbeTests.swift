import Testing
@testable import Ember
@Test func probe() { #expect(_probe() >= 0) }
