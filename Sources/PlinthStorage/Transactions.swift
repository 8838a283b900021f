// Transactions: the read-only and read-write views of the environment that
// the rest of Plinth uses. Both are borrowed for the length of a closure;
// every buffer they hand out points into LMDB's map and is valid only until
// the closure returns (or, in a write transaction, until the next write).
import CLMDB

@inline(__always)
func withVal<T>(_ bytes: UnsafeRawBufferPointer, _ body: (inout MDB_val) throws -> T) rethrows -> T {
    var val = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
    return try body(&val)
}

@inline(__always)
func get(_ txn: OpaquePointer, _ table: Table, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
    var data = MDB_val()
    let rc = withVal(key) { mdb_get(txn, table.dbi, &$0, &data) }
    if rc == MDB_NOTFOUND { return nil }
    try check(rc, "reading \(table.name)")
    return UnsafeRawBufferPointer(start: data.mv_data, count: data.mv_size)
}

/// A consistent read-only snapshot.
///
/// Only `Environment.read` makes one, so code that takes a
/// `ReadTransaction` (the B-tree walk in TreeSearch.swift above all) cannot
/// be handed a write transaction, whose pages change under it.
public struct ReadTransaction: ~Copyable {
    let txn: OpaquePointer
    /// Whether the batched read may walk the tree (TreeSearchCheck.swift).
    /// Unowned without a reference count: a transaction lives inside its
    /// environment's `read`, which holds the environment.
    unowned(unsafe) let environment: Environment

    /// The value stored under `key`, or nil. Zero-copy: valid until the read ends.
    @inline(__always)
    public func get(_ table: Table, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        try PlinthStorage.get(txn, table, key)
    }

    public func get(_ table: Table, _ key: [UInt8]) throws -> UnsafeRawBufferPointer? {
        try key.withUnsafeBytes { (raw) throws in try PlinthStorage.get(txn, table, raw) }
    }

    /// Reads `ends.count` keys, stored back to back from `keys` (key i ends
    /// at `ends[i]`), into `found` (nil: absent; an empty key reads as
    /// absent). Several keys are searched abreast down the tree
    /// (TreeSearch.swift) while the environment's walk is on, with mdb_get
    /// wherever that walk does not apply.
    /// - Returns: whether the walk answered (false: every key went to mdb_get).
    @discardableResult
    package func get(_ table: Table, keys: UnsafeRawPointer, ends: UnsafeBufferPointer<Int>,
                     into found: UnsafeMutableBufferPointer<UnsafeRawBufferPointer?>) throws -> Bool {
        let n = ends.count
        let txn = self.txn
        precondition(found.count >= n, "get(keys:): found has room for \(found.count) of \(n) values")
        @inline(__always) func key(_ i: Int) -> UnsafeRawBufferPointer {
            let start = i == 0 ? 0 : ends[i - 1]
            return UnsafeRawBufferPointer(start: keys + start, count: ends[i] - start)
        }
        // An empty key matches no node in the walk, as it reads as absent here.
        if n > 1, let tree = try treeRoot(table),
           try tree.search(count: n, key: key, fallback: { try PlinthStorage.get(txn, table, $0) }, into: found) {
            return true
        }
        for i in 0..<n { found[i] = key(i).isEmpty ? nil : try PlinthStorage.get(txn, table, key(i)) }
        return false
    }

    /// Visits keys from the first one >= `start` while `body` returns true.
    public func scan(_ table: Table, from start: [UInt8],
                     _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try PlinthStorage.scan(txn, table, from: start, body)
    }
}

func scan(_ txn: OpaquePointer, _ table: Table, from start: [UInt8],
          _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
    var cursor: OpaquePointer?
    try check(mdb_cursor_open(txn, table.dbi, &cursor), "opening a cursor on \(table.name)")
    defer { mdb_cursor_close(cursor) }
    var key = MDB_val()
    var data = MDB_val()
    var rc: Int32 = start.withUnsafeBytes { raw in
        withVal(raw) { startVal in
            if raw.isEmpty { return mdb_cursor_get(cursor, &key, &data, MDB_FIRST) }
            key = startVal
            return mdb_cursor_get(cursor, &key, &data, MDB_SET_RANGE)
        }
    }
    while rc == 0 {
        let k = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
        let v = UnsafeRawBufferPointer(start: data.mv_data, count: data.mv_size)
        if try !body(k, v) { return }
        rc = mdb_cursor_get(cursor, &key, &data, MDB_NEXT)
    }
    if rc != MDB_NOTFOUND { try check(rc, "scanning \(table.name)") }
}

/// The single read-write transaction of a write batch.
///
/// Threading: used only on the writer's thread, inside a `Writer` job.
public struct WriteTransaction: ~Copyable {
    let txn: OpaquePointer

    public func get(_ table: Table, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        try PlinthStorage.get(txn, table, key)
    }

    public func get(_ table: Table, _ key: [UInt8]) throws -> UnsafeRawBufferPointer? {
        try key.withUnsafeBytes { (raw) throws in try PlinthStorage.get(txn, table, raw) }
    }

    public func put(_ table: Table, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        var data = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        let rc = withVal(key) { mdb_put(txn, table.dbi, &$0, &data, 0) }
        try check(rc, "writing \(table.name)")
    }

    /// Puts `key` at the end of the table (MDB_APPEND: no B-tree descent,
    /// pages filled full), for keys that arrive in order. Returns false,
    /// writing nothing, when `key` does not sort after the table's last key;
    /// the caller then uses `put`.
    public func append(_ table: Table, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool {
        var data = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        let rc = withVal(key) { mdb_put(txn, table.dbi, &$0, &data, UInt32(MDB_APPEND)) }
        if rc == MDB_KEYEXIST { return false }
        try check(rc, "appending to \(table.name)")
        return true
    }

    public func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws {
        try key.withUnsafeBytes { (k) throws in
            try value.withUnsafeBytes { (v) throws in try put(table, k, v) }
        }
    }

    /// Deletes `key`; returns false when it was not there.
    @discardableResult
    public func delete(_ table: Table, _ key: [UInt8]) throws -> Bool {
        let rc = key.withUnsafeBytes { raw in withVal(raw) { mdb_del(txn, table.dbi, &$0, nil) } }
        if rc == MDB_NOTFOUND { return false }
        try check(rc, "deleting from \(table.name)")
        return true
    }

    public func scan(_ table: Table, from start: [UInt8],
                     _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try PlinthStorage.scan(txn, table, from: start, body)
    }
}
