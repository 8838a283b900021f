// Services: what every method works with (the stores, the registry, the
// serving repository, the configuration) and how it answers (Responder).
// What each method does is in Services+Name.swift, one file per service;
// which methods exist and what they need is MethodDispatch. Reads run inline
// on the connection's event loop (a few microseconds); writes go to the
// storage writer and answer after their commit (synced, or for relaxed
// tracking writes within the sync interval), so answers to pipelined
// requests can come back out of order.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthRegistry
import PlinthServing
import PlinthStorage
import PlinthTracking
import PlinthWire
import Synchronization
import SwiftProtobuf

/// Answers one request, from any thread. A unary method calls `succeed` or
/// `fail` once; a streaming method calls `stream` for each part but the
/// last, then `succeed` (or `fail`) to end the stream.
struct Responder: Sendable {
    let deliver: @Sendable (_ code: Int, _ message: String, _ body: ResponseBody, _ more: Bool) -> Void
    /// The token name of the connection asking (empty without tokens): the
    /// "who" that audited changes record.
    var caller = ""
    /// The connection's backpressure for streamed parts: `stream` waits for
    /// room in it (nil: never waits).
    var window: StreamWindow?

    func succeed(_ message: some SwiftProtobuf.Message) { send(message, more: false) }

    /// Succeeds with a body the handler encoded itself.
    func succeed(encoded body: ByteBuffer) { deliver(StatusCode.ok, "", .buffer(body), false) }

    /// True once the connection that asked has gone: a long stream stops
    /// producing (its parts would be dropped anyway).
    var isCancelled: Bool { window?.isClosed ?? false }

    /// Sends one part of a streamed answer; more parts follow.
    func stream(_ message: some SwiftProtobuf.Message) { send(message, more: true) }

    /// Sends one part of a streamed answer the handler encoded itself.
    func stream(encoded body: ByteBuffer) {
        window?.reserve(body.readableBytes)
        deliver(StatusCode.ok, "", .buffer(body), true)
    }

    private func send(_ message: some SwiftProtobuf.Message, more: Bool) {
        do {
            let bytes: [UInt8] = try message.serializedBytes()
            if more { window?.reserve(bytes.count) }
            deliver(StatusCode.ok, "", .bytes(bytes), more)
        } catch {
            deliver(StatusCode.internal, "could not encode the response: \(error)", .bytes([]), false)
        }
    }

    func fail(_ error: any Error) {
        let (code, message) = status(for: error)
        deliver(code, message, .bytes([]), false)
    }

    func fail(code: Int, _ message: String) { deliver(code, message, .bytes([]), false) }
}

/// A response body: bytes from the generated encoder, or a buffer a
/// handler wrote directly.
enum ResponseBody: Sendable {
    case bytes([UInt8])
    case buffer(ByteBuffer)

    var count: Int {
        switch self {
        case .bytes(let bytes): bytes.count
        case .buffer(let buffer): buffer.readableBytes
        }
    }
}

/// Counters shown by ServerInfo.
final class ServerStats: Sendable {
    let requests = Atomic<UInt64>(0)
    let connections = Atomic<Int64>(0)
    let startedAt = currentMicros()
}

let responseAllocator = ByteBufferAllocator()

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
    let offline: OfflineStore
    let catalog: Catalog
    let config: ServerConfig
    let tracking: TrackingStore
    let artifacts: ArtifactStore
    let registry: RegistryStore
    let serving: ModelRepository
    let predictor: Predictor
    let predictionIDs = PredictionIDs()
    let stats = ServerStats()
    let listenAddresses: Mutex<[String]> = Mutex([])

    init(store: OnlineStore, offline: OfflineStore, tracking trackingEnvironment: Environment, config: ServerConfig) throws {
        self.store = store
        self.offline = offline
        self.catalog = store.catalog
        self.config = config
        // Tracking's relaxed writes only where they cannot endanger strict
        // data: in an environment of their own.
        let shared = trackingEnvironment === store.environment
        tracking = try TrackingStore(environment: trackingEnvironment, durability: shared ? .strict : config.trackingDurability)
        artifacts = try ArtifactStore(tracking: tracking, maxBytes: config.maxArtifactBytes,
                                      root: (store.environment.path as NSString).appendingPathComponent("blobs"))
        registry = try RegistryStore(environment: store.environment)
        serving = ModelRepository(registry: registry, store: store, artifactPath: artifacts.blobPath)
        predictor = Predictor(store: store, offline: offline)
    }
}

public let plinthVersion = "0.1.0"
