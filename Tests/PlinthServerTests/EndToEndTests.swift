// End-to-end tests against a real server: an in-process PlinthServer on a
// free port for protocol behaviour, and the plinthd binary for crash and
// signal behaviour. Each test has its own data directory and port.
import Foundation
import Logging
import PlinthClient
import PlinthWire
import XCTest
@testable import PlinthServer

let definitionsYAML = """
project: e2e
entities:
  - {name: user, join_key: user_id, type: int64}
feature_views:
  - name: stats
    entities: [user]
    features:
      - {name: count, type: int64}
      - {name: score, type: float32}
feature_services:
  - {name: svc, features: ["stats:count", "stats:score"]}
"""

/// An in-process server on 127.0.0.1 with an OS-chosen port.
final class TestServer {
    let server: PlinthServer
    let address: String
    let dataDir: String

    init(tokens: [Token] = [], maxFrameBytes: Int = 1 << 20) throws {
        dataDir = NSTemporaryDirectory() + "plinth-e2e-\(UUID().uuidString)"
        var config = ServerConfig()
        config.dataDir = dataDir
        config.listen = "127.0.0.1:0"
        config.tokens = tokens
        config.maxFrameBytes = maxFrameBytes
        config.eventLoopThreads = 2
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        server = try PlinthServer(config: config, logger: logger)
        address = try server.start()[0]
    }

    func stop() {
        server.stop()
        try? FileManager.default.removeItem(atPath: dataDir)
    }
}

func pushRequest(ids: [Int64], count: Int64, event: Int64 = Int64(Date().timeIntervalSince1970 * 1e6)) -> PBPushRequest {
    var request = PBPushRequest()
    request.featureView = "stats"
    var key = PBColumn(); key.name = "user_id"; key.type = .int64; key.int64Values = ids
    var c = PBColumn(); c.name = "count"; c.type = .int64; c.int64Values = Array(repeating: count, count: ids.count)
    var s = PBColumn(); s.name = "score"; s.type = .float32; s.float32Values = ids.map { Float($0) / 2 }
    request.columns = [key, c, s]
    request.eventTimeUs = Array(repeating: event, count: ids.count)
    return request
}

func getRequest(ids: [Int64]) -> PBGetOnlineFeaturesRequest {
    var request = PBGetOnlineFeaturesRequest()
    request.featureService = "svc"
    var key = PBColumn(); key.name = "user_id"; key.type = .int64; key.int64Values = ids
    request.entities = [key]
    return request
}

func apply(_ connection: Connection) throws {
    var request = PBApplyDefinitionsRequest()
    request.yaml = definitionsYAML
    _ = try connection.call(Method.applyDefinitions, request, as: PBApplyDefinitionsResponse.self)
}

final class EndToEndTests: XCTestCase {
    var server: TestServer!

    override func setUpWithError() throws {
        server = try TestServer()
        let c = try Connection(address: server.address)
        try apply(c)
        _ = try c.call(Method.push, pushRequest(ids: [1, 2, 3], count: 7), as: PBPushResponse.self)
    }

    override func tearDown() { server?.stop() }

    func assertHealthy(file: StaticString = #filePath, line: UInt = #line) {
        do {
            let c = try Connection(address: server.address)
            let r = try c.call(Method.getOnlineFeatures, getRequest(ids: [1]), as: PBGetOnlineFeaturesResponse.self)
            XCTAssertEqual(r.features.first?.values.int64Values, [7], file: file, line: line)
        } catch { XCTFail("server not healthy: \(error)", file: file, line: line) }
    }

    func testCompactEventTimesSendEachViewsTimesOnce() throws {
        let c = try Connection(address: server.address)
        // One row pushed with its own time, so the times are not all alike.
        let later = pushRequest(ids: [2], count: 9, event: Int64(Date().timeIntervalSince1970 * 1e6) + 1_000_000)
        XCTAssertEqual(try c.call(Method.push, later, as: PBPushResponse.self).onlineRowsWritten, 1)
        for ids: [Int64] in [[2], [1, 2, 3, 99]] {
            let full = try c.call(Method.getOnlineFeatures, getRequest(ids: ids), as: PBGetOnlineFeaturesResponse.self)
            var request = getRequest(ids: ids)
            request.compactEventTimes = true
            let compact = try c.call(Method.getOnlineFeatures, request, as: PBGetOnlineFeaturesResponse.self)
            XCTAssertEqual(full.features.map(\.eventTimesFrom), [0, 0])
            XCTAssertEqual(compact.features.map(\.eventTimesFrom), [0, 1], "stats:score shares stats:count's times")
            XCTAssertEqual(compact.features[1].eventTimeUs, [])
            XCTAssertEqual(OnlineResponseEncoderTests.expandedTimes(compact), full.features.map(\.eventTimeUs))
            XCTAssertEqual(compact.features.map(\.values), full.features.map(\.values))
            XCTAssertEqual(compact.features.map(\.statuses), full.features.map(\.statuses))
        }
    }

    /// Bursts of frames in one write each, on two connections at once, the
    /// last burst split mid-frame: every request is answered, each with its
    /// own id and value. (A burst's answers are flushed at the end of the
    /// event loop's pass, after every ready connection has been read.)
    func testBurstsOnSeveralConnectionsAreAllAnswered() throws {
        let connections = try (0..<2).map { _ in try Connection(address: server.address) }
        func frame(id: UInt64, user: Int64) throws -> [UInt8] {
            var envelope = PBRequest()
            envelope.id = id
            envelope.method = Method.getOnlineFeatures
            envelope.body = try getRequest(ids: [user]).serializedData()
            let payload: [UInt8] = try envelope.serializedBytes()
            let n = UInt32(payload.count)
            return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload
        }
        for round in 0..<3 {
            var bursts: [[UInt8]] = []
            for (k, _) in connections.enumerated() {
                var burst: [UInt8] = []
                for i in 0..<40 { burst += try frame(id: UInt64(1000 * (k + 1) + i), user: Int64(i % 4)) }
                bursts.append(burst)
            }
            for (k, c) in connections.enumerated() {
                if round == 2 {
                    // The burst's last frame arrives in two parts.
                    let cut = bursts[k].count - 5
                    try c.writeAll(Array(bursts[k][..<cut]))
                    Thread.sleep(forTimeInterval: 0.02)
                    try c.writeAll(Array(bursts[k][cut...]))
                } else {
                    try c.writeAll(bursts[k])
                }
            }
            for (k, c) in connections.enumerated() {
                var ids: Set<UInt64> = []
                for _ in 0..<40 {
                    let answer = try c.receive()
                    XCTAssertEqual(answer.code, 0, answer.message)
                    ids.insert(answer.id)
                    let user = Int(answer.id % 1000) % 4
                    let response = try PBGetOnlineFeaturesResponse(serializedBytes: answer.body)
                    // Users 1-3 were pushed with count 7; user 0 never was.
                    XCTAssertEqual(response.features.first?.statuses, [user == 0 ? .notFound : .present], "round \(round) id \(answer.id)")
                }
                XCTAssertEqual(ids, Set((0..<40).map { UInt64(1000 * (k + 1) + $0) }), "round \(round)")
            }
        }
        assertHealthy()
    }

    func testPipelinedRequestsAreAnsweredOutOfOrder() throws {
        let c = try Connection(address: server.address)
        // A push waits for a durable commit on the writer thread; a read is
        // answered inline, so the read sent second comes back first.
        let pushID = try c.send(Method.push, pushRequest(ids: Array(1...2000), count: 8))
        var readIDs: [UInt64] = []
        for _ in 0..<5 { readIDs.append(try c.send(Method.getOnlineFeatures, getRequest(ids: [1, 2]))) }
        var order: [UInt64] = []
        for _ in 0..<6 {
            let frame = try c.receive()
            XCTAssertEqual(frame.code, 0, frame.message)
            order.append(frame.id)
        }
        XCTAssertEqual(Set(order), Set(readIDs + [pushID]))
        // The push was sent first and answered after a read. (Not
        // necessarily last: the later reads may arrive in a socket read
        // after its commit.)
        XCTAssertNotEqual(order.first, pushID, "answers: \(order)")
    }

    func testTwoHundredConcurrentConnections() throws {
        var opened: [Connection] = []
        for _ in 0..<200 { opened.append(try Connection(address: server.address)) }
        let info = try opened[0].call(Method.serverInfo, PBServerInfoRequest(), as: PBServerInfoResponse.self)
        XCTAssertGreaterThanOrEqual(info.openConnections, 200)
        let failures = Counter()
        // Each connection is used by exactly one worker.
        nonisolated(unsafe) let connections = opened
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for (i, c) in connections.enumerated() where i % 8 == worker {
                do {
                    let r = try c.call(Method.getOnlineFeatures, getRequest(ids: [Int64(i % 3 + 1)]), as: PBGetOnlineFeaturesResponse.self)
                    if r.features.first?.values.int64Values != [7] { failures.add() }
                } catch { failures.add() }
            }
        }
        XCTAssertEqual(failures.value, 0)
    }

    func testOversizedLengthIsRefusedAndOthersCarryOn() throws {
        let bystander = try Connection(address: server.address)
        let c = try Connection(address: server.address)
        try c.writeAll([0xFF, 0xFF, 0xFF, 0xF0])
        let frame = try c.receive()
        XCTAssertEqual(frame.id, 0)
        XCTAssertEqual(frame.code, 8)  // RESOURCE_EXHAUSTED
        XCTAssertTrue(frame.message.contains("over the limit"), frame.message)
        XCTAssertThrowsError(try c.receive())  // closed
        XCTAssertNoThrow(try bystander.call(Method.health, PBHealthRequest(), as: PBHealthResponse.self))
        assertHealthy()
    }

    func testTruncatedFrameThenCloseLeavesTheServerServing() throws {
        do {
            let c = try Connection(address: server.address)
            try c.writeAll([0, 0, 0, 100, 1, 2, 3])
        }  // closed here, mid-frame
        assertHealthy()
    }

    func testBytesThatAreNotProtobufCloseOnlyThatConnection() throws {
        let c = try Connection(address: server.address)
        try c.writeFrame([0xFF, 0xFF, 0xFF, 0xFF])
        let frame = try c.receive()
        XCTAssertEqual(frame.id, 0)
        XCTAssertEqual(frame.code, 3)
        XCTAssertThrowsError(try c.receive())
        assertHealthy()
    }

    func testBadBodyAndUnknownMethodGetErrorsAndTheConnectionContinues() throws {
        let c = try Connection(address: server.address)
        let bad = try c.send(Method.getOnlineFeatures, body: [0xFF, 0xFF])
        var frame = try c.receive()
        XCTAssertEqual(frame.id, bad)
        XCTAssertEqual(frame.code, 3)
        XCTAssertTrue(frame.message.contains("GetOnlineFeaturesRequest"), frame.message)
        let unknown = try c.send("/plinth.v1.Features/Nope", body: [])
        frame = try c.receive()
        XCTAssertEqual(frame.id, unknown)
        XCTAssertEqual(frame.code, 12)
        // Wrong type for an entity key, unknown view: errors for that request only.
        var wrongType = getRequest(ids: [1])
        wrongType.entities[0].type = .string
        wrongType.entities[0].int64Values = []
        wrongType.entities[0].stringValues = ["1"]
        XCTAssertThrowsError(try c.call(Method.getOnlineFeatures, wrongType, as: PBGetOnlineFeaturesResponse.self)) {
            XCTAssertEqual(($0 as? PlinthError)?.code, 3)
        }
        var unknownView = pushRequest(ids: [1], count: 1)
        unknownView.featureView = "nope"
        XCTAssertThrowsError(try c.call(Method.push, unknownView, as: PBPushResponse.self)) {
            XCTAssertEqual(($0 as? PlinthError)?.code, 5)
        }
        let r = try c.call(Method.getOnlineFeatures, getRequest(ids: [2]), as: PBGetOnlineFeaturesResponse.self)
        XCTAssertEqual(r.features[1].values.float32Values, [1.0])
    }

    func testRequestIdZeroClosesTheConnection() throws {
        let c = try Connection(address: server.address, sayHello: false)
        var envelope = PBRequest()
        envelope.method = Method.health
        try c.writeFrame(try envelope.serializedBytes())
        let frame = try c.receive()
        XCTAssertEqual(frame.id, 0)
        XCTAssertEqual(frame.code, 3)
    }

    func testInvalidDefinitionsAreRefusedWhole() throws {
        let c = try Connection(address: server.address)
        var request = PBApplyDefinitionsRequest()
        request.yaml = definitionsYAML.replacingOccurrences(of: "type: float32", with: "type: float33")
        XCTAssertThrowsError(try c.call(Method.applyDefinitions, request, as: PBApplyDefinitionsResponse.self)) {
            let e = $0 as? PlinthError
            XCTAssertEqual(e?.code, 3)
            XCTAssertTrue(e?.message.contains("<yaml>:9:") ?? false, "\(String(describing: e))")
        }
        let list = try c.call(Method.listDefinitions, PBListDefinitionsRequest(), as: PBListDefinitionsResponse.self)
        XCTAssertEqual(list.projects.first?.featureViews.first?.spec.features.map(\.type), [.int64, .float32])
    }
}

final class AuthTests: XCTestCase {
    func testTokensAndScopes() throws {
        let server = try TestServer(tokens: [Token(name: "reader", secret: "r-secret-1", scopes: .read),
                                             Token(name: "ops", secret: "o-secret-1", scopes: .all)])
        defer { server.stop() }
        XCTAssertThrowsError(try Connection(address: server.address, token: "wrong-token")) {
            XCTAssertEqual(($0 as? PlinthError)?.code, 16)
        }
        XCTAssertThrowsError(try Connection(address: server.address)) { XCTAssertEqual(($0 as? PlinthError)?.code, 16) }
        // Without Hello, nothing but Health.
        let anonymous = try Connection(address: server.address, sayHello: false)
        XCTAssertNoThrow(try anonymous.call(Method.health, PBHealthRequest(), as: PBHealthResponse.self))
        XCTAssertThrowsError(try anonymous.call(Method.listDefinitions, PBListDefinitionsRequest(), as: PBListDefinitionsResponse.self)) {
            XCTAssertEqual(($0 as? PlinthError)?.code, 16)
        }
        let ops = try Connection(address: server.address, token: "o-secret-1")
        XCTAssertEqual(ops.hello.tokenName, "ops")
        try apply(ops)
        let reader = try Connection(address: server.address, token: "r-secret-1")
        XCTAssertEqual(reader.hello.scopes, ["read"])
        XCTAssertNoThrow(try reader.call(Method.getOnlineFeatures, getRequest(ids: [1]), as: PBGetOnlineFeaturesResponse.self))
        XCTAssertThrowsError(try reader.call(Method.push, pushRequest(ids: [1], count: 1), as: PBPushResponse.self)) {
            XCTAssertEqual(($0 as? PlinthError)?.code, 7)
        }
        XCTAssertThrowsError(try apply(reader)) { XCTAssertEqual(($0 as? PlinthError)?.code, 7) }
    }

    func testOldProtocolVersionIsRefused() throws {
        let server = try TestServer()
        defer { server.stop() }
        let c = try Connection(address: server.address, sayHello: false)
        var hello = PBHelloRequest()
        hello.protocolVersion = 9
        XCTAssertThrowsError(try c.call(Method.hello, hello, as: PBHelloResponse.self)) {
            XCTAssertEqual(($0 as? PlinthError)?.code, 9)
        }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var v = 0
    var value: Int { lock.withLock { v } }
    func add() { lock.withLock { v += 1 } }
}
