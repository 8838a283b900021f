// A small, strict JSON reader for model files. Foundation's JSONSerialization
// boxes every number in an NSNumber, which is slow for the hundreds of
// thousands of node values in a large XGBoost model (the 500-tree fixture as
// JSON, 2.25 MB: 68 ms here against JSONSerialization's 605 ms) and loses
// the difference between integers and floats; this reader goes straight to
// `JSONValue`. Errors report the byte offset.
//
// It reads RFC 8259 JSON, with these decisions where the JSONTestSuite
// leaves one to the reader (JSONReaderTests checks each):
// - nesting is capped at `maxDepth`, so 100,000 '[' is an error, not a
//   stack overflow;
// - numbers follow the grammar strictly (no leading zeros, '+', '.5', '1.');
//   integers that fit Int64 stay integers, others become the nearest double
//   (123456789012345678901234567890 loses digits); a magnitude beyond
//   Double's range (1e400, -1e400) is refused rather than read as infinity,
//   since in a model file it is a corrupt value; one too small (1E-400)
//   becomes 0 or a subnormal. `NaN`, `Infinity` and `-Infinity` are
//   accepted, because some writers emit them for non-finite values;
// - strings: escaped surrogate pairs (\ud83d\ude00) are joined; a lone
//   surrogate is refused, not replaced, so a feature name is never altered
//   in silence; raw control characters and invalid UTF-8 are refused;
// - an object with a repeated member name is refused (which one would count
//   is not knowable);
// - a top-level scalar parses (the importers then ask for an object);
//   whitespace is space, tab, LF and CR only; a leading UTF-8 BOM is skipped.

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
            if buf.count >= 3, buf[0] == 0xEF, buf[1] == 0xBB, buf[2] == 0xBF { reader.pos = 3 }
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

    private func error(_ detail: String, at offset: Int? = nil) -> ModelError {
        .malformed(format: format, detail: "\(detail) at byte \(offset ?? pos)")
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

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
        case let c where c > 0x20 && c < 0x7F:
            throw error("unexpected character '\(Character(Unicode.Scalar(c)))'")
        case let c:
            throw error("unexpected byte 0x\(String(c, radix: 16, uppercase: true)) (JSON whitespace is space, tab, LF and CR)")
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
            let keyOffset = pos
            let key = try parseString()
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw error("expected ':'") }
            pos += 1
            guard members.updateValue(try parseValue(depth: depth + 1), forKey: key) == nil else {
                throw error("the member '\(key)' appears twice in one object", at: keyOffset)
            }
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
        var ascii = true
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\") { simple = false; pos += 2; continue }
            if c < 0x20 {
                throw error("control character 0x\(String(c, radix: 16, uppercase: true)) in a string; escape it (\\n, \\t, \\u00XX)")
            }
            if c >= 0x80 { ascii = false }
            pos += 1
        }
        guard pos < bytes.count else { throw error("unterminated string", at: start - 1) }
        let end = pos
        pos += 1
        if simple {
            let raw = UnsafeBufferPointer(rebasing: bytes[start..<end])
            if ascii { return String(decoding: raw, as: UTF8.self) }
            guard let s = String(validating: raw, as: UTF8.self) else { throw error("invalid UTF-8 in a string", at: start) }
            return s
        }
        // Escapes present: decode them one by one.
        var out = [UInt8]()
        out.reserveCapacity(end - start)
        var i = start
        while i < end {
            let c = bytes[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            guard i + 1 < end else { throw error("bad escape", at: i) }
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
                guard let unit = hex4(at: i, end: end) else { throw error("bad \\u escape: four hex digits must follow", at: i - 2) }
                var value = unit
                i += 4
                switch unit {
                case 0xD800...0xDBFF:
                    // UTF-16 spells a scalar past U+FFFF as a pair; join it.
                    guard i + 6 <= end, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                          let low = hex4(at: i + 2, end: end), (0xDC00...0xDFFF).contains(low) else {
                        throw error("lone surrogate \\u\(String(unit, radix: 16)): a high surrogate must be followed by a low one", at: i - 6)
                    }
                    value = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                case 0xDC00...0xDFFF:
                    throw error("lone surrogate \\u\(String(unit, radix: 16)): a low surrogate without a high one before it", at: i - 6)
                default:
                    break
                }
                guard let scalar = Unicode.Scalar(value) else { throw error("bad \\u escape", at: i - 6) }
                UTF8.encode(scalar) { out.append($0) }
            default: throw error("bad escape '\\\(Character(Unicode.Scalar(e)))'", at: i - 2)
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("invalid UTF-8 in a string", at: start) }
        return s
    }

    /// The four hex digits at `i` (strictly: `UInt32(_:radix:)` would take a sign).
    private func hex4(at i: Int, end: Int) -> UInt32? {
        guard i + 4 <= end else { return nil }
        var value: UInt32 = 0
        for k in i..<(i + 4) {
            let c = bytes[k]
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// JSON's number grammar, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?,
    /// or Infinity / -Infinity.
    private mutating func parseNumber() throws(ModelError) -> JSONValue {
        let start = pos
        let n = bytes.count
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < n else { throw error("bad number: a digit must follow '-'", at: start) }
        if bytes[pos] == UInt8(ascii: "I") {
            try expectLiteral("Infinity")
            return .double(pos - start == 9 ? -.infinity : .infinity)
        }
        guard Self.isDigit(bytes[pos]) else { throw error("bad number: a digit must follow '-'", at: start) }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < n, Self.isDigit(bytes[pos]) { throw error("bad number: leading zeros are not allowed", at: start) }
        } else {
            while pos < n, Self.isDigit(bytes[pos]) { pos += 1 }
        }
        var integral = true
        if pos < n, bytes[pos] == UInt8(ascii: ".") {
            integral = false
            pos += 1
            guard pos < n, Self.isDigit(bytes[pos]) else { throw error("bad number: a digit must follow '.'", at: start) }
            while pos < n, Self.isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < n, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            integral = false
            pos += 1
            if pos < n, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < n, Self.isDigit(bytes[pos]) else { throw error("bad number: a digit must follow the exponent mark", at: start) }
            while pos < n, Self.isDigit(bytes[pos]) { pos += 1 }
        }
        return try finishNumber(start: start, integral: integral)
    }

    private func finishNumber(start: Int, integral: Bool) throws(ModelError) -> JSONValue {
        let length = pos - start
        if integral {
            var value: Int64 = 0
            var i = start
            let negative = bytes[i] == UInt8(ascii: "-")
            if negative { i += 1 }
            var fits = true
            while i < pos {
                // Accumulate negatively so that Int64.min fits too.
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.subtractingReportingOverflow(Int64(bytes[i] &- UInt8(ascii: "0")))
                if o1 || o2 { fits = false; break }
                value = a
                i += 1
            }
            if fits {
                if negative { return .int(value) }
                if value != .min { return .int(-value) }
            }
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
        guard let parsed else { throw error("bad number", at: start) }
        guard parsed.isFinite else {
            throw error("number out of range: \(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self).prefix(40)) is beyond a double's range", at: start)
        }
        return .double(parsed)
    }
}
