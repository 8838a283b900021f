// FrameDecoder: splits a byte stream into frames of a 4-byte big-endian
// length followed by that many bytes, and refuses frames over the limit
// before buffering them (LengthFieldBasedFrameDecoder alone only rejects
// lengths above Int32.max).
public import NIOCore

/// A frame's declared length was over the configured maximum.
public struct FrameTooLargeError: Error, CustomStringConvertible, Sendable {
    public let length: UInt32
    public let limit: Int
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
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return .needMoreData
        }
        guard Int(length) <= maxFrameBytes else { throw FrameTooLargeError(length: length, limit: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        guard let frame = buffer.readSlice(length: Int(length)) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A peer that closes mid-frame leaves a truncated frame: drop it.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

@available(*, unavailable)
extension FrameDecoder: Sendable {}
