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

/// The parts of a Request frame with the method left as bytes, so a
/// server can recognise a hot method without building a String.
public struct RawRequestEnvelope {
    public var id: UInt64 = 0
    /// The method path's UTF-8 bytes: a slice of the frame.
    public var method: ByteBuffer
    /// A slice of the frame: no copy.
    public var body: ByteBuffer

    /// The method path as a String (a copy).
    public var methodName: String { String(buffer: method) }
}

/// Where `Envelope.beginResponse` put a response's header and its body.
public struct StartedResponse: Sendable {
    public let frameStart: Int
    public let bodyStart: Int

    @inlinable
    init(frameStart: Int, bodyStart: Int) {
        self.frameStart = frameStart
        self.bodyStart = bodyStart
    }
}

public enum Envelope {
    /// Parses a Request frame with the method left as bytes: one pass over
    /// raw memory, no String, no copy. Unknown fields are skipped, as
    /// protobuf requires.
    public static func decodeRawRequest(_ frame: ByteBuffer) throws(EnvelopeError) -> RawRequestEnvelope {
        var id: UInt64 = 0
        var method = 0..<0, body = 0..<0
        let failure: ProtoDecodingError? = frame.withUnsafeReadableBytes { raw -> ProtoDecodingError? in
            var reader = ProtoReader(raw)
            do throws(ProtoDecodingError) {
                while !reader.atEnd {
                    switch try reader.key() {
                    case (RequestField.id, WireType.varint): id = try reader.varint()
                    case (RequestField.method, WireType.lengthDelimited): method = try reader.lengthDelimitedRange()
                    case (RequestField.body, WireType.lengthDelimited): body = try reader.lengthDelimitedRange()
                    case (_, let wire): try reader.skip(wire: wire)
                    }
                }
            } catch { return error }
            return nil
        }
        if let failure { throw .malformed(failure.reason) }
        let base = frame.readerIndex
        // In range: both were checked against the readable bytes above.
        return RawRequestEnvelope(id: id, method: frame.getSlice(at: base + method.lowerBound, length: method.count)!,
                                  body: frame.getSlice(at: base + body.lowerBound, length: body.count)!)
    }

    /// Parses a Request frame, with the method as a String.
    public static func decodeRequest(_ frame: ByteBuffer) throws(EnvelopeError) -> RequestEnvelope {
        let raw = try decodeRawRequest(frame)
        guard let method = raw.method.withUnsafeReadableBytes({ String(validating: $0, as: UTF8.self) }) else {
            throw .malformed("method is not valid UTF-8")
        }
        return RequestEnvelope(id: raw.id, method: method, body: raw.body)
    }

    /// Writes one whole Response frame (length prefix included) to `out`.
    /// `writeBody` appends the encoded response message; it may write nothing.
    public static func writeResponse(id: UInt64, code: Int, message: String, more: Bool, into out: inout ByteBuffer,
                                     writeBody: (inout ByteBuffer) -> Void) {
        let lengthAt = out.writerIndex
        out.writeInteger(UInt32(0))
        let start = out.writerIndex
        let messageBytes = message.utf8.count
        // Status { code; message }
        let status = (code != 0 ? 1 + ProtoWriter.varintSize(UInt64(code)) : 0)
            + (messageBytes > 0 ? ProtoWriter.fieldSize(StatusField.message, length: messageBytes) : 0)
        ProtoWriter.append(to: &out, bound: 11 + (status > 0 ? ProtoWriter.fieldSize(ResponseField.status, length: status) : 0)) { w in
            if id != 0 { w.varintField(ResponseField.id, id) }
            if status > 0 {
                w.field(ResponseField.status, length: status)
                if code != 0 { w.varintField(StatusField.code, UInt64(code)) }
                if messageBytes > 0 { w.string(StatusField.message, message) }
            }
        }
        // The body goes after a 5-byte length, filled in once its size is
        // known: a 5-byte varint (padded with continuation bits) is valid
        // protobuf and saves encoding the body twice.
        let started = StartedBody(lengthAt: out.writerIndex + 1)
        out.writeBytes([UInt8(ResponseField.body << 3) | UInt8(WireType.lengthDelimited), 0x80, 0x80, 0x80, 0x80, 0x00])
        writeBody(&out)
        if out.writerIndex == started.contentStart {
            // An empty body is no field at all, as the generated encoder writes it.
            out.moveWriterIndex(to: started.lengthAt - 1)
        } else {
            patchPaddedLength(started, in: &out)
        }
        if more { ProtoWriter.append(to: &out, bound: 2) { $0.varintField(ResponseField.more, 1) } }
        out.setInteger(UInt32(out.writerIndex - start), at: lengthAt)
    }

    /// Starts a successful Response for request `id` at `out`'s writer
    /// index, for answers appended one after another to one buffer: writes
    /// the id and leaves room for the frame length and the body's field
    /// header. The caller appends the body, then calls `endResponse` with
    /// the returned position. The body length is a 5-byte padded varint (valid
    /// protobuf), so the header's size is known before the body is written
    /// and the body is never moved.
    @inlinable
    public static func beginResponse(id: UInt64, in out: inout ByteBuffer) -> StartedResponse {
        let start = out.writerIndex
        ProtoWriter.append(to: &out, bound: 4 + 11 + 6) { w in
            w.zeros(4)
            w.varintField(ResponseField.id, id)
            w.field(ResponseField.body, length: 0)
            _ = w.reserve(4)  // the length's other four bytes
        }
        return StartedResponse(frameStart: start, bodyStart: out.writerIndex)
    }

    /// Fills in the header `beginResponse` started, now that the body runs
    /// to `out`'s writer index.
    @inlinable
    public static func endResponse(_ started: StartedResponse, in out: inout ByteBuffer) {
        patchPaddedLength(StartedBody(lengthAt: started.bodyStart - 5), frameStart: started.frameStart, in: &out)
    }

    /// Where a body's 5-byte padded length sits.
    @usableFromInline
    struct StartedBody {
        @usableFromInline let lengthAt: Int
        @usableFromInline var contentStart: Int { lengthAt + 5 }
        @usableFromInline init(lengthAt: Int) { self.lengthAt = lengthAt }
    }

    /// Writes the length of the body from `started.contentStart` to the
    /// writer index as a varint padded to five bytes (bodies stay under
    /// 2^35 bytes: frames are limited to 4 GiB).
    @inlinable
    static func patchPaddedLength(_ started: StartedBody, frameStart: Int? = nil, in out: inout ByteBuffer) {
        let length = UInt64(out.writerIndex - started.contentStart)
        let padded = UInt32(truncatingIfNeeded: length & 0x7F | 0x80)
            | UInt32(truncatingIfNeeded: (length >> 7) & 0x7F | 0x80) << 8
            | UInt32(truncatingIfNeeded: (length >> 14) & 0x7F | 0x80) << 16
            | UInt32(truncatingIfNeeded: (length >> 21) & 0x7F | 0x80) << 24
        let at = started.lengthAt - out.readerIndex
        let frameLength = frameStart.map { UInt32(out.writerIndex - $0 - 4).bigEndian }
        let frameAt = (frameStart ?? 0) - out.readerIndex
        // One mutable view for every patch: each setInteger checks the
        // storage's uniqueness and exclusivity on its own.
        out.withUnsafeMutableReadableBytes { bytes in
            if let frameLength { bytes.storeBytes(of: frameLength, toByteOffset: frameAt, as: UInt32.self) }
            bytes.storeBytes(of: padded.littleEndian, toByteOffset: at, as: UInt32.self)
            bytes[at + 4] = UInt8(truncatingIfNeeded: (length >> 28) & 0x7F)
        }
    }
}
