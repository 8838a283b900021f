// ServerConfig: everything plinthd can be told, from flags and an optional
// YAML config file (flags win), validated before anything listens.
import Foundation
import NIOCore
public import PlinthStorage
import Yams

/// A permission a token grants.
public struct Scope: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let read = Scope(rawValue: 1)
    public static let write = Scope(rawValue: 2)
    public static let admin = Scope(rawValue: 4)
    public static let all: Scope = [.read, .write, .admin]

    public init?(name: String) {
        switch name {
        case "read": self = .read
        case "write": self = .write
        case "admin": self = .admin
        default: return nil
        }
    }

    public var names: [String] {
        var out: [String] = []
        if contains(.read) { out.append("read") }
        if contains(.write) { out.append("write") }
        if contains(.admin) { out.append("admin") }
        return out
    }
}

/// A token from the config file.
public struct Token: Sendable, Equatable {
    public var name: String
    public var secret: String
    public var scopes: Scope

    public init(name: String, secret: String, scopes: Scope) {
        self.name = name
        self.secret = secret
        self.scopes = scopes
    }
}

public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct ServerConfig: Sendable {
    public var dataDir = "./plinth-data"
    /// "host:port"; nil to listen on no TCP address.
    public var listen: String? = "127.0.0.1:\(7433)"
    public var unixSocket: String?
    public var maxFrameBytes = 16 << 20
    /// Most entity rows in one read and rows in one push.
    public var maxRows = 100_000
    /// Rows one Predict may score (BatchPredict has no such limit).
    public var predictMaxRows = 10_000
    public var durable = true
    /// Tracking writes (runs, params, metrics, tags, experiments): `.relaxed`
    /// acknowledges after the commit and syncs within
    /// `trackingSyncIntervalMs`; `.strict` syncs before acknowledging.
    /// Everything else (pushes, registry, artifacts) is always strict.
    public var trackingDurability: Durability = .relaxed
    public var trackingSyncIntervalMs = 100
    public var mapSizeBytes = 1 << 30
    public var tokens: [Token] = []
    /// Allows listening on a non-loopback address without tokens.
    public var insecure = false
    public var eventLoopThreads = System.coreCount
    /// Bytes of streamed answer parts a connection may have queued and not
    /// yet written to its socket; producers wait beyond it (StreamWindow).
    public var streamWindowBytes = 4 << 20
    /// Microseconds each writer polls its queue after a commit before it
    /// sleeps (Writer.pollAfterCommit); 0: it sleeps at once.
    public var writerPollMicros = 300
    /// The largest run artifact accepted, in bytes; bigger uploads are
    /// refused before more than this is stored.
    public var maxArtifactBytes: Int64 = 1 << 30
    /// Fraction of online reads sampled for the skew check (0: off).
    public var readSampleRate = 0.0
    /// Whether batched online reads may walk LMDB's B-tree themselves
    /// (PlinthStorage's TreeSearch); false: every read is an mdb_get.
    public var onlineTreeSearch = true

    public init() {}

    /// Overlays the settings in a YAML config file.
    public mutating func load(file path: String) throws {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError("cannot read config file \(path): \(error.localizedDescription)")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw ConfigError("config file \(path) is not valid YAML: \(error)") }
        guard let node else { return }
        guard let mapping = node.mapping else { throw ConfigError("\(path): the config must be a mapping") }
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { continue }
            let line = keyNode.mark.map { "\(path):\($0.line)" } ?? path
            func string() throws -> String {
                guard let s = value.string else { throw ConfigError("\(line): '\(key)' must be a string") }
                return s
            }
            func int() throws -> Int {
                guard let s = value.string, let n = Int(s), n > 0 else { throw ConfigError("\(line): '\(key)' must be a positive integer") }
                return n
            }
            /// A whole number in `range`, where 0 turns the setting off.
            func int(in range: ClosedRange<Int>, of unit: String) throws -> Int {
                guard let s = value.string, let n = Int(s), range.contains(n) else {
                    throw ConfigError("\(line): '\(key)' must be a number of \(unit) from 0 (off) to \(range.upperBound)")
                }
                return n
            }
            func bool() throws -> Bool {
                guard let s = value.string, let b = Bool(s) else { throw ConfigError("\(line): '\(key)' must be true or false") }
                return b
            }
            switch key {
            case "data_dir": dataDir = try string()
            case "listen": listen = try string()
            case "unix": unixSocket = try string()
            case "max_frame_bytes": maxFrameBytes = try int()
            case "max_rows": maxRows = try int()
            case "predict_max_rows": predictMaxRows = try int()
            case "sync": durable = try bool()
            case "tracking_durability":
                guard let text = value.string, let mode = Durability(rawValue: text) else {
                    throw ConfigError("\(line): 'tracking_durability' must be relaxed or strict")
                }
                trackingDurability = mode
            case "tracking_sync_interval_ms": trackingSyncIntervalMs = try int()
            case "map_size_bytes": mapSizeBytes = try int()
            case "insecure": insecure = try bool()
            case "online_tree_search": onlineTreeSearch = try bool()
            case "event_loop_threads": eventLoopThreads = try int()
            case "stream_window_bytes": streamWindowBytes = try int()
            case "writer_poll_us": writerPollMicros = try int(in: 0...100_000, of: "microseconds")
            case "max_artifact_bytes": maxArtifactBytes = Int64(try int())
            case "read_sample_rate":
                guard let text = value.string, let rate = Double(text), rate >= 0, rate <= 1 else {
                    throw ConfigError("\(line): 'read_sample_rate' must be a number from 0 to 1")
                }
                readSampleRate = rate
            case "tokens":
                guard let list = value.sequence else { throw ConfigError("\(line): 'tokens' must be a list") }
                tokens = try list.enumerated().map { i, entry in
                    let at = entry.mark.map { "\(path):\($0.line)" } ?? path
                    guard let m = entry.mapping else { throw ConfigError("\(at): tokens[\(i)] must be a mapping") }
                    guard let name = m["name"]?.string, !name.isEmpty else { throw ConfigError("\(at): tokens[\(i)] needs a name") }
                    guard let secret = m["token"]?.string, secret.count >= 8 else {
                        throw ConfigError("\(at): token '\(name)' needs a 'token' of at least 8 characters")
                    }
                    guard let scopeList = m["scopes"]?.sequence else { throw ConfigError("\(at): token '\(name)' needs 'scopes' (read, write, admin)") }
                    var scopes: Scope = []
                    for s in scopeList {
                        guard let text = s.string, let scope = Scope(name: text) else {
                            throw ConfigError("\(at): token '\(name)' has unknown scope '\(s.string ?? "?")' (read, write, admin)")
                        }
                        scopes.insert(scope)
                    }
                    return Token(name: name, secret: secret, scopes: scopes)
                }
            default:
                throw ConfigError("\(line): unknown setting '\(key)' (data_dir, listen, unix, max_frame_bytes, max_rows, sync, tracking_durability, tracking_sync_interval_ms, map_size_bytes, insecure, event_loop_threads, max_artifact_bytes, read_sample_rate, online_tree_search, tokens)")
            }
        }
    }

    /// Splits "host:port" (IPv6 as "[::1]:port").
    public static func parseAddress(_ text: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":") else { throw ConfigError("listen address '\(text)' needs a port, e.g. 127.0.0.1:7433") }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigError("listen address '\(text)' has no valid port")
        }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Refuses unsafe or impossible combinations before anything starts.
    public func validate() throws {
        if listen == nil && unixSocket == nil { throw ConfigError("nothing to listen on: give --listen or --unix") }
        if let listen {
            let (host, _) = try Self.parseAddress(listen)
            if !Self.isLoopback(host) && tokens.isEmpty && !insecure {
                throw ConfigError("refusing to listen on \(listen) without tokens: configure tokens in the config file, or pass --insecure")
            }
        }
        if maxFrameBytes < 1024 { throw ConfigError("max_frame_bytes must be at least 1024") }
        var names = Set<String>(), secrets = Set<String>()
        for token in tokens {
            if !names.insert(token.name).inserted { throw ConfigError("token name '\(token.name)' appears twice") }
            if !secrets.insert(token.secret).inserted { throw ConfigError("two tokens share the same secret") }
        }
    }
}
