// OnlineStore: the online face. Reads the latest row of each entity for a
// batch of entity rows, and writes pushed rows to the online and offline
// faces in one transaction.
//
// Read path, in order: resolve the references against the catalog snapshot
// (in memory, a cached ReadPlan), then in one read transaction build each
// view's keys on the stack, look them up (several abreast down the B-tree:
// TreeSearch.swift; mdb_get where the walk does not apply), and hand the
// rows, as pointers into the memory map, to the caller (`withRows`: the
// server encodes its answer straight from them); `read` copies them into
// columnar results instead.
public import PlinthStorage
import Synchronization

/// One requested feature across all entity rows.
public struct FeatureResult: Sendable {
    public var values: Column
    public var statuses: [FieldStatus]
    public var eventTimes: [Int64]

    public init(values: Column, statuses: [FieldStatus], eventTimes: [Int64]) {
        self.values = values
        self.statuses = statuses
        self.eventTimes = eventTimes
    }
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
    private let plans = Mutex<[PlanKey: ReadPlan]>([:])
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

    /// Resolves `features` (references "view:feature") or the features of
    /// `service` against the current definitions. Plans are cached per
    /// definitions snapshot, so a repeated request resolves no names.
    public func plan(features: [String], service: String?, fullFeatureNames: Bool) throws -> ReadPlan {
        try cachedPlan(.names(features: features, service: service ?? "", fullFeatureNames: fullFeatureNames)) { snapshot in
            try ReadPlan(snapshot: snapshot, features: features, service: service, fullFeatureNames: fullFeatureNames)
        }
    }

    /// The plan for a request identified by `encodedKey` (any bytes that
    /// determine its features, service and naming, e.g. their wire
    /// encoding); `names` gives them when the plan is not cached.
    package func plan(encodedKey: [UInt8],
                     names: () throws -> (features: [String], service: String, fullFeatureNames: Bool)) throws -> ReadPlan {
        try cachedPlan(.encoded(EncodedKey(bytes: encodedKey))) { snapshot in
            let (features, service, full) = try names()
            return try ReadPlan(snapshot: snapshot, features: features, service: service, fullFeatureNames: full)
        }
    }

    /// Whether `plan` was made from the current definitions.
    @inline(__always)
    package func isCurrent(_ plan: ReadPlan) -> Bool { plan.snapshot === catalog.snapshot }

    private func cachedPlan(_ key: PlanKey, _ make: (CatalogSnapshot) throws -> ReadPlan) throws -> ReadPlan {
        let snapshot = catalog.snapshot
        if let cached = plans.withLock({ $0[key] }), cached.snapshot === snapshot { return cached }
        let plan = try make(snapshot)
        plans.withLock { cache in
            // Bounded: a client that never repeats a request must not grow it.
            if cache.count >= 4096 { cache.removeAll(keepingCapacity: true) }
            cache[key] = plan
        }
        return plan
    }

    /// Looks up every entity row of `entities` (one column per join key) in
    /// every view of `plan`, in one read transaction, and hands the rows to
    /// `body`. The rows point into the memory map: valid only inside `body`.
    /// - Parameter now: microseconds since the epoch, for TTL checks.
    /// - Parameter held: a read transaction to use (`Environment.hold`);
    ///   nil: one of its own.
    public func lookup<T>(_ plan: ReadPlan, entities: [Column], now: Int64 = currentMicros(), held: HeldRead? = nil,
                          _ body: (borrowing RowLookup) throws -> T) throws -> T {
        var result: T?
        try withRows(plan, entities: entities, now: now, held: held) { rows in result = try body(rows) }
        guard let result else { preconditionFailure("withRows returned without calling its body") }
        return result
    }

    /// `lookup` for the per-request paths: not generic, because a generic
    /// function called from another module runs unspecialized, and every
    /// call then looks up the metadata of the types built on `T` (about 700
    /// instructions per online read).
    package func withRows(_ plan: ReadPlan, entities: [Column], now: Int64 = currentMicros(), held: HeldRead? = nil,
                         _ body: (borrowing RowLookup) throws -> Void) throws {
        let rows = try entityRowCount(entities)
        let views = plan.hotViews
        let online = self.online
        // No allocation for a small lookup: the entity column of each view's
        // join keys (by index, back to back), the keys and the rows found
        // live in temporary storage. Only the plan's hot arrays are read: a
        // connection's plan is its own (ReadPlan.privateCopy), the views
        // behind it are shared by every connection.
        try withUnsafeTemporaryAllocation(of: Int.self, capacity: max(1, plan.keyCount)) { keyColumns in
            try plan.hotKeys.withUnsafeBufferPointer { keys in
                for (k, key) in keys.enumerated() {
                    guard let c = entities.firstIndex(where: { $0.name == key.name }) else {
                        let view = plan.views[views.firstIndex { $0.keyEnd > k } ?? 0]
                        throw FeatureStoreError.invalidArgument("feature view '\(view.name)' needs entity column '\(key.name)'")
                    }
                    guard entities[c].type == key.type else {
                        throw FeatureStoreError.invalidArgument("entity column '\(key.name)' is \(entities[c].type) but the view's key is \(key.type)")
                    }
                    keyColumns[k] = c
                }
            }
            try environment.read(in: held) { txn in
                try withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer?.self, capacity: max(1, views.count * rows)) { found in
                    try entities.withUnsafeBufferPointer { columns in
                        try withUnsafeTemporaryAllocation(byteCount: KeyEncoder.maxInlineKey, alignment: 8) { buffer in
                            for v in views.indices {
                                let mine = UnsafeBufferPointer(rebasing: keyColumns[views[v].keyStart..<views[v].keyEnd])
                                let viewID = views[v].viewID
                                if rows > 1, try readBatch(txn, viewID, columns, mine, rows: rows,
                                                           into: UnsafeMutableBufferPointer(rebasing: found[(v * rows)..<(v * rows + rows)])) {
                                    continue
                                }
                                for row in 0..<rows {
                                    found[v * rows + row] = nil
                                    var encoder = KeyEncoder(buffer)
                                    if encodeKey(viewID, columns, mine, row: row, into: &encoder) { continue }
                                    found[v * rows + row] = encoder.overflowed
                                        ? try txn.get(online, makeKey { appendKey(viewID, columns, mine, row: row, into: &$0) })
                                        : try txn.get(online, encoder.bytes)
                                }
                            }
                        }
                    }
                    let lookup = RowLookup(plan: plan, rows: rows, found: UnsafeBufferPointer(found), now: now)
                    try body(lookup)
                    // The skew check's sampling hook (SkewCheck.swift); off unless
                    // read_sample_rate is set.
                    if let sampler, sampler.shouldSample() { sample(lookup, entities: entities) }
                }
            }
        }
    }

    /// The rows of one view for a batch of entities, their keys searched
    /// several abreast (TreeSearch.swift). False, reading nothing, when a
    /// key does not fit the batch's key buffer.
    private func readBatch(_ txn: borrowing ReadTransaction, _ viewID: UInt32, _ columns: UnsafeBufferPointer<Column>,
                           _ keyColumns: UnsafeBufferPointer<Int>, rows: Int,
                           into found: UnsafeMutableBufferPointer<UnsafeRawBufferPointer?>) throws -> Bool {
        let perKey = 32 * max(1, keyColumns.count)
        return try withUnsafeTemporaryAllocation(byteCount: rows * perKey, alignment: 8) { keys in
            try withUnsafeTemporaryAllocation(of: Int.self, capacity: rows) { ends in
                var end = 0
                for row in 0..<rows {
                    var encoder = KeyEncoder(UnsafeMutableRawBufferPointer(rebasing: keys[end...]))
                    if !encodeKey(viewID, columns, keyColumns, row: row, into: &encoder) {
                        if encoder.overflowed { return false }
                        end += encoder.count
                    }
                    ends[row] = end
                }
                guard let base = keys.baseAddress else { return false }
                try txn.get(online, keys: base, ends: UnsafeBufferPointer(ends), into: found)
                return true
            }
        }
    }

    /// Reads `features` or the features of `service` for every row of
    /// `entities`: one result per feature, in the order asked.
    public func read(features: [String], service: String?, entities: [Column], fullFeatureNames: Bool,
                     now: Int64 = currentMicros()) throws -> [FeatureResult] {
        let plan = try plan(features: features, service: service, fullFeatureNames: fullFeatureNames)
        return try lookup(plan, entities: entities, now: now) { rows in results(of: rows) }
    }

    /// Every output of a lookup as a result column, in plan order.
    public func results(of rows: borrowing RowLookup) -> [FeatureResult] {
        let plan = rows.plan
        return plan.outputs.indices.map { o in
            let output = plan.outputs[o]
            var result = FeatureResult(values: Column(name: output.name, type: output.feature.type), statuses: [], eventTimes: [])
            result.values.reserve(rows.count)
            result.statuses.reserveCapacity(rows.count)
            result.eventTimes.reserveCapacity(rows.count)
            for row in 0..<rows.count {
                switch rows.cell(o, row) {
                case .value(let packed, let at, let base):
                    _ = packed.append(output.feature.type, at: at, base: base, to: &result.values)
                    result.statuses.append(.present)
                    result.eventTimes.append(packed.eventTime)
                case .missing(let status, let eventTime):
                    result.appendMissing(status, eventTime: eventTime)
                }
            }
            return result
        }
    }

    private func entityRowCount(_ entities: [Column]) throws -> Int {
        try entities.withUnsafeBufferPointer { columns in
            guard !columns.isEmpty else {
                throw FeatureStoreError.invalidArgument("no entity columns: give one column per join key")
            }
            let rows = columns[0].count
            for i in columns.indices {
                if let problem = columns[i].shapeProblem() { throw FeatureStoreError.invalidArgument(problem) }
                guard columns[i].count == rows else {
                    throw FeatureStoreError.invalidArgument("entity column '\(columns[i].name)' has \(columns[i].count) rows, '\(columns[0].name)' has \(rows)")
                }
                // A handful of key columns: a quadratic check allocates nothing.
                for j in 0..<i where columns[j].name == columns[i].name {
                    throw FeatureStoreError.invalidArgument("entity column '\(columns[i].name)' is given twice")
                }
            }
            guard rows <= maxRows else {
                throw FeatureStoreError.tooLarge("\(rows) entity rows in one request; the limit is \(maxRows)")
            }
            return rows
        }
    }

    // MARK: Writing

    /// A push validated and encoded off the writer's thread, ready to write.
    public struct PreparedPush: Sendable {
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
        let target = try Self.target(target, for: view)
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
        keyBytes.reserveCapacity(rows * 16)
        for row in 0..<rows {
            let inline = withUnsafeTemporaryAllocation(byteCount: KeyEncoder.maxInlineKey, alignment: 8) { buffer -> Bool in
                var encoder = KeyEncoder(buffer)
                appendKey(view.meta.viewID, keys, row: row, into: &encoder)
                if encoder.overflowed { return false }
                keyBytes.append(contentsOf: encoder.bytes)
                return true
            }
            if !inline { keyBytes.append(contentsOf: makeKey { appendKey(view.meta.viewID, keys, row: row, into: &$0) }) }
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

    /// The faces a push to `view` writes. An offline-only view has no online
    /// face: the default (both faces) means every face the view has, but a
    /// push naming the online face alone asks for something that cannot be,
    /// and is refused rather than written nowhere.
    static func target(_ asked: PushTarget, for view: ResolvedView) throws -> PushTarget {
        guard !view.definition.online else { return asked }
        switch asked {
        case .offline, .onlineAndOffline: return .offline
        case .online:
            throw FeatureStoreError.invalidArgument(
                "feature view '\(view.name)' is offline-only (online: false): push it to the offline face, not online")
        }
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
                // The offline key is the online key plus two times: built in
                // a reused buffer, not allocated per row.
                var offlineKey = [UInt8](repeating: 0, count: 64)
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
                        if offlineKey.count < key.count + 16 { offlineKey = [UInt8](repeating: 0, count: key.count + 16) }
                        try offlineKey.withUnsafeMutableBytes { buffer in
                            var encoder = KeyEncoder(buffer)
                            encoder.append(raw: key)
                            encoder.append(event)
                            encoder.append(created)
                            try txn.put(offline, encoder.bytes, value)
                        }
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
/// key value is null (such a row can match nothing). `keys` are indices
/// into `columns`.
@inline(__always)
func encodeKey(_ viewID: UInt32, _ columns: UnsafeBufferPointer<Column>, _ keys: UnsafeBufferPointer<Int>, row: Int,
               into encoder: inout KeyEncoder) -> Bool {
    for k in keys where !columns[k].nullRows.isEmpty && columns[k].nullRows.contains(UInt32(row)) { return true }
    appendKey(viewID, columns, keys, row: row, into: &encoder)
    return false
}

@inline(__always)
func appendKey(_ viewID: UInt32, _ columns: UnsafeBufferPointer<Column>, _ keys: UnsafeBufferPointer<Int>, row: Int,
               into encoder: inout KeyEncoder) {
    encoder.append(viewID)
    for k in keys { appendKeyValue(columns[k], row: row, into: &encoder) }
}

@inline(__always)
func appendKey(_ viewID: UInt32, _ keys: [Column], row: Int, into encoder: inout KeyEncoder) {
    encoder.append(viewID)
    for column in keys { appendKeyValue(column, row: row, into: &encoder) }
}

@inline(__always)
func appendKeyValue(_ column: borrowing Column, row: Int, into encoder: inout KeyEncoder) {
    switch column.type {
    case .int64: encoder.append(column.int64s[row])
    case .string: encoder.append(column.strings[row])
    case .bytes: encoder.append(escaped: column.bytes[row])
    default: break
    }
}
