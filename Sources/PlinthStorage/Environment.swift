// Environment: one LMDB environment per data directory, its named tables,
// a pool of reusable read transactions, and growth of the memory map.
//
// Reads run on the caller's thread inside `read { }` with a pooled read-only
// transaction (MDB_NOTLS, so a transaction is not tied to a thread and the
// pool needs no thread-local storage); `mdb_txn_renew` makes reuse cheap.
// Writes go through the environment's single `Writer` (group commit).
// Growing the map remaps the file, so readers hold a shared lock and growth
// takes it exclusively.
import CLMDB
import Foundation
import Synchronization

/// A read transaction held across several reads (`Environment.hold`).
public struct HeldRead {
    let txn: OpaquePointer
}

/// A named LMDB database inside an environment.
public struct Table: Sendable, Hashable {
    public let name: String
    let dbi: MDB_dbi
}

// Safe: `pool` under `poolLock`, `tables`/`closed` under `tablesLock`, `open` under `remap`, atomics, else immutable.
public final class Environment: @unchecked Sendable {
    /// How an environment is opened.
    public struct Options: Sendable {
        /// Initial size of the memory map; it doubles whenever it fills.
        public var mapSize: Int = 1 << 30
        public var maxTables: UInt32 = 64
        public var maxReaders: UInt32 = 1024
        /// Sync to disk at every commit (the default). Off trades durability
        /// of the last commits on power loss for speed; `kill -9` loses
        /// nothing either way.
        public var durable: Bool = true
        /// With `durable` on: longest a `.relaxed` write waits for its sync.
        public var relaxedSyncInterval: Duration = .milliseconds(100)
        /// How long the writer polls its queue after a commit before it
        /// sleeps; zero: never. Trades up to this much CPU per commit (the
        /// writer yields while it polls) for the wake-up of the next write.
        public var writerPollAfterCommit: Duration = .zero
        /// Whether batched reads may walk LMDB's B-tree themselves
        /// (TreeSearch.swift); false: every read is an mdb_get. Even when
        /// true, the walk is checked against mdb_get first.
        public var treeSearch = true
        /// Where the storage layer reports what an operator should know (the
        /// walk turned off); nil: a line on stderr.
        public var log: (@Sendable (String) -> Void)?
        public init() {}
    }

    public let path: String
    /// Commits are synced (false: --no-sync, never).
    public let durable: Bool
    let env: OpaquePointer
    private let remap = ReadWriteLock()
    private let poolLock = ConditionLock()
    private var pool: [OpaquePointer] = []
    private var tables: [String: Table] = [:]
    private let tablesLock = ConditionLock()
    private var closed = false
    /// Bytes of the memory map now; it doubles whenever it fills.
    public var mapSize: Int { mapSizeValue.load(ordering: .relaxed) }
    /// Written under `remap`'s write lock (growth); an atomic so that
    /// ServerInfo can read it on any thread without that lock.
    private let mapSizeValue: Atomic<Int>
    /// The walk's state for this environment (TreeSearchCheck.swift).
    let treeSearchState: Atomic<UInt8>
    let log: @Sendable (String) -> Void
    /// Stale reader slots cleared when the environment was opened.
    public let staleReadersCleared: Int

    /// The environment's single writer; every write goes through it.
    public private(set) lazy var writer: Writer = Writer(environment: self, syncInterval: relaxedSyncInterval,
                                                         pollAfterCommit: writerPollAfterCommit)
    private let relaxedSyncInterval: Duration
    private let writerPollAfterCommit: Duration

    /// Opens (creating if needed) the environment in directory `path`.
    public init(path: String, options: Options = Options()) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StorageError("cannot create data directory \(path): \(error.localizedDescription)")
        }
        var handle: OpaquePointer?
        try check(mdb_env_create(&handle), "mdb_env_create")
        guard let handle else { throw StorageError("mdb_env_create returned no environment") }
        self.env = handle
        self.path = path
        self.durable = options.durable
        self.relaxedSyncInterval = options.relaxedSyncInterval
        self.writerPollAfterCommit = options.writerPollAfterCommit
        self.treeSearchState = Atomic((options.treeSearch ? TreeSearchState.unchecked : .off).rawValue)
        self.log = options.log ?? { message in
            FileHandle.standardError.write(Data("plinth storage: \(message)\n".utf8))
        }
        var flags = UInt32(MDB_NOTLS)
        if !options.durable { flags |= UInt32(MDB_NOSYNC) }
        do {
            try check(mdb_env_set_maxdbs(handle, options.maxTables), "mdb_env_set_maxdbs")
            try check(mdb_env_set_maxreaders(handle, options.maxReaders), "mdb_env_set_maxreaders")
            try check(mdb_env_set_mapsize(handle, options.mapSize), "mdb_env_set_mapsize")
            try check(mdb_env_open(handle, path, flags, 0o644), "opening LMDB environment in \(path)")
        } catch {
            mdb_env_close(handle)
            throw error
        }
        // A process killed while reading leaves its reader slot behind, which
        // pins old pages forever; clear such slots before serving.
        var dead: Int32 = 0
        mdb_reader_check(handle, &dead)
        staleReadersCleared = Int(dead)
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        mapSizeValue = Atomic(max(options.mapSize, Int(info.me_mapsize)))
        // Made here, while one thread has the environment: a lazy property
        // first touched on two threads at once would make two writers.
        _ = writer
    }

    deinit { close() }

    /// Stops the writer (after it commits what it has) and closes the environment.
    /// Threading: call once, after every reader is done.
    public func close() {
        let wasClosed = tablesLock.withLock { () -> Bool in
            defer { closed = true }
            return closed
        }
        if wasClosed { return }
        writer.shutdown()
        // Readers hold `remap` shared: this waits for the last one, and the
        // flag keeps later ones out. A request still running on a worker
        // after its connection went (a stream whose client left) then gets
        // an error instead of a closed environment.
        remap.withWriteLock {
            open = false
            poolLock.withLock {
                for txn in pool { mdb_txn_abort(txn) }
                pool.removeAll()
            }
            mdb_env_close(env)
        }
    }

    /// Written under `remap`'s write lock, read under its shared lock.
    private var open = true

    private static func closedError() -> StorageError {
        StorageError("the data directory is closed (plinthd is stopping)")
    }

    /// Opens a named table, creating it if it does not exist.
    /// Whether a table of this name was ever created here (creates nothing).
    public func hasTable(_ name: String) throws -> Bool {
        if tablesLock.withLock({ tables[name] }) != nil { return true }
        return try read { txn in
            var dbi: MDB_dbi = 0
            let rc = mdb_dbi_open(txn.txn, name, 0, &dbi)
            if rc == MDB_NOTFOUND { return false }
            try check(rc, "looking up table \(name)")
            return true
        }
    }

    public func table(_ name: String, integerKeys: Bool = false) throws -> Table {
        if let table = tablesLock.withLock({ tables[name] }) { return table }
        let table = try writer.write { txn -> Table in
            var dbi: MDB_dbi = 0
            var flags = UInt32(MDB_CREATE)
            if integerKeys { flags |= UInt32(MDB_INTEGERKEY) }
            try check(mdb_dbi_open(txn.txn, name, flags, &dbi), "opening table \(name)")
            return Table(name: name, dbi: dbi)
        }
        tablesLock.withLock { tables[name] = table }
        return table
    }

    /// Runs `body` with a read transaction: a consistent snapshot of every
    /// table. Buffers handed out by the transaction are valid only inside `body`.
    ///
    /// Threading: any thread; the transaction must not escape `body`.
    @inline(__always)
    public func read<T>(_ body: (borrowing ReadTransaction) throws -> T) throws -> T {
        try remap.withReadLock {
            guard open else { throw Self.closedError() }
            let txn = try takeReader()
            defer { putBackReader(txn) }
            return try body(ReadTransaction(txn: txn, environment: self))
        }
    }

    /// Takes a read transaction to share between several reads (the online
    /// reads of one event-loop burst, whose requests all arrived before it
    /// was taken); `release` gives it back. Each read through `read(in:)`
    /// then skips the pool, the lock and `mdb_txn_renew`.
    ///
    /// Threading: release it on the same thread, and before that thread
    /// waits for the writer (growing the map waits for every reader).
    package func hold() throws -> HeldRead {
        remap.lockShared()
        do {
            guard open else { throw Self.closedError() }
            return HeldRead(txn: try takeReader())
        } catch {
            remap.unlock()
            throw error
        }
    }

    package func release(_ held: HeldRead) {
        putBackReader(held.txn)
        remap.unlock()
    }

    /// Runs `body` in `held`'s transaction, or in one of its own when nil.
    @inline(__always)
    package func read<T>(in held: HeldRead?, _ body: (borrowing ReadTransaction) throws -> T) throws -> T {
        guard let held else { return try read(body) }
        return try body(ReadTransaction(txn: held.txn, environment: self))
    }

    private func takeReader() throws -> OpaquePointer {
        poolLock.lock()
        if let txn = pool.popLast() {
            poolLock.unlock()
            let rc = mdb_txn_renew(txn)
            if rc == 0 { return txn }
            mdb_txn_abort(txn)
            throw StorageError(lmdb: rc, "renewing a read transaction")
        }
        poolLock.unlock()
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "beginning a read transaction")
        guard let txn else { throw StorageError("mdb_txn_begin returned no transaction") }
        return txn
    }

    private func putBackReader(_ txn: OpaquePointer) {
        mdb_txn_reset(txn)
        poolLock.withLock { pool.append(txn) }
    }

    /// Doubles the map. Waits for every reader to leave first.
    func grow() throws {
        try remap.withWriteLock { () throws in
            let newSize = mapSize * 2
            try check(mdb_env_set_mapsize(env, newSize), "growing the map to \(newSize) bytes")
            mapSizeValue.store(newSize, ordering: .relaxed)
        }
    }

    /// Bytes of the map in use (last page number times the page size).
    public var usedBytes: Int {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        mdb_env_info(env, &info)
        mdb_env_stat(env, &stat)
        return (Int(info.me_last_pgno) + 1) * Int(stat.ms_psize)
    }
}
