// Services: the method table — each method's path, the scope it needs, and
// the handler that maps its wire request onto the domain. Reads run inline
// on the connection's event loop (a few microseconds); writes go to the
// storage writer and answer when their commit is durable, so answers to
// pipelined requests can come back out of order.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthStorage
import PlinthWire
import Synchronization
public import SwiftProtobuf

/// Answers one request, from any thread.
struct Responder: Sendable {
    let deliver: @Sendable (_ code: Int, _ message: String, _ body: [UInt8]) -> Void

    func succeed(_ message: some SwiftProtobuf.Message) {
        do {
            let bytes: [UInt8] = try message.serializedBytes()
            deliver(StatusCode.ok, "", bytes)
        } catch {
            deliver(StatusCode.internal, "could not encode the response: \(error)", [])
        }
    }

    func fail(_ error: any Error) {
        let (code, message) = status(for: error)
        deliver(code, message, [])
    }

    func fail(code: Int, _ message: String) { deliver(code, message, []) }
}

/// Counters shown by ServerInfo.
final class ServerStats: Sendable {
    let requests = Atomic<UInt64>(0)
    let connections = Atomic<Int64>(0)
    let startedAt = currentMicros()
}

struct MethodSpec: Sendable {
    let scope: Scope
    let run: @Sendable (Services, ByteBuffer, Responder) -> Void
}

func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ body: ByteBuffer) throws -> M {
    var message = M()
    do {
        try body.withUnsafeReadableBytes { raw in try message.merge(serializedBytes: raw.bytes) }
    } catch {
        throw WireError(code: StatusCode.invalidArgument, message: "the request body is not a valid \(M.protoMessageName): \(error)")
    }
    return message
}

public final class Services: Sendable {
    let store: OnlineStore
    let catalog: Catalog
    let config: ServerConfig
    let stats = ServerStats()
    let listenAddresses: Mutex<[String]> = Mutex([])

    init(store: OnlineStore, config: ServerConfig) {
        self.store = store
        self.catalog = store.catalog
        self.config = config
    }

    /// Every method but Hello, which the connection handles itself because
    /// it changes the connection's state.
    static let table: [String: MethodSpec] = [
        Method.health: MethodSpec(scope: []) { _, _, respond in
            var out = PBHealthResponse()
            out.status = .serving
            respond.succeed(out)
        },
        Method.serverInfo: MethodSpec(scope: .read) { services, _, respond in
            respond.succeed(services.serverInfo())
        },
        Method.applyDefinitions: MethodSpec(scope: .admin) { services, body, respond in
            services.applyDefinitions(body, respond)
        },
        Method.listDefinitions: MethodSpec(scope: .read) { services, body, respond in
            do {
                let request = try decode(PBListDefinitionsRequest.self, body)
                let snapshot = services.catalog.snapshot
                var out = PBListDefinitionsResponse()
                if request.project.isEmpty {
                    out.projects = snapshot.projects.keys.sorted().compactMap { snapshot.projects[$0]?.wire }
                } else if let project = snapshot.projects[request.project] {
                    out.projects = [project.wire]
                } else {
                    throw FeatureStoreError.notFound("unknown project '\(request.project)'")
                }
                respond.succeed(out)
            } catch { respond.fail(error) }
        },
        Method.push: MethodSpec(scope: .write) { services, body, respond in
            services.push(body, respond)
        },
        Method.getOnlineFeatures: MethodSpec(scope: .read) { services, body, respond in
            services.getOnlineFeatures(body, respond)
        },
    ]

    func serverInfo() -> PBServerInfoResponse {
        var out = PBServerInfoResponse()
        out.serverVersion = plinthVersion
        out.protocolVersion = PlinthProtocol.version
        out.dataDir = store.environment.path
        out.startedAtUs = stats.startedAt
        out.uptimeSeconds = UInt64(max(0, (currentMicros() - stats.startedAt) / 1_000_000))
        out.openConnections = UInt64(max(0, stats.connections.load(ordering: .relaxed)))
        out.requestsTotal = stats.requests.load(ordering: .relaxed)
        out.mapSizeBytes = UInt64(store.environment.mapSize)
        out.mapUsedBytes = UInt64(store.environment.usedBytes)
        out.definitionsVersion = catalog.snapshot.version
        out.listenAddresses = listenAddresses.withLock { $0 }
        out.authRequired = !config.tokens.isEmpty
        return out
    }

    func applyDefinitions(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBApplyDefinitionsRequest.self, body)
            let spec = try DefinitionParser.parse(request.yaml)
            catalog.apply(spec, dryRun: request.dryRun, now: currentMicros()) { result in
                switch result {
                case .success(let applied):
                    var out = PBApplyDefinitionsResponse()
                    out.project = applied.project
                    out.version = applied.version
                    out.changed = applied.changed
                    out.created = applied.created
                    out.updated = applied.updated
                    out.deleted = applied.deleted
                    respond.succeed(out)
                case .failure(let error):
                    respond.fail(error)
                }
            }
        } catch { respond.fail(error) }
    }

    func push(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBPushRequest.self, body)
            let target: PushTarget
            switch request.to {
            case .unspecified, .onlineAndOffline: target = .onlineAndOffline
            case .online: target = .online
            case .offline: target = .offline
            case .UNRECOGNIZED(let n): throw WireError(code: StatusCode.invalidArgument, message: "unknown push target \(n)")
            }
            let columns = try request.columns.map { try Column(wire: $0) }
            let prepared = try store.prepare(view: request.featureView, columns: columns, eventTimes: request.eventTimeUs,
                                             createdTimes: request.createdTimeUs, target: target)
            store.write(prepared) { result in
                switch result {
                case .success(let pushed):
                    var out = PBPushResponse()
                    out.rows = UInt64(pushed.rows)
                    out.onlineRowsWritten = UInt64(pushed.onlineRowsWritten)
                    out.onlineRowsStale = UInt64(pushed.onlineRowsStale)
                    out.offlineRowsWritten = UInt64(pushed.offlineRowsWritten)
                    respond.succeed(out)
                case .failure(let error):
                    respond.fail(error)
                }
            }
        } catch { respond.fail(error) }
    }

    func getOnlineFeatures(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBGetOnlineFeaturesRequest.self, body)
            let entities = try request.entities.map { try Column(wire: $0) }
            let results = try store.read(features: request.features, service: request.featureService,
                                         entities: entities, fullFeatureNames: request.fullFeatureNames)
            var out = PBGetOnlineFeaturesResponse()
            out.features = results.map { result in
                var column = PBFeatureColumn()
                column.values = result.values.wire
                column.statuses = result.statuses.map { PBFieldStatus(rawValue: Int($0.rawValue)) ?? .invalid }
                column.eventTimeUs = result.eventTimes
                return column
            }
            respond.succeed(out)
        } catch { respond.fail(error) }
    }
}

public let plinthVersion = "0.1.0"
