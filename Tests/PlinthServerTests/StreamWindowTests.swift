// The streamed-answer window: a producer waits while the connection has a
// window's worth of parts queued, and goes on as they are written or once
// the connection is gone.
import Foundation
import XCTest
@testable import PlinthServer

final class StreamWindowTests: XCTestCase {
    func testAProducerWaitsForRoomAndGoesOnWhenPartsAreWritten() {
        let window = StreamWindow(limit: 100)
        window.reserve(60)
        let reserved = expectation(description: "second part reserved")
        let started = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            started.signal()
            window.reserve(60)  // 120 > 100: waits for the first part
            reserved.fulfill()
        }
        started.wait()
        Thread.sleep(forTimeInterval: 0.2)
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
        Thread.sleep(forTimeInterval: 0.1)
        window.close()
        wait(for: [released], timeout: 5)
    }
}
