// ConnectionHandler: one per connection. Decodes each frame's envelope,
// asks the connection state machine whether to run it, dispatches to the
// method table, and writes each answer with its request id as it completes.
// Answers produced while reading a burst of pipelined frames are flushed
// once at the end of the burst.
import Logging
import NIOCore
import NIOExtras
import PlinthWire

final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var state: ConnectionState
    private let services: Services
    private let logger: Logger
    private let maxFrameBytes: Int
    private var context: ChannelHandlerContext?
    /// True while channelRead runs, so inline answers wait for one flush.
    private var reading = false
    private var needsFlush = false
    private var closing = false

    init(services: Services, logger: Logger) {
        self.services = services
        self.logger = logger
        self.maxFrameBytes = services.config.maxFrameBytes
        self.state = ConnectionState(tokens: services.config.tokens)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        services.stats.connections.add(1, ordering: .relaxed)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        services.stats.connections.subtract(1, ordering: .relaxed)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let frame = unwrapInboundIn(data)
        services.stats.requests.add(1, ordering: .relaxed)
        let envelope: RequestEnvelope
        do {
            envelope = try Envelope.decodeRequest(frame)
        } catch {
            closeWithError(context: context, code: StatusCode.invalidArgument, message: "\(error)")
            return
        }
        guard envelope.id != 0 else {
            closeWithError(context: context, code: StatusCode.invalidArgument, message: "request id must be non-zero")
            return
        }
        reading = true
        defer { reading = false }
        let id = envelope.id
        if envelope.method == Method.hello {
            hello(id: id, body: envelope.body, context: context)
            return
        }
        guard let spec = Services.table[envelope.method] else {
            write(id: id, code: StatusCode.unimplemented,
                  message: "unknown method '\(envelope.method)' (see docs/protocol.md for the method table)", body: [], context: context)
            return
        }
        switch state.admit(method: envelope.method, needs: spec.scope) {
        case .refuse(let code, let message):
            write(id: id, code: code, message: message, body: [], context: context)
        case .dispatch:
            if let inline = spec.inline, answerInline(id: id, body: envelope.body, inline, context: context) {
                // answered
            } else {
                state.started()
                spec.run(services, envelope.body, responder(id: id, context: context))
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tooLarge = error as? FrameTooLargeError {
            closeWithError(context: context, code: StatusCode.resourceExhausted, message: tooLarge.description)
        } else if error is ByteToMessageDecoderError {
            closeWithError(context: context, code: StatusCode.invalidArgument, message: "\(error)")
        } else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            if state.quiesce() { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func hello(id: UInt64, body: ByteBuffer, context: ChannelHandlerContext) {
        let request: PBHelloRequest
        do { request = try decode(PBHelloRequest.self, body) } catch {
            let (code, message) = status(for: error)
            write(id: id, code: code, message: message, body: [], context: context)
            return
        }
        switch state.hello(version: request.protocolVersion, token: request.token) {
        case .success(let (scopes, tokenName)):
            var out = PBHelloResponse()
            out.protocolVersion = PlinthProtocol.version
            out.serverVersion = plinthVersion
            out.scopes = scopes.names
            out.maxFrameBytes = UInt32(maxFrameBytes)
            out.tokenName = tokenName
            let bytes: [UInt8] = (try? out.serializedBytes()) ?? []
            write(id: id, code: StatusCode.ok, message: "", body: bytes, context: context)
        case .failure(let refusal):
            logger.info("hello refused", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(refusal.message)"])
            write(id: id, code: refusal.code, message: refusal.message, body: [], context: context)
        }
    }

    /// Runs a synchronous method and writes its answer with no closure, hop
    /// or copy: the body goes after a gap the frame header is filled into.
    /// False when the method deferred (`AnswerLater`): the caller runs it
    /// the general way.
    private func answerInline(id: UInt64, body: ByteBuffer,
                              _ inline: (Services, ByteBuffer, inout ByteBuffer) throws -> Void, context: ChannelHandlerContext) -> Bool {
        var out = context.channel.allocator.buffer(capacity: 1024)
        out.moveWriterIndex(forwardBy: Envelope.maxResponseHeader)
        let bodyStart = out.writerIndex
        do {
            try inline(services, body, &out)
        } catch is AnswerLater {
            return false
        } catch {
            let (code, message) = status(for: error)
            write(id: id, code: code, message: message, body: [], context: context)
            return true
        }
        Envelope.writeResponseHeader(id: id, bodyStart: bodyStart, in: &out)
        context.write(wrapOutboundOut(out), promise: nil)
        needsFlush = true
        return true
    }

    private func responder(id: UInt64, context: ChannelHandlerContext) -> Responder {
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        return Responder(deliver: { code, message, body, more in
            if loop.inEventLoop {
                bound.value.complete(id: id, code: code, message: message, body: body, more: more)
            } else {
                loop.execute { bound.value.complete(id: id, code: code, message: message, body: body, more: more) }
            }
        }, caller: state.tokenName)
    }

    private func complete(id: UInt64, code: Int, message: String, body: ResponseBody, more: Bool) {
        // Only the last frame of a stream ends the request.
        let closeNow = more ? false : state.finished()
        guard let context else { return }
        write(id: id, code: code, message: message, body: body, more: more, context: context)
        if !reading { context.flush(); needsFlush = false }
        if closeNow { context.close(promise: nil) }
    }

    private func write(id: UInt64, code: Int, message: String, body: ResponseBody, more: Bool = false, context: ChannelHandlerContext) {
        switch body {
        case .bytes(let bytes):
            var out = context.channel.allocator.buffer(capacity: bytes.count + 32 + message.utf8.count)
            Envelope.writeResponse(id: id, code: code, message: message, more: more, into: &out) { $0.writeBytes(bytes) }
            context.write(wrapOutboundOut(out), promise: nil)
        case .buffer(var buffer):
            var out = context.channel.allocator.buffer(capacity: buffer.readableBytes + 32 + message.utf8.count)
            Envelope.writeResponse(id: id, code: code, message: message, more: more, into: &out) { $0.writeBuffer(&buffer) }
            context.write(wrapOutboundOut(out), promise: nil)
        }
        needsFlush = true
    }

    private func write(id: UInt64, code: Int, message: String, body: [UInt8], context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: body.count + 32 + message.utf8.count)
        Envelope.writeResponse(id: id, code: code, message: message, more: false, into: &out) { $0.writeBytes(body) }
        context.write(wrapOutboundOut(out), promise: nil)
        needsFlush = true
    }

    /// Answers a connection-level error with id 0, then closes: after a
    /// broken frame the stream cannot be resynchronised.
    private func closeWithError(context: ChannelHandlerContext, code: Int, message: String) {
        guard !closing else { return }
        closing = true
        logger.info("closing connection", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(message)"])
        var out = context.channel.allocator.buffer(capacity: 64 + message.utf8.count)
        Envelope.writeResponse(id: 0, code: code, message: message, more: false, into: &out) { _ in }
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in context.close(promise: nil) }
    }
}
