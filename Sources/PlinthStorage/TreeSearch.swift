// TreeSearch: batched point reads that walk LMDB's B-tree themselves, eight
// keys abreast, so that the cache misses of different keys overlap.
//
// A point read of a large table is bound by memory latency: mdb_get goes
// root, branch, branch, leaf, and on each page its binary search touches
// one node after another, every touch a likely cache miss that waits for
// the one before. A batch of reads knows all its keys up front. Searching
// eight of them in lock step (one probe of each key per round, with the
// next probe's node prefetched) keeps eight misses in flight instead of
// one: 1,000,000 rows, batches of 100 random keys, 790 ns per key with
// mdb_get against 390 ns here (Benchmarks/online/lookup-latency.c).
//
// The walk reads LMDB 0.9's page format (mdb.c), read-only, from the read
// transaction's own root: every page reachable from a snapshot's root stays
// as it is while the snapshot is open, which is what makes mdb_get's own
// reads safe. It follows mdb_node_search and mdb_page_search_root exactly
// (keys compared as memcmp then length, LMDB's default order), and it
// gives up, so that the caller uses mdb_get, whenever anything is not as
// that format has it: another major version of LMDB, a table with special
// key order, a page that is neither branch nor leaf, a child outside the
// map, a tree deeper than its record says. A value in overflow pages (a row
// over about 2 KiB) is read with mdb_get, key by key.
//
// It takes a `ReadTransaction`, never a raw MDB_txn: a write transaction
// changes its dirty pages in place, under the walk. And it is checked
// against mdb_get on a sample of the table before it is trusted, and can
// be turned off (TreeSearchCheck.swift).
import CLMDB
#if canImport(Glibc)
import Glibc
#endif

/// Where a table's tree starts in one read transaction's snapshot.
struct TreeRoot {
    /// The address of page 0.
    let base: UnsafeRawPointer
    let pageSize: Int
    /// Pages in the map: no child may be at or past it.
    let pageLimit: UInt64
    let root: UInt64
    let depth: Int

    // LMDB 0.9's layout (mdb.c): MDB_page is pgno (8 bytes), pad (2), flags
    // (2), lower (2), upper (2), then the node offsets; MDB_node is lo, hi,
    // flags, ksize (2 bytes each), then the key and the data. A branch
    // node's child page number is lo | hi << 16 | flags << 32; a leaf
    // node's data size is lo | hi << 16.
    static let pageHeader = 16
    static let branchFlag: UInt16 = 0x01
    static let leafFlag: UInt16 = 0x02
    /// Leaf node flags: the data is elsewhere (overflow pages, a sub-tree,
    /// duplicates), so mdb_get reads it.
    static let indirectData: UInt16 = 0x01 | 0x02 | 0x04
    static let invalidPage = UInt64.max
    /// LMDB's main table (MAIN_DBI), valid in every transaction. Not opened
    /// with mdb_dbi_open(nil) here: that call writes the environment's
    /// shared comparator slot, and reads run on several threads at once.
    /// Opening `table` (Environment.table) already set the main table up.
    static let mainTable: MDB_dbi = 1

    /// The root of `table` as `txn` sees it; nil when this walk cannot be
    /// used there (see the file's comment). `empty` when the table has no
    /// rows (no key is found).
    static func of(_ table: Table, in transaction: borrowing ReadTransaction) -> TreeRoot? {
        guard supported else { return nil }
        let txn = transaction.txn
        // A named table's record in the main table is its MDB_db: pad (4),
        // flags (2), depth (2), page and entry counts (4 x 8), root (8).
        var record = MDB_val()
        let found = table.name.utf8CString.withUnsafeBufferPointer { name in
            var key = MDB_val(mv_size: name.count - 1, mv_data: UnsafeMutableRawPointer(mutating: name.baseAddress))
            return mdb_get(txn, mainTable, &key, &record)
        }
        guard found == 0, record.mv_size == 48, let at = record.mv_data.map(UnsafeRawPointer.init) else { return nil }
        let flags = at.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        let depth = Int(at.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        let root = at.loadUnaligned(fromByteOffset: 40, as: UInt64.self)
        // Flags other than none change the key order or the node layout.
        guard flags == 0 else { return nil }
        var stat = MDB_stat()
        var info = MDB_envinfo()
        let env = mdb_txn_env(txn)
        guard mdb_env_stat(env, &stat) == 0, mdb_env_info(env, &info) == 0 else { return nil }
        let pageSize = Int(stat.ms_psize)
        guard pageSize >= 512, pageSize & (pageSize - 1) == 0 else { return nil }
        // The record sits in a leaf page of the main table, whose header
        // holds its page number: page 0 is that many pages before it.
        let page = UInt(bitPattern: at) & ~UInt(pageSize - 1)
        guard let header = UnsafeRawPointer(bitPattern: page) else { return nil }
        let number = header.loadUnaligned(as: UInt64.self)
        let pageLimit = UInt64(info.me_mapsize / pageSize)
        guard number < pageLimit, header.loadUnaligned(fromByteOffset: 10, as: UInt16.self) & leafFlag != 0,
              let base = UnsafeRawPointer(bitPattern: page - UInt(number) * UInt(pageSize)) else { return nil }
        if root != invalidPage { guard root < pageLimit, depth > 0 else { return nil } }
        return TreeRoot(base: base, pageSize: pageSize, pageLimit: pageLimit, root: root, depth: depth)
    }

    /// The page format above is LMDB 0.9's; another major version may
    /// change it.
    static let supported: Bool = {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        _ = mdb_version(&major, &minor, &patch)
        return major == 0 && minor == 9 && MemoryLayout<Int>.size == 8
    }()

    var isEmpty: Bool { root == TreeRoot.invalidPage }

    @inline(__always)
    func page(_ number: UInt64) -> UnsafeRawPointer { base + Int(number) * pageSize }
}

/// One page of the walk.
private struct PageView {
    let start: UnsafeRawPointer

    @inline(__always) var flags: UInt16 { start.loadUnaligned(fromByteOffset: 10, as: UInt16.self) }
    @inline(__always) var count: Int { (Int(start.loadUnaligned(fromByteOffset: 12, as: UInt16.self)) - TreeRoot.pageHeader) >> 1 }
    @inline(__always) func node(_ i: Int) -> UnsafeRawPointer {
        start + Int(start.loadUnaligned(fromByteOffset: TreeRoot.pageHeader + 2 * i, as: UInt16.self))
    }
}

/// LMDB's default key order: bytes, then length.
@inline(__always)
private func compare(_ key: UnsafeRawBufferPointer, node: UnsafeRawPointer) -> Int32 {
    let size = Int(node.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
    let common = min(key.count, size)
    if common > 0, let bytes = key.baseAddress {
        let c = memcmp(bytes, node + 8, common)
        if c != 0 { return c }
    }
    return key.count < size ? -1 : (key.count > size ? 1 : 0)
}

extension TreeRoot {
    /// Keys searched abreast: enough misses in flight to cover a memory
    /// latency, few enough that their lines stay in the first-level cache.
    static let lanes = 8

    /// Looks up `count` keys (`key(i)`, none empty) and stores each value,
    /// or nil, in `found`. Values in overflow pages come from `fallback`.
    /// False, with `found` in an unspecified state, when a page is not as
    /// the format has it: the caller then reads every key with mdb_get.
    func search(count: Int, key: (Int) -> UnsafeRawBufferPointer,
                fallback: (UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer?,
                into found: UnsafeMutableBufferPointer<UnsafeRawBufferPointer?>) rethrows -> Bool {
        if isEmpty {
            for i in 0..<count { found[i] = nil }
            return true
        }
        let lanes = TreeRoot.lanes
        return try withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * lanes) { state in
            try withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: lanes) { pages in
                let low = UnsafeMutableBufferPointer(rebasing: state[0..<lanes])
                let high = UnsafeMutableBufferPointer(rebasing: state[lanes..<(2 * lanes)])
                let exact = UnsafeMutableBufferPointer(rebasing: state[(2 * lanes)...])
                var first = 0
                while first < count {
                    let group = min(lanes, count - first)
                    guard try searchGroup(first: first, lanes: group, key: key, fallback: fallback, into: found,
                                          pages: pages, low: low, high: high, exact: exact) else { return false }
                    first += group
                }
                return true
            }
        }
    }

    @inline(__always)
    private func searchGroup(first: Int, lanes: Int, key: (Int) -> UnsafeRawBufferPointer,
                             fallback: (UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer?,
                             into found: UnsafeMutableBufferPointer<UnsafeRawBufferPointer?>,
                             pages: UnsafeMutableBufferPointer<UnsafeRawPointer>,
                             low: UnsafeMutableBufferPointer<Int>, high: UnsafeMutableBufferPointer<Int>,
                             exact: UnsafeMutableBufferPointer<Int>) rethrows -> Bool {
        let rootPage = page(root)
        for j in 0..<lanes { pages[j] = rootPage }
        var level = 0
        while true {
            level += 1
            guard level <= depth else { return false }
            let flags = PageView(start: pages[0]).flags
            let leaf = flags == TreeRoot.leafFlag
            guard leaf || flags == TreeRoot.branchFlag else { return false }
            // mdb_node_search: the first node whose key is >= the key; a
            // branch page's node 0 has no key (it stands for everything
            // below node 1).
            var active = 0
            for j in 0..<lanes {
                let view = PageView(start: pages[j])
                guard view.flags == flags else { return false }
                low[j] = leaf ? 0 : 1
                high[j] = view.count - 1
                exact[j] = 0
                if low[j] <= high[j] {
                    active += 1
                    plinth_prefetch(view.node((low[j] + high[j]) >> 1))
                }
            }
            while active > 0 {
                active = 0
                for j in 0..<lanes where low[j] <= high[j] {
                    let view = PageView(start: pages[j])
                    let middle = (low[j] + high[j]) >> 1
                    let c = compare(key(first + j), node: view.node(middle))
                    if c == 0 {
                        low[j] = middle
                        high[j] = middle - 1
                        exact[j] = 1
                        continue
                    }
                    if c > 0 { low[j] = middle + 1 } else { high[j] = middle - 1 }
                    if low[j] <= high[j] {
                        active += 1
                        plinth_prefetch(view.node((low[j] + high[j]) >> 1))
                    }
                }
            }
            if leaf {
                for j in 0..<lanes {
                    guard exact[j] != 0 else { found[first + j] = nil; continue }
                    let node = PageView(start: pages[j]).node(low[j])
                    let nodeFlags = node.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
                    if nodeFlags & TreeRoot.indirectData != 0 {
                        found[first + j] = try fallback(key(first + j))
                        continue
                    }
                    let keySize = Int(node.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
                    let size = Int(node.loadUnaligned(as: UInt16.self)) | Int(node.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) << 16
                    guard node - pages[j] + 8 + keySize + size <= pageSize else { return false }
                    found[first + j] = UnsafeRawBufferPointer(start: node + 8 + keySize, count: size)
                }
                return true
            }
            // mdb_page_search_root: the exact node, else the one before the
            // first greater one (the last one when none is greater).
            for j in 0..<lanes {
                let view = PageView(start: pages[j])
                var i = low[j]
                if exact[j] == 0 { i -= 1 }
                guard i >= 0, i < view.count else { return false }
                let node = view.node(i)
                let child = UInt64(node.loadUnaligned(as: UInt16.self))
                    | UInt64(node.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) << 16
                    | UInt64(node.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) << 32
                guard child < pageLimit else { return false }
                pages[j] = page(child)
                plinth_prefetch(pages[j])
            }
        }
    }
}
