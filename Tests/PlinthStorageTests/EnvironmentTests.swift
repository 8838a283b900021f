// The environment and its writer: group commit, isolation of a failing
// request, map growth, and durability across reopen.
import Foundation
import XCTest
@testable import PlinthStorage

func temporaryDirectory(_ name: String = #function) -> String {
    let path = NSTemporaryDirectory() + "plinth-test-\(name.filter { $0.isLetter })-\(UUID().uuidString)"
    return path
}

final class EnvironmentTests: XCTestCase {
    var paths: [String] = []
    override func tearDown() {
        for p in paths { try? FileManager.default.removeItem(atPath: p) }
    }

    func open(mapSize: Int = 1 << 24, path: String? = nil, syncInterval: Duration = .milliseconds(100),
              durable: Bool = true, writerPoll: Duration = .zero) throws -> Environment {
        let path = path ?? temporaryDirectory()
        paths.append(path)
        var options = Environment.Options()
        options.mapSize = mapSize
        options.relaxedSyncInterval = syncInterval
        options.durable = durable
        options.writerPollAfterCommit = writerPoll
        return try Environment(path: path, options: options)
    }

    func testWriteThenReadZeroCopy() throws {
        let env = try open()
        let table = try env.table("t")
        try env.writer.write { txn in try txn.put(table, [1, 2], [9, 8, 7]) }
        let value = try env.read { txn in try txn.get(table, [1, 2]).map { Array($0) } }
        XCTAssertEqual(value, [9, 8, 7])
        XCTAssertNil(try env.read { txn in try txn.get(table, [3]).map { Array($0) } })
    }

    func testCursorFindsTheGreatestKeyBelowABound() throws {
        let env = try open()
        let table = try env.table("t")
        XCTAssertNil(try env.read { txn in try txn.withCursor(table) { c in try [UInt8]([5]).withUnsafeBytes { try c.lastBefore($0)?.key.count } } })
        try env.writer.write { txn in
            for key: [UInt8] in [[1], [3], [3, 0], [7]] { try txn.put(table, key, [0]) }
        }
        func below(_ bound: [UInt8]) throws -> [UInt8]? {
            try env.read { txn in try txn.withCursor(table) { c in try bound.withUnsafeBytes { try c.lastBefore($0).map { Array($0.key) } } } }
        }
        XCTAssertNil(try below([1]))
        XCTAssertEqual(try below([2]), [1])
        XCTAssertEqual(try below([3, 0]), [3])
        XCTAssertEqual(try below([3, 1]), [3, 0])
        XCTAssertEqual(try below([7]), [3, 0])
        XCTAssertEqual(try below([9]), [7])
    }

    func testConcurrentWritesAreGroupedAndAllAcknowledgedAfterCommit() throws {
        let env = try open()
        let table = try env.table("t")
        let count = 400
        let done = DispatchGroup()
        let failures = Atomic(0)
        for i in 0..<count {
            done.enter()
            env.writer.submit({ txn in
                try txn.put(table, makeKey { $0.append(UInt32(i)) }, [UInt8(i & 0xFF)])
            }, completion: { result in
                if case .failure = result { failures.increment() }
                // Acknowledged means committed: a fresh read sees it.
                let seen = (try? env.read { txn in try txn.get(table, makeKey { $0.append(UInt32(i)) }) != nil }) ?? false
                if !seen { failures.increment() }
                done.leave()
            })
        }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(failures.value, 0)
        XCTAssertLessThan(env.writer.commits, count, "concurrent requests should share commits")
        XCTAssertGreaterThan(env.writer.largestBatch, 1)
    }

    func testAPollingWriterTakesEveryWriteAndDoesNotHoldUpClose() throws {
        // A poll far longer than the test: writes one after another, with
        // pauses, and from many threads at once are all committed, and
        // close() does not wait the poll out.
        let env = try open(writerPoll: .seconds(60))
        XCTAssertEqual(env.writer.pollAfterCommit, .seconds(60))
        let table = try env.table("t")
        for i in 0..<50 {
            try env.writer.write { txn in try txn.put(table, [UInt8(i)], [UInt8(i)]) }
            if i % 10 == 0 { Thread.sleep(forTimeInterval: 0.01) }
        }
        DispatchQueue.concurrentPerform(iterations: 50) { i in
            do { try env.writer.write { txn in try txn.put(table, [100, UInt8(i)], [UInt8(i)]) } } catch { XCTFail("\(error)") }
        }
        let stored = try env.read { txn in
            try (0..<50).allSatisfy { try txn.get(table, [UInt8($0)]) != nil && txn.get(table, [100, UInt8($0)]) != nil }
        }
        XCTAssertTrue(stored)
        let started = ContinuousClock.now
        env.close()
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(20), "close waited for the writer's poll")
        XCTAssertThrowsError(try env.writer.write { txn in try txn.put(table, [200], [0]) })
    }

    func testTheWriterPollsOnlyWhileWritesFollowClosely() throws {
        let env = try open(writerPoll: .milliseconds(5))
        let table = try env.table("t")
        // Writes 50 ms apart: a poll would only burn CPU, so none happens
        // (counted from the second: the first may follow the table's creation).
        try env.writer.write { txn in try txn.put(table, [0], [0]) }
        Thread.sleep(forTimeInterval: 0.05)
        let before = env.writer.polls
        for i in 1..<6 {
            try env.writer.write { txn in try txn.put(table, [UInt8(i)], [0]) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertEqual(env.writer.polls, before)
        // Back to back: the writer polls after its commits and catches the next write.
        for i in 0..<30 { try env.writer.write { txn in try txn.put(table, [1, UInt8(i)], [0]) } }
        XCTAssertGreaterThan(env.writer.polls, 0)
        XCTAssertGreaterThan(env.writer.pollsAnswered, 0)
        env.close()
    }

    func testAFailingRequestDoesNotUndoItsNeighbours() throws {
        let env = try open()
        let table = try env.table("t")
        struct Refused: Error {}
        let group = DispatchGroup()
        let outcomes = Atomic(0)
        for i in 0..<50 {
            group.enter()
            env.writer.submit({ txn in
                try txn.put(table, [UInt8(i)], [1])
                if i % 2 == 1 { throw Refused() }
            }, completion: { result in
                if case .success = result, i % 2 == 0 { outcomes.increment() }
                if case .failure(let e) = result, i % 2 == 1, e is Refused { outcomes.increment() }
                group.leave()
            })
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(outcomes.value, 50)
        for i in 0..<50 {
            let present = try env.read { txn in try txn.get(table, [UInt8(i)]) != nil }
            XCTAssertEqual(present, i % 2 == 0, "row \(i)")
        }
    }

    func testMapGrowsWhenFull() throws {
        let env = try open(mapSize: 1 << 20)
        let table = try env.table("t")
        let value = [UInt8](repeating: 0xAB, count: 4000)
        for batch in 0..<20 {
            try env.writer.write { txn in
                for i in 0..<100 { try txn.put(table, makeKey { $0.append(UInt32(batch * 100 + i)) }, value) }
            }
        }
        XCTAssertGreaterThan(env.mapSize, 1 << 20)
        let count = try env.read { txn -> Int in
            var n = 0
            try txn.scan(table, from: []) { _, v in XCTAssertEqual(v.count, 4000); n += 1; return true }
            return n
        }
        XCTAssertEqual(count, 2000)
    }

    func testDataSurvivesReopenAndWritesAfterCloseFailCleanly() throws {
        let path = temporaryDirectory()
        paths.append(path)
        do {
            let env = try open(path: path)
            let table = try env.table("t")
            try env.writer.write { txn in try txn.put(table, [1], [2]) }
            env.close()
            XCTAssertThrowsError(try env.writer.write { txn in try txn.put(table, [3], [4]) })
        }
        let env = try open(path: path)
        let table = try env.table("t")
        XCTAssertEqual(try env.read { txn in try txn.get(table, [1]).map { Array($0) } }, [2])
    }

    func testRelaxedWritesAreVisibleAtOnceAndSyncedWithinTheInterval() throws {
        let env = try open(syncInterval: .milliseconds(20))
        let table = try env.table("t")
        for i in 0..<10 {
            try env.writer.write(durability: .relaxed) { txn in try txn.put(table, [UInt8(i)], [1]) }
            XCTAssertNotNil(try env.read { txn in try txn.get(table, [UInt8(i)]) }, "acknowledged means committed")
        }
        XCTAssertEqual(env.writer.relaxedCommits, 10)
        let deadline = Date().addingTimeInterval(10)
        while env.writer.syncPending && Date() < deadline { usleep(5_000) }
        XCTAssertFalse(env.writer.syncPending, "the deferred sync did not come")
        XCTAssertGreaterThanOrEqual(env.writer.deferredSyncs, 1)
        XCTAssertLessThan(env.writer.deferredSyncs, 10, "one sync covers many relaxed commits")
        XCTAssertEqual(env.writer.syncFailures, 0)
    }

    func testAStrictCommitSyncsTheRelaxedOnesBeforeIt() throws {
        // An interval no test waits for: only the strict commit can sync.
        let env = try open(syncInterval: .seconds(3600))
        let table = try env.table("t")
        try env.writer.write(durability: .relaxed) { txn in try txn.put(table, [1], [1]) }
        try env.writer.write(durability: .relaxed) { txn in try txn.put(table, [2], [2]) }
        XCTAssertTrue(env.writer.syncPending)
        try env.writer.write(durability: .strict) { txn in try txn.put(table, [3], [3]) }
        XCTAssertFalse(env.writer.syncPending)
        XCTAssertEqual(env.writer.deferredSyncs, 0)
        XCTAssertEqual(env.writer.relaxedCommits, 2)
    }

    func testClosingSyncsWhatIsPendingAndNoSyncNeverSyncs() throws {
        let path = temporaryDirectory()
        do {
            let env = try open(path: path, syncInterval: .seconds(3600))
            let table = try env.table("t")
            try env.writer.write(durability: .relaxed) { txn in try txn.put(table, [7], [7]) }
            XCTAssertTrue(env.writer.syncPending)
            env.close()
            XCTAssertFalse(env.writer.syncPending, "close syncs")
        }
        let env = try open(path: path)
        let table = try env.table("t")
        XCTAssertEqual(try env.read { txn in try txn.get(table, [7]).map { Array($0) } }, [7])

        let fast = try open(syncInterval: .milliseconds(1), durable: false)
        let t = try fast.table("t")
        try fast.writer.write(durability: .relaxed) { txn in try txn.put(t, [1], [1]) }
        usleep(50_000)
        XCTAssertFalse(fast.writer.syncPending)
        XCTAssertEqual(fast.writer.relaxedCommits, 0, "--no-sync: every commit is unsynced, none is scheduled")
        XCTAssertEqual(fast.writer.deferredSyncs, 0)
    }

    func testReadersRunConcurrentlyWithTheWriter() throws {
        let env = try open()
        let table = try env.table("t")
        try env.writer.write { txn in try txn.put(table, [0], [0]) }
        let stop = Atomic(0)
        let reader = Thread {
            while stop.value == 0 { _ = try? env.read { txn in try txn.get(table, [0]) } }
        }
        reader.start()
        for i in 1...200 { try env.writer.write { txn in try txn.put(table, [UInt8(i % 256)], [1]) } }
        stop.increment()
    }
}

/// A tiny locked counter for tests.
final class Atomic: @unchecked Sendable {
    private let lock = ConditionLock()
    private var v: Int
    init(_ v: Int) { self.v = v }
    var value: Int { lock.withLock { v } }
    func increment() { lock.withLock { v += 1 } }
}
