// Locks: thin owners of pthread mutexes, read-write locks and conditions.
// PlinthStorage has no NIO dependency, and the read path needs a read-write
// lock (map growth remaps the file under every reader), which the standard
// library does not offer.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A mutual-exclusion lock with a condition variable.
///
/// Threading: any thread may lock; `wait` must be called with the lock held.
// Safe: the pthread objects are allocated once in init and used only through pthread calls.
public final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
    /// Atomically releases the lock and waits for a signal; holds it again on return.
    public func wait() { pthread_cond_wait(cond, mutex) }
    public func signal() { pthread_cond_signal(cond) }
    public func broadcast() { pthread_cond_broadcast(cond) }

    @inline(__always)
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A readers-writer lock: many readers or one writer.
// Safe: the pthread object is allocated once in init and used only through pthread calls.
public final class ReadWriteLock: @unchecked Sendable {
    private let rw = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    public init() { pthread_rwlock_init(rw, nil) }

    deinit {
        pthread_rwlock_destroy(rw)
        rw.deallocate()
    }

    @inline(__always)
    public func withReadLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(rw)
        defer { pthread_rwlock_unlock(rw) }
        return try body()
    }

    /// Takes the lock shared, for a reader that releases it in another call.
    @inline(__always)
    public func lockShared() { pthread_rwlock_rdlock(rw) }

    @inline(__always)
    public func unlock() { pthread_rwlock_unlock(rw) }

    public func withWriteLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(rw)
        defer { pthread_rwlock_unlock(rw) }
        return try body()
    }
}
