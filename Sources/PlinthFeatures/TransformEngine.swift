// TransformEngine: the one engine that computes a view's derived features —
// row-level expressions (`expr:`) and windowed aggregations (`aggregate:`) —
// for every push, whatever its size: one event streamed into the online
// face, or millions backfilled into the offline face (OfflineStore.backfill
// is pushes of sorted chunks). Both paths call `TransformPlan.derive`, so
// their values are identical by construction; TransformEngineTests replays
// one event stream through both and compares every value.
//
// Semantics. Steps run in declaration order, so a feature may use any
// feature declared before it. For each event of an entity, ordered by
// (event time, created time), an aggregation covers the events of the same
// entity ordered at or before it whose event time is > t - window (the
// event itself included): a sliding window ending at the event. Values are
// computed from scratch per event, left to right over the window, so a
// float sum does not depend on where a batch started. Nulls are skipped;
// count without `of` counts events; mean/min/max/last of no values is
// null. Each computed value is rounded to its declared type at once
// (float32 especially), exactly as storing and re-reading it would.
//
// Events pushed for an entity out of time order do not update the stored
// values of that entity's later events (a stream cannot see the future);
// backfilling in time order gives what the stream would have computed.
import Foundation
import PlinthStorage

/// A view's derived features, compiled.
public struct TransformPlan: Sendable {
    enum Step: Sendable {
        case expression(index: Int, Expr)
        case aggregate(index: Int, AggregationDefinition.Function, of: Int?, windowMicros: Int64)
    }

    let steps: [Step]
    let features: [FeatureDefinition]
    /// Longest window in microseconds (0 without aggregations).
    let maxWindowMicros: Int64

    /// Compiles the derived features of `features`; nil when there are none.
    /// Definitions were checked when parsed; a feature that no longer
    /// compiles (it cannot happen through apply) is left null.
    init?(features: [FeatureDefinition]) {
        var steps: [Step] = []
        var maxWindow: Int64 = 0
        for (index, feature) in features.enumerated() {
            if let text = feature.expression,
               let (expr, _) = try? ExpressionParser.compile(text, names: Self.names(features[..<index])) {
                steps.append(.expression(index: index, expr))
            }
            if let aggregation = feature.aggregation {
                let of = aggregation.of.flatMap { name in features[..<index].firstIndex { $0.name == name } }
                let window = aggregation.windowSeconds.multipliedReportingOverflow(by: 1_000_000).partialValue
                steps.append(.aggregate(index: index, aggregation.function, of: of, windowMicros: window))
                maxWindow = max(maxWindow, window)
            }
        }
        guard !steps.isEmpty else { return nil }
        self.steps = steps
        self.features = features
        self.maxWindowMicros = maxWindow
    }

    static func names(_ features: ArraySlice<FeatureDefinition>) -> [String: (Int, ExprType)] {
        var names: [String: (Int, ExprType)] = [:]
        for (i, f) in zip(features.indices, features) { if let t = ExprType(f.type) { names[f.name] = (i, t) } }
        return names
    }

    /// Why `feature` (declared after `earlier`) is not a valid derived
    /// feature, or nil when it is (or is not derived).
    public static func check(_ feature: FeatureDefinition, after earlier: [FeatureDefinition]) -> String? {
        if let text = feature.expression {
            let result: (Expr, ExprType)
            do { result = try ExpressionParser.compile(text, names: names(earlier[...])) } catch { return error.message }
            guard fits(result.1, feature.type) else {
                return "expression '\(text)' gives \(result.1), which does not fit the declared type \(feature.type)"
            }
        }
        if let aggregation = feature.aggregation {
            var source: ExprType? = nil
            if let of = aggregation.of {
                guard let f = earlier.first(where: { $0.name == of }) else {
                    return "aggregate of unknown feature '\(of)' (it must be declared before this one)"
                }
                guard let t = ExprType(f.type) else { return "cannot aggregate '\(of)' of type \(f.type)" }
                source = t
            }
            let result: ExprType
            switch aggregation.function {
            case .count: result = .int
            case .mean: result = .double
            case .sum, .min, .max:
                guard let source, source.isNumber else { return "\(aggregation.function.rawValue) needs a numeric feature" }
                result = source
            case .last: result = source ?? .null
            }
            guard fits(result, feature.type) else {
                return "\(aggregation.function.rawValue) gives \(result), which does not fit the declared type \(feature.type)"
            }
        }
        return nil
    }

    private static func fits(_ value: ExprType, _ type: FeatureType) -> Bool {
        switch (value, type) {
        case (.null, _): true
        case (.int, .int64), (.int, .float32), (.int, .float64), (.double, .float32), (.double, .float64): true
        case (.bool, .bool), (.string, .string): true
        default: false
        }
    }

    /// The event rows of one entity the engine works on.
    struct Events {
        var rows: [[Value]] = []
        var times: [Int64] = []
        var created: [Int64] = []
        /// Whether the row is new (computed) or history (context only).
        var compute: [Bool] = []
    }

    /// Computes the derived values of every row with `compute` set, in
    /// (event time, created time) order (the caller sorts).
    func derive(_ events: inout Events) {
        var evaluator = Evaluator()
        var windowStart = [Int](repeating: 0, count: steps.count)
        for i in events.rows.indices {
            for (s, step) in steps.enumerated() {
                switch step {
                case .expression(let index, let expr):
                    guard events.compute[i] else { continue }
                    events.rows[i][index] = coerce(evaluator.evaluate(expr, row: events.rows[i], eventTime: events.times[i]),
                                                   features[index].type)
                case .aggregate(let index, let function, let of, let window):
                    // The window start only moves forward as event times grow.
                    while events.times[windowStart[s]] <= events.times[i] &- window { windowStart[s] += 1 }
                    guard events.compute[i] else { continue }
                    events.rows[i][index] = coerce(aggregate(function, of: of, events.rows, from: windowStart[s], through: i),
                                                   features[index].type)
                }
            }
        }
    }

    private func aggregate(_ function: AggregationDefinition.Function, of: Int?, _ rows: [[Value]], from: Int, through: Int) -> Value {
        guard let of else { return .int(Int64(through - from + 1)) }
        var count: Int64 = 0
        var intSum: Int64 = 0
        var doubleSum = 0.0
        var isDouble = false
        var best: Value = .null
        for j in from...through {
            let v = rows[j][of]
            if v == .null { continue }
            count += 1
            switch v {
            case .int(let x): intSum &+= x; doubleSum += Double(x)
            case .double(let x): isDouble = true; doubleSum += x
            default: break
            }
            switch function {
            case .min where best == .null || Self.less(v, best): best = v
            case .max where best == .null || Self.less(best, v): best = v
            case .last: best = v
            default: break
            }
        }
        switch function {
        case .count: return .int(count)
        case .sum: return count == 0 ? .null : (isDouble ? .double(doubleSum) : .int(intSum))
        case .mean: return count == 0 ? .null : .double(doubleSum / Double(count))
        case .min, .max, .last: return best
        }
    }

    /// Numeric order for min and max (checked numeric when defined), without
    /// going through the expression evaluator's operator dispatch, which
    /// profiles showed dominating backfills.
    @inline(__always)
    private static func less(_ a: Value, _ b: Value) -> Bool {
        if case .int(let x) = a, case .int(let y) = b { return x < y }
        return (a.asDouble ?? .nan) < (b.asDouble ?? .nan)
    }

    /// Rounds a computed value to the declared type, as storing it would.
    private func coerce(_ value: Value, _ type: FeatureType) -> Value {
        switch (value, type) {
        case (.int(let i), .float64): .double(Double(i))
        case (.int(let i), .float32): .double(Double(Float(i)))
        case (.double(let d), .float32): .double(Double(Float(d)))
        default: value
        }
    }
}

// MARK: Columns <-> values

extension Column {
    func value(_ row: Int, nulls: Set<Int>) -> Value {
        if nulls.contains(row) { return .null }
        switch type {
        case .int64: return .int(int64s[row])
        case .float32: return .double(Double(float32s[row]))
        case .float64: return .double(float64s[row])
        case .bool: return .bool(bools[row])
        case .string: return .string(strings[row])
        case .bytes, .float32Vector: return .null
        }
    }

    mutating func append(_ value: Value) {
        switch (type, value) {
        case (.int64, .int(let i)): int64s.append(i)
        case (.float32, .double(let d)): float32s.append(Float(d))
        case (.float32, .int(let i)): float32s.append(Float(i))
        case (.float64, .double(let d)): float64s.append(d)
        case (.float64, .int(let i)): float64s.append(Double(i))
        case (.bool, .bool(let b)): bools.append(b)
        case (.string, .string(let s)): strings.append(s)
        default: appendNull()
        }
    }
}

extension PackedRow {
    /// The row's values laid out as `current` (by name and type), reading
    /// it with the layout of its own schema version.
    func values(current: RowLayout, layouts: [UInt32: RowLayout]) -> [Value] {
        let own = schemaVersion == current.schemaVersion ? current : layouts[schemaVersion]
        return current.features.map { feature in
            guard let own, fits(own), let index = own.index(of: feature.name, type: feature.type), !isNull(index) else { return .null }
            var column = Column(name: feature.name, type: feature.type)
            guard append(feature.type, at: own.offsets[index], base: own.fixedSize, to: &column) else { return .null }
            return column.value(0, nulls: [])
        }
    }
}

extension OnlineStore {
    /// Adds the derived columns of `view` to a push's columns: the transform
    /// engine's online path (and, through backfill, its offline one).
    ///
    /// Aggregations read the entities' earlier events from the offline face
    /// (one read transaction, one cursor), merge them with the pushed rows
    /// in (event time, created time) order, and compute the pushed rows.
    func deriveColumns(view: ResolvedView, plan: TransformPlan, columns byName: inout [String: Column],
                       keys: [Column], eventTimes: [Int64], createdTimes: [Int64]) throws {
        let layout = view.layout
        let rows = eventTimes.count
        for feature in layout.features where feature.isDerived && byName[feature.name] != nil {
            throw FeatureStoreError.invalidArgument("'\(feature.name)' of '\(view.name)' is computed (\(feature.expression != nil ? "expr" : "aggregate")); push its inputs, not the feature")
        }
        // The pushed features as values, row-major; derived ones start null.
        var raw: [(Int, Column, Set<Int>)] = []
        for (i, feature) in layout.features.enumerated() where !feature.isDerived {
            guard let column = byName[feature.name], column.type == feature.type, column.count == rows else { continue }
            raw.append((i, column, Set(column.nullRows.map(Int.init))))
        }
        func pushedRow(_ row: Int) -> [Value] {
            var values = [Value](repeating: .null, count: layout.features.count)
            for (i, column, nulls) in raw { values[i] = column.value(row, nulls: nulls) }
            return values
        }

        var derived = [[Value]](repeating: [], count: rows)
        if plan.maxWindowMicros == 0 {
            // Expressions only: every row stands alone.
            for row in 0..<rows {
                var events = TransformPlan.Events(rows: [pushedRow(row)], times: [eventTimes[row]], created: [createdTimes[row]], compute: [true])
                plan.derive(&events)
                derived[row] = events.rows[0]
            }
        } else {
            // Group the pushed rows by entity, each group in time order.
            var groups: [[UInt8]: [Int]] = [:]
            for row in 0..<rows { groups[makeKey { appendKey(view.meta.viewID, keys, row: row, into: &$0) }, default: []].append(row) }
            try environment.read { txn in
                try txn.withCursor(offline) { cursor in
                    for (prefix, members) in groups {
                        let order = members.sorted { (eventTimes[$0], createdTimes[$0], $0) < (eventTimes[$1], createdTimes[$1], $1) }
                        let first = eventTimes[order[0]]
                        var pushedKeys: Set<[Int64]> = []
                        for row in order { pushedKeys.insert([eventTimes[row], createdTimes[row]]) }
                        var history: [(Int64, Int64, [Value])] = []
                        let seek = makeKey { encoder in
                            prefix.withUnsafeBytes { encoder.append(raw: $0) }
                            encoder.append(first &- plan.maxWindowMicros)
                        }
                        var position = try seek.withUnsafeBytes { try cursor.seek($0) }
                        try prefix.withUnsafeBytes { p in
                            while let (key, value) = position, key.count == p.count + 16, startsWith(key, p) {
                                let event = eventTime(ofOfflineKey: key, prefixCount: p.count)
                                let created = Int64(bitPattern: UInt64(bigEndian: key.loadUnaligned(fromByteOffset: p.count + 8, as: UInt64.self)) ^ (1 << 63))
                                // A pushed row with the same (event, created)
                                // replaces the stored one.
                                if !pushedKeys.contains([event, created]), let packed = PackedRow(value) {
                                    history.append((event, created, packed.values(current: layout, layouts: view.layouts)))
                                }
                                position = try cursor.next()
                            }
                        }
                        var events = TransformPlan.Events()
                        var slots: [Int?] = []
                        var h = 0
                        for row in order + [-1] {
                            // Merge: history rows ordered before this pushed row.
                            while h < history.count, row < 0 || (history[h].0, history[h].1) < (eventTimes[row], createdTimes[row]) {
                                events.rows.append(history[h].2); events.times.append(history[h].0)
                                events.created.append(history[h].1); events.compute.append(false); slots.append(nil)
                                h += 1
                            }
                            guard row >= 0 else { break }
                            events.rows.append(pushedRow(row)); events.times.append(eventTimes[row])
                            events.created.append(createdTimes[row]); events.compute.append(true); slots.append(row)
                        }
                        plan.derive(&events)
                        for (i, slot) in slots.enumerated() { if let slot { derived[slot] = events.rows[i] } }
                    }
                }
            }
        }
        for (i, feature) in layout.features.enumerated() where feature.isDerived {
            var column = Column(name: feature.name, type: feature.type)
            column.reserve(rows)
            for row in 0..<rows { column.append(derived[row][i]) }
            byName[feature.name] = column
        }
    }
}

extension OfflineStore {
    /// Writes historical events of `view` to the offline face, computing its
    /// derived features with the transform engine: the transform engine's
    /// offline path. The rows are sorted by (entity, event time, created
    /// time) and pushed in chunks, so each entity's events are computed in
    /// time order with its earlier events (stored, or in an earlier chunk)
    /// as context — the values a stream of the same events would give.
    ///
    /// - Parameter progress: rows written so far, after each chunk.
    /// - Returns: the summed push counts. Chunks already written stay
    ///   written if a later one fails.
    public func backfill(view name: String, columns: [Column], eventTimes: [Int64], createdTimes: [Int64] = [],
                         chunkRows: Int = 50_000, now: Int64 = currentMicros(),
                         progress: (Int) -> Void = { _ in }) throws -> PushResult {
        guard let view = catalog.snapshot.views[name] else { throw FeatureStoreError.notFound("unknown feature view '\(name)'") }
        let rows = eventTimes.count
        guard createdTimes.isEmpty || createdTimes.count == rows else {
            throw FeatureStoreError.invalidArgument("\(createdTimes.count) created times for \(rows) rows")
        }
        let created = createdTimes.isEmpty ? Array(repeating: now, count: rows) : createdTimes
        var keys: [Column] = []
        for key in view.joinKeys {
            guard let column = columns.first(where: { $0.name == key.name }), column.type == key.type, column.count == rows,
                  column.nullRows.isEmpty else {
                throw FeatureStoreError.invalidArgument("backfill of '\(name)' needs a non-null \(key.type) column '\(key.name)' with \(rows) rows")
            }
            keys.append(column)
        }
        for column in columns {
            if let problem = column.shapeProblem() { throw FeatureStoreError.invalidArgument(problem) }
            guard column.count == rows else {
                throw FeatureStoreError.invalidArgument("column '\(column.name)' has \(column.count) rows but there are \(rows) event times")
            }
        }
        let spine = SortedSpine(viewID: view.meta.viewID, keys: keys, times: eventTimes)
        // SortedSpine orders by (key, event time, row); ties on event time
        // are put in created-time order here.
        var order = spine.order.map { Int($0.row) }
        var g = 0
        while g < order.count {
            var end = g + 1
            while end < order.count, eventTimes[order[end]] == eventTimes[order[g]], keysEqual(keys, order[end], order[g]) { end += 1 }
            if end - g > 1 { order[g..<end].sort { (created[$0], $0) < (created[$1], $1) } }
            g = end
        }
        let sorted = columns.map { $0.gather(order) }
        let sortedTimes = order.map { eventTimes[$0] }
        let sortedCreated = order.map { created[$0] }
        let store = try OnlineStore(environment: environment, catalog: catalog, maxRows: max(chunkRows, 1))
        var total = PushResult()
        var start = 0
        while start < rows {
            let range = start..<min(rows, start + max(chunkRows, 1))
            let result = try store.push(view: name, columns: sorted.map { $0.slice(range) }, eventTimes: Array(sortedTimes[range]),
                                        createdTimes: Array(sortedCreated[range]), target: .offline)
            total.rows += result.rows
            total.offlineRowsWritten += result.offlineRowsWritten
            start = range.upperBound
            progress(start)
        }
        return total
    }
}

/// Whether rows `a` and `b` have the same join key values.
private func keysEqual(_ keys: [Column], _ a: Int, _ b: Int) -> Bool {
    for column in keys {
        switch column.type {
        case .int64: if column.int64s[a] != column.int64s[b] { return false }
        case .string: if column.strings[a] != column.strings[b] { return false }
        case .bytes: if column.bytes[a] != column.bytes[b] { return false }
        default: break
        }
    }
    return true
}

extension Column {
    /// The rows at `indices`, in that order.
    func gather(_ indices: [Int]) -> Column {
        var out = Column(name: name, type: type)
        switch type {
        case .int64: out.int64s = indices.map { int64s[$0] }
        case .float32: out.float32s = indices.map { float32s[$0] }
        case .float32Vector(let n): out.float32s = indices.flatMap { float32s[($0 * n)..<(($0 + 1) * n)] }
        case .float64: out.float64s = indices.map { float64s[$0] }
        case .bool: out.bools = indices.map { bools[$0] }
        case .string: out.strings = indices.map { strings[$0] }
        case .bytes: out.bytes = indices.map { bytes[$0] }
        }
        if !nullRows.isEmpty {
            var position = [Int: UInt32]()
            for (i, row) in indices.enumerated() { position[row] = UInt32(i) }
            out.nullRows = nullRows.compactMap { position[Int($0)] }.sorted()
        }
        return out
    }
}
