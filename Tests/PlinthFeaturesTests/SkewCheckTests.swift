// The skew check: sampled online reads replayed through the offline face
// agree when both faces were written together, and every kind of
// disagreement (a late-arriving row, an online-only push) is reported.
import Foundation
import XCTest
@testable import PlinthFeatures
@testable import PlinthStorage

final class SkewCheckTests: OfflineTestCase {
    func testSampledReadsAgreeUntilTheFacesDisagree() throws {
        let sampler = ReadSampler(rate: 1)
        online = try OnlineStore(environment: env, catalog: catalog, sampler: sampler)
        let s: Int64 = 1_000_000
        func push(_ ids: [Int64], _ counts: [Int64], at time: Int64, created: Int64, _ target: PushTarget) throws {
            var amount = Column(name: "amount", type: .float64)
            amount.float64s = counts.map { Double($0) / 2 }
            _ = try online.push(view: "user_stats", columns: [OfflineStoreTests.ints("user_id", ids), OfflineStoreTests.ints("count", counts), amount],
                                eventTimes: Array(repeating: time, count: ids.count), createdTimes: Array(repeating: created, count: ids.count),
                                target: target)
        }
        func read(_ id: Int64, at now: Int64) throws {
            _ = try online.read(features: [], service: "model_v1", entities: [OfflineStoreTests.ints("user_id", [id]),
                                                                             OfflineStoreTests.strings("merchant_id", ["m"])],
                                fullFeatureNames: false, now: now)
        }
        try push([1, 2], [10, 20], at: 100 * s, created: 1, .onlineAndOffline)
        try read(1, at: 105 * s)
        try read(2, at: 105 * s)
        var report = try offline.skewCheck(service: "model_v1", count: 10, sampler: sampler)
        XCTAssertEqual(report.samplesChecked, 2)
        XCTAssertEqual(report.valuesChecked, 6)
        XCTAssertEqual(report.differences, [])

        // A row for user 1 that arrives late (offline only), with an event
        // time before the sampled read: training data now differs.
        try push([1], [11], at: 103 * s, created: 2, .offline)
        // User 2 gets an online-only value, read later.
        try push([2], [21], at: 104 * s, created: 2, .online)
        try read(2, at: 106 * s)
        report = try offline.skewCheck(service: "model_v1", count: 10, sampler: sampler)
        XCTAssertEqual(report.samplesChecked, 3)
        XCTAssertEqual(report.differences, [
            SkewDifference(entity: "user_id=1,merchant_id=m", time: 105 * s, feature: "user_stats:count", online: "10", offline: "11"),
            SkewDifference(entity: "user_id=2,merchant_id=m", time: 106 * s, feature: "user_stats:count", online: "21", offline: "20"),
        ])
        XCTAssertEqual(try offline.skewCheck(service: "model_v1", count: 1, sampler: sampler).samplesChecked, 1)
    }

    func testWithoutSamplingTheCheckSaysHowToTurnItOn() {
        XCTAssertThrowsError(try offline.skewCheck(service: "model_v1", count: 10, sampler: nil)) {
            XCTAssertTrue("\($0)".contains("read_sample_rate"))
        }
        XCTAssertThrowsError(try offline.skewCheck(service: "nope", count: 10, sampler: ReadSampler(rate: 1))) {
            XCTAssertTrue("\($0)".contains("unknown feature service 'nope'"))
        }
    }

    func testTheRingKeepsTheLatestSamples() {
        let sampler = ReadSampler(rate: 1, capacity: 3)
        for i in 0..<5 {
            sampler.record(ReadSample(references: [i % 2 == 0 ? "v:a" : "v:b"], keys: [], time: Int64(i), served: []))
        }
        XCTAssertEqual(sampler.latest(references: ["v:a"], count: 10).map(\.time), [2, 4])
        XCTAssertEqual(sampler.latest(references: ["v:b"], count: 10).map(\.time), [3])
        XCTAssertEqual(ReadSampler(rate: 0).shouldSample(), false)
    }
}
