// The streamed-answer window: a producer waits while the connection has a
// window's worth of parts queued, and goes on as they are written or once
// the connection is gone.
import Foundation
import XCTest
@testable import PlinthServer

final class StreamWindowTests: XCTestCase {
    /// Waits, up to a deadline, until a producer is waiting for room: the
    /// state the tests need before they give room back or close.
    func waitForAWaitingProducer(_ window: StreamWindow, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = ContinuousClock.now + .seconds(10)
        while window.waitingProducers == 0 && ContinuousClock.now < deadline { usleep(1_000) }
        XCTAssertEqual(window.waitingProducers, 1, "no producer started waiting", file: file, line: line)
    }

    func testAProducerWaitsForRoomAndGoesOnWhenPartsAreWritten() {
        let window = StreamWindow(limit: 100)
        window.reserve(60)
        let reserved = expectation(description: "second part reserved")
        DispatchQueue.global().async {
            window.reserve(60)  // 120 > 100: waits for the first part
            reserved.fulfill()
        }
        waitForAWaitingProducer(window)
        XCTAssertEqual(window.queuedBytes, 60, "the second part got in before any room was given back")
        window.written(60)
        wait(for: [reserved], timeout: 5)
        XCTAssertEqual(window.queuedBytes, 60)
    }

    func testAPartLargerThanTheWindowPassesWhenNothingIsQueued() {
        let window = StreamWindow(limit: 10)
        window.reserve(1_000)
        XCTAssertEqual(window.queuedBytes, 1_000)
        window.written(1_000)
        XCTAssertEqual(window.queuedBytes, 0)
    }

    func testClosingTheConnectionReleasesAWaitingProducer() {
        let window = StreamWindow(limit: 10)
        window.reserve(10)
        let released = expectation(description: "producer released")
        DispatchQueue.global().async {
            window.reserve(10)
            released.fulfill()
        }
        waitForAWaitingProducer(window)
        window.close()
        wait(for: [released], timeout: 5)
    }
}
