// A parsed JSON or UBJSON document. XGBoost writes the same model tree in
// both syntaxes, so both readers produce this one value type and one
// importer walks it. UBJSON's typed arrays (how XGBoost stores node arrays)
// stay packed as `[Float]`/`[Int64]`/`[UInt8]` instead of one enum per number.

enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
    case floats([Float])
    case doubles([Double])
    case ints([Int64])

    subscript(key: String) -> JSONValue? {
        if case let .object(members) = self { return members[key] }
        return nil
    }

    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int, .double: return "number"
        case .string: return "string"
        case .array, .floats, .doubles, .ints: return "array"
        case .object: return "object"
        }
    }

    var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    var number: Double? {
        switch self {
        case let .int(v): return Double(v)
        case let .double(v): return v
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }

    /// The element count of any array form, or nil for a non-array.
    var count: Int? {
        switch self {
        case let .array(a): return a.count
        case let .floats(a): return a.count
        case let .doubles(a): return a.count
        case let .ints(a): return a.count
        default: return nil
        }
    }

    /// The value as a float array, whatever array form it was stored in.
    func floatArray() -> [Float]? {
        switch self {
        case let .floats(a): return a
        case let .doubles(a): return a.map { Float($0) }
        case let .ints(a): return a.map { Float($0) }
        case let .array(a):
            var out = [Float]()
            out.reserveCapacity(a.count)
            for v in a {
                guard let d = v.number else { return nil }
                out.append(Float(d))
            }
            return out
        default: return nil
        }
    }

    /// The value as a double array, whatever array form it was stored in.
    func doubleArray() -> [Double]? {
        switch self {
        case let .floats(a): return a.map { Double($0) }
        case let .doubles(a): return a
        case let .ints(a): return a.map { Double($0) }
        case let .array(a):
            var out = [Double]()
            out.reserveCapacity(a.count)
            for v in a {
                guard let d = v.number else { return nil }
                out.append(d)
            }
            return out
        default: return nil
        }
    }

    /// The value as an integer array; nil if any element is not integral.
    func intArray() -> [Int64]? {
        switch self {
        case let .ints(a): return a
        case let .floats(a): return Self.exactIntegers(a)
        case let .doubles(a): return Self.exactIntegers(a)
        case let .array(a):
            var out = [Int64]()
            out.reserveCapacity(a.count)
            for v in a {
                switch v {
                case let .int(i): out.append(i)
                case let .bool(b): out.append(b ? 1 : 0)
                case let .double(d):
                    guard let i = Int64(exactly: d) else { return nil }
                    out.append(i)
                default: return nil
                }
            }
            return out
        default: return nil
        }
    }

    private static func exactIntegers<F: BinaryFloatingPoint>(_ a: [F]) -> [Int64]? {
        var out = [Int64]()
        out.reserveCapacity(a.count)
        for v in a {
            guard let i = Int64(exactly: v) else { return nil }
            out.append(i)
        }
        return out
    }
}
