// PlinthServer: opens the data directory, binds the listeners, and stops
// gracefully: stop accepting, let every connection finish what it has in
// flight, commit what the writer holds, close the environment.
public import Logging
import Foundation
import NIOCore
import NIOExtras
import NIOPosix
import PlinthFeatures
import PlinthStorage
import PlinthTracking
import PlinthWire

// Safe: `stopping`/`stopped` only under `stateLock`; `channels` and `quiesce` set only in `start()`, called once, before `stop()`; else immutable.
public final class PlinthServer: @unchecked Sendable {
    public let config: ServerConfig
    let logger: Logger
    let environment: Environment
    /// Tracking's own environment (or `environment` in an older data directory).
    let trackingEnvironment: Environment
    let services: Services
    private let group: MultiThreadedEventLoopGroup
    /// Made when the first listener is bound: NIO's helper holds a promise
    /// from its creation that only a shutdown fulfils, so a server that
    /// never listened (a test of its services) must not have one.
    private var quiesce: ServerQuiescingHelper?
    private var channels: [any Channel] = []
    private let stateLock = ConditionLock()
    private var stopping = false
    private var stopped = false

    /// Opens the data directory; nothing listens until `start()`.
    public init(config: ServerConfig, logger: Logger) throws {
        try config.validate()
        self.config = config
        self.logger = logger
        var options = Environment.Options()
        options.durable = config.durable
        options.relaxedSyncInterval = .milliseconds(config.trackingSyncIntervalMs)
        options.writerPollAfterCommit = .microseconds(config.writerPollMicros)
        options.mapSize = config.mapSizeBytes
        options.treeSearch = config.onlineTreeSearch
        options.log = { [logger] message in logger.warning("\(message)") }
        environment = try Environment(path: config.dataDir, options: options)
        if environment.staleReadersCleared > 0 {
            logger.notice("cleared stale LMDB reader slots", metadata: ["count": "\(environment.staleReadersCleared)"])
        }
        // Tracking has an environment of its own, so that its relaxed
        // (unsynced) commits can never put the feature store or the registry
        // at risk: LMDB keeps an environment consistent across a power loss
        // only if every commit was synced (docs/operations.md, Durability).
        // A data directory from before the split keeps tracking where it is.
        if try environment.hasTable(TrackingStore.experimentsTable) {
            trackingEnvironment = environment
            logger.notice("tracking data shares the main environment (created before tracking had its own); relaxed tracking writes are committed strictly")
        } else {
            var trackingOptions = options
            trackingOptions.mapSize = min(options.mapSize, 1 << 30)
            trackingEnvironment = try Environment(path: (config.dataDir as NSString).appendingPathComponent("tracking"),
                                                  options: trackingOptions)
        }
        let catalog = try Catalog(environment: environment)
        let store = try OnlineStore(environment: environment, catalog: catalog, maxRows: config.maxRows,
                                    sampler: config.readSampleRate > 0 ? ReadSampler(rate: config.readSampleRate) : nil)
        services = try Services(store: store, offline: try OfflineStore(environment: environment, catalog: catalog),
                                tracking: trackingEnvironment, config: config)
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, config.eventLoopThreads))
    }

    /// Binds every configured listener.
    /// - Returns: the bound addresses (with the OS-chosen port when 0 was asked).
    @discardableResult
    public func start() throws -> [String] {
        var addresses: [String] = []
        if let listen = config.listen {
            let (host, port) = try ServerConfig.parseAddress(listen)
            let channel = try bootstrap().bind(host: host, port: port).wait()
            channels.append(channel)
            if let address = channel.localAddress {
                let bound = "\(address.ipAddress ?? host):\(address.port ?? port)"
                addresses.append(bound.contains(":") && address.protocol == .inet6 ? "[\(address.ipAddress ?? host)]:\(address.port ?? port)" : bound)
            }
        }
        if let path = config.unixSocket {
            // A socket file left by a killed daemon would make bind fail.
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
               let attributes = try? FileManager.default.attributesOfItem(atPath: path),
               attributes[.type] as? FileAttributeType == .typeSocket {
                try? FileManager.default.removeItem(atPath: path)
            }
            let channel = try bootstrap().bind(unixDomainSocketPath: path).wait()
            channels.append(channel)
            addresses.append("unix:\(path)")
        }
        services.listenAddresses.withLock { $0 = addresses }
        logger.info("plinthd serving", metadata: [
            "version": "\(plinthVersion)", "data_dir": "\(config.dataDir)",
            "listen": "\(addresses.joined(separator: ","))", "auth": "\(config.tokens.isEmpty ? "off" : "tokens")",
            "sync": "\(config.durable)",
        ])
        return addresses
    }

    private func bootstrap() -> ServerBootstrap {
        let quiesce = self.quiesce ?? ServerQuiescingHelper(group: group)
        self.quiesce = quiesce
        let services = self.services
        let logger = self.logger
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { [quiesce] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The handler splits frames itself (config.maxFrameBytes at most).
                    try channel.pipeline.syncOperations.addHandler(ConnectionHandler(services: services, logger: logger))
                }
            }
    }

    /// Stops gracefully; returns once everything is closed. Safe to call twice.
    public func stop() {
        let first = stateLock.withLock { () -> Bool in
            defer { stopping = true }
            return !stopping
        }
        guard first else {
            wait()
            return
        }
        logger.info("stopping: no new connections, finishing requests in flight")
        if let quiesce {
            let promise = group.next().makePromise(of: Void.self)
            quiesce.initiateShutdown(promise: promise)
            try? promise.futureResult.wait()
        }
        if trackingEnvironment !== environment { trackingEnvironment.close() }
        environment.close()
        if let path = config.unixSocket { try? FileManager.default.removeItem(atPath: path) }
        try? group.syncShutdownGracefully()
        logger.info("stopped")
        stateLock.withLock {
            stopped = true
            stateLock.broadcast()
        }
    }

    /// Blocks until `stop()` has finished.
    public func wait() {
        stateLock.withLock { while !stopped { stateLock.wait() } }
    }
}
