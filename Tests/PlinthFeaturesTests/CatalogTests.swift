// The catalog's history: every applied version of a project reads back as
// it was, and a version that never existed is refused naming those that do.
import Foundation
import XCTest
@testable import PlinthFeatures
@testable import PlinthStorage

final class CatalogHistoryTests: XCTestCase {
    var path = ""
    var env: Environment!
    var catalog: Catalog!

    override func setUpWithError() throws {
        path = NSTemporaryDirectory() + "plinth-catalog-\(UUID().uuidString)"
        env = try OfflineTestCase.environment(path)
        catalog = try Catalog(environment: env)
    }

    override func tearDown() {
        env?.close()
        try? FileManager.default.removeItem(atPath: path)
    }

    func testEveryAppliedVersionReadsBackAsItWas() throws {
        _ = try catalog.apply(DefinitionParser.parse(exampleYAML), now: 100)
        _ = try catalog.apply(DefinitionParser.parse(exampleYAML.replacingOccurrences(of: "ttl: 7d", with: "ttl: 1d")), now: 200)
        let offlineOnly = exampleYAML.replacingOccurrences(of: "ttl: 7d", with: "ttl: 1d\n    online: false")
        XCTAssertEqual(try catalog.apply(DefinitionParser.parse(offlineOnly), now: 300).version, 3)
        XCTAssertFalse(try catalog.apply(DefinitionParser.parse(offlineOnly), now: 400).changed, "the same file adds no version")

        let first = try catalog.definitions(of: "fraud", at: 1)
        XCTAssertEqual(first.version, 1)
        XCTAssertEqual(first.appliedAtMicros, 100)
        XCTAssertEqual(first.spec.featureViews.first?.ttlSeconds, 7 * 86_400)
        XCTAssertEqual(try catalog.definitions(of: "fraud", at: 2).spec.featureViews.first?.ttlSeconds, 86_400)
        XCTAssertEqual(try catalog.definitions(of: "fraud", at: 2).spec.featureViews.first?.online, true)
        XCTAssertEqual(try catalog.definitions(of: "fraud", at: 3), catalog.snapshot.projects["fraud"])
    }

    func testAnUnknownVersionNamesTheVersionsThereAre() throws {
        _ = try catalog.apply(DefinitionParser.parse(exampleYAML))
        _ = try catalog.apply(DefinitionParser.parse(exampleYAML.replacingOccurrences(of: "ttl: 7d", with: "ttl: 1d")))
        XCTAssertThrowsError(try catalog.definitions(of: "fraud", at: 9)) { error in
            guard case FeatureStoreError.notFound(let message)? = error as? FeatureStoreError else { return XCTFail("\(error)") }
            XCTAssertEqual(message, "project 'fraud' has no definitions version 9 (versions: 1-2)")
        }
        XCTAssertThrowsError(try catalog.definitions(of: "fraudulent", at: 1)) { error in
            XCTAssertEqual("\(error)", "unknown project 'fraudulent'")
        }
    }

    func testVersionListsAreShortenedToRanges() {
        XCTAssertEqual(Catalog.ranges([1]), "1")
        XCTAssertEqual(Catalog.ranges([1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8")
        XCTAssertEqual(Catalog.ranges([]), "")
    }
}
