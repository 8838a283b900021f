// Envelope: reads the Request envelope and writes the Response envelope by
// hand, in exactly the protobuf encoding of plinth.v1.Request/Response.
//
// The envelope carries the method's message as a `bytes` field. Decoding it
// with the generated code would copy that body into a Data, and encoding
// would serialize the body and then copy it again into the envelope; the
// hot path does neither: the body is a slice of the frame on the way in and
// is written straight after a small header on the way out.
public import NIOCore

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

public enum Envelope {
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
