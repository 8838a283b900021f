// The offline face over the wire: GetHistoricalFeatures streams its result
// in chunks that reassemble into the spine's order, GetDataset returns the
// record, Materialize streams progress then totals, and bad input gets a
// clear status. In-process server, own data directory and port per test.
import Foundation
import PlinthClient
import PlinthWire
import XCTest
@testable import PlinthServer

final class OfflineEndToEndTests: XCTestCase {
    var server: TestServer!

    override func setUpWithError() throws { server = try TestServer() }
    override func tearDown() { server?.stop() }

    func testHistoricalStreamsChunksInSpineOrder() throws {
        let connection = try Connection(address: server.address)
        try apply(connection)
        var push = pushRequest(ids: Array(0..<100), count: 7, event: 1_000)
        push.to = .offline
        _ = try connection.call(Method.push, push, as: PBPushResponse.self)

        var request = PBGetHistoricalFeaturesRequest()
        request.featureService = "svc"
        // Reversed ids, times before and after the rows' event time.
        var key = PBColumn(); key.name = "user_id"; key.type = .int64; key.int64Values = (0..<250).map { Int64(249 - $0) % 120 }
        var tag = PBColumn(); tag.name = "tag"; tag.type = .string; tag.stringValues = (0..<250).map { "r\($0)" }
        request.spine = [key, tag]
        request.eventTimeUs = (0..<250).map { $0 % 3 == 0 ? 999 : 1_000 }
        request.chunkRows = 64
        var frames: [PBGetHistoricalFeaturesResponse] = []
        try connection.callStreaming(Method.getHistoricalFeatures, request, as: PBGetHistoricalFeaturesResponse.self) { frames.append($0) }
        XCTAssertEqual(frames.count, 4)
        XCTAssertEqual(frames.map(\.offset), [0, 64, 128, 192])
        XCTAssertTrue(frames[0].hasDataset)
        XCTAssertFalse(frames[1].hasDataset)
        XCTAssertEqual(frames[0].columns.map(\.name), ["user_id", "tag", "count", "score"])
        var counts: [Int64?] = []
        for frame in frames {
            let nulls = Set(frame.columns[2].nullRows)
            for row in 0..<frame.eventTimeUs.count { counts.append(nulls.contains(UInt32(row)) ? nil : frame.columns[2].int64Values[row]) }
        }
        let expected: [Int64?] = (0..<250).map { i in
            let id = Int64(249 - i) % 120
            return (i % 3 == 0 || id >= 100) ? nil : 7
        }
        XCTAssertEqual(counts, expected)
        XCTAssertEqual(frames.flatMap { $0.columns[1].stringValues }, (0..<250).map { "r\($0)" })

        var get = PBGetDatasetRequest()
        get.id = frames[0].dataset.id
        let dataset = try connection.call(Method.getDataset, get, as: PBDataset.self)
        XCTAssertEqual(dataset.digest, frames[0].dataset.digest)
        XCTAssertEqual(dataset.rows, 250)
        get.id = "ds-nope"
        XCTAssertThrowsError(try connection.call(Method.getDataset, get, as: PBDataset.self)) {
            XCTAssertEqual(($0 as? PlinthError)?.code, 5)
        }
    }

    func testMaterializeStreamsProgressThenTotals() throws {
        let connection = try Connection(address: server.address)
        try apply(connection)
        var push = pushRequest(ids: [1, 2, 3], count: 5, event: 2_000)
        push.to = .offline
        _ = try connection.call(Method.push, push, as: PBPushResponse.self)
        var request = PBMaterializeRequest()
        request.startUs = 0
        request.endUs = 10_000
        var frames: [PBMaterializeResponse] = []
        try connection.callStreaming(Method.materialize, request, as: PBMaterializeResponse.self) { frames.append($0) }
        XCTAssertGreaterThanOrEqual(frames.count, 2)
        XCTAssertEqual(frames.last?.done, true)
        XCTAssertEqual(frames.last?.views.first?.onlineRowsWritten, 3)
        XCTAssertEqual(frames.dropLast().last?.rowsScanned, 3)
        let online = try connection.call(Method.getOnlineFeatures, getRequest(ids: [1, 2, 3]), as: PBGetOnlineFeaturesResponse.self)
        XCTAssertEqual(online.features[0].values.int64Values, [5, 5, 5])
    }

    func testBadHistoricalInputGetsClearStatuses() throws {
        let connection = try Connection(address: server.address)
        try apply(connection)
        var request = PBGetHistoricalFeaturesRequest()
        request.features = ["stats:count", "stats:nope"]
        var key = PBColumn(); key.name = "user_id"; key.type = .int64; key.int64Values = [1]
        request.spine = [key]
        request.eventTimeUs = [1]
        XCTAssertThrowsError(try connection.callStreaming(Method.getHistoricalFeatures, request, as: PBGetHistoricalFeaturesResponse.self) { _ in }) {
            XCTAssertEqual(($0 as? PlinthError)?.code, 5)
            XCTAssertTrue("\($0)".contains("stats:nope"))
        }
        request.features = ["stats:count"]
        request.eventTimeUs = []
        XCTAssertThrowsError(try connection.callStreaming(Method.getHistoricalFeatures, request, as: PBGetHistoricalFeaturesResponse.self) { _ in }) {
            XCTAssertEqual(($0 as? PlinthError)?.code, 3)
        }
        // The connection still works.
        XCTAssertNoThrow(try connection.call(Method.health, PBHealthRequest(), as: PBHealthResponse.self))
    }
}
