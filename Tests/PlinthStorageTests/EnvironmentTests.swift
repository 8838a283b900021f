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

    func open(mapSize: Int = 1 << 24, path: String? = nil) throws -> Environment {
        let path = path ?? temporaryDirectory()
        paths.append(path)
        var options = Environment.Options()
        options.mapSize = mapSize
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
