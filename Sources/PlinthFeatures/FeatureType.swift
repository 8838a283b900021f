// FeatureType: the value types of features and entity keys, and how each is
// spelled in YAML ("int64", "float32[8]").

/// The type of a feature or an entity key.
public enum FeatureType: Sendable, Hashable, Codable, CustomStringConvertible {
    case int64, float32, float64, bool, string, bytes
    /// A fixed-length vector of float32 (an embedding).
    case float32Vector(length: Int)

    /// Longest vector accepted, so a typo cannot reserve gigabytes per row.
    public static let maxVectorLength = 65_536

    /// Parses the YAML spelling; nil when it names no type.
    public init?(spelling: String) {
        switch spelling {
        case "int64": self = .int64
        case "float32", "float": self = .float32
        case "float64", "double": self = .float64
        case "bool": self = .bool
        case "string": self = .string
        case "bytes": self = .bytes
        default:
            guard spelling.hasPrefix("float32["), spelling.hasSuffix("]"),
                  let n = Int(spelling.dropFirst(8).dropLast()), n > 0, n <= Self.maxVectorLength
            else { return nil }
            self = .float32Vector(length: n)
        }
    }

    public var description: String {
        switch self {
        case .int64: "int64"
        case .float32: "float32"
        case .float64: "float64"
        case .bool: "bool"
        case .string: "string"
        case .bytes: "bytes"
        case .float32Vector(let n): "float32[\(n)]"
        }
    }

    /// Bytes the value takes in the fixed part of a packed row; variable-width
    /// types keep an (offset, length) pair there.
    public var fixedWidth: Int {
        switch self {
        case .int64, .float64: 8
        case .float32: 4
        case .bool: 1
        case .string, .bytes: 8
        case .float32Vector(let n): 4 * n
        }
    }

    public var isVariableWidth: Bool { self == .string || self == .bytes }

    /// Types an entity join key may have.
    public var isKeyType: Bool { self == .int64 || self == .string || self == .bytes }

    /// Codable as its YAML spelling, so stored definitions stay readable.
    public init(from decoder: any Decoder) throws {
        let spelling = try decoder.singleValueContainer().decode(String.self)
        guard let type = FeatureType(spelling: spelling) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "unknown type \(spelling)"))
        }
        self = type
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
