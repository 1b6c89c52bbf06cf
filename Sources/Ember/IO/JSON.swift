import Foundation

/// A JSON value as RFC 8259 defines it, read strictly: object keys keep their exact bytes
/// and order (Swift's `String ==` would merge NFC and NFD spellings of one name), integers
/// stay apart from other numbers, and nothing after the value but whitespace is allowed.
/// This is what the safetensors header needs to be read as Python's `safetensors` reads it.
indirect enum JSON: Equatable {
    case object([(key: String, value: JSON)])
    case array([JSON])
    case string(String)
    /// A number written without fraction or exponent that fits in an `Int`.
    case integer(Int)
    /// Any other number.
    case number(Double)
    case bool(Bool)
    case null

    static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key.utf8.elementsEqual($1.key.utf8) && $0.value == $1.value }
        case let (.array(x), .array(y)): return x == y
        case let (.string(x), .string(y)): return x.utf8.elementsEqual(y.utf8)
        case let (.integer(x), .integer(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// What kind of value this is, for error messages.
    var kind: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .integer, .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    /// The compact UTF-8 text of this value (no whitespace; keys in their order; strings
    /// escaped only where JSON requires it).
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    private func encode(into out: inout [UInt8]) {
        func string(_ text: String) {
            out.append(UInt8(ascii: "\""))
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
                case 0..<0x20: out += Array(String(format: "\\u%04x", byte).utf8)
                default: out.append(byte)
                }
            }
            out.append(UInt8(ascii: "\""))
        }
        func list<T>(_ open: Unicode.Scalar, _ close: Unicode.Scalar, _ items: [T], _ each: (T) -> Void) {
            out.append(UInt8(ascii: open))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                each(item)
            }
            out.append(UInt8(ascii: close))
        }
        switch self {
        case let .object(members):
            list("{", "}", members) { member in
                string(member.key)
                out.append(UInt8(ascii: ":"))
                member.value.encode(into: &out)
            }
        case let .array(items): list("[", "]", items) { $0.encode(into: &out) }
        case let .string(text): string(text)
        case let .integer(n): out += Array(String(n).utf8)
        case let .number(x): out += Array((x.isFinite ? "\(x)" : "null").utf8)
        case let .bool(b): out += Array((b ? "true" : "false").utf8)
        case .null: out += Array("null".utf8)
        }
    }

    /// Parses `bytes` (UTF-8) as one JSON value; throws `JSON.ParseError` with the byte offset.
    static func parse<Bytes: Collection>(_ bytes: Bytes) throws -> JSON where Bytes.Element == UInt8 {
        var parser = Parser(bytes: Array(bytes))
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == parser.bytes.count else { throw parser.error("unexpected data after the JSON value") }
        return value
    }

    /// Why and where a JSON text is malformed.
    struct ParseError: Error, CustomStringConvertible {
        /// What is wrong.
        let reason: String
        /// The byte offset of the problem.
        let offset: Int
        var description: String { "\(reason) at byte \(offset)" }
    }

    private struct Parser {
        let bytes: [UInt8]
        var position = 0
        /// Deeper nesting than this is rejected (no header needs it; it bounds the recursion).
        static let maxDepth = 128

        func error(_ reason: String) -> ParseError { ParseError(reason: reason, offset: position) }

        mutating func skipWhitespace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        mutating func value(depth: Int) throws -> JSON {
            guard depth < Parser.maxDepth else { throw error("nesting deeper than \(Parser.maxDepth)") }
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end of the JSON text") }
            switch bytes[position] {
            case UInt8(ascii: "{"):
                position += 1
                var members: [(key: String, value: JSON)] = []
                skipWhitespace()
                if position < bytes.count && bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
                while true {
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                    let key = try string()
                    skipWhitespace()
                    try expect(":")
                    members.append((key, try value(depth: depth + 1)))
                    skipWhitespace()
                    if try endOfList("}") { return .object(members) }
                }
            case UInt8(ascii: "["):
                position += 1
                var elements: [JSON] = []
                skipWhitespace()
                if position < bytes.count && bytes[position] == UInt8(ascii: "]") { position += 1; return .array(elements) }
                while true {
                    elements.append(try value(depth: depth + 1))
                    skipWhitespace()
                    if try endOfList("]") { return .array(elements) }
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return try number()
            }
        }

        /// Consumes `,` (false: more follows) or `close` (true).
        mutating func endOfList(_ close: Unicode.Scalar) throws -> Bool {
            guard position < bytes.count else { throw error("unexpected end of the JSON text") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; return false }
            if bytes[position] == UInt8(ascii: close) { position += 1; return true }
            throw error("expected ',' or '\(close)'")
        }

        mutating func expect(_ character: Unicode.Scalar) throws {
            guard position < bytes.count, bytes[position] == UInt8(ascii: character) else { throw error("expected '\(character)'") }
            position += 1
        }

        mutating func literal(_ word: String) throws {
            let expected = Array(word.utf8)
            guard bytes.count - position >= expected.count, Array(bytes[position..<position + expected.count]) == expected else {
                throw error("invalid literal")
            }
            position += expected.count
        }

        mutating func number() throws -> JSON {
            let start = position
            var integral = true
            if position < bytes.count && bytes[position] == UInt8(ascii: "-") { position += 1 }
            func digits() -> Int {
                let begin = position
                while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
                return position - begin
            }
            let whole = position
            let count = digits()
            guard count > 0 else { throw error("invalid value") }
            guard count == 1 || bytes[whole] != UInt8(ascii: "0") else {
                position = whole
                throw error("a number may not start with 0")
            }
            if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
                position += 1
                integral = false
                guard digits() > 0 else { throw error("expected digits after '.'") }
            }
            if position < bytes.count && (bytes[position] | 0x20) == UInt8(ascii: "e") {
                position += 1
                integral = false
                if position < bytes.count && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")) { position += 1 }
                guard digits() > 0 else { throw error("expected digits in the exponent") }
            }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            if integral, let value = Int(text) { return .integer(value) }
            guard let value = Double(text) else { throw error("invalid number") }
            return .number(value)
        }

        mutating func string() throws -> String {
            position += 1
            var scalars = String.UnicodeScalarView()
            var run = position
            func flush() throws {
                guard let text = String(validating: bytes[run..<position], as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
                scalars.append(contentsOf: text.unicodeScalars)
            }
            while true {
                guard position < bytes.count else { throw error("unterminated string") }
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    try flush()
                    position += 1
                    return String(scalars)
                }
                guard byte >= 0x20 else { throw error("control character in a string") }
                guard byte == UInt8(ascii: "\\") else { position += 1; continue }
                try flush()
                position += 1
                guard position < bytes.count else { throw error("unterminated string") }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard bytes.count - position >= 2, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in a string")
                        }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("unpaired surrogate in a string") }
                    scalars.append(scalar)
                default: throw error("invalid escape in a string")
                }
                run = position
            }
        }

        mutating func hex4() throws -> UInt32 {
            guard bytes.count - position >= 4 else { throw error("invalid \\u escape") }
            var code: UInt32 = 0
            for byte in bytes[position..<position + 4] {
                guard let digit = Character(Unicode.Scalar(byte)).hexDigitValue else { throw error("invalid \\u escape") }
                code = code << 4 | UInt32(digit)
            }
            position += 4
            return code
        }
    }
}
