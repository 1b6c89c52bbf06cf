import Testing
@testable import Ember

/// The strict JSON reader under the safetensors header.
@Suite("JSON")
struct JSONTests {
    @Test("values, escapes and key order are read exactly")
    func values() throws {
        let text = #" { "b": [1, -2, 3.5, 1e3, true, false, null], "a\u00e9\ud83d\ude00\n": "x\"y\\z/", "": {} } "#
        let value = try JSON.parse(Array(text.utf8))
        #expect(value == .object([
            ("b", .array([.integer(1), .integer(-2), .number(3.5), .number(1000), .bool(true), .bool(false), .null])),
            ("a\u{e9}\u{1F600}\n", .string("x\"y\\z/")),
            ("", .object([])),
        ]))
    }

    @Test("encoding gives compact text that parses back to the same value")
    func roundTrip() throws {
        let value = JSON.object([("a\"\\\n\u{1}é", .array([.integer(-3), .number(0.5), .bool(true), .null, .string("")])), ("b", .object([]))])
        let text = value.encoded()
        #expect(String(decoding: text, as: UTF8.self) == #"{"a\"\\\u000a\u0001é":[-3,0.5,true,null,""],"b":{}}"#)
        #expect(try JSON.parse(text) == value)
    }

    @Test("NFC and NFD spellings of a key stay two keys")
    func keysAreBytes() throws {
        guard case let .object(members) = try JSON.parse(Array("{\"\u{e9}\": 1, \"e\u{301}\": 2}".utf8)) else {
            Issue.record("not an object")
            return
        }
        #expect(members.count == 2)
        #expect(!members[0].key.utf8.elementsEqual(members[1].key.utf8))
        #expect(JSON.object([("\u{e9}", .null)]) != JSON.object([("e\u{301}", .null)]))
    }

    @Test("malformed texts are rejected with the byte offset", arguments: [
        ("{\"a\": 1,}", "expected a string key at byte 8"),
        ("[1 2]", "expected ',' or ']' at byte 3"),
        ("01", "a number may not start with 0 at byte 0"),
        ("1.", "expected digits after '.' at byte 2"),
        ("\"a\u{01}\"", "control character in a string at byte 2"),
        ("\"\\ud800\"", "unpaired surrogate in a string at byte 7"),
        ("\"\\u12g4\"", "invalid \\u escape at byte 3"),
        ("{} x", "unexpected data after the JSON value at byte 3"),
        ("tru", "invalid literal at byte 0"),
        ("", "unexpected end of the JSON text at byte 0"),
        (String(repeating: "[", count: 200), "nesting deeper than 128 at byte 128"),
    ])
    func malformed(_ text: String, _ message: String) {
        do {
            _ = try JSON.parse(Array(text.utf8))
            Issue.record("\(text) was accepted")
        } catch let error as JSON.ParseError {
            #expect(error.description == message)
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test("invalid UTF-8 inside a string is rejected")
    func invalidUTF8() {
        #expect(throws: JSON.ParseError.self) { try JSON.parse([0x22, 0xC3, 0x28, 0x22]) }
    }
}
