// Services+Admin: the Admin service's methods (Hello is handled by the
// connection itself, because it changes the connection's state).
import NIOCore
import PlinthFeatures
import PlinthWire

extension Services {
    static let adminMethods: [String: MethodHandler] = [
        Method.health: MethodHandler { _, _, respond in
            var out = PBHealthResponse()
            out.status = .serving
            respond.succeed(out)
        },
        Method.serverInfo: MethodHandler { services, _, respond in
            respond.succeed(services.serverInfo())
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
}
