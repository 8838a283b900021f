// Envelope: reads the Request envelope and writes the Response envelope by
// hand, in exactly the protobuf encoding of plinth.v1.Request/Response.
//
// The envelope carries the method's message as a `bytes` field. Decoding it
// with the generated code would copy that body into a Data, and encoding
// would serialize the body and then copy it again into the envelope; the
// hot path does neither: the body is a slice of the frame on the way in and
// is written straight after a small header on the way out.
public import NIOCore
public import Foundation

/// The parts of a Request frame.
public struct RequestEnvelope {
    public var id: UInt64 = 0
    public var method: String = ""
    /// A slice of the frame: no copy.
    public var body: ByteBuffer
}

public enum EnvelopeError: Error, CustomStringConvertible, Sendable {
    case malformed(String)
    public var description: String {
        switch self { case .malformed(let m): "frame is not a plinth.v1.Request: \(m)" }
    }
}

/// The parts of a Request frame with the method left as bytes, so a
/// server can recognise a hot method without building a String.
public struct RawRequestEnvelope {
    public var id: UInt64 = 0
    /// The method path's UTF-8 bytes: a slice of the frame.
    public var method: ByteBuffer
    /// A slice of the frame: no copy.
    public var body: ByteBuffer

    /// Whether the method is exactly `utf8` (compared byte for byte).
    @inlinable
    public func methodIs(_ utf8: UnsafeRawBufferPointer) -> Bool {
        method.readableBytes == utf8.count && method.withUnsafeReadableBytes { raw in
            utf8.count == 0 || memcmp(raw.baseAddress!, utf8.baseAddress!, utf8.count) == 0
        }
    }

    /// The method path as a String (a copy).
    public var methodName: String { String(buffer: method) }
}

/// Where `Envelope.beginResponse` put a response's header and its body.
public struct StartedResponse: Sendable {
    public let frameStart: Int
    public let bodyStart: Int
}

public enum Envelope {
    /// Parses a Request frame with the method left as bytes: one pass over
    /// raw memory, no String, no copy. Unknown fields are skipped.
    public static func decodeRawRequest(_ frame: ByteBuffer) throws(EnvelopeError) -> RawRequestEnvelope {
        var id: UInt64 = 0
        var methodStart = 0, methodLength = 0, bodyStart = 0, bodyLength = 0
        let result: EnvelopeError? = frame.withUnsafeReadableBytes { raw -> EnvelopeError? in
            var at = 0
            func varint() -> UInt64? {
                var value: UInt64 = 0, shift: UInt64 = 0
                while at < raw.count {
                    let byte = raw[at]
                    at += 1
                    guard shift < 64 else { return nil }
                    value |= UInt64(byte & 0x7F) << shift
                    if byte & 0x80 == 0 { return value }
                    shift += 7
                }
                return nil
            }
            func length() -> Int? {
                guard let n = varint(), n <= UInt64(raw.count - at) else { return nil }
                return Int(n)
            }
            while at < raw.count {
                guard let key = varint() else { return .malformed("varint truncated or too long") }
                switch (key >> 3, key & 7) {
                case (1, 0):
                    guard let v = varint() else { return .malformed("varint truncated or too long") }
                    id = v
                case (2, 2):
                    guard let n = length() else { return .malformed("method truncated") }
                    methodStart = at; methodLength = n; at += n
                case (3, 2):
                    guard let n = length() else { return .malformed("body truncated") }
                    bodyStart = at; bodyLength = n; at += n
                case (_, 0):
                    guard varint() != nil else { return .malformed("varint truncated or too long") }
                case (_, 1):
                    guard raw.count - at >= 8 else { return .malformed("fixed64 truncated") }
                    at += 8
                case (_, 2):
                    guard let n = length() else { return .malformed("field length beyond the frame") }
                    at += n
                case (_, 5):
                    guard raw.count - at >= 4 else { return .malformed("fixed32 truncated") }
                    at += 4
                case (_, let wire):
                    return .malformed("unsupported wire type \(wire)")
                }
            }
            return nil
        }
        if let result { throw result }
        let base = frame.readerIndex
        // In range: both were checked against the readable bytes above.
        return RawRequestEnvelope(id: id, method: frame.getSlice(at: base + methodStart, length: methodLength)!,
                                  body: frame.getSlice(at: base + bodyStart, length: bodyLength)!)
    }

    /// Parses a Request frame, skipping unknown fields as protobuf requires.
    public static func decodeRequest(_ frame: ByteBuffer) throws(EnvelopeError) -> RequestEnvelope {
        var buffer = frame
        var envelope = RequestEnvelope(body: frame.getSlice(at: frame.readerIndex, length: 0) ?? frame)
        while buffer.readableBytes > 0 {
            let key = try readVarint(&buffer)
            let field = key >> 3, wire = key & 7
            switch (field, wire) {
            case (1, 0):
                envelope.id = try readVarint(&buffer)
            case (2, 2):
                let length = try readLength(&buffer)
                guard let text = buffer.readString(length: length) else { throw .malformed("method truncated") }
                envelope.method = text
            case (3, 2):
                let length = try readLength(&buffer)
                guard let body = buffer.readSlice(length: length) else { throw .malformed("body truncated") }
                envelope.body = body
            default:
                try skip(wire: wire, &buffer)
            }
        }
        return envelope
    }

    /// Writes one whole Response frame (length prefix included) to `out`.
    /// `writeBody` appends the encoded response message; it may write nothing.
    public static func writeResponse(id: UInt64, code: Int, message: String, more: Bool, into out: inout ByteBuffer,
                                     writeBody: (inout ByteBuffer) -> Void) {
        let lengthAt = out.writerIndex
        out.writeInteger(UInt32(0))
        let start = out.writerIndex
        if id != 0 {
            out.writeInteger(UInt8(0x08))
            writeVarint(id, &out)
        }
        if code != 0 || !message.isEmpty {
            // Status { code = 1; message = 2 } as field 2.
            var status = ByteBuffer()
            if code != 0 { status.writeInteger(UInt8(0x08)); writeVarint(UInt64(code), &status) }
            if !message.isEmpty {
                status.writeInteger(UInt8(0x12))
                writeVarint(UInt64(message.utf8.count), &status)
                status.writeString(message)
            }
            out.writeInteger(UInt8(0x12))
            writeVarint(UInt64(status.readableBytes), &out)
            out.writeBuffer(&status)
        }
        // The body goes after a 5-byte length placeholder, filled in once its
        // size is known; a 5-byte varint (padded with continuation bits) is
        // still valid protobuf and saves encoding the body twice.
        out.writeInteger(UInt8(0x1A))
        let bodyLengthAt = out.writerIndex
        out.writeBytes([0x80, 0x80, 0x80, 0x80, 0x00])
        let bodyStart = out.writerIndex
        writeBody(&out)
        let bodyLength = out.writerIndex - bodyStart
        if bodyLength == 0 {
            // Drop the empty field entirely.
            out.moveWriterIndex(to: bodyLengthAt - 1)
        } else {
            var v = UInt32(bodyLength)
            for i in 0..<5 {
                let byte = UInt8(v & 0x7F) | (i < 4 ? 0x80 : 0)
                out.setInteger(byte, at: bodyLengthAt + i)
                v >>= 7
            }
        }
        if more { out.writeBytes([0x20, 0x01]) }
        out.setInteger(UInt32(out.writerIndex - start), at: lengthAt)
    }

    /// Starts a successful Response for request `id` at `out`'s writer
    /// index, for answers appended one after another to one buffer: writes
    /// the id and leaves room for the frame length and the body's field
    /// header. The caller appends the body, then calls `endResponse` with
    /// the returned position. The body length is a 5-byte padded varint (valid
    /// protobuf), so the header's size is known before the body is written
    /// and the body is never moved.
    public static func beginResponse(id: UInt64, in out: inout ByteBuffer) -> StartedResponse {
        let start = out.writerIndex
        withUnsafeTemporaryAllocation(byteCount: 4 + 1 + 10 + 1 + 5, alignment: 1) { header in
            var n = 4
            header.storeBytes(of: 0, toByteOffset: 0, as: UInt32.self)
            header[n] = 0x08; n += 1
            var v = id
            while v >= 0x80 { header[n] = UInt8(truncatingIfNeeded: v) | 0x80; n += 1; v >>= 7 }
            header[n] = UInt8(v); n += 1
            header[n] = 0x1A; n += 1
            for _ in 0..<5 { header[n] = 0; n += 1 }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: header[0..<n]))
        }
        return StartedResponse(frameStart: start, bodyStart: out.writerIndex)
    }

    /// Fills in the header `beginResponse` started, now that the body runs
    /// to `out`'s writer index.
    public static func endResponse(_ started: StartedResponse, in out: inout ByteBuffer) {
        let bodyLength = UInt64(out.writerIndex - started.bodyStart)
        let padded = UInt32(truncatingIfNeeded: bodyLength & 0x7F | 0x80)
            | UInt32(truncatingIfNeeded: (bodyLength >> 7) & 0x7F | 0x80) << 8
            | UInt32(truncatingIfNeeded: (bodyLength >> 14) & 0x7F | 0x80) << 16
            | UInt32(truncatingIfNeeded: (bodyLength >> 21) & 0x7F | 0x80) << 24
        let frameLength = UInt32(out.writerIndex - started.frameStart - 4)
        let frame = started.frameStart - out.readerIndex, body = started.bodyStart - out.readerIndex
        // One mutable view for the three patches: each setInteger checks
        // the storage's uniqueness and exclusivity on its own.
        out.withUnsafeMutableReadableBytes { readable in
            let bytes = UnsafeMutableRawBufferPointer(rebasing: readable[...])
            bytes.storeBytes(of: frameLength.bigEndian, toByteOffset: frame, as: UInt32.self)
            bytes.storeBytes(of: padded.littleEndian, toByteOffset: body - 5, as: UInt32.self)
            bytes[body - 1] = UInt8(truncatingIfNeeded: (bodyLength >> 28) & 0x7F)
        }
    }

    /// Room to leave in front of a body for `writeResponseHeader`.
    public static let maxResponseHeader = 4 + 1 + 10 + 1 + 10

    /// Writes a successful Response's frame header (length prefix, id, body
    /// tag and length) so that it ends exactly where the body, already in
    /// `buffer` at `bodyStart..<writerIndex`, begins, and moves the reader
    /// index to the header's start. The caller left `maxResponseHeader`
    /// bytes free before `bodyStart`: the body is never copied.
    public static func writeResponseHeader(id: UInt64, bodyStart: Int, in buffer: inout ByteBuffer) {
        let bodyLength = buffer.writerIndex - bodyStart
        withUnsafeTemporaryAllocation(byteCount: maxResponseHeader, alignment: 1) { header in
            var n = 4
            func put(_ byte: UInt8) { header[n] = byte; n += 1 }
            func varint(_ value: UInt64) {
                var v = value
                while v >= 0x80 { put(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }
                put(UInt8(v))
            }
            put(0x08)
            varint(id)
            if bodyLength > 0 {
                put(0x1A)
                varint(UInt64(bodyLength))
            }
            let payload = UInt32(n - 4 + bodyLength)
            header.storeBytes(of: payload.bigEndian, toByteOffset: 0, as: UInt32.self)
            let start = bodyStart - n
            precondition(start >= buffer.readerIndex, "no room for the response header")
            buffer.setBytes(UnsafeRawBufferPointer(rebasing: header[0..<n]), at: start)
            buffer.moveReaderIndex(to: start)
        }
    }

    static func readVarint(_ buffer: inout ByteBuffer) throws(EnvelopeError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let byte = buffer.readInteger(as: UInt8.self) else { throw .malformed("varint truncated") }
            guard shift < 64 else { throw .malformed("varint too long") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    static func readLength(_ buffer: inout ByteBuffer) throws(EnvelopeError) -> Int {
        let length = try readVarint(&buffer)
        guard length <= UInt64(buffer.readableBytes) else { throw .malformed("field length \(length) beyond the frame") }
        return Int(length)
    }

    static func skip(wire: UInt64, _ buffer: inout ByteBuffer) throws(EnvelopeError) {
        switch wire {
        case 0: _ = try readVarint(&buffer)
        case 1: guard buffer.readSlice(length: 8) != nil else { throw .malformed("fixed64 truncated") }
        case 2: let n = try readLength(&buffer); buffer.moveReaderIndex(forwardBy: n)
        case 5: guard buffer.readSlice(length: 4) != nil else { throw .malformed("fixed32 truncated") }
        default: throw .malformed("unsupported wire type \(wire)")
        }
    }

    static func writeVarint(_ value: UInt64, _ out: inout ByteBuffer) {
        var v = value
        while v >= 0x80 {
            out.writeInteger(UInt8(v & 0x7F | 0x80))
            v >>= 7
        }
        out.writeInteger(UInt8(v))
    }
}
