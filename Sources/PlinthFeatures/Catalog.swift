// Catalog: the stored feature definitions and the in-memory snapshot the
// read path resolves names against.
//
// An apply replaces one project's definitions. It runs as one writer job:
// it reads what is stored, computes the changes, assigns view ids, bumps a
// view's schema version when its features change, and writes the new
// version and its history in the same transaction. After the commit the
// snapshot is rebuilt from storage, so the read path never takes a storage
// round trip to resolve a name (Feast's registry lookups are its slowest
// part).
import Foundation
public import PlinthStorage

/// A feature view as the read and write paths need it: resolved and laid out.
public final class ResolvedView: Sendable {
    public let definition: FeatureViewDefinition
    public let meta: FeatureViewMeta
    public let project: String
    /// Join keys of the view's entities, in the view's entity order.
    public let joinKeys: [(name: String, type: FeatureType)]
    /// The layout rows are written with now.
    public let layout: RowLayout
    /// Layouts of earlier schema versions, to read rows written before a change.
    public let layouts: [UInt32: RowLayout]
    /// The view's derived features compiled; nil when it has none.
    let transforms: TransformPlan?

    init(definition: FeatureViewDefinition, meta: FeatureViewMeta, project: String,
         joinKeys: [(name: String, type: FeatureType)], layouts: [UInt32: RowLayout]) {
        self.definition = definition
        self.meta = meta
        self.project = project
        self.joinKeys = joinKeys
        self.layout = layouts[meta.schemaVersion] ?? RowLayout(features: definition.features, schemaVersion: meta.schemaVersion)
        self.layouts = layouts
        self.transforms = TransformPlan(features: definition.features)
    }

    public var name: String { definition.name }
}

/// Every definition, resolved; immutable, replaced whole after an apply.
public final class CatalogSnapshot: Sendable {
    public let projects: [String: ProjectDefinitions]
    public let views: [String: ResolvedView]
    public let services: [String: FeatureServiceDefinition]
    /// Increments with every apply that changes anything.
    public let version: UInt64

    init(projects: [String: ProjectDefinitions], views: [String: ResolvedView],
         services: [String: FeatureServiceDefinition], version: UInt64) {
        self.projects = projects
        self.views = views
        self.services = services
        self.version = version
    }
}

/// What an apply changed.
public struct ApplyResult: Sendable {
    public var project: String
    public var version: UInt64
    public var changed: Bool
    public var created: [String] = []
    public var updated: [String] = []
    public var deleted: [String] = []
}

/// Errors an apply refuses with, besides a malformed document.
public enum CatalogError: Error, CustomStringConvertible, Sendable {
    case conflict(String)
    case corrupt(String)

    public var description: String {
        switch self {
        case .conflict(let message): message
        case .corrupt(let message): "stored definitions are damaged: \(message)"
        }
    }
}

// Safe: `current` is read and written only under `lock`; the rest is immutable after init.
public final class Catalog: @unchecked Sendable {
    let environment: Environment
    let definitions: Table
    let history: Table
    let schemas: Table
    let state: Table
    private let lock = ConditionLock()
    private var current: CatalogSnapshot

    public init(environment: Environment) throws {
        self.environment = environment
        definitions = try environment.table("definitions")
        history = try environment.table("definitions_history")
        schemas = try environment.table("schemas")
        state = try environment.table("catalog_state")
        current = CatalogSnapshot(projects: [:], views: [:], services: [:], version: 0)
        try reload()
    }

    /// The current definitions. Cheap: a lock and a reference count.
    public var snapshot: CatalogSnapshot { lock.withLock { current } }

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    /// Rebuilds the snapshot from storage.
    public func reload() throws {
        let tables = (definitions, schemas, state)
        let snap = try environment.read { txn -> CatalogSnapshot in
            var projects: [String: ProjectDefinitions] = [:]
            try txn.scan(tables.0, from: []) { _, value in
                let project = try JSONDecoder().decode(ProjectDefinitions.self, from: Data(value))
                projects[project.spec.project] = project
                return true
            }
            var layouts: [UInt32: [UInt32: RowLayout]] = [:]
            try txn.scan(tables.1, from: []) { key, value in
                var decoder = KeyDecoder(key)
                let viewID = try decoder.readUInt32()
                let version = try decoder.readUInt32()
                let features = try JSONDecoder().decode([FeatureDefinition].self, from: Data(value))
                layouts[viewID, default: [:]][version] = RowLayout(features: features, schemaVersion: version)
                return true
            }
            var version: UInt64 = 0
            if let raw = try txn.get(tables.2, Array("version".utf8)), raw.count == 8 {
                version = raw.loadUnaligned(as: UInt64.self)
            }
            var views: [String: ResolvedView] = [:]
            var services: [String: FeatureServiceDefinition] = [:]
            for project in projects.values {
                let entities = Dictionary(project.spec.entities.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
                for view in project.spec.featureViews {
                    guard let meta = project.viewMeta[view.name] else {
                        throw CatalogError.corrupt("view \(view.name) has no meta")
                    }
                    let keys = try view.entities.map { name -> (name: String, type: FeatureType) in
                        guard let e = entities[name] else { throw CatalogError.corrupt("view \(view.name) names missing entity \(name)") }
                        return (e.joinKey, e.type)
                    }
                    views[view.name] = ResolvedView(definition: view, meta: meta, project: project.spec.project,
                                                    joinKeys: keys, layouts: layouts[meta.viewID] ?? [:])
                }
                for service in project.spec.featureServices { services[service.name] = service }
            }
            return CatalogSnapshot(projects: projects, views: views, services: services, version: version)
        }
        lock.withLock { current = snap }
    }

    // MARK: History

    /// `project`'s definitions as they were at `version`, from the history
    /// table every apply writes (the current ones are its latest entry).
    /// - Throws: `FeatureStoreError.notFound` naming the project's versions
    ///   when it never had `version`, or when there is no such project.
    /// - Complexity: one read; a miss also scans the project's history to
    ///   name the versions there are.
    public func definitions(of project: String, at version: UInt64) throws -> ProjectDefinitions {
        let prefix = makeKey { $0.append(project) }
        let history = self.history
        let (found, versions) = try environment.read { txn -> (Data?, [UInt64]) in
            if let raw = try txn.get(history, prefix + makeKey { $0.append(version) }) { return (Data(raw), []) }
            var versions: [UInt64] = []
            try txn.scan(history, from: prefix) { key, _ in
                guard key.count == prefix.count + 8, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
                var decoder = KeyDecoder(UnsafeRawBufferPointer(rebasing: key[prefix.count...]))
                versions.append(try decoder.readUInt64())
                return true
            }
            return (nil, versions)
        }
        if let found { return try JSONDecoder().decode(ProjectDefinitions.self, from: found) }
        if versions.isEmpty { throw FeatureStoreError.notFound("unknown project '\(project)'") }
        throw FeatureStoreError.notFound(
            "project '\(project)' has no definitions version \(version) (versions: \(Self.ranges(versions)))")
    }

    /// "1-4, 7": versions are consecutive in practice, and a project applied
    /// thousands of times must not get a message of thousands of numbers.
    static func ranges(_ sorted: [UInt64]) -> String {
        var parts: [String] = []
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count, sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }

    // MARK: Applying

    /// Applies `spec` (replacing its project's definitions) and calls
    /// `completion` after the commit, with the snapshot already rebuilt.
    public func apply(_ spec: ProjectSpec, dryRun: Bool, now: Int64,
                      completion: @escaping @Sendable (Result<ApplyResult, any Error>) -> Void) {
        let tables = (definitions, history, schemas, state)
        environment.writer.submit({ txn -> ApplyResult in
            try Self.apply(spec, dryRun: dryRun, now: now, txn: txn,
                           definitions: tables.0, history: tables.1, schemas: tables.2, state: tables.3)
        }, completion: { [self] result in
            if case .success(let applied) = result, applied.changed, !dryRun {
                do { try reload() } catch { completion(.failure(error)); return }
            }
            completion(result)
        })
    }

    /// Applies and waits; for tools and tests.
    public func apply(_ spec: ProjectSpec, dryRun: Bool = false, now: Int64 = currentMicros()) throws -> ApplyResult {
        let done = ConditionLock()
        nonisolated(unsafe) var outcome: Result<ApplyResult, any Error>?
        apply(spec, dryRun: dryRun, now: now) { result in done.withLock { outcome = result; done.signal() } }
        return try done.withLock { () throws -> ApplyResult in
            while outcome == nil { done.wait() }
            return try outcome!.get()
        }
    }

    private static func apply(_ spec: ProjectSpec, dryRun: Bool, now: Int64, txn: borrowing WriteTransaction,
                              definitions: Table, history: Table, schemas: Table, state: Table) throws -> ApplyResult {
        // Names are global: a reference "view:feature" carries no project.
        var others: [String: String] = [:]
        var stored: ProjectDefinitions?
        try txn.scan(definitions, from: []) { _, value in
            let project = try JSONDecoder().decode(ProjectDefinitions.self, from: Data(value))
            if project.spec.project == spec.project { stored = project; return true }
            for e in project.spec.entities { others["entity:\(e.name)"] = project.spec.project }
            for v in project.spec.featureViews { others["feature_view:\(v.name)"] = project.spec.project }
            for s in project.spec.featureServices { others["feature_service:\(s.name)"] = project.spec.project }
            return true
        }
        var clashes: [String] = []
        let mine = spec.entities.map { "entity:\($0.name)" } + spec.featureViews.map { "feature_view:\($0.name)" }
            + spec.featureServices.map { "feature_service:\($0.name)" }
        for name in mine { if let owner = others[name] { clashes.append("\(name) belongs to project '\(owner)'") } }
        if !clashes.isEmpty {
            throw CatalogError.conflict("names are global across projects: " + clashes.joined(separator: "; "))
        }

        var result = ApplyResult(project: spec.project, version: stored?.version ?? 0, changed: false)
        if let stored, stored.spec == spec { return result }

        let old = stored?.spec ?? ProjectSpec(project: spec.project)
        let oldEntities = Dictionary(old.entities.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let oldViews = Dictionary(old.featureViews.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let oldServices = Dictionary(old.featureServices.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newEntities = Dictionary(spec.entities.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func diff<T: Equatable>(_ kind: String, _ before: [String: T], _ after: [String: T]) {
            for (name, value) in after {
                if let previous = before[name] {
                    if previous != value { result.updated.append("\(kind):\(name)") }
                } else { result.created.append("\(kind):\(name)") }
            }
            for name in before.keys where after[name] == nil { result.deleted.append("\(kind):\(name)") }
        }
        diff("entity", oldEntities, newEntities)
        diff("feature_view", oldViews, Dictionary(spec.featureViews.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }))
        diff("feature_service", oldServices, Dictionary(spec.featureServices.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }))
        result.created.sort(); result.updated.sort(); result.deleted.sort()

        // Stored rows are keyed by the view's join keys: changing them would
        // strand every row, so it is refused rather than silently done.
        var refusals: [String] = []
        for view in spec.featureViews {
            guard let before = oldViews[view.name] else { continue }
            let keysBefore = before.entities.compactMap { oldEntities[$0] }.map { "\($0.joinKey):\($0.type)" }
            let keysAfter = view.entities.compactMap { newEntities[$0] }.map { "\($0.joinKey):\($0.type)" }
            if keysBefore != keysAfter {
                refusals.append("feature view '\(view.name)' changes its keys from [\(keysBefore.joined(separator: ", "))] to [\(keysAfter.joined(separator: ", "))]; create a new view instead")
            }
        }
        if !refusals.isEmpty { throw CatalogError.conflict(refusals.joined(separator: "; ")) }

        var nextViewID: UInt32 = 1
        let nextKey = Array("next_view_id".utf8)
        if let raw = try txn.get(state, nextKey), raw.count == 4 { nextViewID = raw.loadUnaligned(as: UInt32.self) }
        var metas: [String: FeatureViewMeta] = [:]
        var newSchemas: [(UInt32, UInt32, [FeatureDefinition])] = []
        for view in spec.featureViews {
            if let before = oldViews[view.name], var meta = stored?.viewMeta[view.name] {
                if before.features != view.features {
                    meta.schemaVersion += 1
                    newSchemas.append((meta.viewID, meta.schemaVersion, view.features))
                }
                if before != view { meta.updatedAtMicros = now }
                metas[view.name] = meta
            } else {
                let meta = FeatureViewMeta(viewID: nextViewID, schemaVersion: 1, createdAtMicros: now, updatedAtMicros: now)
                nextViewID += 1
                newSchemas.append((meta.viewID, 1, view.features))
                metas[view.name] = meta
            }
        }
        result.changed = true
        result.version = (stored?.version ?? 0) + 1
        if dryRun { return result }

        let project = ProjectDefinitions(spec: spec, version: result.version, appliedAtMicros: now, viewMeta: metas)
        let json = Array(try encoder.encode(project))
        try txn.put(definitions, Array(spec.project.utf8), json)
        try txn.put(history, makeKey { $0.append(spec.project); $0.append(result.version) }, json)
        for (viewID, version, features) in newSchemas {
            try txn.put(schemas, makeKey { $0.append(viewID); $0.append(version) }, Array(try encoder.encode(features)))
        }
        try txn.put(state, nextKey, withUnsafeBytes(of: nextViewID) { Array($0) })
        var version: UInt64 = 0
        let versionKey = Array("version".utf8)
        if let raw = try txn.get(state, versionKey), raw.count == 8 { version = raw.loadUnaligned(as: UInt64.self) }
        try txn.put(state, versionKey, withUnsafeBytes(of: version + 1) { Array($0) })
        return result
    }
}

/// Microseconds since the Unix epoch, from the system clock.
public func currentMicros() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
}
