// The connection state machine, without sockets: handshake, tokens,
// scopes and quiescing.
import Foundation
import XCTest
@testable import PlinthServer
@testable import PlinthWire

final class ConnectionStateTests: XCTestCase {
    let tokens = [Token(name: "reader", secret: "r-secret-1", scopes: .read),
                  Token(name: "ops", secret: "o-secret-1", scopes: .all)]

    func testWithoutTokensEverythingRunsEvenBeforeHello() {
        var state = ConnectionState(tokens: [])
        XCTAssertEqual(state.admit(method: Method.push, needs: .write), .dispatch)
        guard case .success(let (scopes, _)) = state.hello(version: 1, token: "") else { return XCTFail() }
        XCTAssertEqual(scopes, .all)
    }

    func testTokensAreRequiredAndScopesChecked() {
        var state = ConnectionState(tokens: tokens)
        XCTAssertEqual(state.admit(method: Method.health, needs: []), .dispatch)
        guard case .refuse(let code, _) = state.admit(method: Method.getOnlineFeatures, needs: .read) else { return XCTFail() }
        XCTAssertEqual(code, StatusCode.unauthenticated)
        guard case .failure(let wrong) = state.hello(version: 1, token: "r-secret-2") else { return XCTFail() }
        XCTAssertEqual(wrong.code, StatusCode.unauthenticated)
        guard case .success(let (scopes, name)) = state.hello(version: 1, token: "r-secret-1") else { return XCTFail() }
        XCTAssertEqual(scopes, .read)
        XCTAssertEqual(name, "reader")
        XCTAssertEqual(state.admit(method: Method.getOnlineFeatures, needs: .read), .dispatch)
        guard case .refuse(let denied, let message) = state.admit(method: Method.push, needs: .write) else { return XCTFail() }
        XCTAssertEqual(denied, StatusCode.permissionDenied)
        XCTAssertTrue(message.contains("write"))
    }

    func testAFailedHelloRevokesEarlierRights() {
        var state = ConnectionState(tokens: tokens)
        guard case .success = state.hello(version: 1, token: "o-secret-1") else { return XCTFail() }
        guard case .failure = state.hello(version: 1, token: "wrong-one") else { return XCTFail() }
        guard case .refuse(let code, _) = state.admit(method: Method.listDefinitions, needs: .read) else { return XCTFail() }
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
        XCTAssertFalse(state.quiesce())
        guard case .refuse(let code, _) = state.admit(method: Method.getOnlineFeatures, needs: .read) else { return XCTFail() }
        XCTAssertEqual(code, StatusCode.unavailable)
        XCTAssertFalse(state.finished())
        XCTAssertTrue(state.finished())
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
