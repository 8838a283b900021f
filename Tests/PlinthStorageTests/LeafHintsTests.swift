// Batched point reads with leaf-page hints: the hints only ever choose what
// to prefetch, so every answer must match a plain mdb_get, whether the
// hints are absent, right, stale (pages moved by later writes, the map
// moved by growth) or pointing anywhere at all.
import Foundation
import XCTest
@testable import PlinthStorage

private func key(_ i: Int) -> [UInt8] {
    var bytes: [UInt8] = [7]
    withUnsafeBytes(of: UInt64(i).bigEndian) { bytes.append(contentsOf: $0) }
    return bytes
}

private func value(_ i: Int, _ generation: Int) -> [UInt8] {
    [UInt8](repeating: UInt8(truncatingIfNeeded: i &+ generation), count: 40 + i % 50)
}

final class LeafHintsTests: XCTestCase {
    var paths: [String] = []
    override func tearDown() {
        for p in paths { try? FileManager.default.removeItem(atPath: p) }
    }

    func open(mapSize: Int = 1 << 22) throws -> Environment {
        let path = temporaryDirectory()
        paths.append(path)
        var options = Environment.Options()
        options.mapSize = mapSize
        options.durable = false
        return try Environment(path: path, options: options)
    }

    func put(_ env: Environment, _ table: Table, _ ids: some Sequence<Int>, generation: Int) throws {
        try env.writer.write { txn in
            for i in ids { try txn.put(table, key(i), value(i, generation)) }
        }
    }

    /// Reads `ids` (negative: an empty key) in one batch and returns copies.
    func batch(_ env: Environment, _ table: Table, _ ids: [Int], hints: LeafHints?) throws -> [[UInt8]?] {
        var bytes: [UInt8] = []
        var ends: [Int] = []
        for i in ids {
            if i >= 0 { bytes += key(i) }
            ends.append(bytes.count)
        }
        if bytes.isEmpty { bytes = [0] }
        return try env.read { txn in
            try bytes.withUnsafeBytes { raw in
                try ends.withUnsafeBufferPointer { ends in
                    var found = [UnsafeRawBufferPointer?](repeating: nil, count: ids.count)
                    try found.withUnsafeMutableBufferPointer { out in
                        try txn.get(table, keys: raw.baseAddress!, ends: ends, hints: hints, into: out)
                    }
                    return found.map { $0.map { Array($0) } }
                }
            }
        }
    }

    func expected(_ ids: [Int], present: Set<Int>, generation: (Int) -> Int) -> [[UInt8]?] {
        ids.map { $0 >= 0 && present.contains($0) ? value($0, generation($0)) : nil }
    }

    func testBatchesMatchSingleReadsWithAndWithoutHints() throws {
        let env = try open()
        let table = try env.table("t")
        try put(env, table, stride(from: 0, to: 6000, by: 2), generation: 0)
        let present = Set(stride(from: 0, to: 6000, by: 2))
        let hints = LeafHints(slots: 4096)
        var random = SystemRandomNumberGenerator()
        for round in 0..<30 {
            // Absent keys, empty keys, repeats and a batch of one.
            let count = round == 0 ? 1 : Int.random(in: 2...200, using: &random)
            let ids = (0..<count).map { _ in Int.random(in: -1..<6000, using: &random) }
            let want = expected(ids, present: present, generation: { _ in 0 })
            XCTAssertEqual(try batch(env, table, ids, hints: nil), want)
            XCTAssertEqual(try batch(env, table, ids, hints: hints), want, "round \(round)")
            // The same keys again: now every present key has a hint.
            XCTAssertEqual(try batch(env, table, ids, hints: hints), want, "round \(round), warm")
        }
        // A key read in a batch leaves its page behind: the hint names the
        // page (and line) where a plain read finds its value.
        let ids = Array(stride(from: 0, to: 400, by: 2))
        _ = try batch(env, table, ids, hints: hints)
        try env.read { txn in
            let base = mapBase(txn.txn)
            // Keys that share a slot overwrite each other's hints (the slots
            // are direct-mapped): only keys alone in their slot are checked.
            let slotOf = ids.map { i in key(i).withUnsafeBytes { Int(LeafHints.hash($0) & UInt64(hints.slotCount - 1)) } }
            var users: [Int: Int] = [:]
            for slot in slotOf { users[slot, default: 0] += 1 }
            let alone = ids.indices.filter { users[slotOf[$0]] == 1 }.map { ids[$0] }
            XCTAssertGreaterThan(alone.count, ids.count / 2)
            for i in alone {
                let found = try XCTUnwrap(txn.get(table, key(i))?.baseAddress)
                let hinted = key(i).withUnsafeBytes { hints.value(LeafHints.hash($0), mapBase: base) }
                XCTAssertEqual(hinted, UInt(bitPattern: found) & ~63, "key \(i)")
            }
        }
    }

    func testStaleHintsAfterRewritesAndMapGrowthStillReadTheNewValues() throws {
        let env = try open(mapSize: 1 << 20)
        let table = try env.table("t")
        let ids = Array(0..<3000)
        try put(env, table, ids, generation: 0)
        let hints = LeafHints(slots: 1 << 14)
        XCTAssertEqual(try batch(env, table, ids, hints: hints), expected(ids, present: Set(ids), generation: { _ in 0 }))
        // Rewrites copy every leaf to new pages; more data grows (remaps)
        // the map, so the hinted addresses are all stale.
        let before = env.mapSize
        try put(env, table, ids, generation: 1)
        try put(env, table, 3000..<12000, generation: 1)
        XCTAssertGreaterThan(env.mapSize, before, "the test meant to grow the map")
        let all = Array(0..<12000)
        XCTAssertEqual(try batch(env, table, all, hints: hints), expected(all, present: Set(all), generation: { _ in 1 }))
    }

    func testHintsPointingAnywhereChangeNoAnswer() throws {
        let env = try open()
        let table = try env.table("t")
        let ids = Array(0..<2000)
        try put(env, table, ids, generation: 0)
        let hints = LeafHints(slots: 1024)
        // Every key's slot names a page far outside the map, or page 1 (a
        // meta page), or the first page of the map's end: prefetches of
        // addresses that are not leaves, or not mapped at all.
        let bases: [UInt] = [0, UInt.max / 2, 4096 * 3]
        for (n, base) in bases.enumerated() {
            for i in ids {
                let fake = UnsafeRawPointer(bitPattern: base &+ UInt(4096 * (1 + i % 7)) &+ 100)!
                key(i).withUnsafeBytes { hints.remember(LeafHints.hash($0), value: fake, mapBase: base) }
            }
            XCTAssertEqual(try batch(env, table, ids.shuffled(), hints: hints).compactMap { $0 }.count, ids.count, "base \(n)")
        }
        let shuffled = ids.shuffled()
        XCTAssertEqual(try batch(env, table, shuffled, hints: hints), expected(shuffled, present: Set(ids), generation: { _ in 0 }))
    }

    func testSlotCountIsAPowerOfTwoOfAtLeastTheRequest() {
        XCTAssertEqual(LeafHints(slots: 0).slotCount, 1024)
        XCTAssertEqual(LeafHints(slots: 5000).slotCount, 8192)
        XCTAssertEqual(LeafHints(slots: 1 << 20).slotCount, 1 << 20)
    }

    func testFillFromAScanHintsEveryRowInChunksAndStopsAtTheLimit() throws {
        let env = try open()
        let table = try env.table("t")
        let ids = Array(0..<1000)
        try put(env, table, ids, generation: 0)
        let hints = LeafHints(slots: 1 << 16)
        // Chunks of 64 rows: 16 read transactions, each resuming after the last key.
        XCTAssertEqual(hints.fill(from: table, in: env, limit: 10_000, chunk: 64), 1000)
        try env.read { txn in
            let base = mapBase(txn.txn)
            var hinted = 0
            for i in ids {
                let found = try XCTUnwrap(txn.get(table, key(i))?.baseAddress)
                let hint = key(i).withUnsafeBytes { hints.value(LeafHints.hash($0), mapBase: base) }
                if hint == UInt(bitPattern: found) & ~63 { hinted += 1 }
            }
            // Only keys that share a slot with a later one lose their hint.
            XCTAssertGreaterThan(hinted, 980)
        }
        XCTAssertEqual(LeafHints(slots: 1024).fill(from: table, in: env, limit: 300, chunk: 64), 300)
        XCTAssertEqual(LeafHints(slots: 1024).fill(from: try env.table("empty"), in: env, limit: 300), 0)
        env.close()
        XCTAssertEqual(LeafHints(slots: 1024).fill(from: table, in: env, limit: 300), 0, "a closed environment stops the fill")
    }
}
