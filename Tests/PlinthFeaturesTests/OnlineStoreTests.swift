// The online face through the domain API: apply, push, read; statuses,
// TTL, stale pushes, schema changes and bad input.
import Foundation
import XCTest
@testable import PlinthFeatures
@testable import PlinthStorage

final class OnlineStoreTests: XCTestCase {
    var path = ""
    var env: Environment!
    var catalog: Catalog!
    var store: OnlineStore!

    override func setUpWithError() throws {
        path = NSTemporaryDirectory() + "plinth-features-\(UUID().uuidString)"
        var options = Environment.Options()
        options.mapSize = 1 << 26
        env = try Environment(path: path, options: options)
        catalog = try Catalog(environment: env)
        store = try OnlineStore(environment: env, catalog: catalog)
        _ = try catalog.apply(DefinitionParser.parse(exampleYAML))
    }

    override func tearDown() {
        env?.close()
        try? FileManager.default.removeItem(atPath: path)
    }

    func column(_ name: String, _ type: FeatureType, ints: [Int64] = [], floats: [Float] = [], doubles: [Double] = [],
                strings: [String] = [], nulls: [UInt32] = []) -> Column {
        var c = Column(name: name, type: type)
        c.int64s = ints; c.float32s = floats; c.float64s = doubles; c.strings = strings; c.nullRows = nulls
        return c
    }

    func pushUsers(_ ids: [Int64], counts: [Int64], event: Int64, created: [Int64] = [], nullCounts: [UInt32] = []) throws -> PushResult {
        let n = ids.count
        return try store.push(view: "user_stats", columns: [
            column("user_id", .int64, ints: ids),
            column("txn_count_7d", .int64, ints: counts, nulls: nullCounts),
            column("avg_amount_7d", .float64, doubles: Array(repeating: 12.5, count: n)),
            column("country", .string, strings: Array(repeating: "DE", count: n)),
            column("embedding", .float32Vector(length: 8), floats: (0..<(8 * n)).map { Float($0) }),
        ], eventTimes: Array(repeating: event, count: n), createdTimes: created)
    }

    func read(_ refs: [String], _ ids: [Int64], now: Int64 = currentMicros(), full: Bool = false) throws -> [FeatureResult] {
        try store.read(features: refs, service: nil, entities: [column("user_id", .int64, ints: ids)], fullFeatureNames: full, now: now)
    }

    /// A view `device_stats` (one int64 feature, `seen`) keyed by an owner
    /// and a device, with the join keys named as given.
    func applyDevices(deviceKey: String, ownerKey: String) throws {
        _ = try catalog.apply(DefinitionParser.parse("""
        project: devices
        entities:
          - {name: device, join_key: \(deviceKey), type: string}
          - {name: owner, join_key: \(ownerKey), type: int64}
        feature_views:
          - name: device_stats
            entities: [owner, device]
            ttl: 7d
            features:
              - {name: seen, type: int64}
        """))
    }

    func testApplyIsIdempotentAndVersioned() throws {
        let again = try catalog.apply(DefinitionParser.parse(exampleYAML))
        XCTAssertFalse(again.changed)
        XCTAssertEqual(again.version, 1)
        let changed = try catalog.apply(DefinitionParser.parse(exampleYAML.replacingOccurrences(of: "ttl: 7d", with: "ttl: 1d")))
        XCTAssertTrue(changed.changed)
        XCTAssertEqual(changed.version, 2)
        XCTAssertEqual(changed.updated, ["feature_view:user_stats"])
        XCTAssertEqual(catalog.snapshot.views["user_stats"]?.definition.ttlSeconds, 86_400)
        // Survives a reopen.
        let reopened = try Catalog(environment: env)
        XCTAssertEqual(reopened.snapshot.projects["fraud"]?.version, 2)
    }

    func testApplyRefusesKeyChangesAndNamesOwnedByAnotherProject() throws {
        let rekeyed = exampleYAML.replacingOccurrences(of: "join_key: user_id, type: int64", with: "join_key: user_id, type: string")
        XCTAssertThrowsError(try catalog.apply(DefinitionParser.parse(rekeyed))) { error in
            XCTAssertTrue("\(error)".contains("changes its keys"), "\(error)")
        }
        let other = exampleYAML.replacingOccurrences(of: "project: fraud", with: "project: other")
        XCTAssertThrowsError(try catalog.apply(DefinitionParser.parse(other))) { error in
            XCTAssertTrue("\(error)".contains("belongs to project 'fraud'"), "\(error)")
        }
    }

    func testPushThenReadReturnsValuesStatusesAndTimes() throws {
        let t = currentMicros() - 1_000_000
        let pushed = try pushUsers([1, 2], counts: [10, 0], event: t, nullCounts: [1])
        XCTAssertEqual(pushed, PushResult(rows: 2, onlineRowsWritten: 2, onlineRowsStale: 0, offlineRowsWritten: 2))
        let results = try read(["user_stats:txn_count_7d", "user_stats:country", "user_stats:embedding"], [1, 2, 3], full: true)
        XCTAssertEqual(results.map(\.values.name), ["user_stats__txn_count_7d", "user_stats__country", "user_stats__embedding"])
        XCTAssertEqual(results[0].statuses, [.present, .nullValue, .notFound])
        XCTAssertEqual(results[0].values.int64s[0], 10)
        XCTAssertEqual(results[0].values.nullRows, [1, 2])
        XCTAssertEqual(results[0].eventTimes, [t, t, 0])
        XCTAssertEqual(results[1].values.strings[0], "DE")
        XCTAssertEqual(Array(results[2].values.float32s[0..<8]), (0..<8).map(Float.init))
        XCTAssertEqual(Array(results[2].values.float32s[8..<16]), (8..<16).map(Float.init))
    }

    func testOlderEventPushedLaterNeverReplacesNewerValue() throws {
        let t = currentMicros()
        _ = try pushUsers([1], counts: [5], event: t, created: [t])
        let stale = try pushUsers([1], counts: [99], event: t - 10_000_000)
        XCTAssertEqual(stale.onlineRowsStale, 1)
        XCTAssertEqual(stale.offlineRowsWritten, 1, "history still keeps the older row")
        XCTAssertEqual(try read(["user_stats:txn_count_7d"], [1])[0].values.int64s, [5])
        // Equal event time: the later created time wins.
        _ = try pushUsers([1], counts: [6], event: t, created: [t + 1])
        _ = try pushUsers([1], counts: [7], event: t, created: [t - 1])
        XCTAssertEqual(try read(["user_stats:txn_count_7d"], [1])[0].values.int64s, [6])
        // And within one push, the newest row of an entity wins whatever its position.
        _ = try pushUsers([2, 2, 2], counts: [1, 3, 2], event: t, created: [t, t + 2, t + 1])
        XCTAssertEqual(try read(["user_stats:txn_count_7d"], [2])[0].values.int64s, [3])
    }

    func testValuesOlderThanTheTTLAreOutsideMaxAge() throws {
        let now = currentMicros()
        _ = try pushUsers([1], counts: [5], event: now - 8 * 86_400 * 1_000_000)
        let result = try read(["user_stats:txn_count_7d"], [1], now: now)[0]
        XCTAssertEqual(result.statuses, [.outsideMaxAge])
        XCTAssertEqual(result.values.nullRows, [0])
    }

    func testServiceReadAndRequestErrors() throws {
        _ = try pushUsers([1], counts: [5], event: currentMicros())
        let viaService = try store.read(features: [], service: "fraud_v1", entities: [column("user_id", .int64, ints: [1])],
                                        fullFeatureNames: false)
        XCTAssertEqual(viaService.map(\.values.name), ["txn_count_7d", "avg_amount_7d"])
        func refused(_ body: () throws -> Void, _ fragment: String) {
            XCTAssertThrowsError(try body()) { XCTAssertTrue("\($0)".contains(fragment), "\($0) lacks \(fragment)") }
        }
        refused({ _ = try self.read(["nope:x"], [1]) }, "unknown feature view 'nope'")
        refused({ _ = try self.read(["user_stats:nope"], [1]) }, "has no feature 'nope'")
        refused({ _ = try self.read(["bad"], [1]) }, "not a feature reference")
        refused({ _ = try self.read(["user_stats:country", "user_stats:country"], [1]) }, "both named 'country'")
        refused({ _ = try self.read(["user_stats:country", "user_stats:country"], [1], full: true) }, "requested twice")
        refused({ _ = try self.store.read(features: [], service: "nope", entities: [self.column("user_id", .int64, ints: [1])], fullFeatureNames: false) }, "unknown feature service")
        refused({ _ = try self.store.read(features: ["user_stats:country"], service: nil, entities: [self.column("user_id", .string, strings: ["1"])], fullFeatureNames: false) }, "is string but the view's key is int64")
        refused({ _ = try self.store.read(features: ["user_stats:country"], service: nil, entities: [self.column("uid", .int64, ints: [1])], fullFeatureNames: false) }, "needs entity column 'user_id'")
    }

    func testPushRefusesMismatchedInputWithoutWritingAnything() throws {
        let t = currentMicros()
        func refused(_ columns: [Column], events: [Int64] = [t], _ fragment: String) {
            XCTAssertThrowsError(try store.push(view: "user_stats", columns: columns, eventTimes: events)) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0) lacks \(fragment)")
            }
        }
        let good: [Column] = [
            column("user_id", .int64, ints: [1]), column("txn_count_7d", .int64, ints: [1]),
            column("avg_amount_7d", .float64, doubles: [1]), column("country", .string, strings: ["x"]),
            column("embedding", .float32Vector(length: 8), floats: Array(repeating: 0, count: 8)),
        ]
        refused(Array(good.dropLast()), "missing feature column 'embedding'")
        refused(good + [column("extra", .int64, ints: [1])], "no feature or join key 'extra'")
        refused([column("user_id", .string, strings: ["1"])] + good.dropFirst(), "is string but join key")
        refused(good, events: [t, t], "has 1 rows but there are 2 event times")
        let empty = good.map { c -> Column in var e = Column(name: c.name, type: c.type); e.nullRows = []; return e }
        XCTAssertEqual(try store.push(view: "user_stats", columns: empty, eventTimes: []), PushResult())
        var badVector = good
        badVector[4] = column("embedding", .float32Vector(length: 8), floats: [1, 2, 3])
        refused(badVector, "not a multiple")
        var nullKey = good
        nullKey[0].nullRows = [0]
        refused(nullKey, "join key 'user_id' is null")
        XCTAssertThrowsError(try store.push(view: "nope", columns: good, eventTimes: [t]))
        XCTAssertEqual(try read(["user_stats:txn_count_7d"], [1])[0].statuses, [.notFound])
    }

    func testRowsWrittenBeforeASchemaChangeStillRead() throws {
        let t = currentMicros()
        _ = try pushUsers([1], counts: [5], event: t)
        // Drop avg_amount_7d, add a new feature, retype nothing else.
        let changed = exampleYAML
            .replacingOccurrences(of: "      - {name: avg_amount_7d, type: float64}\n", with: "")
            .replacingOccurrences(of: ", \"user_stats:avg_amount_7d\"", with: "")
            .replacingOccurrences(of: "      - {name: country, type: string}", with: "      - {name: country, type: string}\n      - {name: is_new, type: bool}")
        let applied = try catalog.apply(DefinitionParser.parse(changed))
        XCTAssertTrue(applied.changed)
        XCTAssertEqual(catalog.snapshot.views["user_stats"]?.meta.schemaVersion, 2)
        let results = try read(["user_stats:txn_count_7d", "user_stats:country", "user_stats:is_new"], [1])
        XCTAssertEqual(results[0].values.int64s, [5])
        XCTAssertEqual(results[1].values.strings, ["DE"])
        XCTAssertEqual(results[2].statuses, [.nullValue], "a feature the old row never had reads as null")
    }

    func testTooManyRowsIsRefused() throws {
        let small = try OnlineStore(environment: env, catalog: catalog, maxRows: 3)
        XCTAssertThrowsError(try small.read(features: ["user_stats:country"], service: nil,
                                            entities: [column("user_id", .int64, ints: [1, 2, 3, 4])], fullFeatureNames: false)) {
            guard case FeatureStoreError.tooLarge = $0 else { return XCTFail("\($0)") }
        }
    }

    func testAPrivateCopyOfAPlanReadsAsTheSharedPlanDoes() throws {
        // Two views, the second keyed by two columns, one of them with a
        // name too long to be stored inline (its copy has storage of its own).
        try applyDevices(deviceKey: "device_serial_number", ownerKey: "user_id")
        let t = currentMicros() - 1_000_000
        _ = try pushUsers([1, 2], counts: [5, 6], event: t)
        _ = try store.push(view: "device_stats", columns: [
            column("user_id", .int64, ints: [1, 2]),
            column("device_serial_number", .string, strings: ["a", "b"]),
            column("seen", .int64, ints: [10, 11]),
        ], eventTimes: [t, t])
        let shared = try store.plan(features: ["user_stats:txn_count_7d", "device_stats:seen", "user_stats:country"],
                                    service: nil, fullFeatureNames: true)
        let copy = shared.privateCopy()
        XCTAssertFalse(copy === shared)
        XCTAssertTrue(store.isCurrent(copy))
        for rows in 1...3 {
            let entities = [column("device_serial_number", .string, strings: Array(["a", "b", "zz"].prefix(rows))),
                            column("user_id", .int64, ints: Array([1, 2, 3].prefix(rows)))]
            let expected = try store.lookup(shared, entities: entities, now: t + 1) { store.results(of: $0) }
            let got = try store.lookup(copy, entities: entities, now: t + 1) { store.results(of: $0) }
            XCTAssertEqual(got.map(\.values.name), ["user_stats__txn_count_7d", "device_stats__seen", "user_stats__country"])
            XCTAssertEqual(got.map(\.values.int64s), expected.map(\.values.int64s))
            XCTAssertEqual(got.map(\.values.strings), expected.map(\.values.strings))
            XCTAssertEqual(got[1].values.int64s.prefix(min(rows, 2)), [10, 11].prefix(rows))
            XCTAssertEqual(got.map(\.statuses), expected.map(\.statuses))
            XCTAssertEqual(got.map(\.eventTimes), expected.map(\.eventTimes))
            XCTAssertEqual(got[1].statuses, Array([FieldStatus.present, .present, .notFound].prefix(rows)))
        }
        // A missing key column names the view that needs it, through either plan.
        for plan in [shared, copy] {
            XCTAssertThrowsError(try store.lookup(plan, entities: [column("user_id", .int64, ints: [1])]) { _ in () }) {
                XCTAssertTrue("\($0)".contains("feature view 'device_stats' needs entity column 'device_serial_number'"), "\($0)")
            }
        }
    }

    /// Reads of several entities go through the batched tree search
    /// (TreeSearch.swift); keys too long for its key buffer, null keys,
    /// absent keys and repeats must read exactly as reads of one entity.
    func testBatchedReadsMatchSingleReadsForEveryKindOfKey() throws {
        try applyDevices(deviceKey: "device_id", ownerKey: "owner_id")
        let long = String(repeating: "d", count: 300)
        let devices = ["a", long, "c", String(repeating: "e", count: 40)]
        let t = currentMicros() - 1_000_000
        _ = try store.push(view: "device_stats", columns: [
            column("owner_id", .int64, ints: [1, 1, 2, 3]),
            column("device_id", .string, strings: devices),
            column("seen", .int64, ints: [10, 11, 12, 13]),
        ], eventTimes: Array(repeating: t, count: 4))
        func read(_ users: [Int64], _ devices: [String], nullDevices: [UInt32], with store: OnlineStore) throws -> [FeatureResult] {
            try store.read(features: ["device_stats:seen"], service: nil,
                           entities: [column("owner_id", .int64, ints: users), column("device_id", .string, strings: devices, nulls: nullDevices)],
                           fullFeatureNames: false, now: t + 1)
        }
        let users: [Int64] = [1, 1, 2, 9, 1, 3, 1, 2]
        let asked = ["a", long, "c", "a", "", devices[3], "a", "c"]
        for round in 0..<3 {
            // Short keys only (the batch), then with the 300-byte key (the
            // one-at-a-time fallback), each with a null key in row 4.
            for rows in [[0, 2, 3, 4, 5, 6, 7], Array(0..<8)] {
                let u = rows.map { users[$0] }, d = rows.map { asked[$0] }
                let nulls = rows.firstIndex(of: 4).map { [UInt32($0)] } ?? []
                let batched = try read(u, d, nullDevices: nulls, with: store)
                // The same rows read one at a time (mdb_get).
                func cells(_ results: [FeatureResult]) -> [String] {
                    let r = results[0]
                    return r.statuses.indices.map { i in
                        "\(r.statuses[i]) \(r.eventTimes[i]) \(r.values.int64s[i]) \(r.values.nullRows.contains(UInt32(i)))"
                    }
                }
                let single = try rows.indices.flatMap { i in
                    cells(try read([u[i]], [d[i]], nullDevices: nulls.contains(UInt32(i)) ? [0] : [], with: store))
                }
                XCTAssertEqual(cells(batched), single, "round \(round)")
                let want: [FieldStatus] = rows.map { [0: .present, 1: .present, 2: .present, 5: .present, 6: .present, 7: .present][$0] ?? .notFound }
                XCTAssertEqual(batched.first?.statuses, want)
                XCTAssertEqual(batched.first?.values.int64s, rows.map { [0: 10, 1: 11, 2: 12, 5: 13, 6: 10, 7: 12][$0] ?? 0 })
            }
        }
    }
}
