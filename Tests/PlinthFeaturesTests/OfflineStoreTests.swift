// The offline face's historical retrieval against a brute-force reference
// on random data: ties on event time, TTL edges, missing entities,
// duplicate spine rows, nulls, compound and string keys; plus the dataset
// record and bad input.
import Foundation
import XCTest
@testable import PlinthFeatures
@testable import PlinthStorage

let offlineYAML = """
project: shop
entities:
  - {name: user, join_key: user_id, type: int64}
  - {name: merchant, join_key: merchant_id, type: string}
feature_views:
  - name: user_stats
    entities: [user]
    ttl: 10s
    features:
      - {name: count, type: int64}
      - {name: amount, type: float64}
  - name: merchant_tags
    entities: [merchant]
    features:
      - {name: tag, type: string}
  - name: pair
    entities: [user, merchant]
    ttl: 25s
    features:
      - {name: score, type: float32}
feature_services:
  - {name: model_v1, features: ["user_stats:count", "pair:score", "merchant_tags:tag"]}
"""

/// A small deterministic generator (SplitMix64), so a failing seed replays.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

/// A fresh environment with `offlineYAML` applied, in its own temp dir;
/// the base of the offline face's test cases.
class OfflineTestCase: XCTestCase {
    var path = ""
    var env: Environment!
    var catalog: Catalog!
    var online: OnlineStore!
    var offline: OfflineStore!

    /// A small environment in `path` for one test: not durable, since no
    /// test outlives a crash.
    static func environment(_ path: String) throws -> Environment {
        var options = Environment.Options()
        options.mapSize = 1 << 26
        options.durable = false
        return try Environment(path: path, options: options)
    }

    /// Opens an environment in `path` with the definitions applied.
    static func open(_ path: String, yaml: String = offlineYAML) throws -> (Environment, Catalog, OnlineStore, OfflineStore) {
        let env = try environment(path)
        let catalog = try Catalog(environment: env)
        _ = try catalog.apply(DefinitionParser.parse(yaml))
        return (env, catalog, try OnlineStore(environment: env, catalog: catalog), try OfflineStore(environment: env, catalog: catalog))
    }

    override func setUpWithError() throws {
        path = NSTemporaryDirectory() + "plinth-offline-\(UUID().uuidString)"
        (env, catalog, online, offline) = try Self.open(path)
    }

    override func tearDown() {
        env?.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}

final class OfflineStoreTests: OfflineTestCase {
    static let second: Int64 = 1_000_000

    /// One stored offline row as the reference sees it.
    struct Stored {
        var key: [String]
        var event: Int64
        var created: Int64
        var values: [String?]
    }

    static func ints(_ name: String, _ values: [Int64], nulls: [UInt32] = []) -> Column {
        var c = Column(name: name, type: .int64); c.int64s = values; c.nullRows = nulls; return c
    }

    static func strings(_ name: String, _ values: [String]) -> Column {
        var c = Column(name: name, type: .string); c.strings = values; return c
    }

    /// Renders row `row` of `column` as text (nil when null), to compare
    /// values of any type with the reference.
    static func cell(_ column: Column, _ row: Int) -> String? {
        if column.nullRows.contains(UInt32(row)) { return nil }
        switch column.type {
        case .int64: return String(column.int64s[row])
        case .float32: return String(column.float32s[row])
        case .float64: return String(column.float64s[row])
        case .string: return column.strings[row]
        default: return "?"
        }
    }

    /// Pushes random offline rows to the three views, returning what the
    /// reference must know: every row under its storage key (a later push of
    /// the same (entity, event, created) replaces the earlier one).
    func pushRandom(_ rng: inout SplitMix, users: Int, merchants: [String], rowsPerView: Int) throws -> [String: [Stored]] {
        var stored: [String: [String: Stored]] = [:]
        func remember(_ view: String, _ row: Stored) {
            stored[view, default: [:]]["\(row.key)|\(row.event)|\(row.created)"] = row
        }
        for _ in 0..<3 {
            // Several pushes so that ties and overwrites cross batches.
            var ids: [Int64] = [], counts: [Int64] = [], amounts: [Double] = [], events: [Int64] = [], created: [Int64] = []
            var countNulls: [UInt32] = [], amountNulls: [UInt32] = []
            var mids: [String] = [], tags: [String] = [], mEvents: [Int64] = [], mCreated: [Int64] = []
            var pUsers: [Int64] = [], pMerchants: [String] = [], scores: [Float] = [], pEvents: [Int64] = [], pCreated: [Int64] = []
            for i in 0..<rowsPerView {
                let id = Int64.random(in: 0..<Int64(users), using: &rng)
                // Few distinct event times, so ties on event time are common.
                let event = Int64.random(in: 0..<40, using: &rng) * Self.second
                let create = Int64.random(in: 0..<4, using: &rng)
                let count = Int64.random(in: -1000...1000, using: &rng)
                let amount = Double(Int.random(in: 0..<10_000, using: &rng)) / 8
                let nullCount = Int.random(in: 0..<10, using: &rng) == 0
                let nullAmount = Int.random(in: 0..<10, using: &rng) == 0
                ids.append(id); counts.append(count); amounts.append(amount); events.append(event); created.append(create)
                if nullCount { countNulls.append(UInt32(i)) }
                if nullAmount { amountNulls.append(UInt32(i)) }
                remember("user_stats", Stored(key: [String(id)], event: event, created: create,
                                              values: [nullCount ? nil : String(count), nullAmount ? nil : String(amount)]))

                let m = merchants[Int.random(in: 0..<merchants.count, using: &rng)]
                let tag = "t\(Int.random(in: 0..<100, using: &rng))"
                let mEvent = Int64.random(in: 0..<40, using: &rng) * Self.second + Int64.random(in: 0..<2, using: &rng)
                let mCreate = Int64.random(in: 0..<3, using: &rng)
                mids.append(m); tags.append(tag); mEvents.append(mEvent); mCreated.append(mCreate)
                remember("merchant_tags", Stored(key: [m], event: mEvent, created: mCreate, values: [tag]))

                let pu = Int64.random(in: 0..<Int64(users), using: &rng)
                let pm = merchants[Int.random(in: 0..<merchants.count, using: &rng)]
                let score = Float(Int.random(in: 0..<1000, using: &rng)) / 4
                let pEvent = Int64.random(in: 0..<40, using: &rng) * Self.second
                let pCreate = Int64.random(in: 0..<3, using: &rng)
                pUsers.append(pu); pMerchants.append(pm); scores.append(score); pEvents.append(pEvent); pCreated.append(pCreate)
                remember("pair", Stored(key: [String(pu), pm], event: pEvent, created: pCreate, values: [String(score)]))
            }
            var amountColumn = Column(name: "amount", type: .float64)
            amountColumn.float64s = amounts
            amountColumn.nullRows = amountNulls
            _ = try online.push(view: "user_stats", columns: [Self.ints("user_id", ids), Self.ints("count", counts, nulls: countNulls), amountColumn],
                                eventTimes: events, createdTimes: created, target: .offline)
            _ = try online.push(view: "merchant_tags", columns: [Self.strings("merchant_id", mids), Self.strings("tag", tags)],
                                eventTimes: mEvents, createdTimes: mCreated, target: .offline)
            var scoreColumn = Column(name: "score", type: .float32)
            scoreColumn.float32s = scores
            _ = try online.push(view: "pair", columns: [Self.ints("user_id", pUsers), Self.strings("merchant_id", pMerchants), scoreColumn],
                                eventTimes: pEvents, createdTimes: pCreated, target: .offline)
        }
        return stored.mapValues { Array($0.values) }
    }

    /// The point-in-time rule, one row at a time, the slow obvious way.
    static func reference(_ rows: [Stored], key: [String], time: Int64, ttlSeconds: Int64) -> Stored? {
        var best: Stored?
        for row in rows where row.key == key && row.event <= time && (ttlSeconds == 0 || row.event >= time - ttlSeconds * second) {
            if let b = best, (b.event, b.created) >= (row.event, row.created) { continue }
            best = row
        }
        return best
    }

    func testMatchesBruteForceOnRandomData() throws {
        for seed in UInt64(1)...6 {
            let dir = NSTemporaryDirectory() + "plinth-offline-rand-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (env, _, online, offline) = try Self.open(dir)
            defer { env.close() }
            self.online = online
            self.offline = offline

            var rng = SplitMix(state: seed)
            let users = 5 + Int(seed) * 3
            // "" and a string holding a zero byte exercise the key escaping;
            // "m9" is never pushed (a missing entity).
            let merchants = ["", "m1", "m2", "m1\u{0}x", "a-much-longer-merchant-name"]
            let stored = try pushRandom(&rng, users: users, merchants: merchants, rowsPerView: 60 + Int(seed) * 40)

            // The spine: known and unknown entities, times on and around
            // stored event times and TTL edges, and duplicate rows.
            var ids: [Int64] = [], mids: [String] = [], times: [Int64] = [], extra: [Int64] = []
            let spineRows = 300
            for i in 0..<spineRows {
                if i > 0 && Int.random(in: 0..<10, using: &rng) == 0 {
                    let j = Int.random(in: 0..<i, using: &rng)
                    ids.append(ids[j]); mids.append(mids[j]); times.append(times[j]); extra.append(Int64(i))
                    continue
                }
                ids.append(Int64.random(in: -1...Int64(users), using: &rng))
                mids.append((merchants + ["m9"])[Int.random(in: 0...merchants.count, using: &rng)])
                let base = Int64.random(in: -2..<60, using: &rng) * Self.second
                let edge = [0, 1, -1, 10 * Self.second, 10 * Self.second + 1, 25 * Self.second, 25 * Self.second + 1]
                times.append(base + edge[Int.random(in: 0..<edge.count, using: &rng)])
                extra.append(Int64(i))
            }
            let request = HistoricalRequest(features: ["user_stats:count", "user_stats:amount", "merchant_tags:tag", "pair:score"],
                                            spine: [Self.ints("user_id", ids), Self.strings("merchant_id", mids), Self.ints("row", extra)],
                                            eventTimes: times)
            let (columns, _) = try offline.join(request)
            XCTAssertEqual(columns.map(\.name), ["user_id", "merchant_id", "row", "count", "amount", "tag", "score"])
            XCTAssertEqual(columns[2].int64s, extra, "extra spine columns pass through in order")
            var checked = 0, nulls = 0
            for row in 0..<spineRows {
                let u = Self.reference(stored["user_stats"] ?? [], key: [String(ids[row])], time: times[row], ttlSeconds: 10)
                let m = Self.reference(stored["merchant_tags"] ?? [], key: [mids[row]], time: times[row], ttlSeconds: 0)
                let p = Self.reference(stored["pair"] ?? [], key: [String(ids[row]), mids[row]], time: times[row], ttlSeconds: 25)
                let expected: [String?] = [u?.values[0], u?.values[1], m?.values[0], p?.values[0]]
                for (i, value) in expected.enumerated() {
                    XCTAssertEqual(Self.cell(columns[3 + i], row), value,
                                   "seed \(seed) row \(row) \(columns[3 + i].name) user \(ids[row]) merchant \(mids[row]) t \(times[row])")
                    checked += 1
                    if value == nil { nulls += 1 }
                }
            }
            // The data must exercise both outcomes, or the test proves little.
            XCTAssertGreaterThan(nulls, checked / 20, "seed \(seed)")
            XCTAssertLessThan(nulls, checked * 3 / 4, "seed \(seed)")
        }
    }

    func testTiesGoToTheLatestCreatedTimeAndTTLIsInclusive() throws {
        let s = Self.second
        var amount = Column(name: "amount", type: .float64)
        amount.float64s = [1, 2, 3]
        _ = try online.push(view: "user_stats", columns: [Self.ints("user_id", [7, 7, 7]), Self.ints("count", [1, 2, 3]), amount],
                            eventTimes: [100 * s, 100 * s, 100 * s], createdTimes: [5, 9, 2], target: .offline)
        let request = HistoricalRequest(features: ["user_stats:count"], spine: [Self.ints("user_id", [7, 7, 7, 7, 8])],
                                        eventTimes: [100 * s, 110 * s, 110 * s + 1, 100 * s - 1, 100 * s])
        let (columns, _) = try offline.join(request)
        XCTAssertEqual(columns[1].int64s, [2, 2, 0, 0, 0])
        XCTAssertEqual(columns[1].nullRows, [2, 3, 4])
    }

    func testServiceFullNamesAndDatasetRecord() throws {
        let request = HistoricalRequest(service: "model_v1",
                                        spine: [Self.ints("user_id", [1, 2]), Self.strings("merchant_id", ["a", "b"])],
                                        eventTimes: [10, 20], fullFeatureNames: true)
        let first = try offline.historical(request, now: 111)
        XCTAssertEqual(first.columns.map(\.name), ["user_id", "merchant_id", "user_stats__count", "pair__score", "merchant_tags__tag"])
        XCTAssertEqual(first.dataset.features, ["user_stats:count", "pair:score", "merchant_tags:tag"])
        XCTAssertEqual(first.dataset.definitionVersions, ["shop": 1])
        XCTAssertEqual(first.dataset.rows, 2)
        XCTAssertTrue(first.dataset.id.hasPrefix("ds-"))
        XCTAssertEqual(try offline.dataset(first.dataset.id), first.dataset)

        // The same retrieval is the same dataset; any input change is another.
        let again = try offline.historical(request, now: 222)
        XCTAssertEqual(again.dataset.digest, first.dataset.digest)
        XCTAssertEqual(try offline.dataset(first.dataset.id)?.createdAtMicros, 111)
        var moved = request
        moved.eventTimes = [10, 21]
        XCTAssertNotEqual(try offline.historical(moved).dataset.digest, first.dataset.digest)
        _ = try catalog.apply(DefinitionParser.parse(offlineYAML.replacingOccurrences(of: "ttl: 25s", with: "ttl: 26s")))
        XCTAssertNotEqual(try offline.historical(request).dataset.digest, first.dataset.digest, "definition versions are part of the digest")
    }

    func testTheDatasetIdFollowsTheRowsReturned() throws {
        let s = Self.second
        func push(_ user: Int64, count: Int64, at time: Int64) throws {
            var amount = Column(name: "amount", type: .float64)
            amount.float64s = [1]
            _ = try online.push(view: "user_stats", columns: [Self.ints("user_id", [user]), Self.ints("count", [count]), amount],
                                eventTimes: [time], target: .offline)
        }
        try push(1, count: 5, at: 100 * s)
        let request = HistoricalRequest(features: ["user_stats:count"], spine: [Self.ints("user_id", [1, 2])],
                                        eventTimes: [105 * s, 105 * s])
        let first = try offline.historical(request).dataset.id
        XCTAssertEqual(try offline.historical(request).dataset.id, first, "the same rows are the same dataset")

        // After every spine time, and for an entity the spine lacks: the
        // rows returned are the same, so is the id.
        try push(1, count: 6, at: 106 * s)
        try push(3, count: 1, at: 101 * s)
        XCTAssertEqual(try offline.historical(request).dataset.id, first)

        // A newer row in reach of user 1's spine time replaces its value.
        try push(1, count: 7, at: 103 * s)
        let replaced = try offline.historical(request).dataset.id
        XCTAssertNotEqual(replaced, first)
        // User 2 had no row in reach; now it has one.
        try push(2, count: 1, at: 104 * s)
        XCTAssertNotEqual(try offline.historical(request).dataset.id, replaced)
    }

    func testBadInputIsRefusedAndNothingIsRecorded() throws {
        func refuses(_ request: HistoricalRequest, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try offline.historical(request), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error) should mention \(fragment)", line: line)
            }
        }
        let spine = [Self.ints("user_id", [1, 2])]
        refuses(HistoricalRequest(features: ["user_stats:nope", "ghost:x"], spine: spine, eventTimes: [1, 2]),
                "unknown feature references: 'user_stats:nope' (view 'user_stats' has no feature 'nope'), 'ghost:x'")
        refuses(HistoricalRequest(features: ["user_stats"], spine: spine, eventTimes: [1, 2]), "not a feature reference")
        refuses(HistoricalRequest(features: ["pair:score"], spine: spine, eventTimes: [1, 2]), "needs spine column 'merchant_id'")
        refuses(HistoricalRequest(features: ["user_stats:count"], spine: spine, eventTimes: [1]), "has 2 rows but there are 1")
        refuses(HistoricalRequest(features: ["user_stats:count"], spine: [Self.ints("user_id", [1, 2], nulls: [1])], eventTimes: [1, 2]),
                "is null in row 1")
        refuses(HistoricalRequest(features: ["user_stats:count"], spine: [Self.strings("user_id", ["1", "2"])], eventTimes: [1, 2]),
                "is string but the join key of 'user_stats' is int64")
        refuses(HistoricalRequest(features: ["user_stats:count"], spine: spine + [Self.ints("count", [0, 0])], eventTimes: [1, 2]),
                "has the name of a spine column")
        refuses(HistoricalRequest(features: ["user_stats:count"], service: "model_v1", spine: spine, eventTimes: [1, 2]), "not both")
        refuses(HistoricalRequest(service: "nope", spine: spine, eventTimes: [1, 2]), "unknown feature service 'nope'")
        var count = 0
        try env.read { txn in try txn.scan(offline.datasets, from: []) { _, _ in count += 1; return true } }
        XCTAssertEqual(count, 0)
    }

    func testRowsWrittenBeforeASchemaChangeStillJoin() throws {
        var amount = Column(name: "amount", type: .float64)
        amount.float64s = [4.5]
        _ = try online.push(view: "user_stats", columns: [Self.ints("user_id", [3]), Self.ints("count", [9]), amount],
                            eventTimes: [Self.second], target: .offline)
        _ = try catalog.apply(DefinitionParser.parse(offlineYAML.replacingOccurrences(
            of: "      - {name: amount, type: float64}", with: "      - {name: amount, type: float64}\n      - {name: fresh, type: bool}")))
        let (columns, _) = try offline.join(HistoricalRequest(features: ["user_stats:count", "user_stats:fresh"],
                                                              spine: [Self.ints("user_id", [3])], eventTimes: [2 * Self.second]))
        XCTAssertEqual(columns[1].int64s, [9])
        XCTAssertEqual(columns[2].nullRows, [0], "a feature added later is null in older rows")
    }

}
