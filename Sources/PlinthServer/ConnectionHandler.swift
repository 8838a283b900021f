// ConnectionHandler: one per connection. Splits the byte stream into
// frames itself (no ByteToMessageHandler: that added a pipeline hop and
// buffer bookkeeping per frame), decodes each frame's envelope, asks the
// connection state machine whether to run it, dispatches to the method
// table, and writes each answer with its request id as it completes.
// Answers go into one per-connection output buffer; those produced while
// reading a burst of pipelined frames are written and flushed once, with
// one system call, after the event loop has read every ready connection
// (channelReadComplete), and the buffer is reused.
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
    /// True while channelRead runs, so answers wait for one flush.
    private var reading = false
    private var closing = false
    /// Bytes of a frame that has not fully arrived.
    private var partial: ByteBuffer?
    /// This connection's last online read plan.
    private let plans = ConnectionPlanCache()
    /// This connection's last Predict model and its reused input storage.
    private let predicts = PredictScratch()
    /// Streamed parts queued for this socket and not yet written; workers
    /// producing a stream wait for room in it.
    private let window: StreamWindow
    /// The read transaction the online reads of the current socket read
    /// share (their requests all arrived before it was taken); given back
    /// at the end of the read, and before any other method runs.
    private var held: HeldRead?
    /// Requests of the current socket read, for the server's counter.
    private var requestsRead: UInt64 = 0
    /// Requests read since the last channelReadComplete.
    private var requestsThisPass: UInt64 = 0
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
        guard !closing else { return }
        var input = unwrapInboundIn(data)
        reading = true
        defer {
            reading = false
            releaseRead()
            plans.endOfRead()
            // One atomic add per socket read: the counter is shared by every
            // event loop, and an add per request bounced its cache line.
            services.stats.requests.add(requestsRead, ordering: .relaxed)
            requestsThisPass += requestsRead
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
        while !closing {
            let frame: ByteBuffer
            do {
                guard let next = try FrameDecoder.nextFrame(in: &buffer, maxFrameBytes: maxFrameBytes) else { return }
                frame = next
            } catch {
                closeWithError(context: context, code: StatusCode.resourceExhausted, message: error.description)
                return
            }
            request(frame, context: context)
        }
    }

    private func request(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        requestsRead += 1
        let envelope: RawRequestEnvelope
        do {
            envelope = try Envelope.decodeRawRequest(frame)
        } catch {
            closeWithError(context: context, code: StatusCode.invalidArgument, message: "\(error)")
            return
        }
        let id = envelope.id
        guard id != 0 else {
            closeWithError(context: context, code: StatusCode.invalidArgument, message: "request id must be non-zero")
            return
        }
        // The hot method, recognised by its bytes: no String, no table lookup.
        if Self.getOnlineFeaturesUTF8.withUnsafeBytes({ envelope.methodIs($0) }), state.admits(.read) {
            if held == nil { held = try? services.store.environment.hold() }
            let plans = self.plans, held = self.held
            _ = answerInline(id: id, body: envelope.body, { services, body, out in
                try services.getOnlineFeatures(body, plans: plans, held: held, into: &out)
            }, context: context)
            return
        }
        // Predict of a loaded model reads like GetOnlineFeatures and never
        // waits for the writer, so it shares the burst's transaction too;
        // anything it cannot answer inline takes the general path below.
        if Self.predictUTF8.withUnsafeBytes({ envelope.methodIs($0) }), state.admits(.read) {
            if held == nil { held = try? services.store.environment.hold() }
            let held = self.held, predicts = self.predicts
            if answerInline(id: id, body: envelope.body, { services, body, out in
                try services.predictInline(body, scratch: predicts, held: held, &out)
            }, context: context) { return }
        }
        // Nothing else runs with the burst's transaction held: a method may
        // wait for the writer, which may wait for readers to grow the map.
        releaseRead()
        let method = envelope.methodName
        if method == Method.hello {
            hello(id: id, body: envelope.body, context: context)
            return
        }
        guard let spec = Services.table[method] else {
            write(id: id, code: StatusCode.unimplemented,
                  message: "unknown method '\(method)' (see docs/protocol.md for the method table)", body: [], context: context)
            return
        }
        switch state.admit(method: method, needs: spec.scope) {
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

    private static let getOnlineFeaturesUTF8 = Array(Method.getOnlineFeatures.utf8)
    private static let predictUTF8 = Array(Method.predict.utf8)

    private func releaseRead() {
        if let read = held {
            held = nil
            services.store.environment.release(read)
        }
    }

    /// Whether this connection's answers wait in a task for the end of the
    /// event loop's pass.
    private var flushQueued = false

    /// Queues the burst's flush behind every connection the event loop has
    /// yet to read in this pass, as Redis writes its replies before it
    /// sleeps: each write wakes a client that may preempt the loop, so the
    /// writes come together at the end of the pass instead of between the
    /// reads. On two shared cores this took the 32x16 pipelined read from
    /// about 0.98x Redis's throughput to 1.03x (alternating pairs,
    /// docs/benchmarks.md). A lone request is answered at once: its client
    /// waits on it, and the task would cost it about 2,000 instructions.
    func channelReadComplete(context: ChannelHandlerContext) {
        let burst = requestsThisPass
        requestsThisPass = 0
        guard out.readableBytes > 0, !flushQueued else { return }
        guard burst > 1 else {
            flushOutput(context: context)
            return
        }
        flushQueued = true
        context.eventLoop.assumeIsolated().execute {
            self.flushQueued = false
            // Gone when the connection closed meanwhile: nothing to send to.
            if let context = self.context { self.flushOutput(context: context) }
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
    /// or copy: the body goes straight into the output buffer after a
    /// header whose size is known in advance. False when the method
    /// deferred (`AnswerLater`): the caller runs it the general way.
    private func answerInline(id: UInt64, body: ByteBuffer,
                              _ inline: (Services, ByteBuffer, inout ByteBuffer) throws -> Void, context: ChannelHandlerContext) -> Bool {
        let started = Envelope.beginResponse(id: id, in: &out)
        do {
            try inline(services, body, &out)
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
        if !reading { flushOutput(context: context) }
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
        // Only the last frame of a stream ends the request.
        let closeNow = more ? false : state.finished()
        guard let context else {
            if more { window.written(body.count) }
            return
        }
        guard more else {
            write(id: id, code: code, message: message, body: body, more: false, context: context)
            if closeNow {
                flushOutput(context: context)
                context.close(promise: nil)
            }
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

    private func write(id: UInt64, code: Int, message: String, body: ResponseBody, more: Bool = false, context: ChannelHandlerContext) {
        append(id: id, code: code, message: message, body: body, more: more)
        if !reading { flushOutput(context: context) }
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
        if !reading { flushOutput(context: context) }
    }

    /// Answers a connection-level error with id 0, then closes: after a
    /// broken frame the stream cannot be resynchronised.
    private func closeWithError(context: ChannelHandlerContext, code: Int, message: String) {
        guard !closing else { return }
        closing = true
        logger.info("closing connection", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(message)"])
        // After the answers already written, so none is lost.
        Envelope.writeResponse(id: 0, code: code, message: message, more: false, into: &out) { _ in }
        let all = out
        out.clear()
        let channel = context.channel  // Sendable, unlike the context
        context.writeAndFlush(wrapOutboundOut(all)).whenComplete { _ in channel.close(promise: nil) }
    }
}
