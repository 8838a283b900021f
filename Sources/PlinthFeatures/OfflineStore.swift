// OfflineStore: the offline face's reads — point-in-time-correct historical
// retrieval (training data) and the dataset records that name its results.
// Materialisation (offline -> online) lives in Materializer.swift.
//
// The offline table holds every pushed row under (view id, entity key, event
// time, created time), so one entity's rows sit together in time order, and
// ties on event time in created-time order. A historical read therefore does
// not look rows up one at a time: for each view it sorts the spine by
// (entity key, time), and walks the table with one cursor — one seek per
// distinct entity, then forward steps — keeping the last row whose event
// time is not after the spine row's time. The last such row in key order is
// the greatest event time with the latest created time, which is exactly
// Feast's point-in-time rule. Matches are remembered per spine row as
// pointers into the read transaction's snapshot, and the feature columns are
// then filled in the spine's own order, so the output keeps the input order
// without a second sort.
import Crypto
import Foundation
public import PlinthStorage
import Synchronization

/// A historical retrieval: the spine (entity frame) and what to join to it.
public struct HistoricalRequest: Sendable {
    /// Feature references "view:feature"; or set `service` instead.
    public var features: [String]
    public var service: String?
    /// The spine's columns: one per join key of every view asked for, plus
    /// any other columns, which are passed through untouched.
    public var spine: [Column]
    /// The spine's event time per row, microseconds since the epoch.
    public var eventTimes: [Int64]
    /// Name result columns "view__feature" (Feast's full_feature_names).
    public var fullFeatureNames: Bool

    public init(features: [String] = [], service: String? = nil, spine: [Column], eventTimes: [Int64],
                fullFeatureNames: Bool = false) {
        self.features = features
        self.service = service
        self.spine = spine
        self.eventTimes = eventTimes
        self.fullFeatureNames = fullFeatureNames
    }
}

/// What a historical retrieval produced and how it is remembered.
public struct DatasetRecord: Sendable, Codable, Equatable {
    /// "ds-" and the first 20 hex digits of `digest`.
    public var id: String
    /// SHA-256 over the spine (names, types, values, null rows, times), the
    /// feature references, full_feature_names, the definition versions and
    /// the feature values the join returned: a push that changes the
    /// result changes the id, one that does not (a later event, another
    /// entity) leaves it.
    public var digest: String
    public var features: [String]
    public var service: String
    public var fullFeatureNames: Bool
    public var rows: Int
    public var spineColumns: [String]
    /// Version of each project whose views were read, by project.
    public var definitionVersions: [String: UInt64]
    /// Schema version of each view read, by view.
    public var schemaVersions: [String: UInt32]
    public var createdAtMicros: Int64
}

/// The joined frame: the spine's columns, then one column per feature, in
/// the spine's row order; a feature with no row in reach is null.
public struct HistoricalResult: Sendable {
    public var columns: [Column]
    public var eventTimes: [Int64]
    public var dataset: DatasetRecord
}

/// The features asked for, resolved and grouped by view.
struct FeatureSelection {
    struct Slot {
        let view: ResolvedView
        let index: Int
        let feature: FeatureDefinition
        let outputName: String
    }

    let references: [String]
    let slots: [Slot]
    /// Views in first-asked order.
    let views: [ResolvedView]

    init(features: [String], service: String?, fullFeatureNames: Bool, snapshot: CatalogSnapshot) throws {
        var references = features
        if let service, !service.isEmpty {
            guard features.isEmpty else {
                throw FeatureStoreError.invalidArgument("give either features or a feature service, not both")
            }
            guard let definition = snapshot.services[service] else {
                throw FeatureStoreError.notFound("unknown feature service '\(service)' (known: \(snapshot.services.keys.sorted().joined(separator: ", ")))")
            }
            references = definition.features
        }
        guard !references.isEmpty else {
            throw FeatureStoreError.invalidArgument("no features requested: give feature references or a feature service")
        }
        var slots: [Slot] = []
        var views: [ResolvedView] = []
        var names: Set<String> = []
        var unknown: [String] = []
        for text in references {
            guard let ref = FeatureReference(text) else {
                throw FeatureStoreError.invalidArgument("'\(text)' is not a feature reference (expected 'view:feature')")
            }
            guard let view = snapshot.views[ref.view] else { unknown.append("'\(text)' (no feature view '\(ref.view)')"); continue }
            guard let index = view.layout.indexByName[ref.feature] else {
                unknown.append("'\(text)' (view '\(ref.view)' has no feature '\(ref.feature)')")
                continue
            }
            let name = fullFeatureNames ? "\(view.name)__\(ref.feature)" : ref.feature
            guard names.insert(name).inserted else {
                throw FeatureStoreError.invalidArgument(fullFeatureNames ? "feature '\(text)' is requested twice"
                    : "two requested features are both named '\(name)'; set full_feature_names to name them view__feature")
            }
            slots.append(Slot(view: view, index: index, feature: view.layout.features[index], outputName: name))
            if !views.contains(where: { $0 === view }) { views.append(view) }
        }
        if !unknown.isEmpty {
            throw FeatureStoreError.notFound("unknown feature references: " + unknown.joined(separator: ", "))
        }
        self.references = references
        self.slots = slots
        self.views = views
    }
}

public final class OfflineStore: Sendable {
    public let environment: Environment
    public let catalog: Catalog
    let offline: Table
    let online: Table
    let datasets: Table
    let watermarks: Table
    /// Set while a materialisation runs; one at a time.
    let materializing = Atomic<Bool>(false)
    /// Most spine rows in one historical read.
    public let maxSpineRows: Int

    public init(environment: Environment, catalog: Catalog, maxSpineRows: Int = 20_000_000) throws {
        self.environment = environment
        self.catalog = catalog
        self.offline = try environment.table("offline")
        self.online = try environment.table("online")
        self.datasets = try environment.table("datasets")
        self.watermarks = try environment.table("materialize_watermarks")
        self.maxSpineRows = maxSpineRows
    }

    // MARK: Historical retrieval

    /// Joins the spine with its features as of each row's time, without
    /// recording a dataset (see `historical(_:now:)`).
    ///
    /// - Complexity: O(n log n) for the sort of n spine rows per view, plus
    ///   one seek per distinct entity and one step per offline row of those
    ///   entities up to their latest spine time.
    /// - Threading: any thread; it holds one read transaction throughout.
    public func join(_ request: HistoricalRequest) throws -> (columns: [Column], selection: FeatureSelectionSummary) {
        let snapshot = catalog.snapshot
        let selection = try FeatureSelection(features: request.features, service: request.service,
                                             fullFeatureNames: request.fullFeatureNames, snapshot: snapshot)
        let rows = request.eventTimes.count
        guard rows <= maxSpineRows else {
            throw FeatureStoreError.tooLarge("\(rows) spine rows in one request; the limit is \(maxSpineRows)")
        }
        var byName: [String: Column] = [:]
        for column in request.spine {
            if let problem = column.shapeProblem() { throw FeatureStoreError.invalidArgument(problem) }
            guard column.count == rows else {
                throw FeatureStoreError.invalidArgument("spine column '\(column.name)' has \(column.count) rows but there are \(rows) event timestamps")
            }
            guard byName.updateValue(column, forKey: column.name) == nil else {
                throw FeatureStoreError.invalidArgument("spine column '\(column.name)' is given twice")
            }
        }
        for slot in selection.slots where byName[slot.outputName] != nil {
            throw FeatureStoreError.invalidArgument("feature '\(slot.outputName)' has the name of a spine column; rename the column or set full_feature_names")
        }

        var output = selection.slots.map { slot -> Column in
            var column = Column(name: slot.outputName, type: slot.feature.type)
            column.reserve(rows)
            return column
        }
        try environment.read { txn in
            try txn.withCursor(offline) { cursor in
                for view in selection.views {
                    let keys = try view.joinKeys.map { key -> Column in
                        guard let column = byName[key.name] else {
                            throw FeatureStoreError.invalidArgument("feature view '\(view.name)' needs spine column '\(key.name)'")
                        }
                        guard column.type == key.type else {
                            throw FeatureStoreError.invalidArgument("spine column '\(key.name)' is \(column.type) but the join key of '\(view.name)' is \(key.type)")
                        }
                        if let row = column.nullRows.first {
                            throw FeatureStoreError.invalidArgument("spine column '\(key.name)' is null in row \(row); every spine row needs its join keys")
                        }
                        return column
                    }
                    let matches = try Self.walk(view: view, keys: keys, times: request.eventTimes, cursor: cursor)
                    for (i, slot) in selection.slots.enumerated() where slot.view === view {
                        Self.fill(&output[i], slot: slot, matches: matches)
                    }
                }
            }
        }
        return (request.spine + output, FeatureSelectionSummary(selection, snapshot: snapshot))
    }

    /// Joins and records the result as a dataset in the same breath.
    /// - Parameter now: the dataset's creation time.
    public func historical(_ request: HistoricalRequest, now: Int64 = currentMicros()) throws -> HistoricalResult {
        let (columns, summary) = try join(request)
        let record = datasetRecord(for: request, summary: summary, result: columns.dropFirst(request.spine.count), now: now)
        try store(record)
        return HistoricalResult(columns: columns, eventTimes: request.eventTimes, dataset: record)
    }

    /// Sorts the spine by (entity key, time) and walks the view's rows; the
    /// result holds, per spine row, the matching packed row (pointing into
    /// the read transaction) or nil.
    static func walk(view: ResolvedView, keys: [Column], times: [Int64], cursor: borrowing Cursor) throws
        -> [UnsafeRawBufferPointer?] {
        let rows = times.count
        var matches = [UnsafeRawBufferPointer?](repeating: nil, count: rows)
        guard rows > 0 else { return matches }
        let spine = SortedSpine(viewID: view.meta.viewID, keys: keys, times: times)
        let ttl = view.definition.ttlSeconds > 0
            ? view.definition.ttlSeconds.multipliedReportingOverflow(by: 1_000_000).partialValue : 0
        try spine.keyBytes.withUnsafeBytes { allKeys in
            var g = 0
            while g < rows {
                // One group: the spine rows of one entity, in time order.
                let first = spine.order[g]
                let prefix = spine.key(Int(first.row), in: allKeys)
                var end = g + 1
                while end < rows, spine.sameKey(spine.order[end], first, in: allKeys) { end += 1 }
                var best: UnsafeRawBufferPointer? = nil
                var bestTime = Int64.min
                var position = try cursor.seek(prefix)
                for s in g..<end {
                    let entry = spine.order[s]
                    // Step past every row of this entity not after this
                    // spine time; the last one stepped over is the match.
                    while let (key, value) = position, key.count == prefix.count + 16, startsWith(key, prefix) {
                        let event = eventTime(ofOfflineKey: key, prefixCount: prefix.count)
                        guard event <= entry.time else { break }
                        best = value
                        bestTime = event
                        position = try cursor.next()
                    }
                    if best != nil, ttl == 0 || bestTime >= entry.time &- ttl {
                        matches[Int(entry.row)] = best
                    }
                }
                g = end
            }
        }
        return matches
    }

    /// Appends the slot's feature from each match, in spine order.
    ///
    /// This loop runs rows x features times, so the common case — a row
    /// of the current schema version and a fixed-width feature — reads the
    /// value straight from its precomputed offset, without touching the
    /// layout (copying a RowLayout per row costs reference-count traffic
    /// that dominated the join in profiles). Other rows take the general path.
    static func fill(_ column: inout Column, slot: FeatureSelection.Slot, matches: [UnsafeRawBufferPointer?]) {
        let view = slot.view
        let current = view.layout
        let version = current.schemaVersion
        let offset = current.offsets[slot.index]
        let nullByte = RowLayout.headerSize + slot.index / 8
        let nullMask = UInt8(1) << UInt8(slot.index % 8)
        let fixedSize = current.fixedSize
        let type = slot.feature.type
        let fast: Bool = switch type {
        case .int64, .float32, .float64, .bool: true
        default: false
        }
        for match in matches {
            guard let match, match.count >= fixedSize, match[0] == 1 else {
                appendGeneral(&column, slot: slot, match: match)
                continue
            }
            guard fast, UInt32(littleEndian: match.loadUnaligned(fromByteOffset: 1, as: UInt32.self)) == version else {
                appendGeneral(&column, slot: slot, match: match)
                continue
            }
            if match[nullByte] & nullMask != 0 { column.appendNull(); continue }
            switch type {
            case .int64: column.int64s.append(Int64(littleEndian: match.loadUnaligned(fromByteOffset: offset, as: Int64.self)))
            case .float64:
                column.float64s.append(Double(bitPattern: UInt64(littleEndian: match.loadUnaligned(fromByteOffset: offset, as: UInt64.self))))
            case .float32:
                column.float32s.append(Float(bitPattern: UInt32(littleEndian: match.loadUnaligned(fromByteOffset: offset, as: UInt32.self))))
            default: column.bools.append(match[offset] != 0)
            }
        }
    }

    /// One value by the general path: any schema version, any type.
    private static func appendGeneral(_ column: inout Column, slot: FeatureSelection.Slot, match: UnsafeRawBufferPointer?) {
        let view = slot.view
        guard let match, let packed = PackedRow(match) else { column.appendNull(); return }
        let layout = packed.schemaVersion == view.layout.schemaVersion ? view.layout : view.layouts[packed.schemaVersion]
        guard let layout, packed.fits(layout) else { column.appendNull(); return }
        let index = layout.schemaVersion == view.layout.schemaVersion ? slot.index
            : layout.index(of: slot.feature.name, type: slot.feature.type)
        // A row written before this feature existed (or had this type),
        // a null value and a damaged row all read as null.
        guard let index, !packed.isNull(index) else { column.appendNull(); return }
        if !packed.append(layout.features[index].type, at: layout.offsets[index], base: layout.fixedSize, to: &column) {
            column.appendNull()
        }
    }

    // MARK: Datasets

    /// The record naming a retrieval: its digest covers the request, the
    /// definitions it was resolved against and `result`, the feature
    /// columns the join produced (in output order).
    ///
    /// The result is hashed as values, not as the offline rows it came
    /// from: a row pushed later that no spine row reaches leaves the id as
    /// it was, and one that replaces a returned value changes it.
    /// - Complexity: O(bytes of the spine and the result); the bulk goes
    ///   through SHA-256 as whole arrays, not value by value.
    public func datasetRecord(for request: HistoricalRequest, summary: FeatureSelectionSummary,
                              result: ArraySlice<Column>, now: Int64) -> DatasetRecord {
        var hash = SHA256()
        hash.update(string: "plinth-dataset-v2")
        hash.update(value: UInt64(request.eventTimes.count).littleEndian)
        request.eventTimes.withUnsafeBytes { hash.update(bufferPointer: $0) }
        for column in request.spine.sorted(by: { $0.name < $1.name }) { hash.update(column: column) }
        for reference in summary.references { hash.update(string: reference) }
        hash.update(value: request.fullFeatureNames ? UInt8(1) : 0)
        for (project, version) in summary.definitionVersions.sorted(by: { $0.key < $1.key }) {
            hash.update(string: project)
            hash.update(value: version)
        }
        for (view, version) in summary.schemaVersions.sorted(by: { $0.key < $1.key }) {
            hash.update(string: view)
            hash.update(value: version)
        }
        hash.update(value: UInt64(result.count).littleEndian)
        for column in result { hash.update(column: column) }
        let digest = hash.finalize().hex
        return DatasetRecord(id: "ds-" + digest.prefix(20), digest: digest, features: summary.references,
                             service: request.service ?? "", fullFeatureNames: request.fullFeatureNames,
                             rows: request.eventTimes.count, spineColumns: request.spine.map(\.name),
                             definitionVersions: summary.definitionVersions, schemaVersions: summary.schemaVersions,
                             createdAtMicros: now)
    }

    /// Stores `record` under its id. The same retrieval twice keeps the
    /// first record (its creation time is when the dataset was first made).
    public func store(_ record: DatasetRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = Array(try encoder.encode(record))
        let key = Array(record.id.utf8)
        let table = datasets
        try environment.writer.write { txn in
            if try txn.get(table, key) == nil { try txn.put(table, key, json) }
        }
    }

    /// The dataset named `id`, or nil.
    public func dataset(_ id: String) throws -> DatasetRecord? {
        let data = try environment.read { txn -> Data? in
            guard let raw = try txn.get(datasets, Array(id.utf8)) else { return nil }
            return Data(raw)
        }
        guard let data else { return nil }
        return try JSONDecoder().decode(DatasetRecord.self, from: data)
    }
}

extension SHA256 {
    /// Feeds a column's name, type, values and null rows. Each variable-
    /// width value and each list is preceded by its length, so that two
    /// different columns can never feed the same bytes.
    mutating func update(column: Column) {
        update(string: column.name)
        update(string: column.type.description)
        update(value: UInt64(column.count).littleEndian)
        column.int64s.withUnsafeBytes { update(bufferPointer: $0) }
        column.float32s.withUnsafeBytes { update(bufferPointer: $0) }
        column.float64s.withUnsafeBytes { update(bufferPointer: $0) }
        for b in column.bools { update(value: b ? UInt8(1) : 0) }
        for s in column.strings { update(string: s) }
        for d in column.bytes { update(value: UInt64(d.count)); d.withUnsafeBytes { update(bufferPointer: $0) } }
        update(value: UInt64(column.nullRows.count))
        column.nullRows.withUnsafeBytes { update(bufferPointer: $0) }
    }
}

/// What a dataset record needs from a resolved selection.
public struct FeatureSelectionSummary: Sendable {
    public let references: [String]
    public let definitionVersions: [String: UInt64]
    public let schemaVersions: [String: UInt32]

    init(_ selection: FeatureSelection, snapshot: CatalogSnapshot) {
        references = selection.references
        var projects: [String: UInt64] = [:]
        var schemas: [String: UInt32] = [:]
        for view in selection.views {
            schemas[view.name] = view.meta.schemaVersion
            projects[view.project] = snapshot.projects[view.project]?.version ?? 0
        }
        definitionVersions = projects
        schemaVersions = schemas
    }
}

/// Whether `bytes` begins with `prefix`.
@inline(__always)
func startsWith(_ bytes: UnsafeRawBufferPointer, _ prefix: UnsafeRawBufferPointer) -> Bool {
    guard bytes.count >= prefix.count else { return false }
    guard prefix.count > 0, let a = bytes.baseAddress, let b = prefix.baseAddress else { return true }
    return memcmp(a, b, prefix.count) == 0
}

/// The event time stored in an offline key after the entity prefix.
@inline(__always)
func eventTime(ofOfflineKey key: UnsafeRawBufferPointer, prefixCount: Int) -> Int64 {
    Int64(bitPattern: UInt64(bigEndian: key.loadUnaligned(fromByteOffset: prefixCount, as: UInt64.self)) ^ (1 << 63))
}

/// The spine of one view, its rows ordered by (entity key, time, row).
///
/// Each row's encoded key (view id and join key values, exactly the prefix
/// of its offline rows) is kept back to back in `keyBytes`. Sorting
/// compares the first eight bytes after the view id as one integer — for a
/// single int64 key that is the whole key — and falls back to comparing the
/// bytes only when those are equal and the keys are longer.
struct SortedSpine {
    struct Entry {
        var head: UInt64
        var time: Int64
        var row: Int32
    }

    var keyBytes: [UInt8] = []
    var keyStarts: [Int] = []
    var order: [Entry] = []
    var longKeys = false

    init(viewID: UInt32, keys: [Column], times: [Int64]) {
        let rows = times.count
        keyStarts.reserveCapacity(rows + 1)
        order.reserveCapacity(rows)
        keyBytes.reserveCapacity(rows * 12)
        withUnsafeTemporaryAllocation(byteCount: KeyEncoder.maxInlineKey, alignment: 8) { buffer in
            for row in 0..<rows {
                keyStarts.append(keyBytes.count)
                var encoder = KeyEncoder(buffer)
                appendKey(viewID, keys, row: row, into: &encoder)
                if encoder.overflowed {
                    keyBytes.append(contentsOf: makeKey { appendKey(viewID, keys, row: row, into: &$0) })
                } else {
                    keyBytes.append(contentsOf: encoder.bytes)
                }
            }
        }
        keyStarts.append(keyBytes.count)
        keyBytes.withUnsafeBytes { all in
            for row in 0..<rows {
                let start = keyStarts[row] + 4, end = keyStarts[row + 1]
                var head: UInt64 = 0
                for i in 0..<8 { head = head << 8 | UInt64(start + i < end ? all[start + i] : 0) }
                if end - start > 8 { longKeys = true }
                order.append(Entry(head: head, time: times[row], row: Int32(row)))
            }
        }
        if !longKeys {
            order.sort { ($0.head, $0.time, $0.row) < ($1.head, $1.time, $1.row) }
        } else {
            let starts = keyStarts
            keyBytes.withUnsafeBytes { all in
                order.sort { a, b in
                    if a.head != b.head { return a.head < b.head }
                    let c = compareKeys(Int(a.row), Int(b.row), all, starts)
                    if c != 0 { return c < 0 }
                    return (a.time, a.row) < (b.time, b.row)
                }
            }
        }
    }

    func key(_ row: Int, in all: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: all[keyStarts[row]..<keyStarts[row + 1]])
    }

    @inline(__always)
    func sameKey(_ a: Entry, _ b: Entry, in all: UnsafeRawBufferPointer) -> Bool {
        guard a.head == b.head else { return false }
        return !longKeys || compareKeys(Int(a.row), Int(b.row), all, keyStarts) == 0
    }
}

@inline(__always)
private func compareKeys(_ a: Int, _ b: Int, _ all: UnsafeRawBufferPointer, _ starts: [Int]) -> Int32 {
    let aStart = starts[a], aCount = starts[a + 1] - aStart
    let bStart = starts[b], bCount = starts[b + 1] - bStart
    guard let base = all.baseAddress else { return 0 }
    let c = memcmp(base + aStart, base + bStart, min(aCount, bCount))
    if c != 0 { return c }
    return aCount == bCount ? 0 : (aCount < bCount ? -1 : 1)
}

extension Column {
    /// Rows `range` of this column, as a column of their own; for sending a
    /// large result in chunks.
    public func slice(_ range: Range<Int>) -> Column {
        var out = Column(name: name, type: type)
        switch type {
        case .int64: out.int64s = Array(int64s[range])
        case .float32: out.float32s = Array(float32s[range])
        case .float32Vector(let n): out.float32s = Array(float32s[(range.lowerBound * n)..<(range.upperBound * n)])
        case .float64: out.float64s = Array(float64s[range])
        case .bool: out.bools = Array(bools[range])
        case .string: out.strings = Array(strings[range])
        case .bytes: out.bytes = Array(bytes[range])
        }
        // nullRows is ascending: binary-search the window, then rebase it.
        let low = nullRows.partitioningIndex(where: { Int($0) >= range.lowerBound })
        let high = nullRows.partitioningIndex(where: { Int($0) >= range.upperBound })
        out.nullRows = nullRows[low..<high].map { $0 - UInt32(range.lowerBound) }
        return out
    }
}

extension Array {
    /// The first index whose element satisfies `predicate`, which must be
    /// false for a prefix of the array and true for the rest.
    func partitioningIndex(where predicate: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if predicate(self[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}
