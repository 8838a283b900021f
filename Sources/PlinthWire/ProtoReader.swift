// ProtoReader: the one protobuf reader of Plinth's hand-written codecs (the
// envelope, GetOnlineFeatures, Predict, plinth-bench's answers). It reads
// in place over raw memory — no copies, no Strings — and checks every
// read against the end of its bytes, so a malformed message throws instead
// of reading past it. The generated code stays the reference: each hand
// codec is tested against it (Tests/PlinthWireTests, PlinthServerTests).

/// A message's bytes did not follow the protobuf wire format.
public struct ProtoDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong, in words ("truncated varint", "field length 9 beyond the message").
    public let reason: String

    @inlinable
    public init(_ reason: String) { self.reason = reason }

    public var description: String { reason }
}

/// The protobuf wire types Plinth's messages use (groups are not).
public enum WireType {
    public static let varint: UInt64 = 0
    public static let fixed64: UInt64 = 1
    public static let lengthDelimited: UInt64 = 2
    public static let fixed32: UInt64 = 5
}

/// A cursor over protobuf bytes.
///
/// Threading: a value over memory its caller keeps alive for as long as it
/// reads; not shared.
public struct ProtoReader {
    public let bytes: UnsafeRawBufferPointer
    public var position: Int

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.position = 0
    }

    @inlinable
    public var atEnd: Bool { position >= bytes.count }

    /// A base-128 varint of at most ten bytes.
    @inlinable
    public mutating func varint() throws(ProtoDecodingError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            if shift >= 70 { throw ProtoDecodingError("varint longer than ten bytes") }
        }
        throw ProtoDecodingError("truncated varint")
    }

    /// A field's key: its number and wire type. Field 0 does not exist,
    /// and numbers stop at 2^29 - 1.
    @inlinable
    public mutating func key() throws(ProtoDecodingError) -> (field: Int, wire: UInt64) {
        let key = try varint()
        guard key >> 3 != 0, key >> 3 < 1 << 29 else { throw ProtoDecodingError("field number \(key >> 3)") }
        return (Int(key >> 3), key & 7)
    }

    /// A length-delimited field's content: a slice of `bytes`, no copy.
    @inlinable
    public mutating func lengthDelimited() throws(ProtoDecodingError) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[try lengthDelimitedRange()])
    }

    /// A length-delimited field's content as a range of `bytes`.
    @inlinable
    public mutating func lengthDelimitedRange() throws(ProtoDecodingError) -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(bytes.count - position) else {
            throw ProtoDecodingError("field length \(length) beyond the message")
        }
        let range = position..<(position + Int(length))
        position += Int(length)
        return range
    }

    @inlinable
    public mutating func fixed32() throws(ProtoDecodingError) -> UInt32 {
        guard bytes.count - position >= 4 else { throw ProtoDecodingError("truncated fixed32") }
        let value = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self))
        position += 4
        return value
    }

    @inlinable
    public mutating func fixed64() throws(ProtoDecodingError) -> UInt64 {
        guard bytes.count - position >= 8 else { throw ProtoDecodingError("truncated fixed64") }
        let value = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
        position += 8
        return value
    }

    /// Steps over a field of wire type `wire` whose key was just read, as
    /// protobuf requires of fields a reader does not know.
    @inlinable
    public mutating func skip(wire: UInt64) throws(ProtoDecodingError) {
        switch wire {
        case WireType.varint: _ = try varint()
        case WireType.fixed64: _ = try fixed64()
        case WireType.lengthDelimited: _ = try lengthDelimitedRange()
        case WireType.fixed32: _ = try fixed32()
        default: throw ProtoDecodingError("unsupported wire type \(wire)")
        }
    }

    /// Reads a repeated scalar field whose key was just read: packed (wire
    /// type 2, several elements) or one element of wire type `element`.
    @inlinable
    public mutating func repeated(wire: UInt64, element: UInt64, _ read: (inout ProtoReader) throws -> Void) throws {
        if wire == WireType.lengthDelimited {
            var inner = ProtoReader(try lengthDelimited())
            while !inner.atEnd { try read(&inner) }
        } else if wire == element {
            try read(&self)
        } else {
            throw ProtoDecodingError("wire type \(wire) for a repeated field")
        }
    }
}
