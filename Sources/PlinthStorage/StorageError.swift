// StorageError: every failure of the storage layer, with LMDB's code kept so
// callers can tell "full" or "not found" from corruption.
import CLMDB

/// An error from the storage layer. `code` is LMDB's return code (negative
/// for LMDB's own errors, positive errno values otherwise) or 0 when the
/// error did not come from LMDB.
public struct StorageError: Error, CustomStringConvertible, Sendable, Equatable {
    public let code: Int32
    public let message: String

    public init(code: Int32 = 0, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Wraps an LMDB return code, naming the operation that failed.
    public init(lmdb code: Int32, _ operation: String) {
        let reason = String(cString: mdb_strerror(code))
        self.init(code: code, "\(operation): \(reason)")
    }

    public var isMapFull: Bool { code == MDB_MAP_FULL }
    public var description: String { message }
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(StorageError) {
    if rc != 0 { throw StorageError(lmdb: rc, operation()) }
}
