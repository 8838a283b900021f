// ConnectionState: the per-connection protocol state machine — handshake,
// authentication, scope checks and quiescing — kept free of I/O so it is
// tested without sockets. The channel handler asks it what to do and
// carries out the answer.
import PlinthWire

struct ConnectionState {
    enum Phase: Equatable {
        /// No Hello yet. Without tokens, requests are served as if a v1
        /// Hello had been sent; with tokens, only Hello and Health are.
        case awaitingHello
        case ready(scopes: Scope, tokenName: String)
        /// The server is stopping: no new requests, finish the pending ones.
        case quiescing
    }

    /// What to do with a request.
    enum Action: Equatable {
        case dispatch
        case refuse(code: Int, message: String)
    }

    private(set) var phase: Phase = .awaitingHello
    private(set) var pending = 0
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

    /// Decides whether a request for `method`, which needs `scope`, runs.
    mutating func admit(method: String, needs scope: Scope) -> Action {
        if case .quiescing = phase { return .refuse(code: StatusCode.unavailable, message: "the server is shutting down") }
        if method == Method.hello || method == Method.health { return .dispatch }
        if case .awaitingHello = phase, authRequired {
            return .refuse(code: StatusCode.unauthenticated, message: "this server requires a token: send \(Method.hello) with one first")
        }
        guard scopes.isSuperset(of: scope) else {
            return .refuse(code: StatusCode.permissionDenied,
                           message: "\(method) needs the \(scope.names.joined(separator: "+")) scope; this connection has [\(scopes.names.joined(separator: ", "))]")
        }
        return .dispatch
    }

    /// Whether a request for a method other than Hello and Health that
    /// needs `scope` runs: the check of `admit` without building a refusal.
    func admits(_ scope: Scope) -> Bool {
        switch phase {
        case .ready(let scopes, _): scopes.isSuperset(of: scope)
        case .awaitingHello: !authRequired
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

    mutating func started() { pending += 1 }

    /// A request finished; true when the connection should now close
    /// (quiescing and nothing left in flight).
    mutating func finished() -> Bool {
        pending -= 1
        return phase == .quiescing && pending == 0
    }

    /// The server asked to stop; true when the connection can close now.
    mutating func quiesce() -> Bool {
        phase = .quiescing
        return pending == 0
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
