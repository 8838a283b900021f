// The connection state machine, without sockets: handshake, tokens,
// scopes and quiescing.
import Foundation
import XCTest
@testable import PlinthServer
@testable import PlinthWire

/// What the state machine says of a request for `path`, with the scope the
/// method table gives it.
func admit(_ state: ConnectionState, _ path: String) -> ConnectionState.Admission {
    guard let entry = MethodDispatch.entry(path) else { return .refuse(code: -1, message: "no such method \(path)") }
    return state.admit(entry.descriptor, needs: entry.scope)
}

final class ConnectionStateTests: XCTestCase {
    let tokens = [Token(name: "reader", secret: "r-secret-1", scopes: .read),
                  Token(name: "ops", secret: "o-secret-1", scopes: .all)]

    func testWithoutTokensEverythingRunsEvenBeforeHello() {
        var state = ConnectionState(tokens: [])
        XCTAssertEqual(admit(state, Method.push), .dispatch)
        guard case .success(let (scopes, _)) = state.hello(version: 1, token: "") else { return XCTFail() }
        XCTAssertEqual(scopes, .all)
    }

    func testTokensAreRequiredAndScopesChecked() {
        var state = ConnectionState(tokens: tokens)
        XCTAssertEqual(admit(state, Method.health), .dispatch)
        guard case .refuse(let code, _) = admit(state, Method.getOnlineFeatures) else { return XCTFail() }
        XCTAssertEqual(code, StatusCode.unauthenticated)
        guard case .failure(let wrong) = state.hello(version: 1, token: "r-secret-2") else { return XCTFail() }
        XCTAssertEqual(wrong.code, StatusCode.unauthenticated)
        guard case .success(let (scopes, name)) = state.hello(version: 1, token: "r-secret-1") else { return XCTFail() }
        XCTAssertEqual(scopes, .read)
        XCTAssertEqual(name, "reader")
        XCTAssertEqual(admit(state, Method.getOnlineFeatures), .dispatch)
        guard case .refuse(let denied, let message) = admit(state, Method.push) else { return XCTFail() }
        XCTAssertEqual(denied, StatusCode.permissionDenied)
        XCTAssertTrue(message.contains("write"))
    }

    func testAFailedHelloRevokesEarlierRights() {
        var state = ConnectionState(tokens: tokens)
        guard case .success = state.hello(version: 1, token: "o-secret-1") else { return XCTFail() }
        guard case .failure = state.hello(version: 1, token: "wrong-one") else { return XCTFail() }
        guard case .refuse(let code, _) = admit(state, Method.listDefinitions) else { return XCTFail() }
        XCTAssertEqual(code, StatusCode.unauthenticated)
    }

    func testUnsupportedProtocolVersionIsRefused() {
        var state = ConnectionState(tokens: [])
        guard case .failure(let refusal) = state.hello(version: 2, token: "") else { return XCTFail() }
        XCTAssertEqual(refusal.code, StatusCode.failedPrecondition)
        XCTAssertTrue(refusal.message.contains("speaks 1"))
    }

    func testQuiescingWaitsForPendingRequests() {
        var state = ConnectionState(tokens: [])
        state.started()
        state.started()
        XCTAssertEqual(state.quiesce(), .none)
        guard case .refuse(let code, _) = admit(state, Method.getOnlineFeatures) else { return XCTFail() }
        XCTAssertEqual(code, StatusCode.unavailable)
        XCTAssertEqual(state.finished(), .flush, "an answer from a worker goes out at once")
        XCTAssertEqual(state.finished(), .close)
    }

    func testQuiescingAnIdleConnectionClosesIt() {
        var state = ConnectionState(tokens: [])
        XCTAssertEqual(state.quiesce(), .close)
    }

    func testMethodsOpenBeforeHello() {
        // Documented as open before Hello: Hello, Health and KServe's liveness and readiness.
        let state = ConnectionState(tokens: tokens)
        for path in [Method.hello, Method.health, Method.serverLive, Method.serverReady] {
            XCTAssertEqual(admit(state, path), .dispatch, path)
        }
        for path in [Method.serverInfo, Method.modelReady, Method.getOnlineFeatures] {
            guard case .refuse(let code, _) = admit(state, path) else { return XCTFail(path) }
            XCTAssertEqual(code, StatusCode.unauthenticated, path)
        }
    }

    func testAnswersInsideAReadWaitForItsEnd() {
        var state = ConnectionState(tokens: [])
        XCTAssertEqual(state.answerWritten(), .flush, "outside a read an answer goes at once")
        state.readStarted()
        state.requestRead()
        XCTAssertEqual(state.answerWritten(), .none)
        state.started()
        XCTAssertEqual(state.finished(), .none, "a worker's answer inside a read waits too")
        state.readEnded()
        XCTAssertEqual(state.readPassEnded(hasOutput: true), .flush, "a lone request is answered at once")
    }

    func testABurstFlushesOnceAtTheEndOfThePass() {
        var state = ConnectionState(tokens: [])
        state.readStarted()
        for _ in 0..<5 { state.requestRead() }
        state.readEnded()
        XCTAssertEqual(state.readPassEnded(hasOutput: true), .flushAtEndOfPass)
        // A second read completing before the queued flush ran queues nothing more.
        state.readStarted()
        state.requestRead()
        state.requestRead()
        state.readEnded()
        XCTAssertEqual(state.readPassEnded(hasOutput: true), .none)
        state.queuedFlushRan()
        XCTAssertEqual(state.readPassEnded(hasOutput: true), .flush, "the pass's count was reset")
        XCTAssertEqual(state.readPassEnded(hasOutput: false), .none, "nothing written: nothing to flush")
    }

    func testABrokenFrameClosesOnceWithAnError() {
        var state = ConnectionState(tokens: [])
        XCTAssertEqual(state.frameFailed(code: StatusCode.resourceExhausted, message: "too big"),
                       .closeWithError(code: StatusCode.resourceExhausted, message: "too big"))
        XCTAssertTrue(state.closing)
        XCTAssertEqual(state.frameFailed(code: StatusCode.invalidArgument, message: "again"), .none)
        XCTAssertEqual(state.readPassEnded(hasOutput: true), .none, "a closing connection flushes nothing more")
    }

    func testConfigRefusesPublicAddressWithoutTokens() throws {
        var config = ServerConfig()
        config.listen = "0.0.0.0:7433"
        XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("--insecure")) }
        config.insecure = true
        XCTAssertNoThrow(try config.validate())
        config.insecure = false
        config.tokens = tokens
        XCTAssertNoThrow(try config.validate())
        XCTAssertEqual(try ServerConfig.parseAddress("[::1]:80").host, "::1")
        XCTAssertThrowsError(try ServerConfig.parseAddress("localhost"))
    }

    func testConfigFileErrorsNameTheLine() throws {
        let path = NSTemporaryDirectory() + "plinth-config-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "listen: 127.0.0.1:0\ntokens:\n  - {name: a, token: short, scopes: [read]}\n".write(toFile: path, atomically: true, encoding: .utf8)
        var config = ServerConfig()
        XCTAssertThrowsError(try config.load(file: path)) { XCTAssertTrue("\($0)".contains(":3") && "\($0)".contains("at least 8"), "\($0)") }
        try "lisen: x\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try config.load(file: path)) { XCTAssertTrue("\($0)".contains("unknown setting 'lisen'"), "\($0)") }
    }

    func testTrackingDurabilitySettings() throws {
        let path = NSTemporaryDirectory() + "plinth-config-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var config = ServerConfig()
        XCTAssertEqual(config.trackingDurability, .relaxed, "relaxed is the default")
        XCTAssertEqual(config.trackingSyncIntervalMs, 100)
        try "tracking_durability: strict\ntracking_sync_interval_ms: 250\n".write(toFile: path, atomically: true, encoding: .utf8)
        try config.load(file: path)
        XCTAssertEqual(config.trackingDurability, .strict)
        XCTAssertEqual(config.trackingSyncIntervalMs, 250)
        try "tracking_durability: sometimes\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try config.load(file: path)) { XCTAssertTrue("\($0)".contains("relaxed or strict"), "\($0)") }
        try "tracking_sync_interval_ms: 0\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try config.load(file: path)) { XCTAssertTrue("\($0)".contains("positive integer"), "\($0)") }
    }

    func testWriterPollSetting() throws {
        let path = NSTemporaryDirectory() + "plinth-config-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var config = ServerConfig()
        XCTAssertEqual(config.writerPollMicros, 300)
        try "writer_poll_us: 0\n".write(toFile: path, atomically: true, encoding: .utf8)
        try config.load(file: path)
        XCTAssertEqual(config.writerPollMicros, 0, "0 turns it off")
        for bad in ["-5", "soon", "100001", "1.5"] {
            try "writer_poll_us: \(bad)\n".write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try config.load(file: path), bad) {
                XCTAssertTrue("\($0)".contains(":1") && "\($0)".contains("writer_poll_us"), "\($0)")
            }
        }
    }
}
