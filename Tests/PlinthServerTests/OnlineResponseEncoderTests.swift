// The direct response encoder must say exactly what the domain's Column
// path says: same values, statuses, times and null rows, for every type.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthStorage
import PlinthWire
import XCTest
@testable import PlinthServer

final class OnlineResponseEncoderTests: XCTestCase {
    func testDirectEncodingMatchesTheColumnPath() throws {
        try withStore("""
        project: enc
        entities:
          - {name: user, join_key: user_id, type: int64}
          - {name: shop, join_key: shop_id, type: string}
        feature_views:
          - name: everything
            entities: [user]
            ttl: 1h
            features:
              - {name: i, type: int64}
              - {name: f, type: float32}
              - {name: d, type: float64}
              - {name: b, type: bool}
              - {name: s, type: string}
              - {name: y, type: bytes}
              - {name: v, type: "float32[3]"}
          - name: shops
            entities: [shop]
            features:
              - {name: rating, type: float64}
        """) { store in
            let now = currentMicros()
            var columns: [Column] = []
            func col(_ name: String, _ type: FeatureType, _ fill: (inout Column) -> Void) {
                var c = Column(name: name, type: type); fill(&c); columns.append(c)
            }
            col("user_id", .int64) { $0.int64s = [1, 2, 3, -4] }
            col("i", .int64) { $0.int64s = [-7, 0, 1 << 40, 5]; $0.nullRows = [1] }
            col("f", .float32) { $0.float32s = [1.5, -0.25, 3, 0] }
            col("d", .float64) { $0.float64s = [.pi, 2, -1e300, 0] }
            col("b", .bool) { $0.bools = [true, false, true, true] }
            col("s", .string) { $0.strings = ["héllo", "", "x", "late"] }
            col("y", .bytes) { $0.bytes = [Data([0, 1, 2]), Data(), Data([255]), Data([9])] }
            col("v", .float32Vector(length: 3)) { $0.float32s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]; $0.nullRows = [2] }
            // Row 3 is two hours old: outside the one-hour TTL.
            _ = try store.push(view: "everything", columns: columns, eventTimes: [now, now - 5, now, now - 7_200_000_000])
            var shop = Column(name: "shop_id", type: .string); shop.strings = ["a"]
            var rating = Column(name: "rating", type: .float64); rating.float64s = [4.5]
            _ = try store.push(view: "shops", columns: [shop, rating], eventTimes: [now])

            var users = Column(name: "user_id", type: .int64); users.int64s = [1, 2, 3, -4, 99]
            var shops = Column(name: "shop_id", type: .string); shops.strings = ["a", "b", "a", "a", "zz"]
            try check(store, users: users, shops: shops, now: now, spotCheck: true)
            // Hundreds of rows: lengths need multi-byte varints.
            users.int64s = (0..<700).map { Int64($0 % 6) - 1 }
            shops.strings = (0..<700).map { $0 % 3 == 0 ? "a" : "nope-\($0)" }
            try check(store, users: users, shops: shops, now: now, spotCheck: false)
        }
    }

    func testFastPathsMatchTheGeneralPath() throws {
        try withStore("""
        project: tpl
        entities:
          - {name: user, join_key: user_id, type: int64}
        feature_views:
          - name: a
            entities: [user]
            ttl: 1h
            features:
              - {name: f, type: float32}
              - {name: d, type: float64}
              - {name: b, type: bool}
              - {name: v, type: "float32[3]"}
          - name: z
            entities: [user]
            features:
              - {name: g, type: float32}
        """) { store in
            let now = currentMicros()
            var ids = Column(name: "user_id", type: .int64); ids.int64s = [1, 2, 3, 4]
            var f = Column(name: "f", type: .float32); f.float32s = [1.5, 2.5, 3.5, 4.5]
            var d = Column(name: "d", type: .float64); d.float64s = [.pi, 2, 3, 4]; d.nullRows = [1]
            var b = Column(name: "b", type: .bool); b.bools = [true, false, true, false]
            var v = Column(name: "v", type: .float32Vector(length: 3)); v.float32s = (0..<12).map(Float.init)
            // Row 3 is two hours old: outside the one-hour TTL.
            _ = try store.push(view: "a", columns: [ids, f, d, b, v], eventTimes: [now, now - 1, 5, now - 7_200_000_000])
            var g = Column(name: "g", type: .float32); g.float32s = [9, 8, 7, 6]
            _ = try store.push(view: "z", columns: [ids, g], eventTimes: [now - 3, now, 1 << 20, now])
            let plans = ConnectionPlanCache()
            let plan = try store.plan(features: ["a:f", "a:d", "z:g", "a:b", "a:v"], service: nil, fullFeatureNames: false)
            // 1: plain; 2: a null; 3: times of other widths; 4: expired; 99: not found.
            // Each alone, then several at once (the column-by-column path when
            // no row is mixed), including hundreds (multi-byte lengths).
            let batches: [[Int64]] = [[1], [2], [3], [4], [99], [1], [3], [1, 3, 4, 99], [1, 2, 99],
                                      (0..<300).map { Int64($0 % 6) }, (0..<300).map { [1, 3, 4, 99][$0 % 4] }]
            for ids in batches {
                var key = Column(name: "user_id", type: .int64); key.int64s = ids
                var full: PBGetOnlineFeaturesResponse?
                // The same batch with each view's times once, then in every column;
                // alternating, so the connection's template changes each time.
                for compact in [true, false] {
                    let (general, fast) = try store.lookup(plan, entities: [key], now: now) { rows in
                        var general = ByteBuffer(), fast = ByteBuffer()
                        OnlineResponseEncoder.encodeResolved(rows, compactTimes: compact, into: &general)
                        OnlineResponseEncoder.encode(rows, templates: plans, compactTimes: compact, into: &fast)
                        return (general, fast)
                    }
                    let a = try PBGetOnlineFeaturesResponse(serializedBytes: Array(general.readableBytesView))
                    let b = try PBGetOnlineFeaturesResponse(serializedBytes: Array(fast.readableBytesView))
                    XCTAssertEqual(a, b, "entities \(ids.prefix(8)), compact \(compact)")
                    // The fast paths write what the general one does, byte for byte.
                    XCTAssertEqual(Array(general.readableBytesView), Array(fast.readableBytesView), "entities \(ids.prefix(8))")
                    XCTAssertEqual(a.features.count, 5)
                    XCTAssertEqual(a.features.first?.statuses.count, ids.count)
                    if compact {
                        // Views a (outputs 1, 2, 4, 5) and z (output 3): a's later
                        // columns point at column 1, z's own column has its times.
                        XCTAssertEqual(a.features.map(\.eventTimesFrom), [0, 1, 0, 1, 1])
                        XCTAssertEqual(a.features.map(\.eventTimeUs.count), [ids.count, 0, ids.count, 0, 0])
                        full = a
                    } else if let compacted = full {
                        // Expanded, the compact answer is the full one.
                        XCTAssertEqual(Self.expandedTimes(compacted), a.features.map(\.eventTimeUs))
                        var stripped = a, other = compacted
                        for i in stripped.features.indices { stripped.features[i].eventTimeUs = []; other.features[i].eventTimeUs = [] }
                        for i in other.features.indices { other.features[i].eventTimesFrom = 0 }
                        XCTAssertEqual(stripped, other, "entities \(ids.prefix(8))")
                        let compactBytes: [UInt8] = try compacted.serializedBytes(), fullBytes: [UInt8] = try a.serializedBytes()
                        XCTAssertLessThan(compactBytes.count, fullBytes.count)
                    }
                }
            }
            XCTAssertNotNil(plans.template(for: plan, timeWidth: 8, compactTimes: false))
            XCTAssertNotNil(plans.template(for: plan, timeWidth: 8, compactTimes: true))
        }
    }

    /// Every column's event times, those of `event_times_from` columns
    /// copied from the column they point at (as a client expands them).
    static func expandedTimes(_ response: PBGetOnlineFeaturesResponse) -> [[Int64]] {
        response.features.map { column in
            let from = Int(column.eventTimesFrom)
            return from > 0 ? response.features[from - 1].eventTimeUs : column.eventTimeUs
        }
    }

    func withStore(_ yaml: String, _ body: (OnlineStore) throws -> Void) throws { try withTestStore(yaml, body) }

    func check(_ store: OnlineStore, users: Column, shops: Column, now: Int64, spotCheck: Bool) throws {
        let refs = ["everything:i", "everything:f", "everything:d", "everything:b", "everything:s",
                    "everything:y", "everything:v", "shops:rating"]
        for (full, compact) in [(false, false), (true, false), (false, true)] {
            let expected = try store.read(features: refs, service: nil, entities: [users, shops], fullFeatureNames: full, now: now)
            let plan = try store.plan(features: refs, service: nil, fullFeatureNames: full)
            let buffer = try store.lookup(plan, entities: [users, shops], now: now) { rows in
                var out = ByteBuffer()
                OnlineResponseEncoder.encode(rows, compactTimes: compact, into: &out)
                return out
            }
            let decoded = try PBGetOnlineFeaturesResponse(serializedBytes: Array(buffer.readableBytesView))
            XCTAssertEqual(decoded.features.count, expected.count)
            // Compact: the view "everything" (columns 1-7) sends its times once.
            XCTAssertEqual(decoded.features.map(\.eventTimesFrom), compact ? [0, 1, 1, 1, 1, 1, 1, 0] : Array(repeating: 0, count: 8))
            for (times, want) in zip(Self.expandedTimes(decoded), expected) {
                XCTAssertEqual(times, want.eventTimes, want.values.name)
            }
            for (got, want) in zip(decoded.features, expected) {
                XCTAssertEqual(got.values.name, want.values.name)
                XCTAssertEqual(got.values.nullRows, want.values.nullRows, want.values.name)
                XCTAssertEqual(got.statuses.map { UInt8($0.rawValue) }, want.statuses.map(\.rawValue), want.values.name)
                XCTAssertEqual(got.values.int64Values, want.values.int64s)
                XCTAssertEqual(got.values.float32Values, want.values.float32s)
                XCTAssertEqual(got.values.float64Values, want.values.float64s)
                XCTAssertEqual(got.values.boolValues, want.values.bools)
                XCTAssertEqual(got.values.stringValues, want.values.strings)
                XCTAssertEqual(got.values.bytesValues, want.values.bytes)
            }
            guard spotCheck else { continue }
            // Spot-check the semantics themselves, not only agreement.
            XCTAssertEqual(expected[0].statuses, [.present, .nullValue, .present, .outsideMaxAge, .notFound])
            XCTAssertEqual(expected[6].statuses, [.present, .present, .nullValue, .outsideMaxAge, .notFound])
            XCTAssertEqual(expected[7].statuses, [.present, .notFound, .present, .present, .notFound])
            XCTAssertEqual(expected[4].values.strings[0], "héllo")
        }
    }
}

/// Runs `body` with an online store in a fresh temporary environment that
/// has the definitions `yaml` applied.
func withTestStore(_ yaml: String, _ body: (OnlineStore) throws -> Void) throws {
    let path = NSTemporaryDirectory() + "plinth-encoder-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: path) }
    let env = try Environment(path: path)
    defer { env.close() }
    let catalog = try Catalog(environment: env)
    let store = try OnlineStore(environment: env, catalog: catalog)
    _ = try catalog.apply(DefinitionParser.parse(yaml))
    try body(store)
}
