// Materialisation: the latest row per entity in a range reaches the online
// face (checked against a brute-force reference), newer online values win,
// a second run writes nothing, an interrupted run resumes where it stopped,
// and the incremental form starts at the watermark.
import Foundation
import XCTest
@testable import PlinthFeatures
@testable import PlinthStorage

final class MaterializerTests: OfflineTestCase {
    let s: Int64 = 1_000_000

    func pushCounts(_ ids: [Int64], _ counts: [Int64], events: [Int64], created: [Int64] = [], target: PushTarget = .offline) throws {
        var amount = Column(name: "amount", type: .float64)
        amount.float64s = Array(repeating: 1, count: ids.count)
        _ = try online.push(view: "user_stats", columns: [OfflineStoreTests.ints("user_id", ids), OfflineStoreTests.ints("count", counts), amount],
                            eventTimes: events, createdTimes: created, target: target)
    }

    /// Online count per user (nil when the user has no online row).
    func onlineCounts(_ ids: [Int64]) throws -> [Int64?] {
        let results = try online.read(features: ["user_stats:count"], service: nil, entities: [OfflineStoreTests.ints("user_id", ids)],
                                      fullFeatureNames: false, now: 0)
        return ids.indices.map { results[0].statuses[$0] == .present ? results[0].values.int64s[$0] : nil }
    }

    func testCopiesTheLatestRowInRangeLikeTheReference() throws {
        var rng = SplitMix(state: 42)
        var rows: [(id: Int64, event: Int64, created: Int64, count: Int64)] = []
        for _ in 0..<400 {
            rows.append((Int64.random(in: 0..<50, using: &rng), Int64.random(in: 0..<30, using: &rng) * s,
                         Int64.random(in: 0..<3, using: &rng), Int64.random(in: 0..<1_000_000, using: &rng)))
        }
        // Identical storage keys: the later push replaces the earlier row.
        var byKey: [String: (id: Int64, event: Int64, created: Int64, count: Int64)] = [:]
        for r in rows { byKey["\(r.id)|\(r.event)|\(r.created)"] = r }
        try pushCounts(rows.map(\.id), rows.map(\.count), events: rows.map(\.event), created: rows.map(\.created))

        var progressCalls = 0
        let results = try offline.materialize(start: 10 * s, end: 20 * s, views: ["user_stats"], chunkEntities: 7) { view, _ in
            XCTAssertEqual(view, "user_stats")
            progressCalls += 1
        }
        XCTAssertGreaterThan(progressCalls, 5, "chunks of 7 entities commit separately")
        let ids = Array(Int64(0)..<50)
        let expected: [Int64?] = ids.map { id in
            byKey.values.filter { $0.id == id && $0.event >= 10 * s && $0.event <= 20 * s }
                .max { ($0.event, $0.created) < ($1.event, $1.created) }?.count
        }
        XCTAssertEqual(try onlineCounts(ids), expected)
        XCTAssertEqual(results.first?.entities, expected.compactMap { $0 }.count)
        XCTAssertEqual(results.first?.onlineRowsWritten, expected.compactMap { $0 }.count)
        XCTAssertEqual(try offline.watermark(view: "user_stats"), 20 * s)

        // Again: nothing new to write.
        let again = try offline.materialize(start: 10 * s, end: 20 * s, views: ["user_stats"])
        XCTAssertEqual(again.first?.onlineRowsWritten, 0)
        XCTAssertEqual(again.first?.onlineRowsStale, expected.compactMap { $0 }.count)
        XCTAssertEqual(try onlineCounts(ids), expected)
    }

    func testANewerOnlineValueIsKept() throws {
        try pushCounts([1], [100], events: [50 * s], target: .online)
        try pushCounts([1, 2], [5, 6], events: [10 * s, 10 * s])
        let result = try offline.materialize(start: 0, end: 60 * s, views: ["user_stats"])
        XCTAssertEqual(result.first?.onlineRowsStale, 1)
        XCTAssertEqual(result.first?.onlineRowsWritten, 1)
        XCTAssertEqual(try onlineCounts([1, 2]), [100, 6])
    }

    func testAnInterruptedRunResumesAfterItsLastChunk() throws {
        struct Stop: Error {}
        let ids = Array(Int64(0)..<30)
        try pushCounts(ids, ids.map { $0 * 10 }, events: ids.map { _ in 5 * s })
        var calls = 0
        XCTAssertThrowsError(try offline.materialize(start: 0, end: 10 * s, views: ["user_stats"], chunkEntities: 4) { _, _ in
            calls += 1
            if calls == 2 { throw Stop() }
        })
        let done = try onlineCounts(ids).compactMap { $0 }.count
        XCTAssertEqual(done, 8, "two chunks of four entities were committed before the stop")
        XCTAssertNil(try offline.watermark(view: "user_stats"), "an interrupted run sets no watermark")

        let resumed = try offline.materialize(start: 0, end: 10 * s, views: ["user_stats"], chunkEntities: 4)
        XCTAssertEqual(resumed.first?.resumed, true)
        XCTAssertEqual(resumed.first?.entities, 22, "only the entities after the last committed chunk are read again")
        XCTAssertEqual(try onlineCounts(ids), ids.map { $0 * 10 })

        // A different range does not resume.
        let other = try offline.materialize(start: 0, end: 11 * s, views: ["user_stats"], chunkEntities: 4)
        XCTAssertEqual(other.first?.resumed, false)
    }

    func testIncrementalStartsAtTheWatermark() throws {
        // user_stats has a 10 s TTL: the first run starts at end - 10 s.
        try pushCounts([1, 2, 3], [1, 2, 3], events: [5 * s, 15 * s, 25 * s])
        let first = try offline.materialize(start: 0, end: 20 * s, incremental: true, views: ["user_stats"])
        XCTAssertEqual(first.first?.start, 10 * s)
        XCTAssertEqual(try onlineCounts([1, 2, 3]), [nil, 2, nil])
        let second = try offline.materialize(start: 0, end: 30 * s, incremental: true, views: ["user_stats"])
        XCTAssertEqual(second.first?.start, 20 * s)
        XCTAssertEqual(try onlineCounts([1, 2, 3]), [nil, 2, 3])
        // merchant_tags has no TTL: its first incremental run starts at the beginning of time.
        let tags = try offline.materialize(start: 0, end: 30 * s, incremental: true, views: ["merchant_tags"])
        XCTAssertEqual(tags.first?.start, Int64.min)
    }

    func testBadRangesAndUnknownViews() {
        XCTAssertThrowsError(try offline.materialize(start: 2, end: 1)) { XCTAssertTrue("\($0)".contains("after the end")) }
        XCTAssertThrowsError(try offline.materialize(start: 0, end: 1, views: ["nope"])) { XCTAssertTrue("\($0)".contains("nope")) }
    }
}
