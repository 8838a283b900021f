// The models being served and their lifecycle. A version loads on first use
// (the registry gives its artifact and signature) and stays cached. When an
// alias moves, the new version loads in the background while requests keep
// getting the old one; then the alias is switched in one step under the
// lock. A request holds its ServedModel for its whole run, so requests in
// flight finish on the version they started with, and the old version's
// memory goes when the last of them drops it.
import Foundation
public import PlinthFeatures
import PlinthInference
public import PlinthRegistry
import Synchronization

public final class ModelRepository: Sendable {
    /// What a lookup of the in-memory state found.
    public enum Lookup: Sendable {
        /// Loaded and compiled against the current definitions.
        case ready(ServedModel)
        /// Must be resolved in the registry or loaded first: call `load`
        /// off the event loop.
        case needsLoad(ModelReference)
    }

    struct VersionKey: Hashable {
        let name: String
        let version: UInt64
    }

    /// One load in progress; concurrent requests for the same version wait
    /// on its lock instead of loading it twice.
    // Safe: `result` is read and written only under `lock`.
    final class PendingLoad: @unchecked Sendable {
        let lock = NSLock()
        var result: Result<ServedModel, ServingError>?
    }

    struct State {
        var loaded: [VersionKey: ServedModel] = [:]
        /// The version each alias that has been asked for points to.
        var aliases: [ModelReference: UInt64] = [:]
        /// Versions asked for by number, with the tick of their last use.
        var direct: [VersionKey: UInt64] = [:]
        /// The request's own spelling of the model -> its served model: one
        /// hash of a short string on the hot path. Rebuilt lazily.
        var fast: [String: ServedModel] = [:]
        var pending: [VersionKey: PendingLoad] = [:]
        var tick: UInt64 = 0
        var loads: UInt64 = 0
        var swaps: UInt64 = 0
    }

    private let registry: RegistryStore
    private let store: OnlineStore
    private let artifactPath: @Sendable (String) -> String
    /// Versions asked for by number kept loaded besides those aliases point to.
    private let maxDirect: Int
    private let state = Mutex(State())
    /// Bumped whenever a name may come to mean another served model (an
    /// alias swapped, a version recompiled or dropped), so callers that
    /// remember a lookup know when to ask again.
    private let changes = Atomic<UInt64>(0)

    /// Changes so far (see `changes`); read it before a `lookup` whose
    /// answer is kept.
    public var generation: UInt64 { changes.load(ordering: .acquiring) }
    /// A serial queue (so refreshes never interleave) with its own thread.
    private let refresher = DispatchQueue(label: "plinth.serving.aliases")

    /// - Parameter artifactPath: the file of an artifact digest.
    public init(registry: RegistryStore, store: OnlineStore, maxDirect: Int = 8,
                artifactPath: @escaping @Sendable (String) -> String) {
        self.registry = registry
        self.store = store
        self.maxDirect = maxDirect
        self.artifactPath = artifactPath
    }

    /// The served model for a request's model name (and KServe version
    /// field), from memory only: cheap enough for every request.
    public func lookup(_ text: String, version: String = "") throws(ServingError) -> Lookup {
        let key = version.isEmpty ? text : text + "\u{0}" + version
        if let served = state.withLock({ $0.fast[key] }), served.isCurrent(store) { return .ready(served) }
        let reference: ModelReference
        do { reference = try ModelReference(parsing: text, version: version) } catch { throw .invalidArgument(error.description) }
        guard let served = try inMemory(reference) else { return .needsLoad(reference) }
        state.withLock { $0.fast[key] = served }
        return .ready(served)
    }

    /// Resolves `reference` in the registry and loads its version if it is
    /// not loaded yet. Blocks for the load: call it off the event loop.
    public func load(_ reference: ModelReference) throws(ServingError) -> ServedModel {
        if let served = try inMemory(reference) { return served }
        let version = try registryVersion(reference)
        let served = try loadVersion(version)
        state.withLock { s in
            if case .alias = reference.selector { s.aliases[reference] = version.version }
            else { touchDirect(VersionKey(name: version.model, version: version.version), &s) }
        }
        return served
    }

    /// The version `reference` resolves to and, if it is loaded, the
    /// served model; nothing is loaded.
    /// - Throws: `ServingError.notFound` for an unknown model, alias or version.
    public func loaded(_ reference: ModelReference) throws(ServingError) -> (version: UInt64, served: ServedModel?) {
        if let served = try inMemory(reference) { return (served.version, served) }
        let version = try registryVersion(reference)
        return (version.version, state.withLock { $0.loaded[VersionKey(name: version.model, version: version.version)] })
    }

    /// Call after an alias of `model` changed (set, moved or deleted): each
    /// alias of it being served is re-resolved in the background; a moved
    /// one switches once its new version is loaded.
    public func aliasesChanged(model: String) {
        refresher.async { self.refreshAliases(model: model) }
    }

    /// Counters for ServerInfo and tests: versions loaded so far, alias
    /// switches, versions in memory now.
    public var counters: (loads: UInt64, swaps: UInt64, resident: Int) {
        state.withLock { ($0.loads, $0.swaps, $0.loaded.count) }
    }

    // MARK: Internals

    /// From memory: the loaded version `reference` names, recompiled first
    /// if the feature definitions changed since it was compiled.
    private func inMemory(_ reference: ModelReference) throws(ServingError) -> ServedModel? {
        let found: ServedModel? = state.withLock { s in
            let key: VersionKey
            switch reference.selector {
            case .alias:
                guard let version = s.aliases[reference] else { return nil }
                key = VersionKey(name: reference.name, version: version)
            case .version(let v):
                key = VersionKey(name: reference.name, version: v)
                if s.loaded[key] != nil { touchDirect(key, &s) }
            }
            return s.loaded[key]
        }
        guard let found else { return nil }
        if found.isCurrent(store) { return found }
        let fresh = try found.recompiled(store: store)
        state.withLock { s in
            let key = VersionKey(name: fresh.name, version: fresh.version)
            if s.loaded[key] === found { s.loaded[key] = fresh }
            s.fast.removeAll()
            changes.add(1, ordering: .releasing)
        }
        return fresh
    }

    private func registryVersion(_ reference: ModelReference) throws(ServingError) -> ModelVersion {
        do {
            switch reference.selector {
            case .alias(let alias): return try registry.resolve(model: reference.name, alias: alias)
            case .version(let v): return try registry.version(model: reference.name, version: v)
            }
        } catch let error as RegistryError {
            if case .notFound(let message) = error { throw .notFound(message) }
            throw .invalidArgument(error.description)
        } catch {
            throw .failedPrecondition("the registry could not be read: \(error)")
        }
    }

    /// Loads and compiles a version once, however many ask at the same time.
    private func loadVersion(_ version: ModelVersion) throws(ServingError) -> ServedModel {
        let key = VersionKey(name: version.model, version: version.version)
        let pending: PendingLoad = state.withLock { s in
            if let p = s.pending[key] { return p }
            let p = PendingLoad()
            s.pending[key] = p
            return p
        }
        pending.lock.lock()
        defer { pending.lock.unlock() }
        if let result = pending.result { return try result.get() }
        if let served = state.withLock({ $0.loaded[key] }) {
            pending.result = .success(served)
            return served
        }
        let result = Result { () throws(ServingError) in try compile(version) }
        pending.result = result
        state.withLock { s in
            if case .success(let served) = result {
                s.loaded[key] = served
                s.loads += 1
            }
            if s.pending[key] === pending { s.pending[key] = nil }
        }
        return try result.get()
    }

    private func compile(_ version: ModelVersion) throws(ServingError) -> ServedModel {
        let label = "\(version.model):\(version.version)"
        guard version.artifactDigest.utf8.count == 64 else {
            throw .failedPrecondition("\(label) cannot be served: it has no model artifact")
        }
        let model: Model
        do {
            model = try ModelLoader.load(path: artifactPath(version.artifactDigest))
        } catch {
            throw .failedPrecondition("\(label) cannot be served: its artifact (\(version.artifactFormat)) is not a model Plinth reads: \(error)")
        }
        return try ServedModel(name: version.model, version: version.version, format: version.artifactFormat,
                               model: model, signature: version.signature, store: store)
    }

    private func touchDirect(_ key: VersionKey, _ s: inout State) {
        s.tick += 1
        s.direct[key] = s.tick
        guard s.direct.count > maxDirect, let oldest = s.direct.min(by: { $0.value < $1.value })?.key else { return }
        s.direct[oldest] = nil
        evictUnused(&s)
    }

    /// Drops versions no alias points to and nobody asked for by number
    /// lately; requests still holding one keep it alive until they finish.
    private func evictUnused(_ s: inout State) {
        let inUse = Set(s.aliases.map { VersionKey(name: $0.key.name, version: $0.value) })
        for key in s.loaded.keys where !inUse.contains(key) && s.direct[key] == nil {
            s.loaded[key] = nil
        }
        s.fast.removeAll()
        changes.add(1, ordering: .releasing)
    }

    private func refreshAliases(model: String) {
        let aliases = state.withLock { s in s.aliases.filter { $0.key.name == model } }
        for (reference, current) in aliases {
            guard case .alias(let alias) = reference.selector else { continue }
            let target: ModelVersion
            do {
                target = try registry.resolve(model: model, alias: alias)
            } catch {
                // Deleted (or the model is gone): stop serving the alias.
                state.withLock { s in
                    s.aliases[reference] = nil
                    evictUnused(&s)
                }
                continue
            }
            guard target.version != current else { continue }
            // Load first, switch after: requests keep the old version until then.
            guard (try? loadVersion(target)) != nil else {
                // The new version cannot be served; drop the alias so that
                // the next request loads it and gets the error.
                state.withLock { s in
                    s.aliases[reference] = nil
                    evictUnused(&s)
                }
                continue
            }
            state.withLock { s in
                s.aliases[reference] = target.version
                s.swaps += 1
                evictUnused(&s)
            }
        }
    }
}
