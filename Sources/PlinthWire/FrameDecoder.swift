// FrameDecoder: splits a byte stream into frames of a 4-byte big-endian
// length followed by that many bytes, and refuses frames over the limit
// before buffering them (LengthFieldBasedFrameDecoder alone only rejects
// lengths above Int32.max).
public import NIOCore

/// A frame's declared length was over the configured maximum.
public struct FrameTooLargeError: Error, CustomStringConvertible, Sendable {
    public let length: UInt32
    public let limit: Int
    @inlinable
    public init(length: UInt32, limit: Int) {
        self.length = length
        self.limit = limit
    }
    public var description: String { "frame of \(length) bytes is over the limit of \(limit) bytes" }
}

/// Decodes length-prefixed frames; each output is the frame's payload.
///
/// Threading: like every ByteToMessageDecoder, used on its channel's event loop only.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public let maxFrameBytes: Int

    public init(maxFrameBytes: Int) { self.maxFrameBytes = maxFrameBytes }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.nextFrame(in: &buffer, maxFrameBytes: maxFrameBytes) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    /// Takes the next whole frame's payload off the front of `buffer` (a
    /// slice, no copy), or returns nil, consuming nothing, when the frame is
    /// not all there yet. A handler that splits frames itself (the server's
    /// connection handler, which skips ByteToMessageHandler's per-frame
    /// pipeline traffic) uses this, so both split frames the same way.
    @inlinable
    public static func nextFrame(in buffer: inout ByteBuffer, maxFrameBytes: Int) throws(FrameTooLargeError) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        guard Int(length) <= maxFrameBytes else { throw FrameTooLargeError(length: length, limit: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A peer that closes mid-frame leaves a truncated frame: drop it.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

@available(*, unavailable)
extension FrameDecoder: Sendable {}
