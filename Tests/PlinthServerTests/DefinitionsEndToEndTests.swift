// Definitions over the wire: ListDefinitions at a past version (and the
// refusals around it), an offline-only view refused by GetOnlineFeatures,
// and plinthctl's apply and definitions commands on top of them.
import Foundation
import PlinthClient
import PlinthWire
import XCTest
@testable import PlinthServer

final class DefinitionsEndToEndTests: XCTestCase {
    var server: TestServer!
    var connection: Connection!

    override func setUpWithError() throws {
        server = try TestServer()
        connection = try Connection(address: server.address)
    }

    override func tearDown() { server?.stop() }

    @discardableResult
    func apply(_ yaml: String) throws -> PBApplyDefinitionsResponse {
        var request = PBApplyDefinitionsRequest()
        request.yaml = yaml
        return try connection.call(Method.applyDefinitions, request, as: PBApplyDefinitionsResponse.self)
    }

    func list(project: String = "", version: UInt64 = 0) throws -> PBListDefinitionsResponse {
        var request = PBListDefinitionsRequest()
        request.project = project
        request.version = version
        return try connection.call(Method.listDefinitions, request, as: PBListDefinitionsResponse.self)
    }

    func refusal(_ body: () throws -> Any) -> PlinthError? {
        do { _ = try body(); XCTFail("accepted"); return nil } catch { return error as? PlinthError }
    }

    /// Version 1: `definitionsYAML`; version 2: the same with a TTL and
    /// `stats` made offline-only.
    func applyTwoVersions() throws {
        try apply(definitionsYAML)
        let second = definitionsYAML.replacingOccurrences(of: "    entities: [user]\n", with: "    entities: [user]\n    ttl: 1h\n    online: false\n")
        XCTAssertEqual(try apply(second).version, 2)
    }

    func testAPastVersionIsListedAsItWas() throws {
        try applyTwoVersions()
        let current = try list()
        XCTAssertEqual(current.projects.map(\.version), [2])
        XCTAssertEqual(current.projects.first?.currentVersion, 2)
        XCTAssertEqual(current.projects.first?.featureViews.first?.spec.ttlSeconds, 3600)
        XCTAssertEqual(current.projects.first?.featureViews.first?.spec.offlineOnly, true)

        for past in [try list(project: "e2e", version: 1), try list(version: 1)] {
            XCTAssertEqual(past.projects.count, 1)
            XCTAssertEqual(past.projects.first?.version, 1)
            XCTAssertEqual(past.projects.first?.currentVersion, 2)
            XCTAssertEqual(past.projects.first?.featureViews.first?.spec.ttlSeconds, 0)
            XCTAssertEqual(past.projects.first?.featureViews.first?.spec.offlineOnly, false)
        }
        XCTAssertEqual(try list(project: "e2e", version: 2).projects.first?.featureViews.first?.spec.ttlSeconds, 3600)
    }

    func testAnUnknownVersionIsNotFoundAndNamesTheVersions() throws {
        try applyTwoVersions()
        let missing = refusal { try self.list(project: "e2e", version: 7) }
        XCTAssertEqual(missing?.code, 5)
        XCTAssertEqual(missing?.message, "project 'e2e' has no definitions version 7 (versions: 1-2)")
        XCTAssertEqual(refusal { try self.list(project: "ghost", version: 1) }?.code, 5)
    }

    func testAVersionWithoutAProjectNeedsOneProject() throws {
        XCTAssertEqual(refusal { try self.list(version: 1) }?.code, 5, "nothing applied yet")
        try applyTwoVersions()
        try apply("""
        project: other
        entities:
          - {name: shop, join_key: shop_id, type: string}
        """)
        let ambiguous = refusal { try self.list(version: 1) }
        XCTAssertEqual(ambiguous?.code, 3)
        XCTAssertTrue(ambiguous?.message.contains("projects: e2e, other") ?? false, "\(String(describing: ambiguous))")
        XCTAssertEqual(try list(project: "other", version: 1).projects.first?.project, "other")
    }

    func testAnOnlineReadOfAnOfflineOnlyViewIsRefusedWithTheReason() throws {
        try applyTwoVersions()
        let refused = refusal { try self.connection.call(Method.getOnlineFeatures, getRequest(ids: [1]), as: PBGetOnlineFeaturesResponse.self) }
        XCTAssertEqual(refused?.code, 3)
        XCTAssertTrue(refused?.message.contains("feature view 'stats' is offline-only (online: false)") ?? false,
                      "\(String(describing: refused))")
        // The default push target writes the offline face only.
        let pushed = try connection.call(Method.push, pushRequest(ids: [1, 2], count: 3), as: PBPushResponse.self)
        XCTAssertEqual(pushed.offlineRowsWritten, 2)
        XCTAssertEqual(pushed.onlineRowsWritten, 0)
        var online = pushRequest(ids: [1], count: 3)
        online.to = .online
        XCTAssertEqual(refusal { try self.connection.call(Method.push, online, as: PBPushResponse.self) }?.code, 3)
    }

    func testPlinthctlNamesTheFileAndShowsAPastVersion() throws {
        try applyTwoVersions()
        let dir = NSTemporaryDirectory() + "plinth-defs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/features.yaml"
        try definitionsYAML.replacingOccurrences(of: "    entities: [user]\n", with: "    entities: [user]\n    ttl_seconds: 60\n")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let (code, _, err) = try runPlinthctl(["apply", file], address: server.address)
        XCTAssertEqual(code, 1)
        XCTAssertTrue(err.contains("\(file):7: unknown field 'ttl_seconds' in feature view 'stats' (known: name, entities,"), err)

        let (listed, out, listErr) = try runPlinthctl(["definitions", "--version", "1"], address: server.address)
        XCTAssertEqual(listed, 0, listErr)
        XCTAssertTrue(out.contains("project e2e at version 1 of 2"), out)
        XCTAssertTrue(out.contains("ttl=0s"), out)
        XCTAssertFalse(out.contains("offline-only"), out)
        let (_, now, _) = try runPlinthctl(["definitions"], address: server.address)
        XCTAssertTrue(now.contains("ttl=3600s offline-only"), now)
    }
}
