// The real ConnectionHandler, driven without a socket: frames split at every
// byte, many frames in one read, pipelined requests answered out of order,
// a client that closes in the middle of a stream, and back-pressure on a
// stream whose client does not read. EmbeddedChannel where every answer is
// made on the loop's own thread; NIOAsyncTestingChannel (thread-safe) where
// workers answer from other threads.
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import PlinthFeatures
import PlinthWire
import SwiftProtobuf
import XCTest
@testable import PlinthServer

/// A daemon's services over a fresh data directory, with nothing listening.
final class TestServices {
    let directory = NSTemporaryDirectory() + "plinth-handler-\(UUID().uuidString)"
    let server: PlinthServer
    var services: Services { server.services }

    init(_ configure: (inout ServerConfig) -> Void = { _ in }) throws {
        var config = ServerConfig()
        config.dataDir = directory
        config.listen = "127.0.0.1:0"  // validated, never bound: start() is not called
        config.durable = false
        configure(&config)
        server = try PlinthServer(config: config, logger: Logger(label: "test"))
    }

    func handler() -> ConnectionHandler { ConnectionHandler(services: services, logger: Logger(label: "test")) }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A request frame: length prefix, then the envelope.
func requestFrame(_ id: UInt64, _ method: String, _ body: some SwiftProtobuf.Message) throws -> [UInt8] {
    var envelope = PBRequest()
    envelope.id = id
    envelope.method = method
    envelope.body = try body.serializedData()
    let payload: [UInt8] = try envelope.serializedBytes()
    return withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
}

/// Splits `bytes` into the response frames it holds; the rest stays.
func responseFrames(_ bytes: inout [UInt8]) throws -> [PBResponse] {
    var out: [PBResponse] = []
    while bytes.count >= 4 {
        let length = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard bytes.count >= 4 + length else { break }
        out.append(try PBResponse(serializedBytes: Array(bytes[4..<(4 + length)])))
        bytes.removeFirst(4 + length)
    }
    return out
}

final class ConnectionHandlerTests: XCTestCase {
    static let definitions = """
    project: handler
    entities:
      - {name: user, join_key: user_id, type: int64}
    feature_views:
      - name: stats
        entities: [user]
        features:
          - {name: count, type: int64}
          - {name: score, type: float32}
    """

    /// Applies the definitions and pushes two users, through the domain.
    func seed(_ t: TestServices) throws {
        _ = try t.services.catalog.apply(DefinitionParser.parse(Self.definitions))
        var ids = Column(name: "user_id", type: .int64); ids.int64s = [1, 2]
        var count = Column(name: "count", type: .int64); count.int64s = [10, 20]
        var score = Column(name: "score", type: .float32); score.float32s = [0.5, 0.25]
        _ = try t.services.store.push(view: "stats", columns: [ids, count, score], eventTimes: [currentMicros(), currentMicros()])
    }

    /// Requests every one of which is answered on the event loop itself.
    func synchronousRequests() throws -> [UInt8] {
        var read = PBGetOnlineFeaturesRequest()
        read.features = ["stats:count", "stats:score"]
        read.entities = [PBColumn.with { $0.name = "user_id"; $0.type = .int64; $0.int64Values = [1, 2, 3] }]
        var bytes = try requestFrame(1, Method.hello, PBHelloRequest.with { $0.protocolVersion = 1 })
        bytes += try requestFrame(2, Method.getOnlineFeatures, read)
        bytes += try requestFrame(3, Method.health, PBHealthRequest())
        bytes += try requestFrame(4, "/plinth.v1.Nope/Nothing", PBHealthRequest())
        bytes += try requestFrame(5, Method.getOnlineFeatures, read)
        bytes += try requestFrame(6, Method.serverLive, PBServerLiveRequest())
        return bytes
    }

    func drain(_ channel: EmbeddedChannel) throws -> [UInt8] {
        try channel.embeddedEventLoop.run()
        var bytes: [UInt8] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readBytes(length: buffer.readableBytes) ?? [] }
        return bytes
    }

    func testFramesSplitAtEveryByteGiveTheSameAnswers() throws {
        let t = try TestServices()
        try seed(t)
        let input = try synchronousRequests()
        let whole = EmbeddedChannel(handler: t.handler())
        try whole.writeInbound(ByteBuffer(bytes: input))
        var expectedBytes = try drain(whole)
        let expected = try responseFrames(&expectedBytes)
        XCTAssertEqual(expected.map(\.id), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(expected[3].status.code, .unimplemented)
        XCTAssertTrue(expected[3].status.message.contains("unknown method '/plinth.v1.Nope/Nothing'"))
        let read = try PBGetOnlineFeaturesResponse(serializedBytes: expected[1].body)
        XCTAssertEqual(read.features[0].values.int64Values, [10, 20, 0])
        XCTAssertEqual(read.features[0].statuses, [.present, .present, .notFound])

        for split in 1..<input.count {
            let channel = EmbeddedChannel(handler: t.handler())
            try channel.writeInbound(ByteBuffer(bytes: input[..<split]))
            try channel.writeInbound(ByteBuffer(bytes: input[split...]))
            var bytes = try drain(channel)
            XCTAssertEqual(try responseFrames(&bytes), expected, "split at byte \(split)")
            XCTAssertTrue(bytes.isEmpty)
            _ = try channel.finish()
        }
        // One byte at a time.
        let channel = EmbeddedChannel(handler: t.handler())
        for byte in input { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        var bytes = try drain(channel)
        XCTAssertEqual(try responseFrames(&bytes), expected)
    }

    func testABurstIsWrittenOnceAtTheEndOfThePassAndALoneRequestAtOnce() throws {
        let t = try TestServices()
        try seed(t)
        let channel = EmbeddedChannel(handler: t.handler())
        // Many frames in one read: nothing is written until the loop has
        // read every ready connection, then one write carries every answer.
        try channel.writeInbound(ByteBuffer(bytes: try synchronousRequests()))
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "a burst's answers wait for the end of the pass")
        try channel.embeddedEventLoop.run()
        var first = try XCTUnwrap(channel.readOutbound(as: ByteBuffer.self))
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "one write for the whole burst")
        var bytes = first.readBytes(length: first.readableBytes) ?? []
        XCTAssertEqual(try responseFrames(&bytes).map(\.id), [1, 2, 3, 4, 5, 6])
        // A lone request is answered in the same pass, with no task.
        try channel.writeInbound(ByteBuffer(bytes: try requestFrame(9, Method.health, PBHealthRequest())))
        var lone = try XCTUnwrap(channel.readOutbound(as: ByteBuffer.self))
        bytes = lone.readBytes(length: lone.readableBytes) ?? []
        XCTAssertEqual(try responseFrames(&bytes).map(\.id), [9])
    }

    func testBrokenFramesCloseTheConnectionAfterTheAnswersBeforeThem() throws {
        let t = try TestServices { $0.maxFrameBytes = 1024 }
        for (bad, code) in [([UInt8](repeating: 0xFF, count: 4), PBStatus.Code.resourceExhausted),   // 4 GiB announced
                            ([0, 0, 0, 2, 0xFF, 0xFF], .invalidArgument),                              // not an envelope
                            (try requestFrame(0, Method.health, PBHealthRequest()), .invalidArgument)] {  // id 0
            let channel = EmbeddedChannel(handler: t.handler())
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try channel.writeInbound(ByteBuffer(bytes: try requestFrame(1, Method.health, PBHealthRequest()) + bad
                                                + requestFrame(2, Method.health, PBHealthRequest())))
            var bytes = try drain(channel)
            let answers = try responseFrames(&bytes)
            XCTAssertEqual(answers.map(\.id), [1, 0], "the answer before the broken frame, then the error; nothing after")
            XCTAssertEqual(answers.last?.status.code, code)
            XCTAssertFalse(channel.isActive, "closed after a broken frame")
        }
    }

    func testPipelinedRequestsAreAnsweredAsTheyFinish() async throws {
        let t = try TestServices()
        try seed(t)
        let channel = NIOAsyncTestingChannel()
        try await channel.pipeline.addHandler(t.handler())
        // A push (answered by the writer after its commit) then a health
        // check (answered on the loop): the later request's answer comes first.
        var push = PBPushRequest()
        push.featureView = "stats"
        push.columns = [PBColumn.with { $0.name = "user_id"; $0.type = .int64; $0.int64Values = [7] },
                        PBColumn.with { $0.name = "count"; $0.type = .int64; $0.int64Values = [70] },
                        PBColumn.with { $0.name = "score"; $0.type = .float32; $0.float32Values = [7] }]
        push.eventTimeUs = [currentMicros()]
        try await channel.writeInbound(ByteBuffer(bytes: try requestFrame(1, Method.push, push)
                                                  + requestFrame(2, Method.health, PBHealthRequest())))
        var bytes: [UInt8] = []
        var answers: [PBResponse] = []
        while answers.count < 2 {
            var buffer = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
            answers += try responseFrames(&bytes)
        }
        XCTAssertEqual(answers.map(\.id), [2, 1])
        XCTAssertEqual(try PBPushResponse(serializedBytes: answers[1].body).rows, 1)
        _ = try await channel.finish()
    }

    /// Holds every write and its promise, as a socket whose client does not
    /// read holds bytes, until `release` passes them on.
    final class StalledSocket: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = ByteBuffer
        // Used on the channel's event loop only (the test hops there).
        var held: [(NIOAny, EventLoopPromise<Void>?)] = []
        var context: ChannelHandlerContext?

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            held.append((data, promise))
        }

        func flush(context: ChannelHandlerContext) {}

        func release() {
            guard let context else { return }
            let writes = held
            held = []
            for (data, promise) in writes { context.write(data, promise: promise) }
            context.flush()
        }
    }

    func testAStreamWaitsForItsClientAndStopsWhenTheClientGoes() async throws {
        // Chunks of 8 KiB, a window of 20 KB: at most two chunks queued.
        let t = try TestServices { $0.maxFrameBytes = 16384; $0.streamWindowBytes = 20_000 }
        let blob = (0..<(30 * 8192)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let artifact = try await t.services.artifacts.store(runId: "", path: "", bytes: blob)
        let channel = NIOAsyncTestingChannel()
        let stalled = StalledSocket()
        try await channel.pipeline.addHandler(stalled)
        try await channel.pipeline.addHandler(t.handler())
        try await channel.writeInbound(ByteBuffer(bytes: try requestFrame(1, Method.downloadArtifact,
                                                                      PBDownloadArtifactRequest.with { $0.digest = artifact.digest })))
        // The producer fills the window and waits: however long we wait,
        // no more than the window is queued.
        var most = 0
        for _ in 0..<20 {
            try await Task.sleep(nanoseconds: 10_000_000)
            let held = try await channel.eventLoop.submit { stalled.held.count }.get()
            most = max(most, held)
        }
        XCTAssertGreaterThan(most, 0)
        XCTAssertLessThanOrEqual(most, 3, "the producer waits for room instead of queueing the whole artifact")
        // The client reads: the rest flows, and the download is whole.
        var received: [UInt8] = []
        var bytes: [UInt8] = []
        var done = false
        while !done {
            try await channel.eventLoop.submit { stalled.release() }.get()
            while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
                var b = buffer
                bytes += b.readBytes(length: b.readableBytes) ?? []
            }
            for answer in try responseFrames(&bytes) {
                XCTAssertEqual(answer.status.code, .ok, answer.status.message)
                let part = try PBDownloadArtifactResponse(serializedBytes: answer.body)
                for chunk in part.chunks { received += chunk }
                if !answer.more { done = true; XCTAssertEqual(part.artifact.digest, artifact.digest) }
            }
            if !done { try await Task.sleep(nanoseconds: 1_000_000) }
        }
        XCTAssertEqual(received, blob)

        // A client that goes mid-stream: the producer stops (the window is
        // closed) and the services carry on for everyone else.
        let second = NIOAsyncTestingChannel()
        let stalledAgain = StalledSocket()
        try await second.pipeline.addHandler(stalledAgain)
        let handler = t.handler()
        try await second.pipeline.addHandler(handler)
        try await second.writeInbound(ByteBuffer(bytes: try requestFrame(1, Method.downloadArtifact,
                                                                     PBDownloadArtifactRequest.with { $0.digest = artifact.digest })))
        try await Task.sleep(nanoseconds: 20_000_000)
        try await second.close()
        let other = EmbeddedChannel(handler: t.handler())
        try other.writeInbound(ByteBuffer(bytes: try requestFrame(5, Method.health, PBHealthRequest())))
        var answer = try drain(other)
        XCTAssertEqual(try responseFrames(&answer).map(\.id), [5])
        // Every connection's count came back.
        _ = try? await channel.finish()
        _ = try other.finish()
        let deadline = Date().addingTimeInterval(5)
        while t.services.stats.connections.load(ordering: .relaxed) != 0 && Date() < deadline {
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        XCTAssertEqual(t.services.stats.connections.load(ordering: .relaxed), 0)
    }

    func testTheMethodTableResolvesEveryPathByItsBytes() {
        XCTAssertEqual(MethodDispatch.entries.count, MethodTable.all.count)
        for (i, method) in MethodTable.all.enumerated() {
            var path = method.path
            XCTAssertEqual(path.withUTF8 { MethodDispatch.index(of: UnsafeRawBufferPointer($0)) }, i, method.path)
            XCTAssertEqual(MethodDispatch.entries[i].handler == nil, method.fastPath == .connection, method.path)
            XCTAssertEqual(MethodDispatch.routes[i].inline != nil, method.fastPath == .snapshotRead, method.path)
        }
        for unknown in ["", "/plinth.v1.Admin/Hell", "/plinth.v1.Admin/Hello ", "/plinth.v1.Admin/hello"] {
            var path = unknown
            XCTAssertNil(path.withUTF8 { MethodDispatch.index(of: UnsafeRawBufferPointer($0)) }, unknown)
        }
    }
}
