// Materializer: copies the latest offline row of each entity in a time range
// into the online face (Feast's materialize and materialize_incremental).
//
// One view at a time, the offline table is walked in key order — entity by
// entity, each entity's rows in (event time, created time) order — so the
// latest row of an entity in [start, end] is the last one seen before its
// event times pass `end`. Rows are gathered in chunks of whole entities;
// each chunk is one write transaction that applies the online face's
// "newer wins" rule (a row never replaces an online value with a later
// (event time, created time)) and, in the same transaction, records how
// far the run got. A run that is interrupted therefore leaves the online
// face and its progress consistent, and the next run of the same range
// continues after the last committed entity. Because of "newer wins",
// running a range twice writes nothing the second time: materialisation is
// idempotent. When a view's run completes, its watermark becomes `end`;
// materialize_incremental starts from there.
import Foundation
import PlinthStorage
import Synchronization

/// What one view's materialisation did.
public struct MaterializedView: Sendable, Equatable {
    public var view: String
    public var start: Int64
    public var end: Int64
    /// Entities with a row in the range.
    public var entities = 0
    public var onlineRowsWritten = 0
    /// Rows not written: the online value was as new or newer.
    public var onlineRowsStale = 0
    /// Whether this run continued an interrupted run of the same range.
    public var resumed = false
}

/// A view's materialisation state, stored per view id.
struct WatermarkRecord: Codable, Equatable {
    /// End of the last completed run; nil before the first.
    var watermark: Int64?
    /// The run in progress (interrupted, if no run is going on now).
    var runStart: Int64?
    var runEnd: Int64?
    /// The offline key prefix of the last entity the run committed.
    var after: [UInt8]?
}

extension OfflineStore {
    /// Entities per write transaction of a materialisation.
    public static let materializeChunk = 20_000

    /// Copies the latest row per entity with `start <= event time <= end`
    /// from the offline to the online face.
    ///
    /// - Parameters:
    ///   - start: ignored when `incremental` (each view starts at its
    ///     watermark; on its first run at `end` minus its TTL, or at the
    ///     beginning of time without a TTL).
    ///   - views: names; empty means every view.
    ///   - chunkEntities: entities per committed chunk.
    ///   - progress: called after each committed chunk with the view and the
    ///     offline rows scanned so far over all views; throwing from it
    ///     stops the run after that chunk (it resumes on the next run).
    /// - Threading: any thread; writes go through the environment's writer.
    public func materialize(start: Int64, end: Int64, incremental: Bool = false, views: [String] = [],
                            chunkEntities: Int = OfflineStore.materializeChunk,
                            progress: (String, Int) throws -> Void = { _, _ in }) throws -> [MaterializedView] {
        guard !materializing.exchange(true, ordering: .acquiringAndReleasing) else {
            throw FeatureStoreError.conflict("a materialisation is already running; wait for it to finish")
        }
        defer { materializing.store(false, ordering: .releasing) }
        let snapshot = catalog.snapshot
        let chosen: [ResolvedView]
        if views.isEmpty {
            // Offline-only views have no online face to copy to.
            chosen = snapshot.views.values.filter(\.definition.online).sorted { $0.name < $1.name }
        } else {
            let missing = views.filter { snapshot.views[$0] == nil }
            guard missing.isEmpty else {
                throw FeatureStoreError.notFound("unknown feature views: \(missing.joined(separator: ", "))")
            }
            chosen = views.compactMap { snapshot.views[$0] }
            let offlineOnly = chosen.filter { !$0.definition.online }.map(\.name)
            guard offlineOnly.isEmpty else {
                throw FeatureStoreError.invalidArgument(
                    "offline-only feature views (online: false) are not materialised: \(offlineOnly.joined(separator: ", "))")
            }
        }
        guard !incremental ? start <= end : true else {
            throw FeatureStoreError.invalidArgument("the start (\(start)) is after the end (\(end))")
        }
        var scanned = 0
        var results: [MaterializedView] = []
        for view in chosen {
            let stateKey = makeKey { $0.append(view.meta.viewID) }
            var record = try watermarkRecord(stateKey)
            var from = start
            if incremental {
                let ttl = view.definition.ttlSeconds.multipliedReportingOverflow(by: 1_000_000).partialValue
                from = record.watermark ?? (view.definition.ttlSeconds > 0 ? end &- ttl : Int64.min)
                if from > end {
                    // Already materialised past `end`: nothing to do.
                    results.append(MaterializedView(view: view.name, start: from, end: end))
                    continue
                }
            }
            var result = MaterializedView(view: view.name, start: from, end: end)
            var after: [UInt8]? = nil
            if record.runStart == from, record.runEnd == end, let previous = record.after {
                after = previous
                result.resumed = true
            }
            record.runStart = from
            record.runEnd = end
            let viewPrefix = makeKey { $0.append(view.meta.viewID) }
            while true {
                // The seek key: just past the last committed entity (every
                // offline key of that entity is its prefix plus 16 bytes, so
                // the prefix plus 17 0xFF bytes is past them all and before
                // the next entity), or the view's first key.
                let seek = after.map { $0 + [UInt8](repeating: 0xFF, count: 17) } ?? viewPrefix
                let chunk = try gatherChunk(viewPrefix: viewPrefix, seek: seek, start: from, end: end, limit: chunkEntities)
                scanned += chunk.scanned
                if chunk.rows.isEmpty && chunk.lastEntity == nil { break }
                record.after = chunk.lastEntity
                let (written, stale) = try commitChunk(chunk.rows, stateKey: stateKey, record: record)
                result.entities += chunk.rows.count
                result.onlineRowsWritten += written
                result.onlineRowsStale += stale
                after = chunk.lastEntity
                try progress(view.name, scanned)
                if chunk.finished { break }
            }
            record.watermark = max(record.watermark ?? Int64.min, end)
            record.runStart = nil
            record.runEnd = nil
            record.after = nil
            let finalRecord = record
            let table = watermarks
            let json = Array(try JSONEncoder().encode(finalRecord))
            try environment.writer.write { txn in try txn.put(table, stateKey, json) }
            results.append(result)
        }
        return results
    }

    /// The watermark of `view` (end of its last completed run), or nil.
    public func watermark(view name: String) throws -> Int64? {
        guard let view = catalog.snapshot.views[name] else {
            throw FeatureStoreError.notFound("unknown feature view '\(name)'")
        }
        return try watermarkRecord(makeKey { $0.append(view.meta.viewID) }).watermark
    }

    func watermarkRecord(_ key: [UInt8]) throws -> WatermarkRecord {
        let data = try environment.read { txn -> Data? in try txn.get(watermarks, key).map { Data($0) } }
        guard let data else { return WatermarkRecord() }
        return try JSONDecoder().decode(WatermarkRecord.self, from: data)
    }

    struct Chunk {
        /// (online key = entity prefix, packed row) per entity.
        var rows: [(key: [UInt8], value: [UInt8])] = []
        var lastEntity: [UInt8]?
        var scanned = 0
        /// The view has no more entities after this chunk.
        var finished = false
    }

    /// Reads up to `limit` whole entities from `seek` on, keeping each
    /// one's latest row in the range.
    func gatherChunk(viewPrefix: [UInt8], seek: [UInt8], start: Int64, end: Int64, limit: Int) throws -> Chunk {
        try environment.read { txn -> Chunk in
            try txn.withCursor(offline) { cursor -> Chunk in
                var chunk = Chunk()
                var entities = 0
                var current: UnsafeRawBufferPointer? = nil
                var best: UnsafeRawBufferPointer? = nil
                func closeEntity() {
                    guard let current else { return }
                    entities += 1
                    let prefix = Array(current)
                    if let best { chunk.rows.append((prefix, Array(best))) }
                    chunk.lastEntity = prefix
                }
                var position = try seek.withUnsafeBytes { try cursor.seek($0) }
                while let (key, value) = position {
                    guard key.count >= viewPrefix.count + 16, viewPrefix.withUnsafeBytes({ startsWith(key, $0) }) else { break }
                    chunk.scanned += 1
                    let prefix = UnsafeRawBufferPointer(rebasing: key[0..<(key.count - 16)])
                    if let c = current, !(c.count == prefix.count && startsWith(c, prefix)) {
                        closeEntity()
                        best = nil
                        if entities >= limit { return chunk }
                    }
                    current = prefix
                    let event = eventTime(ofOfflineKey: key, prefixCount: prefix.count)
                    if event >= start && event <= end { best = value }
                    position = try cursor.next()
                }
                closeEntity()
                chunk.finished = true
                return chunk
            }
        }
    }

    /// Writes one chunk under the online "newer wins" rule and records the
    /// run's progress in the same transaction.
    func commitChunk(_ rows: [(key: [UInt8], value: [UInt8])], stateKey: [UInt8], record: WatermarkRecord) throws -> (Int, Int) {
        let online = self.online, table = watermarks
        let state = Array(try JSONEncoder().encode(record))
        return try environment.writer.write { txn -> (Int, Int) in
            var written = 0, stale = 0
            for (key, value) in rows {
                let newer = value.withUnsafeBytes { PackedRow($0).map { ($0.eventTime, $0.createdTime) } }
                if let newer, let existing = try txn.get(online, key), let old = PackedRow(existing),
                   (old.eventTime, old.createdTime) >= newer {
                    stale += 1
                    continue
                }
                try txn.put(online, key, value)
                written += 1
            }
            try txn.put(table, stateKey, state)
            return (written, stale)
        }
    }
}
