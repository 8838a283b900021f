// ConnectionHandler: one per connection. Splits the byte stream into
// frames itself (no ByteToMessageHandler: that added a pipeline hop and
// buffer bookkeeping per frame), decodes each frame's envelope, looks the
// method up in the method table (MethodDispatch), asks the connection
// state machine whether to run it, and runs it the way its table entry
// says: Hello by the connection, a snapshot read inline on the event loop,
// anything else through its handler, which answers later from any thread.
// Answers go into one per-connection output buffer; when to flush it and
// when to close are the state machine's decisions (ConnectionState.Action),
// carried out by `perform`.
import Logging
import NIOCore
import NIOExtras
import PlinthStorage
import PlinthWire

final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var state: ConnectionState
    private let services: Services
    private let logger: Logger
    private let maxFrameBytes: Int
    private var context: ChannelHandlerContext?
    /// Bytes of a frame that has not fully arrived.
    private var partial: ByteBuffer?
    /// This connection's last online read plan.
    private let plans = ConnectionPlanCache()
    /// This connection's last Predict model and its reused input storage.
    private let predicts = PredictScratch()
    /// The table index of this connection's last method: clients send the
    /// same method request after request, and one memcmp finds it again.
    private var lastMethod: Int?
    /// Streamed parts queued for this socket and not yet written; workers
    /// producing a stream wait for room in it.
    private let window: StreamWindow
    /// The read transaction the online reads of the current socket read
    /// share (their requests all arrived before it was taken); given back
    /// at the end of the read, and before any other method runs.
    private var held: HeldRead?
    /// Requests of the current socket read, for the server's counter.
    private var requestsRead: UInt64 = 0
    /// Answers not yet handed to the channel.
    private var out: ByteBuffer
    /// The output buffer is shrunk back after a burst larger than this.
    private static let keptOutputCapacity = 1 << 18

    init(services: Services, logger: Logger) {
        self.services = services
        self.logger = logger
        self.maxFrameBytes = services.config.maxFrameBytes
        self.state = ConnectionState(tokens: services.config.tokens)
        self.window = StreamWindow(limit: services.config.streamWindowBytes)
        self.out = responseAllocator.buffer(capacity: 4096)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        services.stats.connections.add(1, ordering: .relaxed)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        window.close()
        services.stats.connections.subtract(1, ordering: .relaxed)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !state.closing else { return }
        var input = unwrapInboundIn(data)
        state.readStarted()
        defer {
            state.readEnded()
            releaseRead()
            plans.endOfRead()
            // One atomic add per socket read: the counter is shared by every
            // event loop, and an add per request bounced its cache line.
            services.stats.requests.add(requestsRead, ordering: .relaxed)
            requestsRead = 0
        }
        if var buffer = partial {
            partial = nil
            buffer.writeBuffer(&input)
            frames(in: &buffer, context: context)
            if buffer.readableBytes > 0 { buffer.discardReadBytes(); partial = buffer }
        } else {
            frames(in: &input, context: context)
            if input.readableBytes > 0 { partial = input }
        }
    }

    /// Runs every whole frame at the front of `buffer`, leaving a partial one.
    private func frames(in buffer: inout ByteBuffer, context: ChannelHandlerContext) {
        while !state.closing {
            let frame: ByteBuffer
            do {
                guard let next = try FrameDecoder.nextFrame(in: &buffer, maxFrameBytes: maxFrameBytes) else { return }
                frame = next
            } catch {
                perform(state.frameFailed(code: StatusCode.resourceExhausted, message: error.description), context: context)
                return
            }
            request(frame, context: context)
        }
    }

    private func request(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        requestsRead += 1
        state.requestRead()
        let envelope: RawRequestEnvelope
        do {
            envelope = try Envelope.decodeRawRequest(frame)
        } catch {
            perform(state.frameFailed(code: StatusCode.invalidArgument, message: error.description), context: context)
            return
        }
        let id = envelope.id
        guard id != 0 else {
            perform(state.frameFailed(code: StatusCode.invalidArgument, message: "request id must be non-zero"), context: context)
            return
        }
        let index: Int
        if let last = lastMethod, envelope.method.withUnsafeReadableBytes({ MethodDispatch.route(last, is: $0) }) {
            index = last
        } else if let found = envelope.method.withUnsafeReadableBytes({ MethodDispatch.index(of: $0) }) {
            index = found
            lastMethod = found
        } else {
            releaseRead()
            write(id: id, code: StatusCode.unimplemented,
                  message: "unknown method '\(envelope.methodName)' (see docs/protocol.md for the method table)", body: [], context: context)
            return
        }
        let route = MethodDispatch.routes[index]
        guard state.admits(route) else {
            let entry = MethodDispatch.entries[index]
            if case .refuse(let code, let message) = state.admit(entry.descriptor, needs: entry.scope) {
                write(id: id, code: code, message: message, body: [], context: context)
            }
            return
        }
        switch route.fastPath {
        case .connection:
            releaseRead()
            hello(id: id, body: envelope.body, context: context)
            return
        case .snapshotRead:
            // A snapshot read never waits for the writer, so every one of a
            // socket read's shares one read transaction.
            if held == nil { held = try? services.store.environment.hold() }
            if let inline = route.inline, answerInline(id: id, body: envelope.body, inline, context: context) { return }
        case .none:
            break
        }
        // Nothing else runs with the burst's transaction held: a method may
        // wait for the writer, which may wait for readers to grow the map.
        releaseRead()
        guard let handler = MethodDispatch.entries[index].handler else { return }
        state.started()
        handler.run(services, envelope.body, responder(id: id, context: context))
    }

    private func releaseRead() {
        if let read = held {
            held = nil
            services.store.environment.release(read)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        perform(state.readPassEnded(hasOutput: out.readableBytes > 0), context: context)
    }

    /// Carries out what the state machine decided.
    private func perform(_ action: ConnectionState.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .flush:
            flushOutput(context: context)
        case .flushAtEndOfPass:
            // Behind every connection the event loop has yet to read in this
            // pass: each write wakes a client that may preempt the loop.
            context.eventLoop.assumeIsolated().execute {
                self.state.queuedFlushRan()
                // Gone when the connection closed meanwhile: nothing to send to.
                if let context = self.context { self.flushOutput(context: context) }
            }
        case .close:
            flushOutput(context: context)
            context.close(promise: nil)
        case .closeWithError(let code, let message):
            logger.info("closing connection", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(message)"])
            // After the answers already written, so none is lost.
            Envelope.writeResponse(id: 0, code: code, message: message, more: false, into: &out) { _ in }
            let all = out
            out.clear()
            let channel = context.channel  // Sendable, unlike the context
            context.writeAndFlush(wrapOutboundOut(all)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// Hands the answers written so far to the channel and flushes them.
    private func flushOutput(context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        guard out.readableBytes > 0 else {
            promise?.succeed()
            return
        }
        context.writeAndFlush(wrapOutboundOut(out), promise: promise)
        if out.capacity > Self.keptOutputCapacity {
            out = context.channel.allocator.buffer(capacity: 4096)
        } else {
            // The socket usually takes the bytes at once and lets go of the
            // buffer, so this reuses its storage; if it still holds it,
            // clear() gives this handler fresh storage instead.
            out.clear()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tooLarge = error as? FrameTooLargeError {
            perform(state.frameFailed(code: StatusCode.resourceExhausted, message: tooLarge.description), context: context)
        } else if error is ByteToMessageDecoderError {
            perform(state.frameFailed(code: StatusCode.invalidArgument, message: "\(error)"), context: context)
        } else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            perform(state.quiesce(), context: context)
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
    /// or copy: the body goes straight into the output buffer after a
    /// header whose size is known in advance. False when the method
    /// deferred (`AnswerLater`): the caller runs it the general way.
    private func answerInline(id: UInt64, body: ByteBuffer,
                              _ inline: (Services, ByteBuffer, InlineContext, inout ByteBuffer) throws -> Void,
                              context: ChannelHandlerContext) -> Bool {
        let started = Envelope.beginResponse(id: id, in: &out)
        do {
            try inline(services, body, InlineContext(plans: plans, predicts: predicts, held: held), &out)
        } catch is AnswerLater {
            out.moveWriterIndex(to: started.frameStart)
            return false
        } catch {
            out.moveWriterIndex(to: started.frameStart)
            let (code, message) = status(for: error)
            write(id: id, code: code, message: message, body: [], context: context)
            return true
        }
        Envelope.endResponse(started, in: &out)
        perform(state.answerWritten(), context: context)
        return true
    }

    private func responder(id: UInt64, context: ChannelHandlerContext) -> Responder {
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let window = self.window
        return Responder(deliver: { code, message, body, more in
            if loop.inEventLoop {
                bound.value.complete(id: id, code: code, message: message, body: body, more: more)
            } else {
                if more {
                    // Should the loop be gone, the part's room still comes back.
                    loop.submit { bound.value.complete(id: id, code: code, message: message, body: body, more: true) }
                        .whenFailure { _ in window.written(body.count) }
                } else {
                    loop.execute { bound.value.complete(id: id, code: code, message: message, body: body, more: false) }
                }
            }
        }, caller: state.tokenName, window: window)
    }

    private func complete(id: UInt64, code: Int, message: String, body: ResponseBody, more: Bool) {
        guard let context else {
            if more { window.written(body.count) } else { _ = state.finished() }
            return
        }
        guard more else {
            // Only the last frame of a stream ends the request.
            append(id: id, code: code, message: message, body: body, more: false)
            perform(state.finished(), context: context)
            return
        }
        // A streamed part is flushed at once, and its room in the window
        // comes back when the socket has taken it (or the write failed).
        let bytes = body.count
        append(id: id, code: code, message: message, body: body, more: true)
        let written = context.eventLoop.makePromise(of: Void.self)
        let window = self.window
        written.futureResult.whenComplete { _ in window.written(bytes) }
        flushOutput(context: context, promise: written)
    }

    /// Adds an answer frame to the output buffer (not flushed).
    private func append(id: UInt64, code: Int, message: String, body: ResponseBody, more: Bool) {
        switch body {
        case .bytes(let bytes):
            Envelope.writeResponse(id: id, code: code, message: message, more: more, into: &out) { $0.writeBytes(bytes) }
        case .buffer(var buffer):
            Envelope.writeResponse(id: id, code: code, message: message, more: more, into: &out) { $0.writeBuffer(&buffer) }
        }
    }

    private func write(id: UInt64, code: Int, message: String, body: [UInt8], context: ChannelHandlerContext) {
        Envelope.writeResponse(id: id, code: code, message: message, more: false, into: &out) { $0.writeBytes(body) }
        perform(state.answerWritten(), context: context)
    }
}
