// LeafHints: where each recently read key's leaf page was, so that a batch
// of point reads can prefetch the next keys' pages while LMDB searches the
// current one.
//
// A point read of a large table is bound by memory latency, not by
// instructions: LMDB's descent ends on a leaf page that is rarely in cache,
// and its binary search there touches five or six lines of that page one
// after another, each a miss that waits for the one before. A batch of
// reads knows all its keys up front, so the misses of different keys can
// overlap if the pages are known early. They are, approximately: the page
// a key was found on last time. The hint is only ever used as an address
// to prefetch (which cannot fault, and loads nothing the program reads), so
// a stale hint (the page moved when a writer copied it, or the map moved
// when it grew) costs one wasted prefetch and is overwritten by the read
// that follows. Nothing read through LMDB depends on a hint being right.
import CLMDB
#if canImport(Glibc)
import Glibc
#endif

public final class LeafHints: @unchecked Sendable {
    /// Each slot: the top 18 bits of the key's hash (a tag: slots are
    /// direct-mapped, and a key whose tag differs has no hint), the 64-byte
    /// line of the page where the row starts (6 bits: a 4 KiB page; on
    /// larger pages the line is approximate, which only aims the prefetch
    /// worse), and the page number (40 bits). 0 is empty: page 0 is a meta
    /// page, never a leaf.
    private let slots: UnsafeMutablePointer<UInt64>
    private let mask: UInt64
    private let byteCount: Int
    /// False when mmap failed and the slots came from the heap instead.
    private let mapped: Bool
    let pageSize: Int

    /// `slots` is rounded up to a power of two. The slots are anonymous
    /// memory that costs nothing until touched.
    public init(slots requested: Int) {
        var count = 1024
        while count < requested { count <<= 1 }
        byteCount = count * MemoryLayout<UInt64>.stride
        let memory = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if let memory, memory != MAP_FAILED {
            // Slots are hit at random: huge pages keep them from costing a
            // TLB miss each (advice only; without it they still work).
            _ = madvise(memory, byteCount, MADV_HUGEPAGE)
            slots = memory.bindMemory(to: UInt64.self, capacity: count)
            mapped = true
        } else {
            slots = .allocate(capacity: count)
            slots.initialize(repeating: 0, count: count)
            mapped = false
        }
        mask = UInt64(count - 1)
        pageSize = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    deinit {
        if mapped { munmap(slots, byteCount) } else { slots.deallocate() }
    }

    public var slotCount: Int { Int(mask) + 1 }

    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        // Eight bytes at a time, multiplied and folded: the keys are short
        // (a view id and one or two join keys), and only the spread matters.
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(key.count)
        var i = 0
        while i + 8 <= key.count {
            h = (h ^ key.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        if i < key.count {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < key.count { tail |= UInt64(key[i]) << shift; shift += 8; i += 1 }
            h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        }
        return h ^ (h >> 29)
    }

    @inline(__always)
    func slot(_ hash: UInt64) -> UnsafeMutablePointer<UInt64> { slots + Int(hash & mask) }

    @inline(__always)
    func prefetchSlot(_ hash: UInt64) { plinth_prefetch(slot(hash)) }

    /// The hinted value's address for `hash` (its page, and its line in
    /// the page), or nil.
    @inline(__always)
    func value(_ hash: UInt64, mapBase: UInt) -> UInt? {
        let entry = plinth_load_relaxed(slot(hash))
        guard entry != 0, entry >> 46 == hash >> 46 else { return nil }
        let page = UInt(entry & 0xFF_FFFF_FFFF)
        let line = UInt((entry >> 40) & 0x3F)
        return mapBase &+ page &* UInt(pageSize) &+ line &* 64
    }

    /// Records that the key of `hash` was found at `value` (inside the map).
    @inline(__always)
    func remember(_ hash: UInt64, value: UnsafeRawPointer, mapBase: UInt) {
        let offset = UInt(bitPattern: value) &- mapBase
        let page = UInt64(offset / UInt(pageSize))
        guard page != 0, page < (1 << 40) else { return }
        let line = UInt64((offset % UInt(pageSize)) / 64) & 0x3F
        let entry = (hash >> 46) << 46 | line << 40 | page
        let s = slot(hash)
        if plinth_load_relaxed(s) != entry { plinth_store_relaxed(s, entry) }
    }

    /// Prefetches the first line of the page holding `value` (its header,
    /// and the first node offsets).
    @inline(__always)
    func prefetchHead(_ value: UInt) {
        plinth_prefetch(UnsafeRawPointer(bitPattern: value & ~UInt(pageSize - 1)))
    }

    /// Prefetches the rest of the lines a search of the page holding
    /// `value` is likely to touch: the node offsets after the header line,
    /// the nodes around the value (a binary search's last probes), and the
    /// page's quarters (its first probes, where nodes were written in key
    /// order). Not the whole page: in a batch of a hundred keys that much
    /// traffic evicts the branch pages every search walks through.
    @inline(__always)
    func prefetchAround(_ value: UInt) {
        let page = value & ~UInt(pageSize - 1)
        guard let start = UnsafeRawPointer(bitPattern: page) else { return }
        plinth_prefetch(start + 64)
        let at = Int(value - page) & ~63
        var line = max(128, at - 3 * 64)
        let last = min(pageSize - 64, at + 4 * 64)
        while line <= last { plinth_prefetch(start + line); line += 64 }
        plinth_prefetch(start + pageSize / 4)
        plinth_prefetch(start + pageSize / 2)
        plinth_prefetch(start + 3 * pageSize / 4)
    }
}

extension LeafHints {
    /// Fills the hints from a scan of `table`, so that batched reads after a
    /// restart prefetch from the start: at most `limit` rows (more than the
    /// slots only overwrite each other), in chunks of short read
    /// transactions, because one long one would pin pages writers want back.
    /// Stops early, returning what it filled, when the environment closes.
    /// - Returns: the rows visited.
    @discardableResult
    public func fill(from table: Table, in environment: Environment, limit: Int, chunk: Int = 65_536) -> Int {
        var visited = 0
        var next: [UInt8] = []
        while visited < limit {
            let chunkStart = visited
            let more: Bool
            do {
                more = try environment.read { txn in
                    let base = mapBase(txn.txn)
                    var last: [UInt8] = []
                    var seen = 0
                    try txn.scan(table, from: next) { key, value in
                        if let address = value.baseAddress { remember(Self.hash(key), value: address, mapBase: base) }
                        seen += 1
                        if seen == chunk || chunkStart + seen == limit {
                            last = Array(key)
                            return false
                        }
                        return true
                    }
                    visited += seen
                    // The next chunk starts just after this one's last key.
                    next = last + [0]
                    return !last.isEmpty
                }
            } catch {
                return visited
            }
            if !more { break }
        }
        return visited
    }
}
