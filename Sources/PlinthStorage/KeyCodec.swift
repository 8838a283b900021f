// KeyCodec: the order-preserving byte encoding of storage keys.
//
// LMDB compares keys as raw bytes, so every component is encoded so that
// byte order equals natural order: unsigned integers big-endian, signed
// integers big-endian with the sign bit flipped, and strings/bytes escaped
// and terminated (0x00 -> 0x00 0xFF, end -> 0x00 0x01) so that a shorter
// string sorts before its extensions whatever component follows. A plain
// length prefix would sort "b" before "aa". Keys are versioned by the
// table they live in; this is encoding version 1.

/// Appends key components to a caller-provided buffer without allocating.
///
/// The writer stops at the buffer's end and reports overflow through
/// `overflowed`; callers size buffers from `KeyEncoder.maxInlineKey` and fall
/// back to a heap buffer for longer keys.
package struct KeyEncoder: ~Copyable {
    package static let maxInlineKey = 512
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    package private(set) var count = 0
    package private(set) var overflowed = false

    package init(_ buffer: UnsafeMutableRawBufferPointer) {
        // A zero-length buffer still needs a non-nil base for the arithmetic.
        self.base = buffer.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 0x10)!
        self.capacity = buffer.baseAddress == nil ? 0 : buffer.count
    }

    @inline(__always)
    private mutating func put(_ byte: UInt8) {
        guard count < capacity else { overflowed = true; return }
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    package mutating func append(_ value: UInt32) {
        guard count + 4 <= capacity else { overflowed = true; return }
        base.storeBytes(of: value.bigEndian, toByteOffset: count, as: UInt32.self)
        count += 4
    }

    @inline(__always)
    package mutating func append(_ value: UInt64) {
        guard count + 8 <= capacity else { overflowed = true; return }
        base.storeBytes(of: value.bigEndian, toByteOffset: count, as: UInt64.self)
        count += 8
    }

    @inline(__always)
    package mutating func append(_ value: Int64) {
        append(UInt64(bitPattern: value) ^ (1 << 63))
    }

    /// Appends bytes that are already an encoded key prefix (self-delimiting).
    package mutating func append(raw bytes: UnsafeRawBufferPointer) {
        guard count + bytes.count <= capacity else { overflowed = true; return }
        if let src = bytes.baseAddress { (base + count).copyMemory(from: src, byteCount: bytes.count) }
        count += bytes.count
    }

    package mutating func append<Bytes: Collection<UInt8>>(escaped bytes: Bytes) {
        for byte in bytes {
            put(byte)
            if byte == 0 { put(0xFF) }
        }
        put(0)
        put(1)
    }

    package mutating func append(_ string: String) {
        var string = string
        string.withUTF8 { append(escaped: $0) }
    }

    package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// Reads key components in the order they were appended.
package struct KeyDecoder {
    private let bytes: UnsafeRawBufferPointer
    package private(set) var offset = 0

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    package var isAtEnd: Bool { offset >= bytes.count }

    package mutating func readUInt32() throws(StorageError) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw StorageError("key truncated reading uint32 at \(offset)") }
        var value: UInt32 = 0
        for i in 0..<4 { value = value << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return value
    }

    package mutating func readUInt64() throws(StorageError) -> UInt64 {
        guard offset + 8 <= bytes.count else { throw StorageError("key truncated reading uint64 at \(offset)") }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return value
    }

    package mutating func readInt64() throws(StorageError) -> Int64 {
        Int64(bitPattern: try readUInt64() ^ (1 << 63))
    }

    package mutating func readEscaped() throws(StorageError) -> [UInt8] {
        var out: [UInt8] = []
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            if byte != 0 { out.append(byte); continue }
            guard offset < bytes.count else { break }
            let next = bytes[offset]
            offset += 1
            if next == 0xFF { out.append(0) } else if next == 1 { return out } else { break }
        }
        throw StorageError("key has an unterminated string at \(offset)")
    }

    package mutating func readString() throws(StorageError) -> String {
        String(decoding: try readEscaped(), as: UTF8.self)
    }
}

/// Builds a key into a fresh array; for paths that are not hot.
package func makeKey(_ build: (inout KeyEncoder) -> Void) -> [UInt8] {
    var size = KeyEncoder.maxInlineKey
    while true {
        var out = [UInt8](repeating: 0, count: size)
        let result: Int? = out.withUnsafeMutableBytes { raw in
            var encoder = KeyEncoder(raw)
            build(&encoder)
            return encoder.overflowed ? nil : encoder.count
        }
        if let result { out.removeLast(size - result); return out }
        size *= 4
    }
}
