// RowCodec: the packed byte form of one feature row, shared by the online
// face (latest row per entity) and the offline face (every row).
//
//   u8  format (1)
//   u32 schema version of the view when written (little-endian)
//   i64 event time, microseconds (little-endian)
//   i64 created time, microseconds
//   null bitmap, one bit per feature, ceil(n/8) bytes
//   fixed part: each feature at a fixed offset (int64/float64 8 bytes,
//     float32 4, bool 1, float32[N] 4N, string/bytes a u32 offset into the
//     variable part and a u32 length)
//   variable part: string and bytes values back to back
//
// One mdb_get returns the whole row and reading a feature is an offset
// load, with no parsing of the features not asked for. Rows remember their
// schema version so that changing a view's features never misreads old rows.
import Foundation

/// Where each feature of one schema version sits in a packed row.
public struct RowLayout: Sendable {
    public static let headerSize = 21
    public let features: [FeatureDefinition]
    public let schemaVersion: UInt32
    public let offsets: [Int]
    let bitmapSize: Int
    public let fixedSize: Int
    let indexByName: [String: Int]

    public init(features: [FeatureDefinition], schemaVersion: UInt32) {
        self.features = features
        self.schemaVersion = schemaVersion
        bitmapSize = (features.count + 7) / 8
        var offsets: [Int] = []
        var offset = Self.headerSize + bitmapSize
        for feature in features {
            offsets.append(offset)
            offset += feature.type.fixedWidth
        }
        self.offsets = offsets
        fixedSize = offset
        indexByName = Dictionary(features.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The index of `name` in this layout if it has that name with `type`.
    public func index(of name: String, type: FeatureType) -> Int? {
        guard let i = indexByName[name], features[i].type == type else { return nil }
        return i
    }

    /// Appends the packed row `row` of `columns` (one per feature, in layout
    /// order, already validated) to `out`.
    func encode(row: Int, columns: [Column], nulls: [Set<Int>], eventTime: Int64, createdTime: Int64, into out: inout [UInt8]) {
        let start = out.count
        var varSize = 0
        for (i, feature) in features.enumerated() where feature.type.isVariableWidth && !nulls[i].contains(row) {
            varSize += feature.type == .string ? columns[i].strings[row].utf8.count : columns[i].bytes[row].count
        }
        out.append(contentsOf: repeatElement(0, count: fixedSize + varSize))
        out.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress! + start
            base.storeBytes(of: 1, as: UInt8.self)
            base.storeBytes(of: schemaVersion.littleEndian, toByteOffset: 1, as: UInt32.self)
            base.storeBytes(of: eventTime.littleEndian, toByteOffset: 5, as: Int64.self)
            base.storeBytes(of: createdTime.littleEndian, toByteOffset: 13, as: Int64.self)
            var varOffset = 0
            for (i, feature) in features.enumerated() {
                if nulls[i].contains(row) {
                    let byte = base.load(fromByteOffset: Self.headerSize + i / 8, as: UInt8.self)
                    base.storeBytes(of: byte | (1 << UInt8(i % 8)), toByteOffset: Self.headerSize + i / 8, as: UInt8.self)
                    continue
                }
                let at = base + offsets[i]
                let column = columns[i]
                switch feature.type {
                case .int64: at.storeBytes(of: column.int64s[row].littleEndian, as: Int64.self)
                case .float32: at.storeBytes(of: column.float32s[row].bitPattern.littleEndian, as: UInt32.self)
                case .float64: at.storeBytes(of: column.float64s[row].bitPattern.littleEndian, as: UInt64.self)
                case .bool: at.storeBytes(of: column.bools[row] ? 1 : 0, as: UInt8.self)
                case .float32Vector(let n):
                    for j in 0..<n {
                        at.storeBytes(of: column.float32s[row * n + j].bitPattern.littleEndian, toByteOffset: 4 * j, as: UInt32.self)
                    }
                case .string, .bytes:
                    let dest = base + fixedSize + varOffset
                    let length: Int
                    if feature.type == .string {
                        var s = column.strings[row]
                        length = s.withUTF8 { utf8 in
                            if let src = utf8.baseAddress { dest.copyMemory(from: src, byteCount: utf8.count) }
                            return utf8.count
                        }
                    } else {
                        length = column.bytes[row].withUnsafeBytes { src in
                            if let p = src.baseAddress { dest.copyMemory(from: p, byteCount: src.count) }
                            return src.count
                        }
                    }
                    at.storeBytes(of: UInt32(varOffset).littleEndian, as: UInt32.self)
                    at.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 4, as: UInt32.self)
                    varOffset += length
                }
            }
        }
    }
}

/// A borrowed view of one packed row. Every accessor checks bounds, so a
/// damaged row reads as an error, never as a crash.
public struct PackedRow {
    public let bytes: UnsafeRawBufferPointer

    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= RowLayout.headerSize, bytes[0] == 1 else { return nil }
        self.bytes = bytes
    }

    public var schemaVersion: UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 1, as: UInt32.self)) }
    public var eventTime: Int64 { Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 5, as: Int64.self)) }
    public var createdTime: Int64 { Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 13, as: Int64.self)) }

    /// Whether the row is long enough for `layout`'s fixed part.
    public func fits(_ layout: RowLayout) -> Bool { bytes.count >= layout.fixedSize }

    @inline(__always)
    public func isNull(_ index: Int) -> Bool {
        bytes[RowLayout.headerSize + index / 8] & (1 << UInt8(index % 8)) != 0
    }

    /// The bytes of a string or bytes value whose (offset, length) slot is
    /// at byte `at`, in a row whose variable part starts at `base`; nil when
    /// the row is damaged.
    @inline(__always)
    public func variable(at: Int, base: Int) -> UnsafeRawBufferPointer? {
        let offset = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)))
        let start = base + offset
        guard start + length <= bytes.count else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)])
    }

    /// A numeric value as a model input: element `element` of the value of
    /// `type` whose slot is at byte `at` (bool is 0 or 1; a vector's
    /// elements follow each other). Strings and bytes have no number: NaN.
    @inlinable @inline(__always)
    public func float(_ type: FeatureType, at: Int, element: Int = 0) -> Float {
        switch type {
        case .int64: Float(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int64.self)))
        case .float32, .float32Vector:
            Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 4 * element, as: UInt32.self)))
        case .float64: Float(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))))
        case .bool: bytes[at] != 0 ? 1 : 0
        case .string, .bytes: .nan
        }
    }

    /// Appends the value of `type` whose slot is at byte `at` (variable
    /// part at `base`) to `column`. Returns false when the row is damaged.
    @inline(__always)
    public func append(_ type: FeatureType, at: Int, base: Int, to column: inout Column) -> Bool {
        switch type {
        case .int64: column.int64s.append(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int64.self)))
        case .float32: column.float32s.append(Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))))
        case .float64: column.float64s.append(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))))
        case .bool: column.bools.append(bytes[at] != 0)
        case .float32Vector(let n):
            for j in 0..<n {
                column.float32s.append(Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 4 * j, as: UInt32.self))))
            }
        case .string, .bytes:
            guard let slice = variable(at: at, base: base) else { return false }
            if type == .string {
                column.strings.append(String(decoding: slice, as: UTF8.self))
            } else {
                column.bytes.append(Data(slice))
            }
        }
        return true
    }

}
