// The online store and the B-tree walk's check (PlinthStorage's
// TreeSearchCheck): the store's first read of many entities settles the
// walk for its environment, and a store whose environment has the walk
// turned off (plinthd's online_tree_search: false) answers the same.
import Foundation
import XCTest
@testable import PlinthFeatures
@testable import PlinthStorage

final class OnlineTreeSearchTests: XCTestCase {
    var paths: [String] = []

    override func tearDown() {
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }

    /// A store of 3,000 users (count = id, every 7th null), read back for
    /// ids 0 to 3,099 (the last 100 never pushed).
    func readAll(treeSearch: Bool) throws -> (results: [FeatureResult], environment: Environment) {
        let path = NSTemporaryDirectory() + "plinth-tree-search-\(UUID().uuidString)"
        paths.append(path)
        var options = Environment.Options()
        options.mapSize = 1 << 26
        options.treeSearch = treeSearch
        let env = try Environment(path: path, options: options)
        let catalog = try Catalog(environment: env)
        let store = try OnlineStore(environment: env, catalog: catalog)
        _ = try catalog.apply(DefinitionParser.parse(exampleYAML))
        let n = 3_000
        var ids = Column(name: "user_id", type: .int64)
        ids.int64s = (0..<Int64(n)).map { $0 }
        var counts = Column(name: "txn_count_7d", type: .int64)
        counts.int64s = ids.int64s
        counts.nullRows = stride(from: 0, to: UInt32(n), by: 7).map { $0 }
        var amounts = Column(name: "avg_amount_7d", type: .float64)
        amounts.float64s = Array(repeating: 12.5, count: n)
        var countries = Column(name: "country", type: .string)
        countries.strings = Array(repeating: "DE", count: n)
        var embeddings = Column(name: "embedding", type: .float32Vector(length: 8))
        embeddings.float32s = Array(repeating: 0.5, count: 8 * n)
        _ = try store.push(view: "user_stats", columns: [ids, counts, amounts, countries, embeddings],
                           eventTimes: Array(repeating: currentMicros(), count: n))
        XCTAssertEqual(env.treeSearchState.load(ordering: .relaxed),
                       (treeSearch ? TreeSearchState.unchecked : .off).rawValue, "nothing read in a batch yet")
        var asked = Column(name: "user_id", type: .int64)
        asked.int64s = (0..<Int64(n + 100)).map { $0 }
        let results = try store.read(features: ["user_stats:txn_count_7d"], service: nil, entities: [asked], fullFeatureNames: false)
        return (results, env)
    }

    func testTheFirstBatchedReadChecksTheWalkAndTheSwitchAnswersAlike() throws {
        let (walked, on) = try readAll(treeSearch: true)
        XCTAssertEqual(on.treeSearchState.load(ordering: .relaxed), TreeSearchState.on.rawValue,
                       "the sample agreed with mdb_get, so the walk stays on")
        let (plain, off) = try readAll(treeSearch: false)
        XCTAssertFalse(off.treeSearchEnabled)
        XCTAssertEqual(walked.first?.statuses, plain.first?.statuses)
        XCTAssertEqual(walked.first?.values.int64s, plain.first?.values.int64s)
        let statuses = try XCTUnwrap(walked.first?.statuses)
        XCTAssertEqual(statuses[7], .nullValue)
        XCTAssertEqual(statuses[8], .present)
        XCTAssertEqual(walked.first?.values.int64s[8], 8)
        XCTAssertEqual(statuses[3_050], .notFound)
        on.close()
        off.close()
    }
}
