// plinthctl get, run as the real binary against an in-process server: it
// asks for each view's event times once (compact_event_times) and shows
// every feature's time all the same.
import Foundation
import PlinthClient
import PlinthWire
import XCTest
@testable import PlinthServer

final class PlinthctlGetTests: XCTestCase {
    var server: TestServer!

    override func setUpWithError() throws {
        server = try TestServer()
        let c = try Connection(address: server.address)
        try apply(c)
        _ = try c.call(Method.push, pushRequest(ids: [1, 2], count: 7, event: 1_700_000_000_000_000), as: PBPushResponse.self)
    }

    override func tearDown() { server?.stop() }

    func testEveryFeatureOfAViewShowsItsEventTime() throws {
        let (code, out, err) = try runPlinthctl(["get", "--features", "stats:count,stats:score",
                                                 "--entity", "user_id=1", "--entity", "user_id=5", "--json"], address: server.address)
        XCTAssertEqual(code, 0, err)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
        let results = try XCTUnwrap(json["results"] as? [[String: Any]], out)
        XCTAssertEqual(results.count, 2)
        let found = try XCTUnwrap(results[0]["features"] as? [String: [String: Any]], out)
        // The second feature's time comes from the first column's (event_times_from).
        XCTAssertEqual(found["count"]?["status"] as? String, "PRESENT")
        XCTAssertEqual(found["score"]?["status"] as? String, "PRESENT")
        let time = try XCTUnwrap(found["count"]?["event_time"] as? String, out)
        XCTAssertTrue(time.hasPrefix("2023-11-14T22:13:20"), time)
        XCTAssertEqual(found["score"]?["event_time"] as? String, time)
        let missing = try XCTUnwrap(results[1]["features"] as? [String: [String: Any]], out)
        XCTAssertEqual(missing["score"]?["status"] as? String, "NOT_FOUND")
        XCTAssertTrue(missing["score"]?["event_time"] is NSNull, out)
    }
}
