// TrackingStore: experiments, runs and metrics in the daemon's LMDB
// environment.
//
// Metric points are the volume: a training loop logs millions. Each point is
// one LMDB entry, key (run seq, metric key, step, timestamp) -> the 8 bytes
// of the double, so a metric's history is one ordered range scan and a point
// costs about 40 bytes. The latest value of each metric (what search filters
// and sorts on) lives in a second table keyed (run seq, metric key), so a
// search never reads history. Runs and experiments are small JSON records.
//
// `logBatch` is the one write primitive (as MLflow's): every metric, param,
// tag, input and code version reaches a run through it, as one writer job,
// so a batch is all-or-nothing and concurrent batches to one run serialize
// in the writer and lose nothing. Writes are `async` and return after the
// commit; reads run on the caller's thread.
//
// Every write here (experiments, runs, logging) is telemetry and goes with
// the store's `durability`, `.relaxed` by default: acknowledged once
// committed (visible, survives kill -9), synced to the disk within the
// writer's sync interval. Artifacts and the registry stay strict.
import Foundation
public import PlinthStorage

/// Limits on names and values; they follow MLflow's where MLflow has one.
public enum TrackingLimits {
    public static let maxKeyLength = 250
    public static let maxParamValueLength = 6000
    public static let maxTagValueLength = 8000
    public static let maxNameLength = 500
    /// Points in one batch; a frame limit usually bites first.
    public static let maxBatchPoints = 1_000_000
    public static let defaultSearchResults = 1000
    public static let maxSearchResults = 50_000
    public static let defaultHistoryResults = 25_000
}

// Safe: every stored property is a `let` of a Sendable type or of a cache that locks itself.
public final class TrackingStore: @unchecked Sendable {
    public let environment: Environment
    let experiments: Table
    let experimentNames: Table
    let runs: Table
    let runsByExperiment: Table
    let metrics: Table
    let latest: Table
    let state: Table
    let runCache = RunCache()
    let searchCache = SearchCache()
    /// How the store's writes reach the disk (see the top of this file).
    public let durability: Durability

    /// The table whose presence says an environment holds tracking data.
    public static let experimentsTable = "trk_experiments"

    public init(environment: Environment, durability: Durability = .relaxed) throws {
        self.environment = environment
        self.durability = durability
        experiments = try environment.table(Self.experimentsTable)
        experimentNames = try environment.table("trk_experiment_names")
        runs = try environment.table("trk_runs")
        runsByExperiment = try environment.table("trk_runs_by_experiment")
        metrics = try environment.table("trk_metrics")
        latest = try environment.table("trk_latest_metrics")
        state = try environment.table("trk_state")
    }

    // MARK: Experiments

    /// Creates an experiment; names are unique, deleted experiments included
    /// (as MLflow's), so a deleted name must be restored or renamed first.
    public func createExperiment(name: String, tags: [String: String] = [:],
                                 now: Int64 = currentMillis()) async throws -> Experiment {
        try Self.checkName(name, what: "experiment name")
        try Self.checkTags(tags)
        return try await environment.writer.write(durability: durability) { [self] txn in
            if try txn.get(experimentNames, Array(name.utf8)) != nil {
                throw TrackingError.alreadyExists("an experiment named '\(name)' already exists (deleted ones count: restore or rename it)")
            }
            let id = try nextCounter("next_experiment_id", txn)
            let experiment = Experiment(id: id, name: name, lifecycle: .active, tags: tags, createdMs: now, updatedMs: now)
            try txn.put(experiments, makeKey { $0.append(id) }, try Self.encode(experiment))
            try txn.put(experimentNames, Array(name.utf8), makeKey { $0.append(id) })
            return experiment
        }
    }

    public func experiment(id: UInt64) throws -> Experiment {
        try environment.read { txn in try readExperiment(id, txn.get(experiments, makeKey { $0.append(id) })) }
    }

    public func experiment(named name: String) throws -> Experiment {
        try environment.read { txn in
            guard let raw = try txn.get(experimentNames, Array(name.utf8)) else {
                throw TrackingError.notFound("no experiment is named '\(name)'")
            }
            var decoder = KeyDecoder(raw)
            let id = try decoder.readUInt64()
            return try readExperiment(id, txn.get(experiments, makeKey { $0.append(id) }))
        }
    }

    private func readExperiment(_ id: UInt64, _ raw: UnsafeRawBufferPointer?) throws -> Experiment {
        guard let raw else { throw TrackingError.notFound("no experiment has id \(id)") }
        return try JSONDecoder().decode(Experiment.self, from: Data(raw))
    }

    /// Experiments by id; deleted ones only when asked.
    public func listExperiments(includeDeleted: Bool = false) throws -> [Experiment] {
        try environment.read { txn in
            var out: [Experiment] = []
            try txn.scan(experiments, from: []) { _, value in
                let e = try JSONDecoder().decode(Experiment.self, from: Data(value))
                if includeDeleted || e.lifecycle == .active { out.append(e) }
                return true
            }
            return out
        }
    }

    public func renameExperiment(id: UInt64, to name: String, now: Int64 = currentMillis()) async throws -> Experiment {
        try Self.checkName(name, what: "experiment name")
        return try await updateExperiment(id, now: now) { [self] experiment, txn in
            guard !sameBytes(experiment.name, name) else { return }
            if try txn.get(experimentNames, Array(name.utf8)) != nil {
                throw TrackingError.alreadyExists("an experiment named '\(name)' already exists")
            }
            try txn.delete(experimentNames, Array(experiment.name.utf8))
            try txn.put(experimentNames, Array(name.utf8), makeKey { $0.append(id) })
            experiment.name = name
        }
    }

    /// Soft delete: the experiment and its runs stay, hidden from listings,
    /// until `restoreExperiment`.
    public func deleteExperiment(id: UInt64, now: Int64 = currentMillis()) async throws -> Experiment {
        try await updateExperiment(id, now: now) { experiment, _ in experiment.lifecycle = .deleted }
    }

    public func restoreExperiment(id: UInt64, now: Int64 = currentMillis()) async throws -> Experiment {
        try await updateExperiment(id, now: now) { experiment, _ in experiment.lifecycle = .active }
    }

    private func updateExperiment(_ id: UInt64, now: Int64,
                                  _ change: @escaping @Sendable (inout Experiment, borrowing WriteTransaction) throws -> Void) async throws -> Experiment {
        try await environment.writer.write(durability: durability) { [self] txn in
            let key = makeKey { $0.append(id) }
            var experiment = try readExperiment(id, txn.get(experiments, key))
            try change(&experiment, txn)
            experiment.updatedMs = now
            try txn.put(experiments, key, try Self.encode(experiment))
            return experiment
        }
    }

    // MARK: Runs

    /// Starts a RUNNING run in an active experiment.
    ///
    /// As MLflow's: the name may come from `name` or from the
    /// `mlflow.runName` tag (two different values are refused), and the tag
    /// is always set to the name, so filters on `tags.mlflow.runName` and
    /// `attributes.run_name` see the same thing. `user_id` is the
    /// `mlflow.user` tag it starts with.
    public func startRun(experimentId: UInt64, name: String = "", tags: [String: String] = [:],
                         startMs: Int64 = currentMillis()) async throws -> Run {
        if name.utf8.count > TrackingLimits.maxNameLength {
            throw TrackingError.invalidArgument("run name is longer than \(TrackingLimits.maxNameLength) bytes")
        }
        try Self.checkTags(tags)
        let tagName = tags[Run.nameTag] ?? ""
        if !name.isEmpty && !tagName.isEmpty && !sameBytes(name, tagName) {
            throw TrackingError.invalidArgument("the run name '\(name)' and its tag \(Run.nameTag) '\(tagName)' differ; give one of them, or the same value in both")
        }
        if tagName.utf8.count > TrackingLimits.maxNameLength {
            throw TrackingError.invalidArgument("tag \(Run.nameTag) is the run name, at most \(TrackingLimits.maxNameLength) bytes")
        }
        let given = name.isEmpty ? tagName : name
        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        defer { searchCache.changed(experimentId) }
        return try await environment.writer.write(durability: durability) { [self] txn in
            let experiment = try readExperiment(experimentId, txn.get(experiments, makeKey { $0.append(experimentId) }))
            guard experiment.lifecycle == .active else {
                throw TrackingError.failedPrecondition("experiment '\(experiment.name)' (\(experimentId)) is deleted; restore it to start runs in it")
            }
            let seq = try nextCounter("next_run_seq", txn)
            let name = given.isEmpty ? "run-\(seq)" : given
            var tags = tags
            tags[Run.nameTag] = name
            let run = Run(id: id, seq: seq, experimentId: experimentId, name: name,
                          status: .running, startMs: startMs, endMs: 0, lifecycle: .active, tags: tags,
                          params: [:], inputs: [], codeVersion: nil, userId: tags[Run.userTag])
            try txn.put(runs, Array(id.utf8), try Self.encode(run))
            try txn.put(runsByExperiment, makeKey { $0.append(experimentId); $0.append(id) }, [])
            return run
        }
    }

    /// Ends a RUNNING run with a terminal status. Ending an ended run again
    /// is refused: its end time and status are history.
    public func endRun(id: String, status: RunStatus, endMs: Int64 = currentMillis()) async throws -> Run {
        guard status.isTerminal else {
            throw TrackingError.invalidArgument("a run ends FINISHED, FAILED or KILLED, not \(status.rawValue)")
        }
        return try await updateRun(id) { run in
            guard run.status == .running else {
                throw TrackingError.failedPrecondition("run \(id) already ended \(run.status.rawValue)")
            }
            run.status = status
            run.endMs = max(endMs, run.startMs)
        }
    }

    /// Sets a run's name (only the name: everything else is logged history),
    /// and its `mlflow.runName` tag with it, as MLflow's UpdateRun does.
    public func renameRun(id: String, to name: String) async throws -> Run {
        try Self.checkName(name, what: "run name")
        return try await updateRun(id) { run in
            run.name = name
            run.tags[Run.nameTag] = name
        }
    }

    public func deleteRun(id: String) async throws -> Run {
        try await updateRun(id) { run in run.lifecycle = .deleted }
    }

    public func restoreRun(id: String) async throws -> Run {
        try await updateRun(id) { run in run.lifecycle = .active }
    }

    private func updateRun(_ id: String, _ change: @escaping @Sendable (inout Run) throws -> Void) async throws -> Run {
        let run = try await environment.writer.write(durability: durability) { [self] txn in
            guard let raw = try txn.get(runs, Array(id.utf8)) else { throw TrackingError.notFound("no run has id '\(id)'") }
            var run = try Self.decodeRun(Data(raw))
            try change(&run)
            try txn.put(runs, Array(id.utf8), try Self.encode(run))
            return run
        }
        searchCache.changed(run.experimentId)
        return run
    }

    /// A run with the latest value of each metric.
    public func run(id: String) throws -> RunRecord {
        try environment.read { txn in
            guard let record = try readRecord(id, txn) else { throw TrackingError.notFound("no run has id '\(id)'") }
            return record
        }
    }

    func readRecord(_ id: String, _ txn: borrowing ReadTransaction) throws -> RunRecord? {
        guard let raw = try txn.get(runs, Array(id.utf8)) else { return nil }
        let run = try runCache.decode(id: id, raw)
        return RunRecord(run: run, metrics: try latestMetrics(seq: run.seq, txn))
    }

    private static func point(_ key: String, _ value: UnsafeRawBufferPointer) -> MetricPoint {
        MetricPoint(key: key, value: Double(bitPattern: value.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                    step: value.loadUnaligned(fromByteOffset: 8, as: Int64.self),
                    timestampMs: value.loadUnaligned(fromByteOffset: 16, as: Int64.self))
    }

    func latestMetrics(seq: UInt64, _ txn: borrowing ReadTransaction) throws -> [String: MetricPoint] {
        let prefix = makeKey { $0.append(seq) }
        var out: [String: MetricPoint] = [:]
        try txn.scan(latest, from: prefix) { key, value in
            guard hasPrefix(key, prefix), value.count == 24 else { return false }
            var decoder = KeyDecoder(UnsafeRawBufferPointer(rebasing: key[prefix.count...]))
            let name = try decoder.readString()
            out[name] = Self.point(name, value)
            return true
        }
        return out
    }

    /// Ids of the runs of an experiment, deleted ones included.
    func runIds(experimentId: UInt64, _ txn: borrowing ReadTransaction) throws -> [String] {
        let prefix = makeKey { $0.append(experimentId) }
        var out: [String] = []
        try txn.scan(runsByExperiment, from: prefix) { key, _ in
            guard hasPrefix(key, prefix) else { return false }
            var decoder = KeyDecoder(UnsafeRawBufferPointer(rebasing: key[prefix.count...]))
            out.append(try decoder.readString())
            return true
        }
        return out
    }

    // MARK: Logging

    /// Logs metrics, params, tags, inputs and the code version to a RUNNING
    /// run in one transaction: all of it is stored, or none of it.
    ///
    /// - Throws: `notFound` for an unknown run; `failedPrecondition` when the
    ///   run has ended or is deleted; `invalidArgument` for a bad key, a value
    ///   over its limit, or a param logged again with a different value.
    /// - Complexity: O(points · log n) LMDB puts plus one get and put per
    ///   distinct metric key.
    public func logBatch(_ batch: LogBatch) async throws {
        try Self.validate(batch)
        let experiment = try await environment.writer.write(durability: durability) { [self] txn in try apply(batch, txn) }
        searchCache.changed(experiment)
    }

    /// `logBatch` for callers on an event loop: `completion` runs on the
    /// writer's thread after the durable commit, with no task in between
    /// (two thread hops fewer on the hottest write path).
    public func logBatch(_ batch: LogBatch, completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        do { try Self.validate(batch) } catch { return completion(.failure(error)) }
        environment.writer.submit(durability: durability, { [self] txn in try apply(batch, txn) }, completion: { [searchCache] result in
            // Before the answer: a search that follows it must see the batch.
            if case .success(let experiment) = result { searchCache.changed(experiment) }
            completion(result.map { _ in () })
        })
    }

    /// Returns the run's experiment.
    private func apply(_ batch: LogBatch, _ txn: borrowing WriteTransaction) throws -> UInt64 {
        let runKey = Array(batch.runId.utf8)
        guard let raw = try txn.get(runs, runKey) else { throw TrackingError.notFound("no run has id '\(batch.runId)'") }
        // The cache compares the stored bytes, so it is right inside a write too.
        var run = try runCache.decode(id: batch.runId, raw)
        guard run.status == .running else {
            throw TrackingError.failedPrecondition("run \(run.id) is \(run.status.rawValue); only a RUNNING run can be logged to")
        }
        guard run.lifecycle == .active else {
            throw TrackingError.failedPrecondition("run \(run.id) is deleted; restore it before logging to it")
        }
        var changed = false
        for (key, value) in batch.params.sorted(by: { $0.key < $1.key }) {
            if let old = run.params[key] {
                // Bytes, as MLflow's check: "é" and "e" + accent are different values.
                guard sameBytes(old, value) else {
                    throw TrackingError.invalidArgument("param '\(key)' of run \(run.id) is already '\(old)'; params are immutable (tried '\(value)')")
                }
            } else {
                run.params[key] = value
                changed = true
            }
        }
        for (key, value) in batch.tags where !(run.tags[key].map { sameBytes($0, value) } ?? false) {
            // Setting the name tag renames the run (MLflow's set_tag does):
            // name and tag never disagree.
            if key == Run.nameTag { run.name = value }
            run.tags[key] = value
            changed = true
        }
        for input in batch.inputs where !run.inputs.contains(where: { $0.isIdentical(to: input) }) {
            run.inputs.append(input)
            changed = true
        }
        if let code = batch.codeVersion, run.codeVersion != code {
            run.codeVersion = code
            changed = true
        }
        if changed { try txn.put(runs, runKey, try Self.encode(run)) }
        if !batch.metrics.isEmpty { try writeMetrics(batch.metrics, seq: run.seq, txn) }
        return run.experimentId
    }

    private func writeMetrics(_ points: [MetricPoint], seq: UInt64, _ txn: borrowing WriteTransaction) throws {
        var newest: [String: MetricPoint] = [:]
        var buffer = [UInt8](repeating: 0, count: KeyEncoder.maxInlineKey)
        try buffer.withUnsafeMutableBytes { raw in
            // Points arrive grouped by key (the wire carries one column per
            // key), so the key's prefix (run seq, metric key) is encoded once
            // per group and each point only rewrites its step and timestamp:
            // this loop is the whole cost of a large batch.
            var index = 0
            while index < points.count {
                let key = points[index].key
                var encoder = KeyEncoder(raw)
                encoder.append(seq)
                encoder.append(key)
                // Keys are at most 250 bytes (validated), so this cannot overflow.
                let prefixLength = encoder.count
                var best = points[index]
                // A training loop logs steps in order into the newest run, so
                // its points usually sort after everything stored: append
                // them (no B-tree descent) until one does not, then put.
                var appending = true
                while index < points.count && points[index].key == key {
                    let point = points[index]
                    raw.storeBytes(of: (UInt64(bitPattern: point.step) ^ (1 << 63)).bigEndian, toByteOffset: prefixLength, as: UInt64.self)
                    raw.storeBytes(of: (UInt64(bitPattern: point.timestampMs) ^ (1 << 63)).bigEndian, toByteOffset: prefixLength + 8,
                                   as: UInt64.self)
                    var bits = point.value.bitPattern
                    try withUnsafeBytes(of: &bits) { value in
                        let key = UnsafeRawBufferPointer(rebasing: raw[0..<prefixLength + 16])
                        if appending, try txn.append(metrics, key, value) { return }
                        appending = false
                        // A point at a step and timestamp already stored keeps
                        // the larger value (MLflow's rule for the latest value),
                        // so the history's last point is always the latest.
                        if let old = try txn.get(metrics, key), old.count == 8,
                           !MetricPoint.supersedes(point.value, Double(bitPattern: old.loadUnaligned(as: UInt64.self))) { return }
                        try txn.put(metrics, key, value)
                    }
                    if point.isNewer(than: best) { best = point }
                    index += 1
                }
                if let known = newest[key], !best.isNewer(than: known) { continue }
                newest[key] = best
            }
        }
        for (name, point) in newest {
            let key = makeKey { $0.append(seq); $0.append(name) }
            if let old = try txn.get(latest, key), old.count == 24, !point.isNewer(than: Self.point(name, old)) { continue }
            var value = [UInt8](repeating: 0, count: 24)
            value.withUnsafeMutableBytes { v in
                v.storeBytes(of: point.value.bitPattern, toByteOffset: 0, as: UInt64.self)
                v.storeBytes(of: point.step, toByteOffset: 8, as: Int64.self)
                v.storeBytes(of: point.timestampMs, toByteOffset: 16, as: Int64.self)
            }
            try txn.put(latest, key, value)
        }
    }

    /// Every point of one metric of a run, by step then timestamp. Of points
    /// logged with the same step and timestamp the one with the larger value
    /// is kept (MLflow keeps them all; its latest value is the larger).
    /// - Parameter pageToken: the `nextPageToken` of the previous page.
    public func metricHistory(runId: String, key: String, maxResults: Int = TrackingLimits.defaultHistoryResults,
                              pageToken: String = "") throws -> Page<MetricPoint> {
        let limit = maxResults <= 0 ? TrackingLimits.defaultHistoryResults : maxResults
        var start: (Int64, Int64)?
        if !pageToken.isEmpty {
            let parts = pageToken.split(separator: ":")
            guard parts.count == 2, let step = Int64(parts[0]), let time = Int64(parts[1]) else {
                throw TrackingError.invalidArgument("page token '\(pageToken)' is not one this server issued")
            }
            start = (step, time)
        }
        return try environment.read { txn in
            guard let raw = try txn.get(runs, Array(runId.utf8)) else { throw TrackingError.notFound("no run has id '\(runId)'") }
            let run = try runCache.decode(id: runId, raw)
            let prefix = makeKey { $0.append(run.seq); $0.append(key) }
            let from = start.map { s in makeKey { $0.append(run.seq); $0.append(key); $0.append(s.0); $0.append(s.1) } } ?? prefix
            var points: [MetricPoint] = []
            var next = ""
            try txn.scan(metrics, from: from) { k, v in
                guard k.count == prefix.count + 16, hasPrefix(k, prefix), v.count == 8 else { return false }
                var decoder = KeyDecoder(UnsafeRawBufferPointer(rebasing: k[prefix.count...]))
                let step = try decoder.readInt64()
                let time = try decoder.readInt64()
                if points.count == limit {
                    next = "\(step):\(time)"
                    return false
                }
                points.append(MetricPoint(key: key, value: Double(bitPattern: v.loadUnaligned(as: UInt64.self)),
                                          step: step, timestampMs: time))
                return true
            }
            return Page(items: points, nextPageToken: next)
        }
    }

    // MARK: Helpers

    private func nextCounter(_ name: String, _ txn: borrowing WriteTransaction) throws -> UInt64 {
        let key = Array(name.utf8)
        var next: UInt64 = 1
        if let raw = try txn.get(state, key), raw.count == 8 { next = raw.loadUnaligned(as: UInt64.self) }
        try txn.put(state, key, withUnsafeBytes(of: next + 1) { Array($0) })
        return next
    }

    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return Array(try encoder.encode(value))
    }

    static func checkName(_ name: String, what: String) throws {
        guard !name.isEmpty else { throw TrackingError.invalidArgument("\(what) is empty") }
        guard name.utf8.count <= TrackingLimits.maxNameLength else {
            throw TrackingError.invalidArgument("\(what) is longer than \(TrackingLimits.maxNameLength) bytes")
        }
    }

    /// MLflow's rule for metric, param and tag keys: letters, digits,
    /// underscores, dashes, periods, spaces and slashes, at most 250 bytes,
    /// and no `..` or leading `/` (keys can become file paths in MLflow).
    static func checkKey(_ key: String, what: String) throws {
        guard !key.isEmpty else { throw TrackingError.invalidArgument("a \(what) key is empty") }
        guard key.utf8.count <= TrackingLimits.maxKeyLength else {
            throw TrackingError.invalidArgument("\(what) key '\(key.prefix(40))…' is longer than \(TrackingLimits.maxKeyLength) bytes")
        }
        for byte in key.utf8 {
            let ok = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2D || byte == 0x2E || byte == 0x20 || byte == 0x2F
            guard ok else {
                throw TrackingError.invalidArgument("\(what) key '\(key)' may only contain letters, digits, '_', '-', '.', ' ' and '/'")
            }
        }
        if key.hasPrefix("/") || key.contains("..") {
            throw TrackingError.invalidArgument("\(what) key '\(key)' may not start with '/' or contain '..'")
        }
    }

    static func checkTags(_ tags: [String: String]) throws {
        for (key, value) in tags {
            try checkKey(key, what: "tag")
            guard value.utf8.count <= TrackingLimits.maxTagValueLength else {
                throw TrackingError.invalidArgument("tag '\(key)' has a value longer than \(TrackingLimits.maxTagValueLength) bytes")
            }
        }
    }

    static func validate(_ batch: LogBatch) throws {
        guard batch.metrics.count <= TrackingLimits.maxBatchPoints else {
            throw TrackingError.tooLarge("a batch holds at most \(TrackingLimits.maxBatchPoints) metric points; this one has \(batch.metrics.count)")
        }
        var seen = Set<String>()
        var previous: String?
        for point in batch.metrics where point.key != previous {
            previous = point.key
            if seen.insert(point.key).inserted { try checkKey(point.key, what: "metric") }
        }
        for (key, value) in batch.params {
            try checkKey(key, what: "param")
            guard value.utf8.count <= TrackingLimits.maxParamValueLength else {
                throw TrackingError.invalidArgument("param '\(key)' has a value longer than \(TrackingLimits.maxParamValueLength) bytes")
            }
        }
        try checkTags(batch.tags)
        if let name = batch.tags[Run.nameTag] {
            // The tag is the run's name, so it follows the name's rules.
            try checkName(name, what: "tag \(Run.nameTag) (the run name)")
        }
    }

    /// Decodes a stored run. Runs stored before the name was mirrored in the
    /// `mlflow.runName` tag get the tag here, on read, rather than by a
    /// migration: the stored bytes stay as they were (so the run cache's
    /// byte comparison still holds) and every reader sees the tag, and the
    /// next write to the run stores it.
    static func decodeRun(_ data: Data) throws -> Run {
        var run = try JSONDecoder().decode(Run.self, from: data)
        if run.tags[Run.nameTag] == nil { run.tags[Run.nameTag] = run.name }
        return run
    }
}

/// Decoded runs keyed by id, reused while the stored bytes are unchanged:
/// a search reads every run of an experiment, and JSON decoding would
/// dominate it. Comparing the stored bytes keeps the cache always correct.
// Safe: `entries` is read and written only under `lock`; entries are immutable.
final class RunCache: @unchecked Sendable {
    /// A decoded run and the bytes it was decoded from; immutable, shared.
    // Safe: immutable after init.
    final class Entry: @unchecked Sendable {
        let bytes: [UInt8]
        let run: Run
        init(bytes: [UInt8], run: Run) {
            self.bytes = bytes
            self.run = run
        }
    }

    private let lock = ConditionLock()
    private var entries: [String: Entry] = [:]

    func decode(id: String, _ raw: UnsafeRawBufferPointer) throws -> Run {
        try entry(id: id, raw).run
    }

    /// The cached entry of run `id` if its bytes are `raw`, else a fresh one.
    func entry(id: String, _ raw: UnsafeRawBufferPointer) throws -> Entry {
        if let hit = lock.withLock({ entries[id] }), hit.bytes.count == raw.count, hasPrefix(raw, hit.bytes) { return hit }
        let bytes = Array(raw)
        let entry = Entry(bytes: bytes, run: try TrackingStore.decodeRun(Data(bytes)))
        lock.withLock { entries[id] = entry }
        return entry
    }
}

/// Every run of an experiment with its latest metrics, as a search last read
/// them, reused until a write changes one of the experiment's runs.
///
/// Each experiment has a generation, bumped after every committed write to
/// one of its runs and before that write is answered. A search reads the
/// generation before its read transaction begins, so a snapshot is never
/// older than its label: a hit (label == current generation) is exact, and
/// a write answered before a search began is always seen by it.
// Safe: `generations` and `snapshots` are read and written only under `lock`.
final class SearchCache: @unchecked Sendable {
    /// Experiments with more runs than this are read afresh by every search.
    static let maxRuns = 50_000
    private let lock = ConditionLock()
    private var generations: [UInt64: UInt64] = [:]
    private var snapshots: [UInt64: (generation: UInt64, records: [RunRecord])] = [:]

    func generation(_ experiment: UInt64) -> UInt64 { lock.withLock { generations[experiment] ?? 0 } }

    func changed(_ experiment: UInt64) {
        lock.withLock {
            generations[experiment, default: 0] += 1
            snapshots[experiment] = nil
        }
    }

    func records(_ experiment: UInt64, generation: UInt64) -> [RunRecord]? {
        lock.withLock { snapshots[experiment].flatMap { $0.generation == generation ? $0.records : nil } }
    }

    func store(_ experiment: UInt64, generation: UInt64, _ records: [RunRecord]) {
        guard records.count <= Self.maxRuns else { return }
        lock.withLock {
            guard generation == generations[experiment] ?? 0 else { return }
            snapshots[experiment] = (generation, records)
        }
    }
}

@inline(__always)
func hasPrefix(_ key: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
    guard key.count >= prefix.count else { return false }
    if prefix.isEmpty { return true }
    return prefix.withUnsafeBytes { p in
        guard let a = key.baseAddress, let b = p.baseAddress else { return false }
        return memcmp(a, b, prefix.count) == 0
    }
}
