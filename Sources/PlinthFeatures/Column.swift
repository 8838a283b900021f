// Column: a named, typed column of values, one per row, with null rows.
// It mirrors the wire's plinth.v1.Column so the server converts by moving
// arrays, not copying values.
public import Foundation

public struct Column: Sendable {
    public var name: String
    public var type: FeatureType
    public var int64s: [Int64] = []
    /// float32 values; for vectors, rows x length values row-major.
    public var float32s: [Float] = []
    public var float64s: [Double] = []
    public var bools: [Bool] = []
    public var strings: [String] = []
    public var bytes: [Data] = []
    /// Ascending indices of rows that hold a placeholder instead of a value.
    public var nullRows: [UInt32] = []

    public init(name: String, type: FeatureType) {
        self.name = name
        self.type = type
    }

    /// The number of rows, from the array that matches the type.
    public var count: Int {
        switch type {
        case .int64: int64s.count
        case .float32: float32s.count
        case .float64: float64s.count
        case .bool: bools.count
        case .string: strings.count
        case .bytes: bytes.count
        case .float32Vector(let n): n == 0 ? 0 : float32s.count / n
        }
    }

    /// Whether the arrays other than the typed one are empty and the typed
    /// one holds whole rows; a message naming the problem otherwise.
    public func shapeProblem() -> String? {
        // Which array belongs to the type; any other non-empty one is a mismatch.
        let own: Int
        switch type {
        case .int64: own = 0
        case .float32, .float32Vector: own = 1
        case .float64: own = 2
        case .bool: own = 3
        case .string: own = 4
        case .bytes: own = 5
        }
        if (own != 0 && !int64s.isEmpty) || (own != 1 && !float32s.isEmpty) || (own != 2 && !float64s.isEmpty)
            || (own != 3 && !bools.isEmpty) || (own != 4 && !strings.isEmpty) || (own != 5 && !bytes.isEmpty) {
            return "column '\(name)' is declared \(type) but carries values of another type"
        }
        if case .float32Vector(let n) = type, float32s.count % n != 0 {
            return "column '\(name)' holds \(float32s.count) floats, not a multiple of its vector length \(n)"
        }
        var previous: Int64 = -1
        let rows = count
        for row in nullRows {
            if Int64(row) <= previous || Int(row) >= rows {
                return "column '\(name)' has null_rows out of order or beyond its \(rows) rows"
            }
            previous = Int64(row)
        }
        return nil
    }

    /// Reserves room for `rows` rows of this column's type.
    public mutating func reserve(_ rows: Int) {
        switch type {
        case .int64: int64s.reserveCapacity(rows)
        case .float32: float32s.reserveCapacity(rows)
        case .float32Vector(let n): float32s.reserveCapacity(rows * n)
        case .float64: float64s.reserveCapacity(rows)
        case .bool: bools.reserveCapacity(rows)
        case .string: strings.reserveCapacity(rows)
        case .bytes: bytes.reserveCapacity(rows)
        }
    }

    /// Appends a placeholder and records the row as null.
    public mutating func appendNull() {
        nullRows.append(UInt32(count))
        switch type {
        case .int64: int64s.append(0)
        case .float32: float32s.append(0)
        case .float32Vector(let n): float32s.append(contentsOf: repeatElement(0, count: n))
        case .float64: float64s.append(0)
        case .bool: bools.append(false)
        case .string: strings.append("")
        case .bytes: bytes.append(Data())
        }
    }
}

/// The status of one value in an online read (numbers as on the wire).
public enum FieldStatus: UInt8, Sendable {
    case invalid = 0, present = 1, nullValue = 2, notFound = 3, outsideMaxAge = 4
}
