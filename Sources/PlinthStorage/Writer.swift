// Writer: the one thread that writes to LMDB, with group commit.
//
// LMDB allows one write transaction at a time, and each durable commit costs
// a disk sync. The writer drains every request queued since its last commit,
// runs each in its own nested transaction (so one failing request does not
// undo its neighbours), commits once, and only then acknowledges each
// request. An acknowledged write therefore survives kill -9 and, with
// `durable` on, power loss. When the map fills, the whole batch is aborted,
// the map doubles, and the batch runs again.
import CLMDB
import Foundation

public final class Writer: @unchecked Sendable {
    /// One queued request: `run` writes inside the batch's transaction and
    /// returns what to report after the commit.
    private struct Job {
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
    public private(set) var largestBatch = 0
    public private(set) var commits = 0

    init(environment: Environment) {
        self.environment = environment
    }

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
    public func submit<T>(_ body: @escaping (borrowing WriteTransaction) throws -> T,
                          completion: @escaping @Sendable (Result<T, any Error>) -> Void) {
        let job = Job(
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
        queue.append(job)
        lock.signal()
        lock.unlock()
    }

    /// Runs `body` in the next batch and waits for its commit.
    /// Threading: never call from the writer's own thread (it would wait forever).
    public func write<T>(_ body: @escaping (borrowing WriteTransaction) throws -> T) throws -> T {
        let done = ConditionLock()
        nonisolated(unsafe) var outcome: Result<T, any Error>?
        submit(body) { result in
            done.withLock { outcome = result; done.signal() }
        }
        return try done.withLock { () throws -> T in
            while outcome == nil { done.wait() }
            return try outcome!.get()
        }
    }

    /// Runs `body` in the next batch; returns after its commit.
    public func write<T: Sendable>(_ body: @escaping @Sendable (borrowing WriteTransaction) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit(body) { continuation.resume(with: $0) }
        }
    }

    /// Commits what is queued, then stops the thread. Later writes fail.
    func shutdown() {
        lock.lock()
        stopping = true
        lock.broadcast()
        let running = thread != nil
        while running && !stopped { lock.wait() }
        lock.unlock()
    }

    private func loop() {
        while true {
            lock.lock()
            while queue.isEmpty && !stopping { lock.wait() }
            if queue.isEmpty && stopping {
                stopped = true
                lock.broadcast()
                lock.unlock()
                return
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            lock.unlock()
            runBatch(batch)
        }
    }

    private func runBatch(_ batch: [Job]) {
        while true {
            do {
                let acks = try commitBatch(batch)
                commits += 1
                largestBatch = max(largestBatch, batch.count)
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
    private func commitBatch(_ batch: [Job]) throws -> [@Sendable () -> Void] {
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
}
