// Cursor: a positioned LMDB cursor inside a read transaction, for ordered
// walks that seek many times (the offline face's point-in-time join and
// materialisation). `scan(from:)` opens a cursor per call; a walk that
// visits 100,000 entities would pay that 100,000 times, so it keeps one
// cursor open and alternates `seek` (MDB_SET_RANGE) with `next`.
import CLMDB

/// A cursor over one table, borrowed for the length of `withCursor`.
///
/// Every key and value it hands out points into LMDB's map and is valid
/// until the read transaction ends.
///
/// Threading: used only inside the read transaction's closure.
public struct Cursor: ~Copyable {
    let cursor: OpaquePointer
    public let table: Table

    /// Positions at the first key >= `key`; returns it and its value, or nil
    /// past the end of the table.
    @inline(__always)
    public func seek(_ key: UnsafeRawBufferPointer) throws -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
        return try Self.answer(rc, k, v, table)
    }

    /// Moves to the next key; nil past the end of the table.
    @inline(__always)
    public func next() throws -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        try move(MDB_NEXT)
    }

    /// Moves to the previous key; nil before the start of the table.
    @inline(__always)
    public func previous() throws -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        try move(MDB_PREV)
    }

    /// The greatest key `< key`, and its value; nil when there is none.
    public func lastBefore(_ key: UnsafeRawBufferPointer) throws -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        // Past the end of the table: its last key, if any.
        try seek(key) != nil ? try previous() : try move(MDB_LAST)
    }

    /// One relative move (MDB_NEXT, MDB_PREV, MDB_LAST).
    @inline(__always)
    private func move(_ op: MDB_cursor_op) throws -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        var k = MDB_val()
        var v = MDB_val()
        let rc = mdb_cursor_get(cursor, &k, &v, op)
        return try Self.answer(rc, k, v, table)
    }

    @inline(__always)
    private static func answer(_ rc: Int32, _ k: MDB_val, _ v: MDB_val, _ table: Table) throws
        -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "moving a cursor on \(table.name)")
        return (UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }
}

func withCursor<T>(_ txn: OpaquePointer, _ table: Table, _ body: (borrowing Cursor) throws -> T) throws -> T {
    var handle: OpaquePointer?
    try check(mdb_cursor_open(txn, table.dbi, &handle), "opening a cursor on \(table.name)")
    guard let handle else { throw StorageError("mdb_cursor_open returned no cursor") }
    defer { mdb_cursor_close(handle) }
    return try body(Cursor(cursor: handle, table: table))
}

extension ReadTransaction {
    /// Runs `body` with one cursor on `table`, closed when `body` returns.
    public func withCursor<T>(_ table: Table, _ body: (borrowing Cursor) throws -> T) throws -> T {
        try PlinthStorage.withCursor(txn, table, body)
    }
}

extension WriteTransaction {
    /// Runs `body` with one cursor on `table`; it must not be used after a
    /// write in the same transaction (LMDB may move the pages it points to).
    public func withCursor<T>(_ table: Table, _ body: (borrowing Cursor) throws -> T) throws -> T {
        try PlinthStorage.withCursor(txn, table, body)
    }
}
