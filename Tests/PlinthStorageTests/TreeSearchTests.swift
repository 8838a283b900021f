// Batched point reads that walk LMDB's tree themselves (TreeSearch.swift):
// every answer must be the one mdb_get gives, on trees of every depth, with
// keys that are prefixes of one another, deleted keys, values in overflow
// pages, empty keys, after rewrites and map growth; and the walk must be
// the path actually taken, or these tests would only test mdb_get.
import CLMDB
import Foundation
import Synchronization
import XCTest
@testable import PlinthStorage

/// A one-byte prefix, then `i` big-endian: keys in numeric order.
private func bigEndian(_ prefix: UInt8, _ i: Int) -> [UInt8] {
    var bytes: [UInt8] = [prefix]
    withUnsafeBytes(of: UInt64(bitPattern: Int64(i)).bigEndian) { bytes.append(contentsOf: $0) }
    return bytes
}

final class TreeSearchTests: XCTestCase {
    var paths: [String] = []
    override func tearDown() {
        for p in paths { try? FileManager.default.removeItem(atPath: p) }
    }

    func open(mapSize: Int = 1 << 24, treeSearch: Bool = true, log: (@Sendable (String) -> Void)? = nil) throws -> Environment {
        let path = temporaryDirectory()
        paths.append(path)
        var options = Environment.Options()
        options.mapSize = mapSize
        options.durable = false
        options.treeSearch = treeSearch
        options.log = log
        return try Environment(path: path, options: options)
    }

    /// What mdb_get gives for each key, what the walk gives (nil when it
    /// did not run: no root, or it gave up), as copies, and what the batched
    /// read gives, with whether it took the walk.
    static func answers(_ env: Environment, _ table: Table, _ keys: [[UInt8]]) throws
        -> (plain: [[UInt8]?], walked: [[UInt8]?]?, batched: [[UInt8]?], batchWalked: Bool) {
        var bytes: [UInt8] = []
        var ends: [Int] = []
        for k in keys { bytes += k; ends.append(bytes.count) }
        if bytes.isEmpty { bytes = [0] }
        return try env.read { txn in
            try bytes.withUnsafeBytes { raw in
                try ends.withUnsafeBufferPointer { ends in
                    let plain = try keys.map { k in try k.isEmpty ? nil : txn.get(table, k).map { Array($0) } }
                    func key(_ i: Int) -> UnsafeRawBufferPointer {
                        let start = i == 0 ? 0 : ends[i - 1]
                        return UnsafeRawBufferPointer(rebasing: raw[start..<ends[i]])
                    }
                    var found = [UnsafeRawBufferPointer?](repeating: nil, count: keys.count)
                    var walked: [[UInt8]?]?
                    if let tree = TreeRoot.of(table, in: txn) {
                        let ran = try found.withUnsafeMutableBufferPointer { out in
                            try tree.search(count: keys.count, key: key, fallback: { try txn.get(table, $0) }, into: out)
                        }
                        if ran { walked = found.map { $0.map { Array($0) } } }
                    }
                    // The public batch read, as OnlineStore calls it.
                    var out = [UnsafeRawBufferPointer?](repeating: nil, count: keys.count)
                    let base = try XCTUnwrap(raw.baseAddress)
                    let batchWalked = try out.withUnsafeMutableBufferPointer { try txn.get(table, keys: base, ends: ends, into: $0) }
                    return (plain, walked, out.map { $0.map { Array($0) } }, batchWalked)
                }
            }
        }
    }

    /// Asserts that the walk ran and agrees with mdb_get on `keys`.
    func check(_ env: Environment, _ table: Table, _ keys: [[UInt8]], _ message: String,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let (plain, walked, batched, batchWalked) = try Self.answers(env, table, keys)
        XCTAssertNotNil(walked, "the walk gave up: \(message)", file: file, line: line)
        XCTAssertTrue(batchWalked || keys.count < 2, "the batched read used mdb_get: \(message)", file: file, line: line)
        XCTAssertEqual(walked ?? [], plain, message, file: file, line: line)
        XCTAssertEqual(batched, plain, message, file: file, line: line)
    }

    func depth(_ env: Environment, _ table: Table) throws -> Int {
        try env.read { txn in
            var stat = MDB_stat()
            XCTAssertEqual(mdb_stat(txn.txn, table.dbi, &stat), 0)
            return Int(stat.ms_depth)
        }
    }

    func testTreesOfEveryDepthAnswerAsMdbGetDoes() throws {
        let env = try open(mapSize: 1 << 26)
        let table = try env.table("t")
        var random = SystemRandomNumberGenerator()
        // 120 bytes after the number: few keys fit a page, so a few
        // thousand rows make a deep tree.
        let padding = [UInt8](repeating: 0x5A, count: 120)
        func key(_ i: Int) -> [UInt8] { bigEndian(9, i) + padding }
        var depths: Set<Int> = []
        var written = 0
        // 0 rows (no root), 1, a single leaf, then two, three and four levels.
        for target in [0, 1, 12, 600, 12_000, 60_000] {
            try env.writer.write { txn in
                for i in written..<target {
                    try txn.put(table, key(i * 2), [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 8 + i % 40))
                }
            }
            written = max(written, target)
            depths.insert(try depth(env, table))
            for round in 0..<5 {
                // Present (even) and absent (odd) keys, keys below and
                // above every key, repeats, and batches of two and more.
                let count = [2, 3, 7, 100, 257][round]
                let keys = (0..<count).map { _ in key(Int.random(in: -3...(2 * target + 3), using: &random)) }
                    + [bigEndian(8, 5), bigEndian(10, 0), key(0), bigEndian(9, 0)]
                try check(env, table, keys, "\(target) rows, round \(round)")
            }
        }
        XCTAssertTrue(depths.isSuperset(of: [0, 1, 2, 3, 4]), "depths covered: \(depths.sorted())")
    }

    func testKeysThatArePrefixesOfOneAnotherAndEmptyKeys() throws {
        let env = try open()
        let table = try env.table("t")
        var random = SystemRandomNumberGenerator()
        var stored: [[UInt8]] = []
        try env.writer.write { txn in
            for _ in 0..<20_000 {
                // Few distinct bytes and lengths 1 to 40: many keys are
                // prefixes of others, which LMDB orders shorter first.
                let key = (0..<Int.random(in: 1...40, using: &random)).map { _ in UInt8.random(in: 0...2, using: &random) }
                try txn.put(table, key, key + [0xAA])
                stored.append(key)
            }
        }
        XCTAssertGreaterThanOrEqual(try depth(env, table), 3)
        for round in 0..<40 {
            let keys: [[UInt8]] = (0..<100).map { n in
                switch n % 4 {
                case 0: return stored.randomElement(using: &random) ?? []
                case 1: return Array((stored.randomElement(using: &random) ?? []).dropLast())  // a prefix, often absent
                case 2: return (stored.randomElement(using: &random) ?? []) + [UInt8.random(in: 0...3, using: &random)]
                default: return n % 8 == 3 ? [] : (0..<Int.random(in: 1...41, using: &random)).map { _ in UInt8.random(in: 0...3, using: &random) }
                }
            }
            try check(env, table, keys, "round \(round)")
        }
    }

    func testDeletedKeysOverflowValuesRewritesAndMapGrowth() throws {
        let env = try open(mapSize: 1 << 20)
        let table = try env.table("t")
        let ids = Array(0..<12_000)
        let before = env.mapSize
        for generation in 0..<3 {
            try env.writer.write { txn in
                for i in ids {
                    // Every 97th value is 5,000 bytes: it lives in overflow
                    // pages, which the walk leaves to mdb_get.
                    let size = i % 97 == 0 ? 5_000 : 16 + (i + generation) % 30
                    try txn.put(table, bigEndian(1, i), [UInt8](repeating: UInt8(truncatingIfNeeded: i &+ generation), count: size))
                }
                for i in stride(from: generation, to: ids.count, by: 3) { _ = try txn.delete(table, bigEndian(1, i)) }
            }
            let keys = ids.shuffled().prefix(600).map { bigEndian(1, $0) }
            try check(env, table, Array(keys), "generation \(generation)")
        }
        XCTAssertGreaterThan(env.mapSize, before, "the test meant to grow the map")
        // Every key, in order, in batches of 100.
        for start in stride(from: 0, to: ids.count, by: 100) {
            try check(env, table, (start..<(start + 100)).map { bigEndian(1, $0) }, "batch at \(start)")
        }
    }

    func testReadsDuringRewritesSeeOneSnapshot() throws {
        // Every write rewrites every row with its generation; a batch read
        // runs in one snapshot, so all its rows must carry one generation,
        // and the walk must agree with mdb_get in that snapshot, while the
        // writer frees and reuses the pages of older snapshots.
        let env = try open(mapSize: 1 << 26)
        let table = try env.table("t")
        let ids = Array(0..<20_000)
        func write(_ generation: UInt8) throws {
            try env.writer.write { txn in
                for i in ids { try txn.put(table, bigEndian(3, i), [UInt8](repeating: generation, count: 24 + i % 16)) }
            }
        }
        try write(0)
        let failures = Mutex<[String]>([])
        let stop = Mutex(false)
        let readers = DispatchGroup()
        for reader in 0..<3 {
            readers.enter()
            Thread.detachNewThread {
                defer { readers.leave() }
                var random = SystemRandomNumberGenerator()
                var batches = 0
                while !stop.withLock({ $0 }) || batches < 20 {
                    let keys = (0..<100).map { _ in bigEndian(3, ids.randomElement(using: &random) ?? 0) }
                    do {
                        let (plain, walked, batched, _) = try TreeSearchTests.answers(env, table, keys)
                        let generations = Set(batched.map { $0?.first })
                        if walked != plain || batched != plain || generations.count != 1 || generations.contains(nil) {
                            failures.withLock { $0.append("reader \(reader), batch \(batches): generations \(generations)") }
                        }
                    } catch {
                        failures.withLock { $0.append("reader \(reader): \(error)") }
                    }
                    batches += 1
                }
            }
        }
        for generation in 1...30 { try write(UInt8(generation)) }
        stop.withLock { $0 = true }
        readers.wait()
        XCTAssertEqual(failures.withLock { $0 }, [])
    }

    func testATableWithAnotherKeyOrderIsLeftToMdbGet() throws {
        let env = try open()
        let table = try env.table("ints", integerKeys: true)
        try env.writer.write { txn in
            for i in 0..<3_000 { try withUnsafeBytes(of: UInt64(i)) { try txn.put(table, Array($0), [UInt8(i % 256)]) } }
        }
        try env.read { txn in XCTAssertNil(TreeRoot.of(table, in: txn), "integer keys compare as numbers, not bytes") }
        let keys = (0..<200).map { i in withUnsafeBytes(of: UInt64(i * 17)) { Array($0) } }
        let (plain, walked, batched, batchWalked) = try Self.answers(env, table, keys)
        XCTAssertNil(walked)
        XCTAssertFalse(batchWalked)
        XCTAssertEqual(batched, plain)
        XCTAssertEqual(plain.compactMap { $0 }.count, 177, "keys 0, 17, ... 2992 are present")
    }

    // MARK: The sample check and the switch (TreeSearchCheck.swift)

    /// Log lines an environment writes, for the assertions.
    final class LogLines: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
        var sink: @Sendable (String) -> Void { { line in self.lines.withLock { $0.append(line) } } }
    }

    func fill(_ env: Environment, _ table: Table, prefix: UInt8, rows: Int, value: (Int) -> [UInt8]) throws {
        let values = (0..<rows).map(value)
        try env.writer.write { txn in
            for (i, v) in values.enumerated() { try txn.put(table, bigEndian(prefix, i), v) }
        }
    }

    func testTheSampleCheckPassesOnATableWithRowsAndKeepsTheWalkOn() throws {
        let log = LogLines()
        let env = try open(log: log.sink)
        let table = try env.table("t")
        // Empty: nothing to sample, so nothing is settled yet.
        _ = try Self.answers(env, table, [bigEndian(4, 1), bigEndian(4, 2)])
        XCTAssertEqual(env.treeSearchState.load(ordering: .relaxed), TreeSearchState.unchecked.rawValue)
        try fill(env, table, prefix: 4, rows: 20_000) { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: 20 + $0 % 30) }
        try env.read { txn in
            let sample = try txn.sampleKeys(table)
            XCTAssertEqual(sample.count, ReadTransaction.treeSearchSample, "a large table fills the sample")
            XCTAssertEqual(Set(sample).count, sample.count, "no key twice")
        }
        try check(env, table, (0..<100).map { bigEndian(4, $0 * 199) }, "after the check")
        XCTAssertEqual(env.treeSearchState.load(ordering: .relaxed), TreeSearchState.on.rawValue)
        XCTAssertTrue(env.treeSearchEnabled)
        XCTAssertEqual(log.all, [])
    }

    func testTheSettingSendsEveryBatchedReadToMdbGet() throws {
        let log = LogLines()
        let env = try open(treeSearch: false, log: log.sink)
        let table = try env.table("t")
        try fill(env, table, prefix: 5, rows: 5_000) { [UInt8(truncatingIfNeeded: $0)] }
        XCTAssertFalse(env.treeSearchEnabled)
        let keys = (0..<300).map { bigEndian(5, $0 * 17) }
        let (plain, _, batched, batchWalked) = try Self.answers(env, table, keys)
        XCTAssertFalse(batchWalked, "online_tree_search: false must read with mdb_get")
        XCTAssertEqual(batched, plain)
        XCTAssertEqual(plain.compactMap { $0 }.count, 295, "keys 0, 17, ... 4998 are present")
        XCTAssertEqual(log.all, [], "turned off by hand: nothing to report")
    }

    func testAWalkThatDisagreesWithMdbGetIsTurnedOffWithALogLine() throws {
        let log = LogLines()
        let env = try open(log: log.sink)
        let table = try env.table("t")
        let other = try env.table("u")
        // The same keys in both tables, other values: a walk that starts at
        // the wrong root reads well-formed pages and gives wrong answers.
        try fill(env, table, prefix: 6, rows: 3_000) { _ in [1] }
        try fill(env, other, prefix: 6, rows: 3_000) { _ in [2] }
        let problem = try env.read { txn -> String? in
            let wrong = try XCTUnwrap(TreeRoot.of(other, in: txn))
            XCTAssertNil(try txn.treeSearchProblem(try XCTUnwrap(TreeRoot.of(table, in: txn)), table, txn.sampleKeys(table)))
            return try txn.treeSearchProblem(wrong, table, txn.sampleKeys(table))
        }
        XCTAssertNotNil(problem)
        env.settleTreeSearch(table, problem: problem)
        XCTAssertFalse(env.treeSearchEnabled)
        XCTAssertEqual(log.all.count, 1)
        XCTAssertTrue(log.all.first?.contains("'t' disagreed with mdb_get") == true, "\(log.all)")
        let (plain, _, batched, batchWalked) = try Self.answers(env, table, (0..<50).map { bigEndian(6, $0) })
        XCTAssertFalse(batchWalked)
        XCTAssertEqual(batched, plain)
        // Settled once: a later outcome changes nothing and logs nothing.
        env.settleTreeSearch(table, problem: nil)
        XCTAssertFalse(env.treeSearchEnabled)
        XCTAssertEqual(log.all.count, 1)
    }
}
