// StreamWindow: backpressure for streamed answers. A worker producing a
// long stream (BatchPredict chunks, historical-feature frames, artifact
// downloads) would otherwise queue every part in memory when the client
// reads slower than the server produces. Each connection has one window of
// unwritten streamed bytes; a worker waits for room before it hands over
// the next part, and the room comes back as the socket takes the bytes.
import Foundation
import NIOPosix

// Safe: `queued`, `closed` and `waiting` are read and written only under `condition`.
final class StreamWindow: @unchecked Sendable {
    private let condition = NSCondition()
    private let limit: Int
    /// Streamed bytes handed to the connection and not yet written to the socket.
    private var queued = 0
    private var closed = false
    /// Producers waiting for room now (tests wait for one to be there).
    private var waiting = 0

    /// - Parameter limit: the bytes a connection's streams may have queued;
    ///   one part larger than it is still let through when nothing is queued.
    init(limit: Int) {
        self.limit = limit
    }

    /// Waits until `bytes` more fit, then counts them as queued. Never waits
    /// on an event loop thread (the room is given back on that thread), nor
    /// once the connection has closed.
    func reserve(_ bytes: Int) {
        let mayWait = MultiThreadedEventLoopGroup.currentEventLoop == nil
        condition.lock()
        while mayWait && !closed && queued > 0 && queued + bytes > limit {
            waiting += 1
            condition.wait()
            waiting -= 1
        }
        queued += bytes
        condition.unlock()
    }

    /// `bytes` reserved earlier were written (or will never be: the
    /// connection failed).
    func written(_ bytes: Int) {
        condition.lock()
        queued -= bytes
        condition.broadcast()
        condition.unlock()
    }

    /// The connection is gone: nobody waits any more.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Whether the connection is gone: a producer can stop early.
    var isClosed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed
    }

    /// Producers waiting for room now (tests).
    var waitingProducers: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting
    }

    /// Bytes queued now (tests).
    var queuedBytes: Int {
        condition.lock()
        defer { condition.unlock() }
        return queued
    }
}
