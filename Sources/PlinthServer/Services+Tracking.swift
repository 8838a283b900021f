// Services+Tracking: the Tracking service's methods — experiments, runs,
// log_batch, metric history, search and artifacts — mapped onto
// PlinthTracking. Writes run in a task and answer after their commit;
// reads answer inline. Datasets logged as run inputs are stamped here with
// the feature catalog's definition versions, which is what lineage reads.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthStorage
import PlinthTracking
import PlinthWire
import SwiftProtobuf

extension Services {
    static let trackingMethods: [String: MethodHandler] = [
        Method.createExperiment: MethodHandler { s, body, respond in
            s.later(respond) {
                let request = try decode(PBCreateExperimentRequest.self, body)
                let value = try await s.tracking.createExperiment(name: request.name, tags: request.tags)
                return PBExperimentResponse.with { $0.experiment = value.wire }
            }
        },
        Method.getExperiment: MethodHandler { s, body, respond in
            s.now(respond) {
                let request = try decode(PBGetExperimentRequest.self, body)
                let experiment: Experiment
                if request.experimentID != 0 {
                    experiment = try s.tracking.experiment(id: request.experimentID)
                } else if !request.name.isEmpty {
                    experiment = try s.tracking.experiment(named: request.name)
                } else {
                    throw TrackingError.invalidArgument("give an experiment_id or a name")
                }
                return PBExperimentResponse.with { $0.experiment = experiment.wire }
            }
        },
        Method.listExperiments: MethodHandler { s, body, respond in
            s.now(respond) {
                let request = try decode(PBListExperimentsRequest.self, body)
                let all = try s.tracking.listExperiments(includeDeleted: request.view != .activeOnly && request.view != .unspecified)
                let shown = request.view == .deletedOnly ? all.filter { $0.lifecycle == .deleted } : all
                return PBListExperimentsResponse.with { $0.experiments = shown.map(\.wire) }
            }
        },
        Method.renameExperiment: MethodHandler { s, body, respond in
            s.later(respond) {
                let request = try decode(PBRenameExperimentRequest.self, body)
                let e = try await s.tracking.renameExperiment(id: request.experimentID, to: request.newName)
                return PBExperimentResponse.with { $0.experiment = e.wire }
            }
        },
        Method.deleteExperiment: MethodHandler { s, body, respond in
            s.later(respond) {
                let request = try decode(PBExperimentIdRequest.self, body)
                let e = try await s.tracking.deleteExperiment(id: request.experimentID)
                return PBExperimentResponse.with { $0.experiment = e.wire }
            }
        },
        Method.restoreExperiment: MethodHandler { s, body, respond in
            s.later(respond) {
                let request = try decode(PBExperimentIdRequest.self, body)
                let e = try await s.tracking.restoreExperiment(id: request.experimentID)
                return PBExperimentResponse.with { $0.experiment = e.wire }
            }
        },
        Method.startRun: MethodHandler { s, body, respond in
            s.later(respond) {
                let request = try decode(PBStartRunRequest.self, body)
                let run = try await s.tracking.startRun(experimentId: request.experimentID, name: request.name, tags: request.tags,
                                                        startMs: request.startTimeMs == 0 ? currentMillis() : request.startTimeMs)
                return PBRunResponse.with { $0.run = RunRecord(run: run, metrics: [:]).wire }
            }
        },
        Method.endRun: MethodHandler { s, body, respond in
            s.later(respond) {
                let request = try decode(PBEndRunRequest.self, body)
                let status = try RunStatus(wire: request.status == .unspecified ? .finished : request.status)
                _ = try await s.tracking.endRun(id: request.runID, status: status,
                                                endMs: request.endTimeMs == 0 ? currentMillis() : request.endTimeMs)
                return try PBRunResponse.with { $0.run = try s.tracking.run(id: request.runID).wire }
            }
        },
        Method.getRun: MethodHandler { s, body, respond in
            s.now(respond) {
                let request = try decode(PBRunIdRequest.self, body)
                return try PBRunResponse.with { $0.run = try s.tracking.run(id: request.runID).wire }
            }
        },
        Method.deleteRun: MethodHandler { s, body, respond in
            s.later(respond) {
                let request = try decode(PBRunIdRequest.self, body)
                _ = try await s.tracking.deleteRun(id: request.runID)
                return try PBRunResponse.with { $0.run = try s.tracking.run(id: request.runID).wire }
            }
        },
        Method.restoreRun: MethodHandler { s, body, respond in
            s.later(respond) {
                let request = try decode(PBRunIdRequest.self, body)
                _ = try await s.tracking.restoreRun(id: request.runID)
                return try PBRunResponse.with { $0.run = try s.tracking.run(id: request.runID).wire }
            }
        },
        Method.logBatch: MethodHandler { s, body, respond in
            // The hot write path: decoded here, answered from the writer's
            // completion, no task in between.
            do {
                let batch = try s.logBatch(from: decode(PBLogBatchRequest.self, body))
                let points = UInt64(batch.metrics.count)
                s.tracking.logBatch(batch) { result in
                    switch result {
                    case .success: respond.succeed(PBLogBatchResponse.with { $0.metricPoints = points })
                    case .failure(let error): respond.fail(error)
                    }
                }
            } catch { respond.fail(error) }
        },
        Method.getMetricHistory: MethodHandler { s, body, respond in
            s.now(respond) {
                let request = try decode(PBGetMetricHistoryRequest.self, body)
                let page = try s.tracking.metricHistory(runId: request.runID, key: request.key, maxResults: Int(request.maxResults),
                                                        pageToken: request.pageToken)
                var out = PBGetMetricHistoryResponse()
                out.values = page.items.map(\.value)
                out.steps = page.items.map(\.step)
                out.timestampsMs = page.items.map(\.timestampMs)
                out.nextPageToken = page.nextPageToken
                return out
            }
        },
        Method.searchRuns: MethodHandler { s, body, respond in
            do {
                let request = try decode(PBSearchRunsRequest.self, body)
                let view: RunView = switch request.view {
                case .deletedOnly: .deletedOnly
                case .all: .all
                default: .activeOnly
                }
                let page = try s.tracking.searchRuns(experimentIds: request.experimentIds, filter: request.filter,
                                                     orderBy: request.orderBy, maxResults: Int(request.maxResults),
                                                     pageToken: request.pageToken, view: view)
                // SearchRunsResponse { repeated Run runs = 1; string next_page_token = 2; },
                // written by hand around each run's cached encoding.
                var out: [UInt8] = []
                func field(_ tag: UInt8, _ bytes: some Collection<UInt8>) {
                    out.append(tag)
                    var n = UInt64(bytes.count)
                    while n >= 0x80 { out.append(UInt8(truncatingIfNeeded: n) | 0x80); n >>= 7 }
                    out.append(UInt8(n))
                    out.append(contentsOf: bytes)
                }
                for record in page.items { field(0x0A, try RunWireCache.shared.encoded(record)) }
                if !page.nextPageToken.isEmpty { field(0x12, page.nextPageToken.utf8) }
                respond.deliver(StatusCode.ok, "", .bytes(out), false)
            } catch { respond.fail(error) }
        },
        Method.uploadArtifact: MethodHandler { s, body, respond in
            s.later(respond) {
                let request = try decode(PBUploadArtifactRequest.self, body)
                let expected = request.uploadID.isEmpty && !request.expectedDigest.isEmpty ? request.expectedDigest : nil
                if request.uploadID.isEmpty && request.finish {
                    // The whole file in one request (a model file, usually).
                    let artifact = try await s.artifacts.store(runId: request.runID, path: request.path, bytes: Array(request.data),
                                                               expectedDigest: expected)
                    return PBUploadArtifactResponse.with {
                        $0.receivedBytes = artifact.size
                        $0.artifact = artifact.wire
                    }
                }
                if let expected, request.data.isEmpty,
                   let artifact = try await s.artifacts.existing(runId: request.runID, path: request.path, digest: expected) {
                    // The client announced the digest first and these bytes are here: none need follow.
                    return PBUploadArtifactResponse.with {
                        $0.receivedBytes = artifact.size
                        $0.artifact = artifact.wire
                        $0.alreadyStored = true
                    }
                }
                var id = request.uploadID
                if id.isEmpty { id = try s.artifacts.beginUpload(runId: request.runID, path: request.path, expectedDigest: expected) }
                var out = PBUploadArtifactResponse()
                out.uploadID = id
                if !request.data.isEmpty {
                    out.receivedBytes = try s.artifacts.append(uploadId: id, Array(request.data))
                }
                if request.finish {
                    let artifact = try await s.artifacts.finish(uploadId: id)
                    out.receivedBytes = artifact.size
                    out.artifact = artifact.wire
                }
                return out
            }
        },
        Method.downloadArtifact: MethodHandler { s, body, respond in
            // Reading the file is disk I/O: keep it off the event loop.
            Task {
                do {
                    let request = try decode(PBDownloadArtifactRequest.self, body)
                    let artifact: Artifact
                    if !request.digest.isEmpty {
                        let path = s.artifacts.blobPath(request.digest)
                        guard ArtifactStore.isDigest(request.digest),
                              let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
                            throw TrackingError.notFound("no blob has digest '\(request.digest)'")
                        }
                        artifact = Artifact(path: "", digest: request.digest, size: (attributes[.size] as? Int64) ?? 0, createdMs: 0)
                    } else {
                        artifact = try s.artifacts.artifact(runId: request.runID, path: request.path)
                    }
                    try s.artifacts.read(digest: artifact.digest, chunkSize: max(4096, s.config.maxFrameBytes / 2)) { chunk in
                        respond.stream(PBDownloadArtifactResponse.with { $0.chunks = [Data(chunk)] })
                    }
                    respond.succeed(PBDownloadArtifactResponse.with { $0.artifact = artifact.wire })
                } catch { respond.fail(error) }
            }
        },
        Method.listArtifacts: MethodHandler { s, body, respond in
            s.now(respond) {
                let request = try decode(PBListArtifactsRequest.self, body)
                return try PBListArtifactsResponse.with { $0.artifacts = try s.artifacts.list(runId: request.runID, prefix: request.prefix).map(\.wire) }
            }
        },
    ]

    /// Answers inline with what `work` returns (reads: microseconds).
    func now<M: SwiftProtobuf.Message>(_ respond: Responder, _ work: () throws -> M) {
        do { respond.succeed(try work()) } catch { respond.fail(error) }
    }

    /// Answers from a task once `work` (usually a durable write) finishes.
    func later<M: SwiftProtobuf.Message>(_ respond: Responder, _ work: @escaping @Sendable () async throws -> M) {
        Task {
            do { respond.succeed(try await work()) } catch { respond.fail(error) }
        }
    }

    /// Converts a wire batch: columns to points, params to a map (a key
    /// given twice with different values is refused), datasets stamped
    /// with the catalog's definition versions.
    func logBatch(from request: PBLogBatchRequest) throws -> LogBatch {
        var points: [MetricPoint] = []
        points.reserveCapacity(request.metrics.reduce(0) { $0 + $1.values.count })
        let now = currentMillis()
        for series in request.metrics {
            let n = series.values.count
            guard series.steps.isEmpty || series.steps.count == n, series.timestampsMs.isEmpty || series.timestampsMs.count == n else {
                throw TrackingError.invalidArgument("metric '\(series.key)' has \(n) values but \(series.steps.count) steps and \(series.timestampsMs.count) timestamps; give as many of each (or none)")
            }
            for i in 0..<n {
                points.append(MetricPoint(key: series.key, value: series.values[i],
                                          step: series.steps.isEmpty ? 0 : series.steps[i],
                                          timestampMs: series.timestampsMs.isEmpty ? now : series.timestampsMs[i]))
            }
        }
        var params: [String: String] = [:]
        for param in request.params {
            if let old = params[param.key], !sameBytes(old, param.value) {
                throw TrackingError.invalidArgument("param '\(param.key)' appears twice in the batch with different values ('\(old)', '\(param.value)')")
            }
            params[param.key] = param.value
        }
        let inputs = try request.inputs.map { try dataset(from: $0) }
        return LogBatch(runId: request.runID, metrics: points, params: params, tags: request.tags, inputs: inputs,
                        codeVersion: request.hasCodeVersion ? CodeVersion(gitCommit: request.codeVersion.gitCommit, dirty: request.codeVersion.dirty) : nil)
    }

    func dataset(from input: PBRunInput) throws -> Dataset {
        var wire = input
        if !wire.datasetID.isEmpty {
            // A dataset the offline face recorded: its digest and references
            // are the truth, so they are taken from the record.
            guard let record = try offline.dataset(wire.datasetID) else {
                throw TrackingError.notFound("no dataset '\(wire.datasetID)' (ids come from GetHistoricalFeatures)")
            }
            wire.digest = record.digest
            wire.featureReferences = record.features
            wire.featureService = record.service
            if wire.name.isEmpty { wire.name = record.id }
        }
        guard !wire.digest.isEmpty else { throw TrackingError.invalidArgument("dataset '\(wire.name)' has no digest of its entity spine") }
        let snapshot = catalog.snapshot
        var references = wire.featureReferences
        if !wire.featureService.isEmpty {
            guard let service = snapshot.services[wire.featureService] else {
                throw TrackingError.notFound("dataset '\(wire.name)' names feature service '\(wire.featureService)', which is not defined")
            }
            for reference in service.features where !references.contains(reference) { references.append(reference) }
        }
        return Dataset(name: wire.name, digest: wire.digest, featureReferences: wire.featureReferences,
                       featureService: wire.featureService, asOfMs: wire.asOfMs,
                       context: wire.context.isEmpty ? "training" : wire.context,
                       featureVersions: references.map { featureVersion($0, snapshot) })
    }

    /// The definition versions in force for a reference "view:feature".
    func featureVersion(_ reference: String, _ snapshot: CatalogSnapshot) -> FeatureVersion {
        let view = reference.split(separator: ":", maxSplits: 1).first.map(String.init) ?? reference
        guard let resolved = snapshot.views[view], let project = snapshot.projects[resolved.project] else {
            return FeatureVersion(reference: reference)
        }
        return FeatureVersion(reference: reference, project: resolved.project, projectVersion: project.version,
                              schemaVersion: resolved.meta.schemaVersion)
    }
}

/// Encoded runs, reused while a run and its latest metrics are unchanged: a
/// search answers with hundreds of runs, and encoding them would dominate
/// it. A hit compares the whole record, so the cache is never stale; run ids
/// are unique, so servers in one process can share it.
// Safe: `entries` is read and written only under `lock`.
final class RunWireCache: @unchecked Sendable {
    static let shared = RunWireCache()
    /// Past this many runs the cache starts over (about 1 KiB a run).
    static let capacity = 200_000
    private let lock = ConditionLock()
    private var entries: [String: (record: RunRecord, bytes: [UInt8])] = [:]

    func encoded(_ record: RunRecord) throws -> [UInt8] {
        if let hit = lock.withLock({ entries[record.run.id] }), hit.record == record { return hit.bytes }
        let bytes: [UInt8] = try record.wire.serializedBytes()
        lock.withLock {
            if entries.count >= Self.capacity { entries.removeAll() }
            entries[record.run.id] = (record, bytes)
        }
        return bytes
    }
}

// MARK: Wire mapping

extension RunStatus {
    init(wire: PBRunStatus) throws {
        switch wire {
        case .running: self = .running
        case .finished: self = .finished
        case .failed: self = .failed
        case .killed: self = .killed
        case .unspecified, .UNRECOGNIZED: throw TrackingError.invalidArgument("unknown run status \(wire.rawValue)")
        }
    }

    var wire: PBRunStatus {
        switch self {
        case .running: .running
        case .finished: .finished
        case .failed: .failed
        case .killed: .killed
        }
    }
}

extension Experiment {
    var wire: PBExperiment {
        PBExperiment.with {
            $0.experimentID = id
            $0.name = name
            $0.deleted = lifecycle == .deleted
            $0.tags = tags
            $0.createdMs = createdMs
            $0.updatedMs = updatedMs
        }
    }
}

extension Dataset {
    var wire: PBRunInput {
        PBRunInput.with {
            $0.name = name
            $0.digest = digest
            $0.featureReferences = featureReferences
            $0.featureService = featureService
            $0.asOfMs = asOfMs
            $0.context = context
            $0.featureVersions = featureVersions.map(\.wire)
        }
    }
}

extension FeatureVersion {
    var wire: PBFeatureDefinitionVersion {
        PBFeatureDefinitionVersion.with {
            $0.reference = reference
            $0.project = project
            $0.projectVersion = projectVersion
            $0.schemaVersion = schemaVersion
        }
    }
}

extension RunRecord {
    var wire: PBRun {
        PBRun.with {
            $0.runID = run.id
            $0.experimentID = run.experimentId
            $0.name = run.name
            $0.status = run.status.wire
            $0.startTimeMs = run.startMs
            $0.endTimeMs = run.endMs
            $0.deleted = run.lifecycle == .deleted
            $0.tags = run.tags
            $0.params = run.params
            $0.metrics = metrics.keys.sorted().compactMap { key in
                metrics[key].map { p in
                    PBMetric.with {
                        $0.key = key
                        $0.value = p.value
                        $0.step = p.step
                        $0.timestampMs = p.timestampMs
                    }
                }
            }
            $0.inputs = run.inputs.map(\.wire)
            if let code = run.codeVersion {
                $0.codeVersion = PBCodeVersion.with {
                    $0.gitCommit = code.gitCommit
                    $0.dirty = code.dirty
                }
            }
        }
    }
}

extension Artifact {
    var wire: PBArtifact {
        PBArtifact.with {
            $0.path = path
            $0.digest = digest
            $0.size = size
            $0.createdMs = createdMs
        }
    }
}
