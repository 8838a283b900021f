// A small, strict JSON reader for model files. Foundation's JSONSerialization
// boxes every number in an NSNumber, which is slow for the hundreds of
// thousands of node values in a large XGBoost model and loses the difference
// between integers and floats; this reader goes straight to `JSONValue`.
// Errors report the byte offset; nesting depth is capped so a hostile file
// cannot exhaust the stack.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct JSONReader {
    static let maxDepth = 64

    private let bytes: UnsafeBufferPointer<UInt8>
    private var pos = 0
    private let format: String

    private init(bytes: UnsafeBufferPointer<UInt8>, format: String) {
        self.bytes = bytes
        self.format = format
    }

    /// Parses one JSON document; trailing content other than whitespace is an error.
    static func parse(_ data: [UInt8], format: String = "JSON") throws(ModelError) -> JSONValue {
        let result: Result<JSONValue, ModelError> = data.withUnsafeBufferPointer { buf in
            var reader = JSONReader(bytes: buf, format: format)
            do throws(ModelError) {
                let value = try reader.parseValue(depth: 0)
                reader.skipWhitespace()
                if reader.pos != buf.count {
                    throw reader.error("unexpected content after the document")
                }
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func error(_ detail: String) -> ModelError {
        .malformed(format: format, detail: "\(detail) at byte \(pos)")
    }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            let c = bytes[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { break }
        }
    }

    private mutating func parseValue(depth: Int) throws(ModelError) -> JSONValue {
        guard depth < Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
        skipWhitespace()
        guard pos < bytes.count else { throw error("unexpected end of file") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "N"): try expectLiteral("NaN"); return .double(.nan)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "I"):
            return try parseNumber()
        default:
            throw error("unexpected character '\(Character(Unicode.Scalar(bytes[pos])))'")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(ModelError) {
        let n = literal.utf8CodeUnitCount
        guard pos + n <= bytes.count else { throw error("unexpected end of file") }
        let p = literal.utf8Start
        for i in 0..<n where bytes[pos + i] != p[i] {
            throw error("invalid literal")
        }
        pos += n
    }

    private mutating func parseObject(depth: Int) throws(ModelError) -> JSONValue {
        pos += 1
        var members = [String: JSONValue]()
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") {
            pos += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try parseString()
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw error("expected ':'") }
            pos += 1
            members[key] = try parseValue(depth: depth + 1)
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of file in an object") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
            throw error("expected ',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws(ModelError) -> JSONValue {
        pos += 1
        var items = [JSONValue]()
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            return .array(items)
        }
        while true {
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of file in an array") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; break }
            throw error("expected ',' or ']'")
        }
        return .array(items)
    }

    private mutating func parseString() throws(ModelError) -> String {
        pos += 1
        let start = pos
        var simple = true
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                if simple {
                    let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
                    pos += 1
                    return s
                }
                break
            }
            if c == UInt8(ascii: "\\") { simple = false; pos += 2; continue }
            pos += 1
        }
        guard pos < bytes.count else { throw error("unterminated string") }
        // Escapes present: decode them one by one.
        var out = [UInt8]()
        var i = start
        while i < pos {
            let c = bytes[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            guard i + 1 < pos else { throw error("bad escape") }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard i + 4 <= pos,
                      let code = UInt32(String(decoding: UnsafeBufferPointer(rebasing: bytes[i..<i + 4]),
                                               as: UTF8.self), radix: 16)
                else { throw error("bad \\u escape") }
                i += 4
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: throw error("bad escape")
            }
        }
        pos += 1
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func parseNumber() throws(ModelError) -> JSONValue {
        let start = pos
        var integral = true
        while pos < bytes.count {
            let c = bytes[pos]
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"):
                pos += 1
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"):
                integral = false
                pos += 1
            case UInt8(ascii: "I"), UInt8(ascii: "n"), UInt8(ascii: "f"), UInt8(ascii: "i"),
                 UInt8(ascii: "t"), UInt8(ascii: "y"):
                // "Infinity" / "-Infinity", which some writers emit for non-finite values.
                integral = false
                pos += 1
            default:
                return try finishNumber(start: start, integral: integral)
            }
        }
        return try finishNumber(start: start, integral: integral)
    }

    private func finishNumber(start: Int, integral: Bool) throws(ModelError) -> JSONValue {
        let length = pos - start
        guard length > 0, length < 64 else { throw error("bad number") }
        if integral {
            var value: Int64 = 0
            var i = start
            var negative = false
            if bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
            var ok = i < pos
            while i < pos && ok {
                let d = bytes[i] &- UInt8(ascii: "0")
                if d > 9 { ok = false; break }
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(d))
                if o1 || o2 { ok = false; break }
                value = a
                i += 1
            }
            if ok { return .int(negative ? -value : value) }
        }
        // strtod needs a terminated string; numbers are short, so copy to the stack.
        let parsed: Double? = withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { tmp in
            for i in 0..<length { tmp[i] = CChar(bitPattern: bytes[start + i]) }
            tmp[length] = 0
            var end: UnsafeMutablePointer<CChar>?
            guard let base = tmp.baseAddress else { return nil }
            let v = strtod(base, &end)
            guard let end, end - base == length else { return nil }
            return v
        }
        guard let parsed else { throw error("bad number") }
        return .double(parsed)
    }
}
