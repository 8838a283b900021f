// ProtoWriter: the one protobuf writer of Plinth's hand-written encoders
// (the response envelope, GetOnlineFeatures and Predict answers,
// plinth-bench's requests). It writes through one raw pointer into memory
// its caller sized beforehand — the encoders compute exact or upper-bound
// sizes first — because per-byte ByteBuffer or Array writes each paid a
// uniqueness and exclusivity check (about 300,000 instructions per
// 16-feature answer, measured with callgrind before this writer existed).
public import NIOCore

/// Appends protobuf wire bytes through a raw pointer. Every write stays
/// inside the memory it was given or traps.
///
/// Threading: a value over memory its caller owns for the duration of one
/// encode; not shared.
public struct ProtoWriter {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let capacity: Int
    @usableFromInline var written = 0
    /// Bytes written so far.
    @inlinable public var count: Int { written }

    @inlinable
    public init(_ buffer: UnsafeMutableRawBufferPointer) {
        // An empty buffer may have no base address; nothing can be written to it.
        base = buffer.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 1)!
        capacity = buffer.count
    }

    /// The bytes a varint of `value` takes (1 to 10).
    @inlinable
    public static func varintSize(_ value: UInt64) -> Int {
        var n = 1, v = value
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// The bytes of a length-delimited field of `field` with `length` bytes of content.
    @inlinable
    public static func fieldSize(_ field: Int, length: Int) -> Int {
        varintSize(UInt64(field << 3 | 2)) + varintSize(UInt64(length)) + length
    }

    @inlinable @inline(__always)
    public mutating func byte(_ b: UInt8) {
        precondition(count < capacity, "ProtoWriter: write past the sized buffer")
        base.storeBytes(of: b, toByteOffset: count, as: UInt8.self)
        written += 1
    }

    @inlinable @inline(__always)
    public mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            byte(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        byte(UInt8(v))
    }

    @inlinable @inline(__always)
    public mutating func tag(_ field: Int, _ wire: UInt64) { varint(UInt64(field) << 3 | wire) }

    @inlinable @inline(__always)
    public mutating func bytes(_ source: UnsafeRawBufferPointer) {
        precondition(count + source.count <= capacity, "ProtoWriter: write past the sized buffer")
        if let src = source.baseAddress { (base + count).copyMemory(from: src, byteCount: source.count) }
        written += source.count
    }

    /// Four bytes as they are in memory (the caller chose the byte order).
    @inlinable @inline(__always)
    public mutating func word32(_ value: UInt32) {
        precondition(count + 4 <= capacity, "ProtoWriter: write past the sized buffer")
        base.storeBytes(of: value, toByteOffset: count, as: UInt32.self)
        written += 4
    }

    /// Eight bytes as they are in memory (the caller chose the byte order).
    @inlinable @inline(__always)
    public mutating func word64(_ value: UInt64) {
        precondition(count + 8 <= capacity, "ProtoWriter: write past the sized buffer")
        base.storeBytes(of: value, toByteOffset: count, as: UInt64.self)
        written += 8
    }

    /// Writes a varint encoded ahead of time.
    @inlinable @inline(__always)
    public mutating func encoded(_ varint: EncodedVarint) {
        if count + 10 <= capacity {
            // Store whole words and advance by the real length: cheaper than a loop.
            base.storeBytes(of: varint.bytes.0.littleEndian, toByteOffset: count, as: UInt64.self)
            base.storeBytes(of: varint.bytes.1.littleEndian, toByteOffset: count + 8, as: UInt16.self)
            written += varint.count
        } else {
            precondition(count + varint.count <= capacity, "ProtoWriter: write past the sized buffer")
            for i in 0..<varint.count {
                byte(i < 8 ? UInt8(truncatingIfNeeded: varint.bytes.0 >> (8 * UInt64(i)))
                           : UInt8(truncatingIfNeeded: varint.bytes.1 >> (8 * UInt16(i - 8))))
            }
        }
    }

    /// Takes the next `n` bytes for the caller to fill.
    @inlinable @inline(__always)
    public mutating func reserve(_ n: Int) -> UnsafeMutableRawPointer {
        precondition(n >= 0 && count + n <= capacity, "ProtoWriter: write past the sized buffer")
        defer { written += n }
        return base + count
    }

    /// Writes a varint at `base + at` and advances `at`; the caller sized
    /// the memory (10 bytes at most). For patching bytes already reserved.
    @inlinable @inline(__always)
    public static func varint(_ value: UInt64, at base: UnsafeMutableRawPointer, _ at: inout Int) {
        var v = value
        while v >= 0x80 {
            base.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: at, as: UInt8.self)
            at += 1
            v >>= 7
        }
        base.storeBytes(of: UInt8(v), toByteOffset: at, as: UInt8.self)
        at += 1
    }

    @inlinable @inline(__always)
    public mutating func zeros(_ n: Int) {
        precondition(n >= 0 && count + n <= capacity, "ProtoWriter: write past the sized buffer")
        (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: n)
        written += n
    }

    /// A string field: tag, length, UTF-8 bytes.
    @inlinable
    public mutating func string(_ field: Int, _ text: String) {
        tag(field, WireType.lengthDelimited)
        var text = text
        text.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes(UnsafeRawBufferPointer(utf8))
        }
    }

    /// A bytes field: tag, length, the bytes.
    @inlinable
    public mutating func bytesField(_ field: Int, _ content: UnsafeRawBufferPointer) {
        self.field(field, length: content.count)
        bytes(content)
    }

    /// Writes a length-delimited field's tag and its length; the caller
    /// writes the `length` bytes of content next.
    @inlinable @inline(__always)
    public mutating func field(_ field: Int, length: Int) {
        tag(field, WireType.lengthDelimited)
        varint(UInt64(length))
    }

    /// A varint field (int32, int64, uint32, uint64, bool, enum).
    @inlinable @inline(__always)
    public mutating func varintField(_ field: Int, _ value: UInt64) {
        tag(field, WireType.varint)
        varint(value)
    }

    /// Runs `body` with a writer over `bound` bytes appended to `out`, and
    /// keeps the bytes it wrote. `bound` must cover everything `body` writes.
    @inlinable
    public static func append(to out: inout ByteBuffer, bound: Int, _ body: (inout ProtoWriter) throws -> Void) rethrows {
        try out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { raw in
            var writer = ProtoWriter(raw)
            try body(&writer)
            return writer.count
        }
    }

    /// Runs `body` with a writer over `bound` bytes appended to `out`, and
    /// keeps the bytes it wrote. `bound` must cover everything `body` writes.
    @inlinable
    public static func append(to out: inout [UInt8], bound: Int, _ body: (inout ProtoWriter) throws -> Void) rethrows {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: bound))
        let written = try out.withUnsafeMutableBytes { raw -> Int in
            var writer = ProtoWriter(UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
            try body(&writer)
            return writer.count
        }
        out.removeLast(bound - written)
    }
}

/// A varint's bytes, little end first, in registers: encoded once, written
/// many times (a row's event time into each of its view's columns).
public struct EncodedVarint: Sendable {
    public var bytes: (UInt64, UInt16) = (0, 0)
    public var count: Int = 0

    @inlinable
    public init() {}

    @inlinable
    public init(_ value: UInt64) {
        var v = value, lo: UInt64 = 0, hi: UInt16 = 0, n = 0
        repeat {
            let byte = UInt64(v & 0x7F) | (v >= 0x80 ? 0x80 : 0)
            if n < 8 { lo |= byte << (8 * UInt64(n)) } else { hi |= UInt16(byte) << (8 * UInt16(n - 8)) }
            v >>= 7
            n += 1
        } while v != 0
        bytes = (lo, hi)
        count = n
    }
}
