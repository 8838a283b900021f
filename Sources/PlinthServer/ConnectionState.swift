// ConnectionState: the per-connection protocol state machine — handshake,
// authentication, scope checks and quiescing — kept free of I/O so it is
// tested without sockets. The channel handler asks it what to do and
// carries out the answer.
import PlinthWire

struct ConnectionState {
    enum Phase: Equatable {
        /// No Hello yet. Without tokens, requests are served as if a v1
        /// Hello had been sent; with tokens, only the methods open before
        /// Hello are (Hello, Health, ServerLive, ServerReady).
        case awaitingHello
        case ready(scopes: Scope, tokenName: String)
        /// The server is stopping: no new requests, finish the pending ones.
        case quiescing
    }

    /// Whether a request runs.
    enum Admission: Equatable {
        case dispatch
        case refuse(code: Int, message: String)
    }

    /// What the connection must do with its socket next. The state machine
    /// decides; the channel handler carries it out, so every flush and
    /// close decision is tested without a socket.
    enum Action: Equatable {
        /// Nothing now.
        case none
        /// Write and flush the answers in the output buffer now.
        case flush
        /// Flush once the event loop has read every other ready connection
        /// (a burst's answers leave together, as Redis writes its replies
        /// before it sleeps).
        case flushAtEndOfPass
        /// Flush what is written, then close.
        case close
        /// Answer with id 0 and this status after what is written, then close:
        /// after a broken frame the byte stream cannot be resynchronised.
        case closeWithError(code: Int, message: String)
    }

    private(set) var phase: Phase = .awaitingHello
    /// Requests handed to a handler and not yet answered.
    private(set) var pending = 0
    /// True while the handler reads a socket read's frames: answers written
    /// meanwhile wait for one flush at the end.
    private(set) var reading = false
    /// Requests read since the last end of a read pass.
    private(set) var requestsThisPass = 0
    private(set) var flushQueued = false
    private(set) var closing = false
    let tokens: [Token]

    init(tokens: [Token]) { self.tokens = tokens }

    var authRequired: Bool { !tokens.isEmpty }

    /// The name of the token this connection presented; empty without one.
    var tokenName: String {
        if case .ready(_, let name) = phase { return name }
        return ""
    }

    /// The scopes this connection has now.
    var scopes: Scope {
        switch phase {
        case .ready(let scopes, _): scopes
        case .awaitingHello: authRequired ? [] : .all
        case .quiescing: []
        }
    }

    // MARK: Requests

    /// Decides whether a request for `method`, which needs `scope`, runs.
    func admit(_ method: MethodDescriptor, needs scope: Scope) -> Admission {
        if admits(scope: scope, openBeforeHello: method.openBeforeHello) { return .dispatch }
        if case .quiescing = phase { return .refuse(code: StatusCode.unavailable, message: "the server is shutting down") }
        if case .awaitingHello = phase, authRequired {
            return .refuse(code: StatusCode.unauthenticated, message: "this server requires a token: send \(Method.hello) with one first")
        }
        return .refuse(code: StatusCode.permissionDenied,
                       message: "\(method.path) needs the \(scope.names.joined(separator: "+")) scope; this connection has [\(scopes.names.joined(separator: ", "))]")
    }

    /// The check of `admit` without building a refusal (the hot path).
    @inline(__always)
    func admits(_ route: MethodRoute) -> Bool { admits(scope: route.scope, openBeforeHello: route.openBeforeHello) }

    @inline(__always)
    func admits(scope: Scope, openBeforeHello: Bool) -> Bool {
        switch phase {
        case .ready(let scopes, _): scopes.isSuperset(of: scope)
        case .awaitingHello: !authRequired || openBeforeHello
        case .quiescing: false
        }
    }

    /// Handles a Hello; returns the granted scopes and token name or a refusal.
    mutating func hello(version: UInt32, token: String) -> Result<(Scope, String), HelloRefusal> {
        guard version == PlinthProtocol.version else {
            return .failure(HelloRefusal(code: StatusCode.failedPrecondition,
                                         message: "protocol version \(version) is not supported; this server speaks \(PlinthProtocol.version)"))
        }
        if !authRequired {
            phase = .ready(scopes: .all, tokenName: "")
            return .success((.all, ""))
        }
        guard let match = tokens.first(where: { constantTimeEqual($0.secret, token) }) else {
            // A failed Hello revokes what an earlier one granted: the
            // connection must not keep rights its latest token lacks.
            phase = .awaitingHello
            return .failure(HelloRefusal(code: StatusCode.unauthenticated,
                                         message: token.isEmpty ? "this server requires a token in Hello" : "the token is not valid"))
        }
        phase = .ready(scopes: match.scopes, tokenName: match.name)
        return .success((match.scopes, match.name))
    }

    /// A request went to a handler that answers later.
    mutating func started() { pending += 1 }

    // MARK: Reading and writing

    /// A socket read's frames are about to be handled.
    mutating func readStarted() { reading = true }

    /// A request frame was read.
    mutating func requestRead() { requestsThisPass += 1 }

    /// The socket read's frames are handled.
    mutating func readEnded() { reading = false }

    /// An answer went into the output buffer. Inside a read it waits for
    /// the read's end; otherwise (an answer from a worker) it goes now.
    func answerWritten() -> Action { reading ? .none : .flush }

    /// The last frame of a request that went through `started` was
    /// written. When the server is quiescing and nothing is left in
    /// flight, the connection closes.
    mutating func finished() -> Action {
        pending -= 1
        if phase == .quiescing && pending == 0 { return .close }
        return reading ? .none : .flush
    }

    /// The event loop has read everything this connection had ready
    /// (channelReadComplete). A lone request is answered at once: its
    /// client waits on it, and deferring would cost it a task (about 2,000
    /// instructions). A burst's answers wait for the end of the pass: on two
    /// shared cores that took the 32x16 pipelined read from about 0.98x
    /// Redis's throughput to 1.03x (docs/performance-log.md).
    mutating func readPassEnded(hasOutput: Bool) -> Action {
        let burst = requestsThisPass
        requestsThisPass = 0
        guard hasOutput, !flushQueued, !closing else { return .none }
        guard burst > 1 else { return .flush }
        flushQueued = true
        return .flushAtEndOfPass
    }

    /// The flush queued by `readPassEnded` runs.
    mutating func queuedFlushRan() { flushQueued = false }

    /// A frame could not be read (too large, not an envelope, id 0).
    mutating func frameFailed(code: Int, message: String) -> Action {
        guard !closing else { return .none }
        closing = true
        return .closeWithError(code: code, message: message)
    }

    /// The server asked to stop: close now when nothing is in flight.
    mutating func quiesce() -> Action {
        phase = .quiescing
        return pending == 0 ? .close : .none
    }
}

struct HelloRefusal: Error, Equatable {
    let code: Int
    let message: String
}

/// Compares secrets without leaking their common prefix length through timing.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) {
        diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
    }
    return diff == 0
}

/// gRPC canonical status codes, by number.
enum StatusCode {
    static let ok = 0
    static let cancelled = 1
    static let unknown = 2
    static let invalidArgument = 3
    static let notFound = 5
    static let alreadyExists = 6
    static let permissionDenied = 7
    static let resourceExhausted = 8
    static let failedPrecondition = 9
    static let aborted = 10
    static let unimplemented = 12
    static let `internal` = 13
    static let unavailable = 14
    static let dataLoss = 15
    static let unauthenticated = 16
}
