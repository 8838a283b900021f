// OnlineStore: the online face. Reads the latest row of each entity for a
// batch of entity rows, and writes pushed rows to the online and offline
// faces in one transaction.
//
// Read path, in order: resolve the references against the catalog snapshot
// (in memory), then in one read transaction, for each view and entity row,
// build the key on the stack, one mdb_get, and copy the requested features
// out of the packed row into columnar results. No per-row allocation beyond
// the growth of the result arrays.
public import PlinthStorage

/// One requested feature across all entity rows.
public struct FeatureResult: Sendable {
    public var values: Column
    public var statuses: [FieldStatus]
    public var eventTimes: [Int64]
}

extension FeatureResult {
    /// Records a row without a value: a placeholder, the status, the time.
    @inline(__always)
    mutating func appendMissing(_ status: FieldStatus, eventTime: Int64) {
        values.appendNull()
        statuses.append(status)
        eventTimes.append(eventTime)
    }
}

/// Which faces a push writes.
public enum PushTarget: Sendable {
    case online, offline, onlineAndOffline
    var online: Bool { self != .offline }
    var offline: Bool { self != .online }
}

/// The counts a push reports after its commit.
public struct PushResult: Sendable, Equatable {
    public var rows = 0
    public var onlineRowsWritten = 0
    public var onlineRowsStale = 0
    public var offlineRowsWritten = 0
}

public final class OnlineStore: Sendable {
    public let environment: Environment
    public let catalog: Catalog
    let online: Table
    let offline: Table
    /// Most entity rows in one read, and rows in one push.
    public let maxRows: Int
    /// Samples online reads for the skew check (SkewCheck.swift); nil: off.
    public let sampler: ReadSampler?

    public init(environment: Environment, catalog: Catalog, maxRows: Int = 100_000, sampler: ReadSampler? = nil) throws {
        self.environment = environment
        self.catalog = catalog
        self.online = try environment.table("online")
        self.offline = try environment.table("offline")
        self.maxRows = maxRows
        self.sampler = sampler
    }

    // MARK: Reading

    private struct Slot {
        let view: ResolvedView
        let index: Int
        let feature: FeatureDefinition
    }

    /// Reads `features` (references "view:feature") or the features of
    /// `service` for every row of `entities` (one column per join key).
    /// - Parameter now: microseconds since the epoch, for TTL checks.
    /// - Returns: one result per feature, in the order asked.
    public func read(features: [String], service: String?, entities: [Column], fullFeatureNames: Bool,
                     now: Int64 = currentMicros()) throws -> [FeatureResult] {
        let snapshot = catalog.snapshot
        let references: [String]
        if let service, !service.isEmpty {
            guard features.isEmpty else {
                throw FeatureStoreError.invalidArgument("give either features or a feature service, not both")
            }
            guard let definition = snapshot.services[service] else {
                throw FeatureStoreError.notFound("unknown feature service '\(service)'")
            }
            references = definition.features
        } else {
            references = features
        }
        guard !references.isEmpty else {
            throw FeatureStoreError.invalidArgument("no features requested: give feature references or a feature service")
        }

        // Resolve; group output slots by view so each entity row costs one
        // lookup per view however many of its features are asked for.
        var slots: [Slot] = []
        slots.reserveCapacity(references.count)
        var viewOrder: [ResolvedView] = []
        var seenViews: Set<String> = []
        for text in references {
            guard let ref = FeatureReference(text) else {
                throw FeatureStoreError.invalidArgument("'\(text)' is not a feature reference (expected 'view:feature')")
            }
            guard let view = snapshot.views[ref.view] else {
                throw FeatureStoreError.notFound("unknown feature view '\(ref.view)' in '\(text)'")
            }
            guard let index = view.layout.indexByName[ref.feature] else {
                throw FeatureStoreError.notFound("feature view '\(ref.view)' has no feature '\(ref.feature)'")
            }
            slots.append(Slot(view: view, index: index, feature: view.layout.features[index]))
            if seenViews.insert(view.name).inserted { viewOrder.append(view) }
        }

        var outputNames: Set<String> = []
        for slot in slots {
            let name = fullFeatureNames ? "\(slot.view.name)__\(slot.feature.name)" : slot.feature.name
            guard outputNames.insert(name).inserted else {
                throw FeatureStoreError.invalidArgument(fullFeatureNames
                    ? "feature '\(name)' is requested twice"
                    : "two requested features are both named '\(name)'; set full_feature_names to name them view__feature")
            }
        }

        let rows = try entityRowCount(entities)
        var keyColumns: [String: Column] = [:]
        for column in entities { keyColumns[column.name] = column }
        var results: [FeatureResult] = slots.map { slot in
            let name = fullFeatureNames ? "\(slot.view.name)__\(slot.feature.name)" : slot.feature.name
            var column = Column(name: name, type: slot.feature.type)
            column.reserve(rows)
            var statuses: [FieldStatus] = []
            statuses.reserveCapacity(rows)
            var times: [Int64] = []
            times.reserveCapacity(rows)
            return FeatureResult(values: column, statuses: statuses, eventTimes: times)
        }

        for view in viewOrder {
            let keys = try view.joinKeys.map { key -> Column in
                guard let column = keyColumns[key.name] else {
                    throw FeatureStoreError.invalidArgument("feature view '\(view.name)' needs entity column '\(key.name)'")
                }
                guard column.type == key.type else {
                    throw FeatureStoreError.invalidArgument("entity column '\(key.name)' is \(column.type) but the view's key is \(key.type)")
                }
                return column
            }
            let mine = slots.indices.filter { slots[$0].view === view }
            let ttlMicros = view.definition.ttlSeconds > 0 ? view.definition.ttlSeconds.multipliedReportingOverflow(by: 1_000_000).partialValue : 0
            try environment.read { txn in
                try withUnsafeTemporaryAllocation(byteCount: KeyEncoder.maxInlineKey, alignment: 8) { buffer in
                    for row in 0..<rows {
                        var encoder = KeyEncoder(buffer)
                        let keyIsNull = encodeKey(view.meta.viewID, keys, row: row, into: &encoder)
                        var found: UnsafeRawBufferPointer? = nil
                        if !keyIsNull {
                            if encoder.overflowed {
                                found = try txn.get(online, makeKey { appendKey(view.meta.viewID, keys, row: row, into: &$0) })
                            } else {
                                found = try txn.get(online, encoder.bytes)
                            }
                        }
                        guard let found, let packed = PackedRow(found) else {
                            for i in mine { results[i].appendMissing(.notFound, eventTime: 0) }
                            continue
                        }
                        let layout = packed.schemaVersion == view.layout.schemaVersion ? view.layout : view.layouts[packed.schemaVersion]
                        let expired = ttlMicros > 0 && now - packed.eventTime > ttlMicros
                        for i in mine {
                            let slot = slots[i]
                            guard let layout, packed.fits(layout) else {
                                results[i].appendMissing(.nullValue, eventTime: packed.eventTime)
                                continue
                            }
                            let index = layout.schemaVersion == view.layout.schemaVersion ? slot.index
                                : layout.index(of: slot.feature.name, type: slot.feature.type)
                            guard let index else {
                                // Written before this feature existed (or had this type).
                                results[i].appendMissing(.nullValue, eventTime: packed.eventTime)
                                continue
                            }
                            if expired {
                                results[i].appendMissing(.outsideMaxAge, eventTime: packed.eventTime)
                            } else if packed.isNull(index) || !packed.append(index, layout, to: &results[i].values) {
                                results[i].appendMissing(.nullValue, eventTime: packed.eventTime)
                            } else {
                                results[i].statuses.append(.present)
                                results[i].eventTimes.append(packed.eventTime)
                            }
                        }
                    }
                }
            }
        }
        if let sampler, sampler.shouldSample() {
            sample(service: service, references: references, entities: entities, results: results, now: now)
        }
        return results
    }

    private func entityRowCount(_ entities: [Column]) throws -> Int {
        guard let first = entities.first else {
            throw FeatureStoreError.invalidArgument("no entity columns: give one column per join key")
        }
        let rows = first.count
        var names: Set<String> = []
        for column in entities {
            if let problem = column.shapeProblem() { throw FeatureStoreError.invalidArgument(problem) }
            guard column.count == rows else {
                throw FeatureStoreError.invalidArgument("entity column '\(column.name)' has \(column.count) rows, '\(first.name)' has \(rows)")
            }
            guard names.insert(column.name).inserted else {
                throw FeatureStoreError.invalidArgument("entity column '\(column.name)' is given twice")
            }
        }
        guard rows <= maxRows else {
            throw FeatureStoreError.tooLarge("\(rows) entity rows in one request; the limit is \(maxRows)")
        }
        return rows
    }

    // MARK: Writing

    /// A push validated and encoded off the writer's thread, ready to write.
    public struct PreparedPush: @unchecked Sendable {
        let target: PushTarget
        let rows: Int
        /// Online key of each row, back to back; offsets in keyEnds.
        let keys: [UInt8]
        let keyEnds: [Int]
        let values: [UInt8]
        let valueEnds: [Int]
        let eventTimes: [Int64]
        let createdTimes: [Int64]
    }

    /// Validates a push against the view's definition and packs its rows.
    public func prepare(view name: String, columns: [Column], eventTimes: [Int64], createdTimes: [Int64],
                        target: PushTarget, now: Int64 = currentMicros()) throws -> PreparedPush {
        guard let view = catalog.snapshot.views[name] else {
            throw FeatureStoreError.notFound("unknown feature view '\(name)'")
        }
        let rows = eventTimes.count
        guard rows <= maxRows else { throw FeatureStoreError.tooLarge("\(rows) rows in one push; the limit is \(maxRows)") }
        guard createdTimes.isEmpty || createdTimes.count == rows else {
            throw FeatureStoreError.invalidArgument("\(createdTimes.count) created times for \(rows) rows")
        }
        var byName: [String: Column] = [:]
        for column in columns {
            guard byName.updateValue(column, forKey: column.name) == nil else {
                throw FeatureStoreError.invalidArgument("column '\(column.name)' is given twice")
            }
        }
        func take(_ name: String, _ type: FeatureType, what: String) throws -> Column {
            guard let column = byName.removeValue(forKey: name) else {
                throw FeatureStoreError.invalidArgument("push to '\(view.name)' is missing \(what) column '\(name)'")
            }
            guard column.type == type else {
                throw FeatureStoreError.invalidArgument("column '\(name)' is \(column.type) but \(what) '\(name)' of '\(view.name)' is \(type)")
            }
            if let problem = column.shapeProblem() { throw FeatureStoreError.invalidArgument(problem) }
            guard column.count == rows else {
                throw FeatureStoreError.invalidArgument("column '\(name)' has \(column.count) rows but there are \(rows) event times")
            }
            return column
        }
        let keys = try view.joinKeys.map { key -> Column in
            let column = try take(key.name, key.type, what: "join key")
            guard column.nullRows.isEmpty else {
                throw FeatureStoreError.invalidArgument("join key '\(key.name)' is null in row \(column.nullRows[0])")
            }
            return column
        }
        if let plan = view.transforms {
            // Derived features are computed here, by the one transform engine.
            try deriveColumns(view: view, plan: plan, columns: &byName, keys: keys, eventTimes: eventTimes,
                              createdTimes: createdTimes.isEmpty ? Array(repeating: now, count: rows) : createdTimes)
        }
        let features = try view.layout.features.map { try take($0.name, $0.type, what: "feature") }
        if let extra = byName.keys.sorted().first {
            throw FeatureStoreError.invalidArgument("feature view '\(view.name)' has no feature or join key '\(extra)'")
        }
        let nulls = features.map { Set($0.nullRows.map(Int.init)) }

        var keyBytes: [UInt8] = []
        var keyEnds: [Int] = []
        var values: [UInt8] = []
        var valueEnds: [Int] = []
        keyEnds.reserveCapacity(rows)
        valueEnds.reserveCapacity(rows)
        values.reserveCapacity(rows * view.layout.fixedSize)
        for row in 0..<rows {
            keyBytes.append(contentsOf: makeKey { appendKey(view.meta.viewID, keys, row: row, into: &$0) })
            keyEnds.append(keyBytes.count)
            let created = createdTimes.isEmpty ? now : createdTimes[row]
            view.layout.encode(row: row, columns: features, nulls: nulls, eventTime: eventTimes[row],
                               createdTime: created, into: &values)
            valueEnds.append(values.count)
        }
        return PreparedPush(target: target, rows: rows, keys: keyBytes, keyEnds: keyEnds, values: values,
                            valueEnds: valueEnds, eventTimes: eventTimes,
                            createdTimes: createdTimes.isEmpty ? Array(repeating: now, count: rows) : createdTimes)
    }

    /// Writes a prepared push in the writer's next batch; `completion` runs
    /// on the writer's thread after the commit.
    public func write(_ push: PreparedPush, completion: @escaping @Sendable (Result<PushResult, any Error>) -> Void) {
        let online = self.online, offline = self.offline
        environment.writer.submit({ txn -> PushResult in
            try Self.write(push, txn: txn, online: online, offline: offline)
        }, completion: completion)
    }

    /// Writes and waits for the commit; for tools and tests.
    public func push(view: String, columns: [Column], eventTimes: [Int64], createdTimes: [Int64] = [],
                     target: PushTarget = .onlineAndOffline) throws -> PushResult {
        let prepared = try prepare(view: view, columns: columns, eventTimes: eventTimes, createdTimes: createdTimes, target: target)
        let online = self.online, offline = self.offline
        return try environment.writer.write { txn in try Self.write(prepared, txn: txn, online: online, offline: offline) }
    }

    private static func write(_ push: PreparedPush, txn: borrowing WriteTransaction, online: Table, offline: Table) throws -> PushResult {
        var result = PushResult(rows: push.rows)
        try push.keys.withUnsafeBytes { keys in
            try push.values.withUnsafeBytes { values in
                var keyStart = 0, valueStart = 0
                for row in 0..<push.rows {
                    let key = UnsafeRawBufferPointer(rebasing: keys[keyStart..<push.keyEnds[row]])
                    let value = UnsafeRawBufferPointer(rebasing: values[valueStart..<push.valueEnds[row]])
                    keyStart = push.keyEnds[row]
                    valueStart = push.valueEnds[row]
                    let event = push.eventTimes[row], created = push.createdTimes[row]
                    if push.target.offline {
                        // The offline key orders a view's rows by entity, then
                        // event time, then created time: a point-in-time
                        // lookup is one cursor seek.
                        let offlineKey = makeKey { encoder in
                            encoder.append(raw: key)
                            encoder.append(event)
                            encoder.append(created)
                        }
                        try offlineKey.withUnsafeBytes { try txn.put(offline, $0, value) }
                        result.offlineRowsWritten += 1
                    }
                    if push.target.online {
                        // An older event pushed later never replaces a newer
                        // value; equal event times go to the later created time.
                        if let existing = try txn.get(online, key), let old = PackedRow(existing),
                           (old.eventTime, old.createdTime) > (event, created) {
                            result.onlineRowsStale += 1
                            continue
                        }
                        try txn.put(online, key, value)
                        result.onlineRowsWritten += 1
                    }
                }
            }
        }
        return result
    }
}

/// Appends the view id and the row's join key values; returns true when a
/// key value is null (such a row can match nothing).
@inline(__always)
func encodeKey(_ viewID: UInt32, _ keys: [Column], row: Int, into encoder: inout KeyEncoder) -> Bool {
    for column in keys where !column.nullRows.isEmpty && column.nullRows.contains(UInt32(row)) { return true }
    appendKey(viewID, keys, row: row, into: &encoder)
    return false
}

@inline(__always)
func appendKey(_ viewID: UInt32, _ keys: [Column], row: Int, into encoder: inout KeyEncoder) {
    encoder.append(viewID)
    for column in keys {
        switch column.type {
        case .int64: encoder.append(column.int64s[row])
        case .string: encoder.append(column.strings[row])
        case .bytes: encoder.append(escaped: column.bytes[row])
        default: break
        }
    }
}
