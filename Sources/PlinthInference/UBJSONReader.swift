// A reader for UBJSON (Draft 12) as XGBoost writes it (the default model
// format since XGBoost 2.1). Node arrays come as optimized typed containers
// (`[$d#L<count>`), which this reader keeps packed. Every declared count is
// checked against the bytes left in the file before anything is allocated,
// so a corrupt count cannot make the reader reserve more memory than the
// file's own size.

struct UBJSONReader {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var pos = 0
    private let format = "UBJSON"

    private init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    static func parse(_ data: [UInt8]) throws(ModelError) -> JSONValue {
        let result: Result<JSONValue, ModelError> = data.withUnsafeBufferPointer { buf in
            var reader = UBJSONReader(bytes: buf)
            do throws(ModelError) {
                let marker = try reader.readByte()
                let value = try reader.parseValue(marker: marker, depth: 0)
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

    private var remaining: Int { bytes.count - pos }

    private mutating func readByte() throws(ModelError) -> UInt8 {
        guard pos < bytes.count else { throw error("unexpected end of file") }
        defer { pos += 1 }
        return bytes[pos]
    }

    private mutating func readBigEndian<T: FixedWidthInteger>(_: T.Type) throws(ModelError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw error("unexpected end of file") }
        var v: T = 0
        for i in 0..<size { v = (v << 8) | T(truncatingIfNeeded: bytes[pos + i]) }
        pos += size
        return v
    }

    private mutating func readInteger(marker: UInt8) throws(ModelError) -> Int64 {
        switch marker {
        case UInt8(ascii: "i"): return Int64(Int8(bitPattern: try readByte()))
        case UInt8(ascii: "U"): return Int64(try readByte())
        case UInt8(ascii: "I"): return Int64(Int16(bitPattern: try readBigEndian(UInt16.self)))
        case UInt8(ascii: "l"): return Int64(Int32(bitPattern: try readBigEndian(UInt32.self)))
        case UInt8(ascii: "L"): return Int64(bitPattern: try readBigEndian(UInt64.self))
        default: throw error("expected an integer type marker, found 0x\(String(marker, radix: 16))")
        }
    }

    private mutating func readCount() throws(ModelError) -> Int {
        let n = try readInteger(marker: try readByte())
        guard n >= 0, n <= Int64(remaining) else {
            throw error("count \(n) exceeds the \(remaining) bytes left in the file")
        }
        return Int(n)
    }

    private mutating func readString() throws(ModelError) -> String {
        let n = try readCount()
        let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[pos..<pos + n]), as: UTF8.self)
        pos += n
        return s
    }

    private mutating func parseValue(marker: UInt8, depth: Int) throws(ModelError) -> JSONValue {
        guard depth < JSONReader.maxDepth else { throw error("nesting deeper than \(JSONReader.maxDepth)") }
        switch marker {
        case UInt8(ascii: "Z"): return .null
        case UInt8(ascii: "T"): return .bool(true)
        case UInt8(ascii: "F"): return .bool(false)
        case UInt8(ascii: "i"), UInt8(ascii: "U"), UInt8(ascii: "I"), UInt8(ascii: "l"), UInt8(ascii: "L"):
            return .int(try readInteger(marker: marker))
        case UInt8(ascii: "d"): return .double(Double(Float(bitPattern: try readBigEndian(UInt32.self))))
        case UInt8(ascii: "D"): return .double(Double(bitPattern: try readBigEndian(UInt64.self)))
        case UInt8(ascii: "C"): return .string(String(Character(Unicode.Scalar(try readByte()))))
        case UInt8(ascii: "S"), UInt8(ascii: "H"): return .string(try readString())
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        default:
            pos -= 1
            throw error("unknown type marker 0x\(String(marker, radix: 16))")
        }
    }

    /// Reads an optional `$type` and `#count` header of an optimized container.
    private mutating func containerHeader() throws(ModelError) -> (type: UInt8?, count: Int?) {
        var type: UInt8?
        var count: Int?
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "$") {
            pos += 1
            type = try readByte()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "#") else { throw error("'$' without '#'") }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "#") {
            pos += 1
            count = try readCount()
        }
        return (type, count)
    }

    private static func elementSize(_ type: UInt8) -> Int? {
        switch type {
        case UInt8(ascii: "i"), UInt8(ascii: "U"), UInt8(ascii: "C"): return 1
        case UInt8(ascii: "I"): return 2
        case UInt8(ascii: "l"), UInt8(ascii: "d"): return 4
        case UInt8(ascii: "L"), UInt8(ascii: "D"): return 8
        case UInt8(ascii: "Z"), UInt8(ascii: "T"), UInt8(ascii: "F"): return 0
        default: return nil
        }
    }

    private mutating func parseArray(depth: Int) throws(ModelError) -> JSONValue {
        let (type, count) = try containerHeader()
        if let type, let count {
            if let size = Self.elementSize(type), size > 0 {
                guard count <= remaining / size else {
                    throw error("typed array of \(count) elements exceeds the file")
                }
                return try readTypedArray(type: type, count: count)
            }
            // Zero-size types (Z/T/F) or strings: fall back to values, capped by the file size.
            guard count <= remaining else { throw error("array count \(count) exceeds the file") }
            var items = [JSONValue]()
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(try parseValue(marker: type, depth: depth + 1)) }
            return .array(items)
        }
        var items = [JSONValue]()
        if let count {
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(try parseValue(marker: try readByte(), depth: depth + 1)) }
            return .array(items)
        }
        while true {
            let m = try readByte()
            if m == UInt8(ascii: "]") { break }
            if m == UInt8(ascii: "N") { continue }
            items.append(try parseValue(marker: m, depth: depth + 1))
        }
        return .array(items)
    }

    private mutating func readTypedArray(type: UInt8, count: Int) throws(ModelError) -> JSONValue {
        switch type {
        case UInt8(ascii: "d"):
            var out = [Float](repeating: 0, count: count)
            for i in 0..<count { out[i] = Float(bitPattern: try readBigEndian(UInt32.self)) }
            return .floats(out)
        case UInt8(ascii: "D"):
            var out = [Double](repeating: 0, count: count)
            for i in 0..<count { out[i] = Double(bitPattern: try readBigEndian(UInt64.self)) }
            return .doubles(out)
        case UInt8(ascii: "C"):
            let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[pos..<pos + count]), as: UTF8.self)
            pos += count
            return .string(s)
        default:
            var out = [Int64](repeating: 0, count: count)
            for i in 0..<count { out[i] = try readInteger(marker: type) }
            return .ints(out)
        }
    }

    private mutating func parseObject(depth: Int) throws(ModelError) -> JSONValue {
        let (type, count) = try containerHeader()
        var members = [String: JSONValue]()
        if let count {
            guard count <= remaining else { throw error("object count \(count) exceeds the file") }
            for _ in 0..<count {
                let key = try readString()
                let marker: UInt8
                if let type { marker = type } else { marker = try readByte() }
                members[key] = try parseValue(marker: marker, depth: depth + 1)
            }
            return .object(members)
        }
        while true {
            guard pos < bytes.count else { throw error("unexpected end of file in an object") }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; break }
            if bytes[pos] == UInt8(ascii: "N") { pos += 1; continue }
            let key = try readString()
            members[key] = try parseValue(marker: try readByte(), depth: depth + 1)
        }
        return .object(members)
    }
}
