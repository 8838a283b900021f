// OnlineRequestDecoder: parses a plinth.v1.GetOnlineFeaturesRequest by hand.
//
// The generated decoder builds one String per feature reference on every
// request (measured: ~14,000 instructions for 16 references, the largest
// cost of a one-entity read after NIO itself). This parser keeps the
// references as the bytes they arrived as, which key the plan cache; the
// strings are built only when a plan is not cached. Entity columns are
// decoded into domain Columns directly. It accepts everything protobuf
// allows: fields in any order, repeated scalars packed or not, unknown
// fields skipped.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthWire

struct OnlineRequest {
    /// Identifies the requested features, unambiguously: the naming flag,
    /// the service (length-prefixed), then each reference as it arrived
    /// (length-prefixed), in order.
    var planKey: [UInt8] = []
    /// Where the references start in `planKey`.
    var referencesStart = 0
    var service = ""
    var fullFeatureNames = false
    var entities: [Column] = []

    /// The references as strings; built only when a plan is not cached.
    func references() throws -> [String] {
        try planKey.withUnsafeBytes { raw in
            var reader = ProtoReader(bytes: raw, position: referencesStart)
            var out: [String] = []
            while !reader.atEnd {
                guard let text = String(validating: try reader.lengthDelimited(), as: UTF8.self) else {
                    throw ProtoReader.malformed("a feature reference is not valid UTF-8")
                }
                out.append(text)
            }
            return out
        }
    }
}

/// A cursor over protobuf bytes. Every read is bounds-checked and throws a
/// WireError naming what was malformed.
struct ProtoReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    var atEnd: Bool { position >= bytes.count }

    static func malformed(_ what: String) -> WireError {
        WireError(code: StatusCode.invalidArgument, message: "the request body is not a valid plinth.v1.GetOnlineFeaturesRequest: \(what)")
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            if shift >= 64 { throw Self.malformed("varint too long") }
        }
        throw Self.malformed("truncated varint")
    }

    mutating func lengthDelimited() throws -> UnsafeRawBufferPointer {
        let length = try varint()
        guard length <= UInt64(bytes.count - position) else { throw Self.malformed("field length \(length) beyond the message") }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + Int(length))])
        position += Int(length)
        return slice
    }

    mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - position >= size else { throw Self.malformed("truncated fixed-width value") }
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
        position += size
        return value
    }

    mutating func skip(wire: UInt64) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try fixed(UInt64.self)
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed(UInt32.self)
        default: throw Self.malformed("unsupported wire type \(wire)")
        }
    }

    /// Reads a repeated scalar field, packed (wire type 2) or one element.
    mutating func repeated(wire: UInt64, element: UInt64, _ read: (inout ProtoReader) throws -> Void) throws {
        if wire == 2 {
            var inner = ProtoReader(bytes: try lengthDelimited())
            while !inner.atEnd { try read(&inner) }
        } else if wire == element {
            try read(&self)
        } else {
            throw Self.malformed("wire type \(wire) for a repeated field")
        }
    }
}

enum OnlineRequestDecoder {
    static func decode(_ body: ByteBuffer) throws -> OnlineRequest {
        try body.withUnsafeReadableBytes { raw in
            var reader = ProtoReader(bytes: raw)
            var request = OnlineRequest()
            var references: [UInt8] = []
            while !reader.atEnd {
                let key = try reader.varint()
                let field = key >> 3, wire = key & 7
                switch (field, wire) {
                case (1, 2):
                    // Validated only when a plan is built (`references`):
                    // a cached key was valid when it was cached.
                    let reference = try reader.lengthDelimited()
                    appendVarint(UInt64(reference.count), to: &references)
                    references.append(contentsOf: reference)
                case (2, 2):
                    request.service = try utf8(reader.lengthDelimited(), what: "feature_service")
                case (3, 2):
                    request.entities.append(try column(reader.lengthDelimited()))
                case (4, 0):
                    request.fullFeatureNames = try reader.varint() != 0
                default:
                    try reader.skip(wire: wire)
                }
            }
            request.planKey.reserveCapacity(references.count + request.service.utf8.count + 6)
            request.planKey.append(request.fullFeatureNames ? 1 : 0)
            appendVarint(UInt64(request.service.utf8.count), to: &request.planKey)
            request.planKey.append(contentsOf: request.service.utf8)
            request.referencesStart = request.planKey.count
            request.planKey.append(contentsOf: references)
            return request
        }
    }

    static func utf8(_ bytes: UnsafeRawBufferPointer, what: String) throws -> String {
        // ASCII is valid UTF-8 and common; the general validator costs a
        // generic-metadata lookup per call.
        if !bytes.contains(where: { $0 >= 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ProtoReader.malformed("\(what) is not valid UTF-8")
        }
        return text
    }

    private static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 { out.append(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }

    static func column(_ bytes: UnsafeRawBufferPointer) throws -> Column {
        var reader = ProtoReader(bytes: bytes)
        var name = ""
        var typeNumber = 0
        var vectorLength: UInt32 = 0
        var int64s: [Int64] = [], floats: [Float] = [], doubles: [Double] = [], bools: [Bool] = []
        var strings: [String] = [], data: [Data] = [], nullRows: [UInt32] = []
        while !reader.atEnd {
            let key = try reader.varint()
            let field = key >> 3, wire = key & 7
            switch field {
            case 1 where wire == 2: name = try utf8(reader.lengthDelimited(), what: "column name")
            case 2 where wire == 0: typeNumber = Int(truncatingIfNeeded: try reader.varint())
            case 3 where wire == 0: vectorLength = UInt32(truncatingIfNeeded: try reader.varint())
            case 4: try reader.repeated(wire: wire, element: 0) { int64s.append(Int64(bitPattern: try $0.varint())) }
            case 5: try reader.repeated(wire: wire, element: 5) { floats.append(Float(bitPattern: try $0.fixed(UInt32.self))) }
            case 6: try reader.repeated(wire: wire, element: 1) { doubles.append(Double(bitPattern: try $0.fixed(UInt64.self))) }
            case 7: try reader.repeated(wire: wire, element: 0) { bools.append(try $0.varint() != 0) }
            case 8 where wire == 2: strings.append(try utf8(reader.lengthDelimited(), what: "a string value"))
            case 9 where wire == 2: data.append(Data(try reader.lengthDelimited()))
            case 10: try reader.repeated(wire: wire, element: 0) { nullRows.append(UInt32(truncatingIfNeeded: try $0.varint())) }
            default: try reader.skip(wire: wire)
            }
        }
        let wireType = PBValueType(rawValue: typeNumber) ?? .UNRECOGNIZED(typeNumber)
        var column = Column(name: name, type: try FeatureType(wire: wireType, vectorLength: vectorLength, what: "column '\(name)'"))
        column.int64s = int64s
        column.float32s = floats
        column.float64s = doubles
        column.bools = bools
        column.strings = strings
        column.bytes = data
        column.nullRows = nullRows
        return column
    }
}
