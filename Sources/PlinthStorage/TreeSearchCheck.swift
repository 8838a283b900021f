// TreeSearchCheck: whether an environment's batched reads may use the B-tree
// walk (TreeSearch.swift). The walk reads LMDB's pages by their documented
// layout, not through LMDB's API, so it is not trusted on faith: the first
// batched read of a table with rows compares the walk with mdb_get on a
// sample of that table's keys, and one difference turns the walk off for
// the whole environment, with a log line, for as long as it stays open.
// The `treeSearch` option (plinthd's `online_tree_search`) turns it off by
// hand. Off, every read is an mdb_get: slower for large batches, never
// wrong.
import CLMDB

/// The walk's state in one environment, kept in `Environment.treeSearchState`.
enum TreeSearchState: UInt8 {
    /// Not settled yet (no table with rows was read in a batch): the next
    /// batched read checks a sample first.
    case unchecked
    /// A sample agreed with mdb_get.
    case on
    /// Turned off by the option or by a sample that disagreed.
    case off
}

extension Environment {
    /// Whether batched reads may walk the tree: false once the option or a
    /// failed sample check turned the walk off.
    package var treeSearchEnabled: Bool {
        treeSearchState.load(ordering: .relaxed) != TreeSearchState.off.rawValue
    }

    /// Records the outcome of a sample check on `table`; nil `problem`:
    /// the walk agreed. Only the first outcome counts, and only a problem
    /// is logged, once.
    func settleTreeSearch(_ table: Table, problem: String?) {
        let desired = problem == nil ? TreeSearchState.on : .off
        let (exchanged, _) = treeSearchState.compareExchange(
            expected: TreeSearchState.unchecked.rawValue, desired: desired.rawValue, ordering: .relaxed)
        if exchanged, let problem {
            log("the B-tree walk of table '\(table.name)' \(problem); it is off for this data directory "
                + "until plinthd restarts and batched reads use mdb_get (online_tree_search: false keeps it off)")
        }
    }
}

extension ReadTransaction {
    /// Keys of a table compared by the check: enough to reach most pages of
    /// a small table and many leaves of a large one, few enough that the
    /// check costs one batched read of a few hundred keys.
    static let treeSearchSample = 64

    /// The walk's root of `table`; nil while the walk is off in this
    /// environment or cannot read this table.
    @inline(__always)
    func treeRoot(_ table: Table) throws -> TreeRoot? {
        switch environment.treeSearchState.load(ordering: .relaxed) {
        case TreeSearchState.on.rawValue: return TreeRoot.of(table, in: self)
        case TreeSearchState.off.rawValue: return nil
        default: return try checkTreeSearch(table)
        }
    }

    /// Checks the walk against mdb_get on a sample of `table` and settles
    /// the environment's state; the root when the walk may be used.
    func checkTreeSearch(_ table: Table) throws -> TreeRoot? {
        guard let tree = TreeRoot.of(table, in: self) else { return nil }
        let sample = try sampleKeys(table)
        // An empty table has nothing to compare; the walk answers "absent"
        // without reading a page, so it may run, and the next read checks.
        guard !sample.isEmpty else { return tree }
        environment.settleTreeSearch(table, problem: try treeSearchProblem(tree, table, sample))
        return environment.treeSearchState.load(ordering: .relaxed) == TreeSearchState.on.rawValue ? tree : nil
    }

    /// What differs between the walk from `tree` and mdb_get on `sample`,
    /// each key asked as itself, with a zero byte appended and without its
    /// last byte (neighbours in the tree, mostly absent); nil: nothing.
    func treeSearchProblem(_ tree: TreeRoot, _ table: Table, _ sample: [[UInt8]]) throws -> String? {
        var keys: [[UInt8]] = []
        for key in sample {
            keys.append(key)
            keys.append(key + [0])
            if key.count > 1 { keys.append(Array(key.dropLast())) }
        }
        var bytes: [UInt8] = []
        var ends: [Int] = []
        for key in keys {
            bytes += key
            ends.append(bytes.count)
        }
        var walked = [UnsafeRawBufferPointer?](repeating: nil, count: keys.count)
        let txn = self.txn
        let ran = try bytes.withUnsafeBytes { raw in
            try walked.withUnsafeMutableBufferPointer { out in
                try tree.search(count: keys.count, key: { i in
                    UnsafeRawBufferPointer(rebasing: raw[(i == 0 ? 0 : ends[i - 1])..<ends[i]])
                }, fallback: { try PlinthStorage.get(txn, table, $0) }, into: out)
            }
        }
        guard ran else { return "gave up on a sample of \(keys.count) keys (a page not laid out as LMDB 0.9 has it)" }
        for (i, key) in keys.enumerated() {
            let plain = try key.withUnsafeBytes { try PlinthStorage.get(txn, table, $0) }
            if plain.map({ [UInt8]($0) }) != walked[i].map({ [UInt8]($0) }) {
                return "disagreed with mdb_get on \(plain == nil ? "an absent" : "a stored") key of a sample of \(keys.count)"
            }
        }
        return nil
    }

    /// Up to `treeSearchSample` stored keys spread over `table`: the first
    /// and last, and the first key at or after points spaced evenly between
    /// them (on the two bytes after their common prefix).
    func sampleKeys(_ table: Table) throws -> [[UInt8]] {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(self.txn, table.dbi, &cursor), "opening a cursor on \(table.name)")
        defer { mdb_cursor_close(cursor) }
        func position(_ op: MDB_cursor_op, at probe: [UInt8] = []) throws -> [UInt8]? {
            try probe.withUnsafeBytes { raw in
                var key = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
                var data = MDB_val()
                let rc = mdb_cursor_get(cursor, &key, &data, op)
                if rc == MDB_NOTFOUND { return nil }
                try check(rc, "sampling keys of \(table.name)")
                return Array(UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size))
            }
        }
        guard let first = try position(MDB_FIRST), let last = try position(MDB_LAST) else { return [] }
        var sample = [first]
        if first == last { return sample }
        let common = zip(first, last).prefix { $0 == $1 }.count
        func twoBytes(_ key: [UInt8]) -> Int {
            (common < key.count ? Int(key[common]) << 8 : 0) | (common + 1 < key.count ? Int(key[common + 1]) : 0)
        }
        let low = twoBytes(first), high = twoBytes(last)
        let points = Self.treeSearchSample - 2
        for i in 1...points {
            let value = low + (high - low) * i / (points + 1)
            let probe = Array(first.prefix(common)) + [UInt8(value >> 8), UInt8(value & 0xFF)]
            if let key = try position(MDB_SET_RANGE, at: probe), key != sample.last, key != last {
                sample.append(key)
            }
        }
        sample.append(last)
        return sample
    }
}
