// A feature view declared `online: false` lives on the offline face only:
// pushes write offline (and refuse the online face named alone), online
// reads and materialisation refuse or skip it, historical reads see it.
import Foundation
import XCTest
@testable import PlinthFeatures
@testable import PlinthStorage

final class OfflineOnlyViewTests: OfflineTestCase {
    static let yaml = offlineYAML.replacingOccurrences(of: "  - name: merchant_tags\n    entities: [merchant]\n",
                                                       with: "  - name: merchant_tags\n    entities: [merchant]\n    online: false\n")

    override func setUpWithError() throws {
        path = NSTemporaryDirectory() + "plinth-offline-only-\(UUID().uuidString)"
        (env, catalog, online, offline) = try Self.open(path, yaml: Self.yaml)
    }

    private func pushTag(_ merchant: String, _ tag: String, at time: Int64, target: PushTarget = .onlineAndOffline) throws -> PushResult {
        try online.push(view: "merchant_tags", columns: [OfflineStoreTests.strings("merchant_id", [merchant]),
                                                         OfflineStoreTests.strings("tag", [tag])],
                        eventTimes: [time], target: target)
    }

    private func onlineRowCount() throws -> Int {
        var count = 0
        try env.read { txn in try txn.scan(online.online, from: []) { _, _ in count += 1; return true } }
        return count
    }

    func testTheDefinitionSaysSo() {
        XCTAssertEqual(catalog.snapshot.views["merchant_tags"]?.definition.online, false)
        XCTAssertEqual(catalog.snapshot.views["user_stats"]?.definition.online, true)
    }

    func testAPushWritesTheOfflineFaceOnly() throws {
        let both = try pushTag("a", "gold", at: 10)
        XCTAssertEqual(both.offlineRowsWritten, 1)
        XCTAssertEqual(both.onlineRowsWritten, 0)
        XCTAssertEqual(try pushTag("a", "silver", at: 20, target: .offline).offlineRowsWritten, 1)
        XCTAssertThrowsError(try pushTag("a", "bronze", at: 30, target: .online)) { error in
            XCTAssertTrue("\(error)".contains("feature view 'merchant_tags' is offline-only (online: false)"), "\(error)")
        }
        XCTAssertEqual(try onlineRowCount(), 0)

        let (columns, _) = try offline.join(HistoricalRequest(features: ["merchant_tags:tag"],
                                                               spine: [OfflineStoreTests.strings("merchant_id", ["a", "a"])],
                                                               eventTimes: [15, 25]))
        XCTAssertEqual(columns[1].strings, ["gold", "silver"])
    }

    func testAnOnlineReadIsRefusedWithTheReason() throws {
        let entities = [OfflineStoreTests.strings("merchant_id", ["a"])]
        XCTAssertThrowsError(try online.read(features: ["merchant_tags:tag"], service: nil, entities: entities,
                                             fullFeatureNames: false)) { error in
            guard case FeatureStoreError.invalidArgument(let message)? = error as? FeatureStoreError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue(message.contains("feature view 'merchant_tags' is offline-only (online: false)"), message)
        }
        // A service that includes it is refused the same way.
        XCTAssertThrowsError(try online.plan(features: [], service: "model_v1", fullFeatureNames: false)) { error in
            XCTAssertTrue("\(error)".contains("offline-only"), "\(error)")
        }
        XCTAssertNoThrow(try online.plan(features: ["user_stats:count"], service: nil, fullFeatureNames: false))
    }

    func testMaterialisationSkipsItAndRefusesToBeAskedForIt() throws {
        _ = try pushTag("a", "gold", at: 10)
        let all = try offline.materialize(start: 0, end: 100)
        XCTAssertEqual(all.map(\.view), ["pair", "user_stats"])
        XCTAssertEqual(try onlineRowCount(), 0)
        XCTAssertThrowsError(try offline.materialize(start: 0, end: 100, views: ["merchant_tags"])) { error in
            XCTAssertTrue("\(error)".contains("offline-only feature views (online: false) are not materialised: merchant_tags"), "\(error)")
        }
    }

    func testTurningAViewOnlineAgainServesItsNewPushes() throws {
        _ = try pushTag("a", "gold", at: 10)
        _ = try catalog.apply(DefinitionParser.parse(offlineYAML))
        XCTAssertEqual(catalog.snapshot.views["merchant_tags"]?.meta.schemaVersion, 1, "online is not part of the row layout")
        _ = try pushTag("a", "silver", at: 20)
        let results = try online.read(features: ["merchant_tags:tag"], service: nil,
                                      entities: [OfflineStoreTests.strings("merchant_id", ["a"])], fullFeatureNames: false)
        XCTAssertEqual(results[0].values.strings, ["silver"])
    }
}
