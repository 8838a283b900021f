// The transform engine: one event stream replayed through the online path
// (one push per event) and the offline path (one shuffled backfill in odd
// chunks) gives byte-identical offline rows and the same latest values; the
// aggregations match a brute-force reference; expressions evaluate as
// documented; and definitions that do not type-check are refused.
import Foundation
import XCTest
@testable import PlinthFeatures
@testable import PlinthStorage

let transformYAML = """
project: pay
entities:
  - {name: user, join_key: user_id, type: int64}
feature_views:
  - name: txn
    entities: [user]
    features:
      - {name: amount, type: float64}
      - {name: country, type: string}
      - {name: local_hour, type: int64, expr: "hour(event_time, 'Europe/Berlin')"}
      - {name: big_eu, type: bool, expr: "amount > 100 and country in ('DE', 'FR')"}
      - {name: log_amount, type: float64, expr: "log(abs(amount) + 1)"}
      - {name: clipped, type: float32, expr: "clip(amount, 0, 50.5)"}
      - {name: amount_or_zero, type: float64, expr: "coalesce(amount, 0)"}
      - {name: tier, type: int64, expr: "if(amount >= 100, 2, if(amount >= 10, 1, 0))"}
      - {name: count_10m, type: int64, aggregate: {function: count, window: 10m}}
      - {name: sum_1h, type: float64, aggregate: {function: sum, of: amount, window: 1h}}
      - {name: mean_1d, type: float64, aggregate: {function: mean, of: amount, window: 1d}}
      - {name: min_7d, type: float64, aggregate: {function: min, of: amount, window: 7d}}
      - {name: max_7d, type: float64, aggregate: {function: max, of: amount, window: 7d}}
      - {name: last_country_1d, type: string, aggregate: {function: last, of: country, window: 1d}}
      - {name: clipped_sum_1h, type: float32, aggregate: {function: sum, of: clipped, window: 1h}}
      - {name: tier_max_1h, type: int64, aggregate: {function: max, of: tier, window: 1h}}
"""

final class TransformEngineTests: XCTestCase {
    struct Event {
        var user: Int64
        var time: Int64
        var created: Int64
        var amount: Double?
        var country: String
    }

    var dirs: [String] = []

    override func tearDown() {
        for dir in dirs { try? FileManager.default.removeItem(atPath: dir) }
    }

    func open() throws -> (Environment, OnlineStore, OfflineStore) {
        let dir = NSTemporaryDirectory() + "plinth-transform-\(UUID().uuidString)"
        dirs.append(dir)
        let (env, _, online, offline) = try OfflineTestCase.open(dir, yaml: transformYAML)
        return (env, online, offline)
    }

    func columns(_ events: [Event]) -> [Column] {
        var user = Column(name: "user_id", type: .int64)
        user.int64s = events.map(\.user)
        var amount = Column(name: "amount", type: .float64)
        amount.float64s = events.map { $0.amount ?? 0 }
        amount.nullRows = events.indices.filter { events[$0].amount == nil }.map(UInt32.init)
        var country = Column(name: "country", type: .string)
        country.strings = events.map(\.country)
        return [user, amount, country]
    }

    /// Every (key, value) of a table, as bytes.
    func dump(_ env: Environment, _ table: String) throws -> [[UInt8]: [UInt8]] {
        let t = try env.table(table)
        var out: [[UInt8]: [UInt8]] = [:]
        try env.read { txn in try txn.scan(t, from: []) { k, v in out[Array(k)] = Array(v); return true } }
        return out
    }

    func randomEvents(seed: UInt64) -> [Event] {
        var rng = SplitMix(state: seed)
        let minute: Int64 = 60_000_000
        var events: [Event] = []
        for i in 0..<400 {
            let amount: Double? = Int.random(in: 0..<12, using: &rng) == 0 ? nil : Double(Int.random(in: -2000..<30000, using: &rng)) / 100
            // Minutes over ~9 days, so 10m, 1h, 1d and 7d windows all bite;
            // repeated minutes give ties on event time.
            events.append(Event(user: Int64.random(in: 0..<5, using: &rng), time: 1_700_000_000_000_000 + Int64.random(in: 0..<13_000, using: &rng) * minute,
                                created: Int64(i), amount: amount, country: ["DE", "FR", "US", ""][Int.random(in: 0..<4, using: &rng)]))
        }
        return events
    }

    func testOnlinePushesAndOfflineBackfillComputeIdenticalValues() throws {
        let events = randomEvents(seed: 7)
        // Online: one push per event, in time order, as a stream would.
        let (streamEnv, stream, _) = try open()
        defer { streamEnv.close() }
        for e in events.sorted(by: { ($0.time, $0.created) < ($1.time, $1.created) }) {
            _ = try stream.push(view: "txn", columns: columns([e]), eventTimes: [e.time], createdTimes: [e.created])
        }
        // Offline: everything at once, shuffled, in chunks of 37 rows.
        let (batchEnv, _, batch) = try open()
        defer { batchEnv.close() }
        var rng = SplitMix(state: 99)
        let shuffled = events.shuffled(using: &rng)
        var reported: [Int] = []
        let result = try batch.backfill(view: "txn", columns: columns(shuffled), eventTimes: shuffled.map(\.time),
                                        createdTimes: shuffled.map(\.created), chunkRows: 37) { reported.append($0) }
        XCTAssertEqual(result.offlineRowsWritten, events.count)
        XCTAssertEqual(reported.last, events.count)

        let streamed = try dump(streamEnv, "offline")
        let backfilled = try dump(batchEnv, "offline")
        XCTAssertEqual(streamed.count, events.count)
        XCTAssertEqual(streamed, backfilled, "the online and offline paths must store byte-identical rows")

        // The online face holds each entity's latest row, which is the last
        // offline row of that entity.
        let online = try dump(streamEnv, "online")
        for (key, value) in online {
            let last = backfilled.keys.filter { $0.count == key.count + 16 && Array($0.prefix(key.count)) == key }.max { $0.lexicographicallyPrecedes($1) }
            XCTAssertEqual(last.flatMap { backfilled[$0] }, value)
        }
        XCTAssertEqual(online.count, Set(events.map(\.user)).count)
    }

    func testAggregationsMatchABruteForceReference() throws {
        let events = randomEvents(seed: 3)
        let (env, _, offline) = try open()
        defer { env.close() }
        _ = try offline.backfill(view: "txn", columns: columns(events), eventTimes: events.map(\.time), createdTimes: events.map(\.created))
        let request = HistoricalRequest(features: ["txn:count_10m", "txn:sum_1h", "txn:mean_1d", "txn:min_7d", "txn:max_7d",
                                                   "txn:last_country_1d", "txn:tier_max_1h", "txn:local_hour", "txn:big_eu", "txn:tier"],
                                        spine: [OfflineStoreTests.ints("user_id", events.map(\.user))], eventTimes: events.map(\.time))
        // A spine row at an event's own time sees that event's row only when
        // it is the latest at that time (ties go to the latest created time).
        let (joined, _) = try offline.join(request)
        let minute: Int64 = 60_000_000
        var berlin = Calendar(identifier: .gregorian)
        berlin.timeZone = TimeZone(identifier: "Europe/Berlin")!
        var checked = 0
        for (row, e) in events.enumerated() {
            let sameTime = events.filter { $0.user == e.user && $0.time == e.time }
            guard sameTime.allSatisfy({ $0.created <= e.created }) else { continue }
            // In (time, created) order: float sums depend on the order.
            func window(_ w: Int64) -> [Event] {
                events.filter { $0.user == e.user && ($0.time, $0.created) <= (e.time, e.created) && $0.time > e.time - w }
                    .sorted { ($0.time, $0.created) < ($1.time, $1.created) }
            }
            let hour = window(60 * minute).compactMap(\.amount)
            let day = window(1440 * minute)
            let week = window(7 * 1440 * minute).compactMap(\.amount)
            XCTAssertEqual(joined[1].int64s[row], Int64(window(10 * minute).count), "count_10m row \(row)")
            XCTAssertEqual(OfflineStoreTests.cell(joined[2], row), hour.isEmpty ? nil : String(hour.reduce(0, +)), "sum_1h row \(row)")
            let dayAmounts = day.compactMap(\.amount)
            XCTAssertEqual(OfflineStoreTests.cell(joined[3], row),
                           dayAmounts.isEmpty ? nil : String(dayAmounts.reduce(0, +) / Double(dayAmounts.count)), "mean_1d row \(row)")
            XCTAssertEqual(OfflineStoreTests.cell(joined[4], row), week.min().map { String($0) }, "min_7d")
            XCTAssertEqual(OfflineStoreTests.cell(joined[5], row), week.max().map { String($0) }, "max_7d")
            XCTAssertEqual(joined[6].strings[row], day.sorted { ($0.time, $0.created) < ($1.time, $1.created) }.last?.country, "last_country_1d")
            // A null condition takes the else branch: a null amount is tier 0.
            let tiers = window(60 * minute).map { e -> Int64 in
                guard let a = e.amount else { return 0 }
                return a >= 100 ? 2 : (a >= 10 ? 1 : 0)
            }
            XCTAssertEqual(OfflineStoreTests.cell(joined[7], row), tiers.max().map { String($0) }, "tier_max_1h")
            let date = Date(timeIntervalSince1970: Double(e.time) / 1e6)
            XCTAssertEqual(joined[8].int64s[row], Int64(berlin.component(.hour, from: date)), "local_hour")
            // null and false = false; null and true = null.
            let eu = ["DE", "FR"].contains(e.country)
            XCTAssertEqual(OfflineStoreTests.cell(joined[9], row) == nil ? nil : joined[9].bools[row],
                           e.amount.map { $0 > 100 && eu } ?? (eu ? nil : false), "big_eu")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 350)
        XCTAssertTrue(events.contains { $0.amount == nil }, "the data must hold nulls")
    }

    func testExpressionsEvaluateAsDocumented() throws {
        func eval(_ text: String, _ row: [Value] = [.int(7), .double(2.5), .string("DE"), .null], time: Int64 = 0) throws -> Value {
            let names: [String: (Int, ExprType)] = ["i": (0, .int), "d": (1, .double), "s": (2, .string), "n": (3, .double)]
            var evaluator = Evaluator()
            return evaluator.evaluate(try ExpressionParser.compile(text, names: names).0, row: row, eventTime: time)
        }
        XCTAssertEqual(try eval("i * 2 + 1"), .int(15))
        XCTAssertEqual(try eval("i / 2"), .double(3.5))
        XCTAssertEqual(try eval("i % 4 - -1"), .int(4))
        XCTAssertEqual(try eval("i / 0"), .null)
        XCTAssertEqual(try eval("d + n"), .null)
        XCTAssertEqual(try eval("coalesce(n, d, 1)"), .double(2.5))
        XCTAssertEqual(try eval("n > 1 and false"), .bool(false))
        XCTAssertEqual(try eval("n > 1 or true"), .bool(true))
        XCTAssertEqual(try eval("if(n > 1, 1, 2)"), .int(2))
        XCTAssertEqual(try eval("s in ('FR', 'DE')"), .bool(true))
        XCTAssertEqual(try eval("s not in ('FR', 'DE')"), .bool(false))
        XCTAssertEqual(try eval("i in (1, 7.0)"), .bool(true))
        XCTAssertEqual(try eval("s == 'DE' and not (i < 3)"), .bool(true))
        XCTAssertEqual(try eval("min(i, d, 3)"), .double(2.5))
        XCTAssertEqual(try eval("max(i, 3)"), .int(7))
        XCTAssertEqual(try eval("clip(i, 0, 5)"), .int(5))
        XCTAssertEqual(try eval("abs(-d)"), .double(2.5))
        XCTAssertEqual(try eval("exp(0) + log(1) + sqrt(16)"), .double(5))
        // 2024-03-31 00:30 UTC is 01:30 in Berlin, 2024-03-31 01:30 UTC is
        // 03:30 (the clocks went forward); a Sunday (7).
        let t: Int64 = 1_711_845_000_000_000
        XCTAssertEqual(try eval("hour(event_time, 'Europe/Berlin')", time: t), .int(1))
        XCTAssertEqual(try eval("hour(event_time, 'Europe/Berlin')", time: t + 3_600_000_000), .int(3))
        XCTAssertEqual(try eval("hour(event_time)", time: t), .int(0))
        XCTAssertEqual(try eval("day_of_week(event_time, 'UTC') * 100 + month(event_time) * 10 + day(event_time) - 3000", time: t), .int(-2239))
    }

    func testDefinitionsThatDoNotTypeCheckAreRefused() {
        func refused(_ feature: String, _ fragment: String, line: UInt = #line) {
            let yaml = """
            project: bad
            entities:
              - {name: user, join_key: user_id, type: int64}
            feature_views:
              - name: v
                entities: [user]
                features:
                  - {name: amount, type: float64}
                  - {name: country, type: string}
                  - \(feature)
            """
            XCTAssertThrowsError(try DefinitionParser.parse(yaml), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error) should mention \(fragment)", line: line)
            }
        }
        refused(#"{name: x, type: float64, expr: "amount + country"}"#, "'+' needs numbers, not float64 and string")
        refused(#"{name: x, type: float64, expr: "amount + nope"}"#, "unknown name 'nope'")
        refused(#"{name: x, type: float64, expr: "later + 1"}"#, "unknown name 'later'")
        refused(#"{name: x, type: float64, expr: "frob(amount)"}"#, "unknown function 'frob'")
        refused(#"{name: x, type: int64, expr: "amount * 2"}"#, "gives float64, which does not fit the declared type int64")
        refused(#"{name: x, type: bool, expr: "amount > 'a'"}"#, "comparison '>' mixes float64 and string")
        refused(#"{name: x, type: int64, expr: "hour(event_time, 'Mars/Olympus')"}"#, "unknown time zone 'Mars/Olympus'")
        refused(#"{name: x, type: float64, expr: "(amount + 1"}"#, "expected ')'")
        refused(#"{name: x, type: float64, expr: "clip(amount, 1)"}"#, "clip() takes 3 argument(s), not 2")
        refused(#"{name: x, type: float64, aggregate: {function: sum, of: country, window: 1h}}"#, "sum needs a numeric feature")
        refused(#"{name: x, type: float64, aggregate: {function: median, of: amount, window: 1h}}"#, "unknown aggregation 'median'")
        refused(#"{name: x, type: float64, aggregate: {function: sum, of: amount, window: 0}}"#, "not a positive duration")
        refused(#"{name: x, type: float64, aggregate: {function: sum, of: ghost, window: 1h}}"#, "unknown feature 'ghost'")
        refused(#"{name: x, type: float64, aggregate: {function: sum, window: 1h}}"#, "missing required field 'of'")
        refused(#"{name: x, type: string, aggregate: {function: count, window: 1h}}"#, "count gives int64")
    }

    func testPushingAComputedFeatureIsRefused() throws {
        let (env, store, _) = try open()
        defer { env.close() }
        var extra = Column(name: "sum_1h", type: .float64)
        extra.float64s = [1]
        let event = Event(user: 1, time: 1, created: 1, amount: 1, country: "DE")
        XCTAssertThrowsError(try store.push(view: "txn", columns: columns([event]) + [extra], eventTimes: [1])) {
            XCTAssertTrue("\($0)".contains("'sum_1h' of 'txn' is computed (aggregate)"), "\($0)")
        }
    }
}
