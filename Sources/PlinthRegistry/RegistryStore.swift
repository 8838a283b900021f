// RegistryStore: registered models, versions, aliases, policies and the
// alias audit, in the daemon's LMDB environment.
//
// A model is one JSON record (with its aliases and policy), each version
// another, keyed (model, version number) so a model's versions are one range
// scan. Alias changes and their audit entry are written in one writer job:
// the audit can never miss a change, and the policy check reads the same
// snapshot the change is written to, so two promotions cannot race past it.
import Foundation
public import PlinthStorage

// Safe: `recentModelBytes` and `recentModel` are guarded by `recentModelLock`; the rest is immutable.
public final class RegistryStore: @unchecked Sendable {
    public let environment: Environment
    let models: Table
    let versions: Table
    let audit: Table
    /// The model record last decoded or encoded, with its stored bytes. A
    /// register reads back the record the one before it wrote, and
    /// comparing bytes costs far less than decoding the JSON (which was
    /// about a tenth of plinthd's CPU in a register loop). Keyed by the
    /// bytes themselves, so it is right whatever was committed since.
    private let recentModelLock = ConditionLock()
    private var recentModelBytes: [UInt8] = []
    private var recentModel: RegisteredModel?

    public init(environment: Environment) throws {
        self.environment = environment
        models = try environment.table("reg_models")
        versions = try environment.table("reg_versions")
        audit = try environment.table("reg_alias_audit")
    }

    // MARK: Models

    /// Creates a registered model.
    public func createModel(name: String, description: String = "", card: [String: String] = [:],
                            tags: [String: String] = [:], now: Int64 = currentMillisUTC()) async throws -> RegisteredModel {
        try Self.checkModelName(name)
        return try await environment.writer.write { [self] txn in
            if try txn.get(models, Array(name.utf8)) != nil {
                throw RegistryError.alreadyExists("a registered model named '\(name)' already exists")
            }
            let model = Self.newModel(name, description: description, card: card, tags: tags, now: now)
            try txn.put(models, Array(name.utf8), try encodeModel(model))
            return model
        }
    }

    static func newModel(_ name: String, description: String, card: [String: String],
                         tags: [String: String], now: Int64) -> RegisteredModel {
        RegisteredModel(name: name, description: description,
                        card: Dictionary(card.map { (RegisteredModel.cardKey($0.key), $0.value) }, uniquingKeysWith: { _, b in b }),
                        tags: tags, createdMs: now, updatedMs: now, latestVersion: 0, aliases: [:], policy: nil)
    }

    /// Changes a model's description, card fields (merged; an empty value
    /// removes a field) and tags (merged likewise).
    public func updateModel(name: String, description: String? = nil, card: [String: String] = [:],
                            tags: [String: String] = [:], now: Int64 = currentMillisUTC()) async throws -> RegisteredModel {
        try await updateModel(name, now: now) { model, _ in
            if let description { model.description = description }
            for (key, value) in card {
                model.card[RegisteredModel.cardKey(key)] = value.isEmpty ? nil : value
            }
            for (key, value) in tags { model.tags[key] = value.isEmpty ? nil : value }
        }
    }

    /// Sets (or with nil, clears) the model's governance policy.
    public func setPolicy(name: String, policy: Policy?, now: Int64 = currentMillisUTC()) async throws -> RegisteredModel {
        if let policy {
            for alias in policy.protectedAliases { try Self.checkAlias(alias) }
            for threshold in policy.metricThresholds where threshold.metric.isEmpty {
                throw RegistryError.invalidArgument("a metric threshold names no metric")
            }
        }
        return try await updateModel(name, now: now) { model, _ in model.policy = policy }
    }

    private func updateModel(_ name: String, now: Int64,
                             _ change: @escaping @Sendable (inout RegisteredModel, borrowing WriteTransaction) throws -> Void) async throws -> RegisteredModel {
        try await environment.writer.write { [self] txn in
            var model = try readModel(name, txn.get(models, Array(name.utf8)))
            try change(&model, txn)
            model.updatedMs = now
            try txn.put(models, Array(name.utf8), try encodeModel(model))
            return model
        }
    }

    public func model(named name: String) throws -> RegisteredModel {
        try environment.read { txn in try readModel(name, txn.get(models, Array(name.utf8))) }
    }

    func readModel(_ name: String, _ raw: UnsafeRawBufferPointer?) throws -> RegisteredModel {
        guard let raw else { throw RegistryError.notFound("no registered model is named '\(name)'") }
        let cached = recentModelLock.withLock { () -> RegisteredModel? in
            guard let recentModel, recentModelBytes.count == raw.count else { return nil }
            let same = recentModelBytes.withUnsafeBytes { raw.count == 0 || memcmp($0.baseAddress!, raw.baseAddress!, raw.count) == 0 }
            return same ? recentModel : nil
        }
        if let cached { return cached }
        let model = try JSONDecoder().decode(RegisteredModel.self, from: Data(raw))
        remember(model, bytes: Array(raw))
        return model
    }

    /// A model record's stored bytes; remembered for the next `readModel`.
    func encodeModel(_ model: RegisteredModel) throws -> [UInt8] {
        let bytes = try Self.encode(model)
        remember(model, bytes: bytes)
        return bytes
    }

    private func remember(_ model: RegisteredModel, bytes: [UInt8]) {
        recentModelLock.withLock {
            recentModelBytes = bytes
            recentModel = model
        }
    }

    /// Every registered model, by name.
    public func listModels() throws -> [RegisteredModel] {
        try environment.read { txn in
            var out: [RegisteredModel] = []
            try txn.scan(models, from: []) { _, value in
                out.append(try JSONDecoder().decode(RegisteredModel.self, from: Data(value)))
                return true
            }
            return out
        }
    }

    // MARK: Versions

    /// Registers a new version, numbered one past the model's latest; the
    /// model is created first when it does not exist (as MLflow's
    /// `register_model` does).
    ///
    /// Each of `aliases` is pointed at the new version in the same commit,
    /// exactly as `setAlias` would point it (policy check for a protected
    /// alias, audit entry with `who` and `reason`): one durable write instead
    /// of two. Any refused alias refuses the whole request, and no version is
    /// created. The returned version lists its aliases.
    public func createVersion(_ new: NewVersion, aliases: [String] = [], who: String = "", reason: String = "",
                              now: Int64 = currentMillisUTC()) async throws -> ModelVersion {
        try await withCheckedThrowingContinuation { continuation in
            createVersion(new, aliases: aliases, who: who, reason: reason, now: now) { continuation.resume(with: $0) }
        }
    }

    /// `createVersion` for callers on an event loop: `completion` runs on the
    /// writer's thread after the durable commit, with no task in between
    /// (two thread hops fewer for each register).
    public func createVersion(_ new: NewVersion, aliases: [String] = [], who: String = "", reason: String = "",
                              now: Int64 = currentMillisUTC(),
                              completion: @escaping @Sendable (Result<ModelVersion, any Error>) -> Void) {
        do {
            try Self.checkModelName(new.model)
            guard Self.isSHA256(new.artifactDigest) else {
                throw RegistryError.invalidArgument("artifact digest '\(new.artifactDigest)' is not 64 lowercase hex digits (sha256)")
            }
            for alias in aliases { try Self.checkAlias(alias) }
            if Set(aliases).count != aliases.count {
                let repeated = Dictionary(aliases.map { ($0, 1) }, uniquingKeysWith: +).filter { $0.value > 1 }.keys.sorted()
                throw RegistryError.invalidArgument("alias\(repeated.count == 1 ? "" : "es") \(repeated.map { "'\($0)'" }.joined(separator: ", ")) given more than once")
            }
        } catch {
            return completion(.failure(error))
        }
        environment.writer.submit({ [self] txn in
            let key = Array(new.model.utf8)
            var model = try txn.get(models, key).map { try readModel(new.model, $0) }
                ?? Self.newModel(new.model, description: "", card: [:], tags: [:], now: now)
            model.latestVersion += 1
            model.updatedMs = now
            var version = ModelVersion(model: new.model, version: model.latestVersion, description: new.description,
                                       source: new.source, artifactDigest: new.artifactDigest,
                                       artifactFormat: new.artifactFormat, signature: new.signature, tags: new.tags,
                                       createdMs: now, aliases: [])
            // Aliases first: a refusal throws before anything is written (and
            // the writer's nested transaction would undo it anyway).
            var events: [AliasEvent] = []
            for alias in aliases {
                events.append(try pointAlias(alias, of: &model, at: version, who: who, reason: reason, now: now))
            }
            try txn.put(models, key, try encodeModel(model))
            try txn.put(versions, makeKey { $0.append(new.model); $0.append(version.version) }, try Self.encode(version))
            for event in events { try appendAudit(event, txn) }
            version.aliases = model.aliases.filter { $0.value == version.version }.map(\.key).sorted()
            return version
        }, completion: completion)
    }

    public func version(model name: String, version number: UInt64) throws -> ModelVersion {
        try environment.read { txn in
            let model = try readModel(name, txn.get(models, Array(name.utf8)))
            return try readVersion(model, number, txn)
        }
    }

    private func readVersion(_ model: RegisteredModel, _ number: UInt64, _ txn: borrowing ReadTransaction) throws -> ModelVersion {
        guard let raw = try txn.get(versions, makeKey { $0.append(model.name); $0.append(number) }) else {
            throw RegistryError.notFound("model '\(model.name)' has no version \(number) (latest is \(model.latestVersion))")
        }
        var version = try JSONDecoder().decode(ModelVersion.self, from: Data(raw))
        version.aliases = model.aliases.filter { $0.value == number }.map(\.key).sorted()
        return version
    }

    /// Every version of a model, oldest first.
    public func versions(model name: String) throws -> [ModelVersion] {
        try environment.read { txn in
            let model = try readModel(name, txn.get(models, Array(name.utf8)))
            let prefix = makeKey { $0.append(name) }
            var out: [ModelVersion] = []
            try txn.scan(versions, from: prefix) { key, value in
                guard key.count == prefix.count + 8, key.starts(with: prefix) else { return false }
                var version = try JSONDecoder().decode(ModelVersion.self, from: Data(value))
                version.aliases = model.aliases.filter { $0.value == version.version }.map(\.key).sorted()
                out.append(version)
                return true
            }
            return out
        }
    }

    /// The version an alias points at.
    public func resolve(model name: String, alias: String) throws -> ModelVersion {
        try environment.read { txn in
            let model = try readModel(name, txn.get(models, Array(name.utf8)))
            guard let number = model.aliases[alias] else {
                let known = model.aliases.keys.sorted()
                throw RegistryError.notFound("model '\(name)' has no alias '\(alias)'"
                    + (known.isEmpty ? " (it has no aliases)" : " (its aliases: \(known.joined(separator: ", ")))"))
            }
            return try readVersion(model, number, txn)
        }
    }

    /// The version `reference` names (see `ModelReference`: a bare name
    /// means the `production` alias).
    public func resolve(_ reference: ModelReference) throws -> ModelVersion {
        switch reference.selector {
        case .alias(let alias): return try resolve(model: reference.name, alias: alias)
        case .version(let number): return try version(model: reference.name, version: number)
        }
    }

    /// Parses and resolves `name@alias`, `name/3`, `name:3` or `name`.
    public func resolve(reference: String) throws -> ModelVersion {
        try resolve(ModelReference(parsing: reference))
    }

    // MARK: Aliases

    /// Points `alias` at `version`. A protected alias first runs the
    /// model's policy against the version; any failed check refuses the
    /// change and every failed check is listed. The change and its audit
    /// entry commit together.
    public func setAlias(model name: String, alias: String, version number: UInt64, who: String, reason: String,
                         now: Int64 = currentMillisUTC()) async throws -> AliasEvent {
        try Self.checkAlias(alias)
        return try await environment.writer.write { [self] txn in
            let key = Array(name.utf8)
            var model = try readModel(name, txn.get(models, key))
            guard let raw = try txn.get(versions, makeKey { $0.append(name); $0.append(number) }) else {
                throw RegistryError.notFound("model '\(name)' has no version \(number) (latest is \(model.latestVersion))")
            }
            let version = try JSONDecoder().decode(ModelVersion.self, from: Data(raw))
            let event = try pointAlias(alias, of: &model, at: version, who: who, reason: reason, now: now)
            try txn.put(models, key, try encodeModel(model))
            try appendAudit(event, txn)
            return event
        }
    }

    /// Points `alias` at `version` in `model` (not yet written): a protected
    /// alias runs the model's policy against the version first, and any
    /// failed check refuses the change, listing every failed check.
    /// - Returns: the audit entry; the caller writes the model and appends
    ///   the entry in the same transaction.
    private func pointAlias(_ alias: String, of model: inout RegisteredModel, at version: ModelVersion,
                            who: String, reason: String, now: Int64) throws -> AliasEvent {
        let policy = model.effectivePolicy
        let protected = policy.protectedAliases.contains(alias)
        if protected {
            let failures = policy.failures(model: model, version: version)
            if !failures.isEmpty {
                throw RegistryError.policyViolation(model: model.name, alias: alias, version: version.version, failures: failures)
            }
        }
        let event = AliasEvent(model: model.name, alias: alias, fromVersion: model.aliases[alias] ?? 0,
                               toVersion: version.version, who: who, atMs: now, reason: reason, checked: protected)
        model.aliases[alias] = version.version
        model.updatedMs = now
        return event
    }

    /// Removes an alias; recorded like a change (to version 0).
    public func deleteAlias(model name: String, alias: String, who: String, reason: String,
                            now: Int64 = currentMillisUTC()) async throws -> AliasEvent {
        try await environment.writer.write { [self] txn in
            let key = Array(name.utf8)
            var model = try readModel(name, txn.get(models, key))
            guard let from = model.aliases.removeValue(forKey: alias) else {
                throw RegistryError.notFound("model '\(name)' has no alias '\(alias)'")
            }
            let event = AliasEvent(model: name, alias: alias, fromVersion: from, toVersion: 0, who: who, atMs: now,
                                   reason: reason, checked: false)
            model.updatedMs = now
            try txn.put(models, key, try encodeModel(model))
            try appendAudit(event, txn)
            return event
        }
    }

    /// Runs the model's policy against a version without changing anything.
    /// - Returns: every failed check; empty when the version passes.
    public func check(model name: String, version number: UInt64) throws -> [String] {
        let model = try model(named: name)
        return model.effectivePolicy.failures(model: model, version: try version(model: name, version: number))
    }

    private func appendAudit(_ event: AliasEvent, _ txn: borrowing WriteTransaction) throws {
        // Entries are keyed (model, sequence); the next sequence is one past
        // the last entry: the greatest key below (model, UInt64.max), found
        // with one seek, not a walk over the model's whole audit log (which
        // every register with an alias made longer). The model name's key
        // encoding is self-delimiting, so no other model's keys start with
        // this prefix.
        let prefix = makeKey { $0.append(event.model) }
        let bound = makeKey { $0.append(event.model); $0.append(UInt64.max) }
        let last = try txn.withCursor(audit) { cursor -> UInt64 in
            guard let found = try bound.withUnsafeBytes({ try cursor.lastBefore($0) }),
                  found.key.count == prefix.count + 8, found.key.starts(with: prefix) else { return 0 }
            var decoder = KeyDecoder(UnsafeRawBufferPointer(rebasing: found.key[prefix.count...]))
            return try decoder.readUInt64()
        }
        try txn.put(audit, makeKey { $0.append(event.model); $0.append(last + 1) }, try Self.encode(event))
    }

    /// A model's alias changes, oldest first.
    public func auditLog(model name: String) throws -> [AliasEvent] {
        try environment.read { txn in
            _ = try readModel(name, txn.get(models, Array(name.utf8)))
            let prefix = makeKey { $0.append(name) }
            var out: [AliasEvent] = []
            try txn.scan(audit, from: prefix) { key, value in
                guard key.count == prefix.count + 8, key.starts(with: prefix) else { return false }
                out.append(try JSONDecoder().decode(AliasEvent.self, from: Data(value)))
                return true
            }
            return out
        }
    }

    // MARK: Validation

    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return Array(try encoder.encode(value))
    }

    static func checkModelName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 256 else {
            throw RegistryError.invalidArgument("a model name must be 1 to 256 bytes")
        }
        guard !name.contains("@"), !name.contains("/"), !name.contains(":") else {
            throw RegistryError.invalidArgument("model name '\(name)' may not contain '@', '/' or ':' (they separate aliases and versions in references)")
        }
    }

    /// Alias names: letters, digits, '_' and '-'; `v<number>` and `latest`
    /// are reserved (as MLflow reserves them) because references use them.
    static func checkAlias(_ alias: String) throws {
        guard !alias.isEmpty, alias.utf8.count <= 64,
              alias.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D }) else {
            throw RegistryError.invalidArgument("alias '\(alias)' must be 1 to 64 letters, digits, '_' or '-'")
        }
        let lower = alias.lowercased()
        if lower == "latest" || (lower.hasPrefix("v") && lower.count > 1 && lower.dropFirst().allSatisfy(\.isNumber)) {
            throw RegistryError.invalidArgument("alias '\(alias)' is reserved ('latest' and 'v<number>' name versions)")
        }
    }

    static func isSHA256(_ digest: String) -> Bool {
        digest.utf8.count == 64 && digest.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
public func currentMillisUTC() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
