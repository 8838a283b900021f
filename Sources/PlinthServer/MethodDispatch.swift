// MethodDispatch: the method table (PlinthWire's MethodTable: path, scope,
// streaming, fast path) joined with each method's handler, and the lookup
// a connection does for every request. The table says what a method is;
// the Services+Name.swift files say what it does, keyed by path. Building
// the joined table checks that every method has exactly one handler.
import Foundation
import NIOCore
import PlinthStorage
import PlinthWire

/// A method's implementation.
struct MethodHandler: Sendable {
    /// The general path: decodes the body, runs anywhere (a worker, the
    /// writer), and answers through the responder.
    let run: @Sendable (Services, ByteBuffer, Responder) -> Void
    /// The `.snapshotRead` fast path: writes the answer body into `out` on
    /// the event loop. Throws `AnswerLater` to hand the request to `run`
    /// (a model that must be loaded first, a batch too big for the loop).
    let inline: (@Sendable (Services, ByteBuffer, InlineContext, inout ByteBuffer) throws -> Void)?

    init(run: @escaping @Sendable (Services, ByteBuffer, Responder) -> Void) {
        self.run = run
        self.inline = nil
    }

    init(inline: @escaping @Sendable (Services, ByteBuffer, InlineContext, inout ByteBuffer) throws -> Void,
         otherwise run: @escaping @Sendable (Services, ByteBuffer, Responder) -> Void) {
        self.inline = inline
        self.run = run
    }

    /// A method answered inline whenever it is asked (a read that never
    /// waits): the general path runs the same code into a buffer of its own.
    init(inline: @escaping @Sendable (Services, ByteBuffer, InlineContext, inout ByteBuffer) throws -> Void) {
        self.inline = inline
        self.run = { services, body, respond in
            var out = responseAllocator.buffer(capacity: 256)
            do {
                try inline(services, body, InlineContext(), &out)
                respond.succeed(encoded: out)
            } catch { respond.fail(error) }
        }
    }
}

/// What a connection lends an inline method: its caches and the read
/// transaction its current socket read shares.
struct InlineContext {
    /// The connection's last online read plan.
    var plans: ConnectionPlanCache
    /// The connection's last Predict model and its reused input storage.
    var predicts: PredictScratch
    /// The read transaction of the current burst (nil: the read takes its own).
    var held: HeldRead?

    init(plans: ConnectionPlanCache = ConnectionPlanCache(), predicts: PredictScratch = PredictScratch(), held: HeldRead? = nil) {
        self.plans = plans
        self.predicts = predicts
        self.held = held
    }
}

/// One method: its descriptor, the scope it needs as a token's scopes
/// spell it, and its handler (nil for Hello, which the connection runs).
struct MethodEntry: Sendable {
    let descriptor: MethodDescriptor
    let scope: Scope
    let handler: MethodHandler?
}

/// What a connection reads of a method on every request, kept apart from
/// the entry's Strings and arrays: copying it touches no reference count
/// shared by the event loops (an atomic count's cache line bounced between
/// the loops' cores before, docs/performance-log.md).
struct MethodRoute {
    /// The path's UTF-8 bytes, in memory that lives as long as the process.
    let path: UnsafeRawBufferPointer
    let scope: Scope
    let fastPath: MethodFastPath
    let openBeforeHello: Bool
    /// The handler's inline path (nil: none); a closure with no context.
    let inline: (@Sendable (Services, ByteBuffer, InlineContext, inout ByteBuffer) throws -> Void)?
}

/// Thrown by an inline method that cannot answer on the event loop now.
struct AnswerLater: Error {}

enum MethodDispatch {
    /// Every method of `MethodTable.all`, in its order, with its handler.
    static let entries: [MethodEntry] = {
        var handlers: [String: MethodHandler] = [:]
        for service in [Services.adminMethods, Services.featureMethods, Services.offlineMethods, Services.trackingMethods,
                        Services.registryMethods, Services.inferenceMethods] {
            handlers.merge(service) { _, _ in preconditionFailure("a method has two handlers") }
        }
        let entries = MethodTable.all.map { descriptor -> MethodEntry in
            let handler = handlers.removeValue(forKey: descriptor.path)
            precondition((handler == nil) == (descriptor.fastPath == .connection),
                         "\(descriptor.path): a handler exactly when the connection does not run it itself")
            precondition(descriptor.fastPath != .snapshotRead || handler?.inline != nil,
                         "\(descriptor.path): a snapshot-read fast path needs an inline handler")
            return MethodEntry(descriptor: descriptor, scope: Scope(descriptor.scope), handler: handler)
        }
        precondition(handlers.isEmpty, "handlers for methods the table does not have: \(handlers.keys.sorted())")
        return entries
    }()

    /// `entries`' routes, same order. Allocated once and never freed.
    // Safe: written once, in the initializer, before any reader can see
    // it; read-only from then on.
    nonisolated(unsafe) static let routes: UnsafeBufferPointer<MethodRoute> = {
        let routes = UnsafeMutableBufferPointer<MethodRoute>.allocate(capacity: entries.count)
        for (i, entry) in entries.enumerated() {
            let utf8 = Array(entry.descriptor.path.utf8)
            let path = UnsafeMutableRawBufferPointer.allocate(byteCount: utf8.count, alignment: 1)
            path.copyBytes(from: utf8)
            (routes.baseAddress! + i).initialize(to: MethodRoute(
                path: UnsafeRawBufferPointer(path), scope: entry.scope, fastPath: entry.descriptor.fastPath,
                openBeforeHello: entry.descriptor.openBeforeHello, inline: entry.handler?.inline))
        }
        return UnsafeBufferPointer(routes)
    }()

    /// The routes' indexes by path length: a lookup compares a few paths
    /// of the right length, with no String built.
    private static let byLength: [[Int]] = {
        var buckets: [[Int]] = []
        for (index, route) in routes.enumerated() {
            while buckets.count <= route.path.count { buckets.append([]) }
            buckets[route.path.count].append(index)
        }
        return buckets
    }()

    /// Whether route `index`'s path is `path`'s bytes.
    @inline(__always)
    static func route(_ index: Int, is path: UnsafeRawBufferPointer) -> Bool {
        let known = routes[index].path
        guard known.count == path.count else { return false }
        guard let a = known.baseAddress, let b = path.baseAddress else { return known.count == 0 }
        return memcmp(a, b, known.count) == 0
    }

    /// The index in `entries` of the method whose path is `path`'s bytes;
    /// nil for a method the table does not have.
    static func index(of path: UnsafeRawBufferPointer) -> Int? {
        guard path.count < byLength.count else { return nil }
        for candidate in byLength[path.count] where route(candidate, is: path) { return candidate }
        return nil
    }

    /// The entry for a path given as a String (tests, tools).
    static func entry(_ path: String) -> MethodEntry? {
        var path = path
        return path.withUTF8 { index(of: UnsafeRawBufferPointer($0)) }.map { entries[$0] }
    }
}

extension Scope {
    init(_ scope: MethodScope) {
        switch scope {
        case .none: self = []
        case .read: self = .read
        case .write: self = .write
        case .admin: self = .admin
        }
    }
}
