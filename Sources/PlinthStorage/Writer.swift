// Writer: the one thread that writes to LMDB, with group commit.
//
// LMDB allows one write transaction at a time, and each durable commit costs
// a disk sync. The writer drains every request queued since its last commit,
// runs each in its own nested transaction (so one failing request does not
// undo its neighbours), commits once, and only then acknowledges each
// request. An acknowledged write therefore survives kill -9 and, with
// `durable` on, power loss. When the map fills, the whole batch is aborted,
// the map doubles, and the batch runs again.
//
// Durability per request: a `.strict` write is synced before it is
// acknowledged (LMDB's commit: two fdatasyncs). A batch made only of
// `.relaxed` writes commits with MDB_NOSYNC (set with mdb_env_set_flags on
// this thread, the only one that commits, between transactions, which
// lmdb.h allows "at any time"): it is in the file (visible to readers, and it
// survives kill -9, since its pages are in the OS page cache) but not yet on
// the disk. A sync of the whole file (mdb_env_sync force) then follows within
// `syncInterval`, off the writer's thread; any strict commit in between syncs
// it too, since LMDB's commit fdatasyncs the whole data file. A mixed batch
// commits strictly. With `durable` off (--no-sync) nothing is ever synced.
// LMDB's caveat on MDB_NOSYNC holds for relaxed commits: across a system
// crash inside the interval, integrity is kept only on a file system that
// preserves write order (docs/operations.md, Durability).
import CLMDB
import Foundation
import Synchronization

/// How far a write must reach before it is acknowledged.
public enum Durability: String, Sendable, CaseIterable {
    /// On the disk: survives kill -9 and power loss.
    case strict
    /// Committed and visible, survives kill -9; on the disk within the
    /// writer's sync interval (a power loss can lose that last interval).
    case relaxed
}

// Safe: queue state under `lock`, sync state under `syncLock`, atomic counters, the rest writer-thread-only or immutable.
public final class Writer: @unchecked Sendable {
    /// One queued request: `run` writes inside the batch's transaction and
    /// returns what to report after the commit.
    private struct Job {
        let durability: Durability
        let run: (borrowing WriteTransaction) throws -> @Sendable () -> Void
        let fail: @Sendable (any Error) -> Void
    }

    private unowned let environment: Environment
    private let lock = ConditionLock()
    private var queue: [Job] = []
    private var stopping = false
    private var stopped = false
    private var thread: Thread?
    /// Largest number of requests committed together; for tests and metrics.
    public var largestBatch: Int { largestBatchCount.load(ordering: .relaxed) }
    public var commits: Int { commitCount.load(ordering: .relaxed) }
    /// Batches committed without a sync (all their requests `.relaxed`).
    public var relaxedCommits: Int { relaxedCommitCount.load(ordering: .relaxed) }
    // Written by the writer thread alone, read by any: atomics, so a
    // reader (a test, a metric) never races the thread that counts.
    private let largestBatchCount = Atomic<Int>(0)
    private let commitCount = Atomic<Int>(0)
    private let relaxedCommitCount = Atomic<Int>(0)
    private let pollCount = Atomic<Int>(0)
    private let pollsAnsweredCount = Atomic<Int>(0)

    /// Longest a relaxed commit waits for its sync.
    public let syncInterval: Duration
    /// How long the writer keeps looking at its queue after a commit before
    /// it sleeps (zero: it sleeps at once). It polls only while writes come
    /// that soon: after a commit whose first request arrived within this
    /// long of the commit before it.
    public let pollAfterCommit: Duration
    /// Polls done, and those a request ended; for tests and metrics.
    public var polls: Int { pollCount.load(ordering: .relaxed) }
    public var pollsAnswered: Int { pollsAnsweredCount.load(ordering: .relaxed) }
    // Guarded by `lock`: when the queue's oldest request arrived, and when
    // the last commit ended.
    private var firstQueuedAt: ContinuousClock.Instant?
    private var lastCommitEnd: ContinuousClock.Instant?
    // Writer thread only: whether to poll after the current batch.
    private var pollNext = false
    /// Whether MDB_NOSYNC is set now (writer thread only).
    private var noSync: Bool
    // The deferred sync: commit numbers, guarded by `syncLock`.
    private let syncLock = ConditionLock()
    private let syncQueue = DispatchQueue(label: "plinth-writer-sync")
    private var lastRelaxedCommit = 0
    private var syncedThrough = 0
    private var syncScheduled = false
    private var syncing = false
    private var syncStopped = false
    private var deferredSyncCount = 0
    private var syncFailureCount = 0

    init(environment: Environment, syncInterval: Duration, pollAfterCommit: Duration = .zero) {
        self.environment = environment
        self.syncInterval = syncInterval
        self.pollAfterCommit = pollAfterCommit
        noSync = !environment.durable
    }

    /// Deferred syncs done so far (each covers every relaxed commit before it).
    public var deferredSyncs: Int { syncLock.withLock { deferredSyncCount } }
    /// Deferred syncs that failed (each is retried after another interval).
    public var syncFailures: Int { syncLock.withLock { syncFailureCount } }
    /// True while a relaxed commit is not yet known to be on the disk.
    public var syncPending: Bool { syncLock.withLock { lastRelaxedCommit > syncedThrough } }

    private func startIfNeeded() {
        guard thread == nil else { return }
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "plinth-writer"
        self.thread = thread
        thread.start()
    }

    /// Queues `body` to run in the next batch; `completion` is called on the
    /// writer's thread after the batch commits (or with the error that
    /// stopped this request or the commit).
    public func submit<T>(durability: Durability = .strict, _ body: @escaping (borrowing WriteTransaction) throws -> T,
                          completion: @escaping @Sendable (Result<T, any Error>) -> Void) {
        let job = Job(
            durability: durability,
            run: { txn in
                let value = try body(txn)
                nonisolated(unsafe) let result = value
                return { completion(.success(result)) }
            },
            fail: { completion(.failure($0)) })
        lock.lock()
        if stopping {
            lock.unlock()
            completion(.failure(StorageError("the store is shutting down; the write was not applied")))
            return
        }
        startIfNeeded()
        if queue.isEmpty { firstQueuedAt = ContinuousClock.now }
        queue.append(job)
        lock.signal()
        lock.unlock()
    }

    /// Runs `body` in the next batch and waits for its commit.
    /// Threading: never call from the writer's own thread (it would wait forever).
    public func write<T>(durability: Durability = .strict, _ body: @escaping (borrowing WriteTransaction) throws -> T) throws -> T {
        let done = ConditionLock()
        nonisolated(unsafe) var outcome: Result<T, any Error>?
        submit(durability: durability, body) { result in
            done.withLock { outcome = result; done.signal() }
        }
        return try done.withLock { () throws -> T in
            while outcome == nil { done.wait() }
            return try outcome!.get()
        }
    }

    /// Runs `body` in the next batch; returns after its commit.
    public func write<T: Sendable>(durability: Durability = .strict,
                                   _ body: @escaping @Sendable (borrowing WriteTransaction) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit(durability: durability, body) { continuation.resume(with: $0) }
        }
    }

    /// Commits what is queued, then stops the thread and syncs what is
    /// still unsynced. Later writes fail.
    func shutdown() {
        lock.lock()
        stopping = true
        lock.broadcast()
        let running = thread != nil
        while running && !stopped { lock.wait() }
        lock.unlock()
        syncLock.lock()
        syncStopped = true
        while syncing { syncLock.wait() }
        if lastRelaxedCommit > syncedThrough, mdb_env_sync(environment.env, 1) == 0 {
            syncedThrough = lastRelaxedCommit
        }
        syncLock.unlock()
    }

    private func loop() {
        while true {
            lock.lock()
            if queue.isEmpty && !stopping && pollNext {
                lock.unlock()
                pollCount.add(1, ordering: .relaxed)
                if pollQueue() { pollsAnsweredCount.add(1, ordering: .relaxed) }
                lock.lock()
            }
            while queue.isEmpty && !stopping { lock.wait() }
            if queue.isEmpty && stopping {
                stopped = true
                lock.broadcast()
                lock.unlock()
                return
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            // Writes that follow their previous commit this closely are
            // what a poll catches; for slower ones it would only burn CPU.
            if pollAfterCommit > .zero, let first = firstQueuedAt, let end = lastCommitEnd {
                pollNext = first - end < pollAfterCommit
            }
            firstQueuedAt = nil
            lock.unlock()
            runBatch(batch)
            lock.withLock { lastCommitEnd = ContinuousClock.now }
        }
    }

    /// Waits up to `pollAfterCommit` for a request (or a stop) without
    /// sleeping; returns whether one came. A client that writes in a loop
    /// sends its next write a few hundred microseconds after its last was
    /// acknowledged, and waking a sleeping thread cost about 100 µs of a
    /// durable register's 700 on the benchmark machine (a virtual one); the
    /// poll yields the core each time round, so a thread with work takes it
    /// first.
    private func pollQueue() -> Bool {
        let deadline = ContinuousClock.now.advanced(by: pollAfterCommit)
        repeat {
            sched_yield()
            lock.lock()
            let idle = queue.isEmpty && !stopping
            lock.unlock()
            if !idle { return true }
        } while ContinuousClock.now < deadline
        return false
    }

    private func runBatch(_ batch: [Job]) {
        while true {
            do {
                let relaxed = environment.durable && batch.allSatisfy { $0.durability == .relaxed }
                let acks = try commitBatch(batch, relaxed: relaxed)
                let commits = commitCount.add(1, ordering: .relaxed).newValue
                if batch.count > largestBatch { largestBatchCount.store(batch.count, ordering: .relaxed) }
                if relaxed {
                    relaxedCommitCount.add(1, ordering: .relaxed)
                    scheduleSync(through: commits)
                } else if environment.durable {
                    // LMDB's commit fdatasyncs the whole file: earlier relaxed commits too.
                    syncLock.withLock { syncedThrough = commits }
                }
                for ack in acks { ack() }
                return
            } catch let error as StorageError where error.isMapFull {
                do {
                    try environment.grow()
                } catch {
                    for job in batch { job.fail(error) }
                    return
                }
            } catch {
                for job in batch { job.fail(error) }
                return
            }
        }
    }

    /// Runs every job in its own nested transaction and commits the batch.
    /// Returns the acknowledgements of the jobs that succeeded; a job that
    /// threw is told at once. Throws (so the batch is retried or failed) only
    /// when the map is full or the batch itself cannot begin or commit.
    private func commitBatch(_ batch: [Job], relaxed: Bool) throws -> [@Sendable () -> Void] {
        if environment.durable && relaxed != noSync {
            try check(mdb_env_set_flags(environment.env, UInt32(MDB_NOSYNC), relaxed ? 1 : 0), "setting MDB_NOSYNC")
            noSync = relaxed
        }
        var parent: OpaquePointer?
        try check(mdb_txn_begin(environment.env, nil, 0, &parent), "beginning a write transaction")
        guard let parent else { throw StorageError("mdb_txn_begin returned no transaction") }
        var acks: [@Sendable () -> Void] = []
        var failures: [(Job, any Error)] = []
        acks.reserveCapacity(batch.count)
        for job in batch {
            var child: OpaquePointer?
            let rc = mdb_txn_begin(environment.env, parent, 0, &child)
            guard rc == 0, let child else {
                mdb_txn_abort(parent)
                throw StorageError(lmdb: rc, "beginning a nested write transaction")
            }
            do {
                let ack = try job.run(WriteTransaction(txn: child))
                let rc = mdb_txn_commit(child)
                if rc != 0 {
                    mdb_txn_abort(parent)
                    throw StorageError(lmdb: rc, "committing a write")
                }
                acks.append(ack)
            } catch let error as StorageError where error.isMapFull {
                mdb_txn_abort(child)
                mdb_txn_abort(parent)
                throw error
            } catch {
                mdb_txn_abort(child)
                failures.append((job, error))
            }
        }
        let rc = mdb_txn_commit(parent)
        if rc != 0 { throw StorageError(lmdb: rc, "committing a write batch") }
        for (job, error) in failures { job.fail(error) }
        return acks
    }

    /// Records a relaxed commit and makes sure a sync runs within the interval.
    private func scheduleSync(through commit: Int) {
        syncLock.withLock {
            lastRelaxedCommit = commit
            scheduleSyncLocked()
        }
    }

    /// Threading: with `syncLock` held.
    private func scheduleSyncLocked() {
        guard !syncScheduled, !syncStopped else { return }
        syncScheduled = true
        let parts = syncInterval.components
        let nanoseconds = parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000
        syncQueue.asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) { [weak self] in self?.deferredSync() }
    }

    /// Syncs the whole environment, off the writer's thread: commits go on
    /// meanwhile, and the sync covers every commit that finished before it.
    private func deferredSync() {
        syncLock.lock()
        defer { syncLock.unlock() }
        syncScheduled = false
        guard !syncStopped, lastRelaxedCommit > syncedThrough else { return }
        let target = lastRelaxedCommit
        syncing = true
        syncLock.unlock()
        let rc = mdb_env_sync(environment.env, 1)
        syncLock.lock()
        syncing = false
        if rc == 0 {
            syncedThrough = max(syncedThrough, target)
            deferredSyncCount += 1
        } else {
            syncFailureCount += 1
        }
        syncLock.broadcast()
        // Commits made during the sync, or a failed sync, get another interval.
        if lastRelaxedCommit > syncedThrough { scheduleSyncLocked() }
    }
}
