// TrackingModel: the values of experiment tracking — experiments, runs,
// metric points, datasets (run inputs), code versions — and the errors the
// tracking store refuses with. Concepts and names follow MLflow so users
// recognise them; times are milliseconds since the Unix epoch, as MLflow's.
import Foundation

/// Why a tracking request was refused, split by the status a client sees.
public enum TrackingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The request is malformed (a bad name, a changed param, a bad filter).
    case invalidArgument(String)
    /// An id or name that does not exist.
    case notFound(String)
    /// A name that is already taken.
    case alreadyExists(String)
    /// The object is in the wrong state (a finished run, a deleted experiment).
    case failedPrecondition(String)
    /// Over a configured size limit.
    case tooLarge(String)
    /// Bytes that arrived are not the bytes the client said it sent (their
    /// sha256 differs from the digest it announced).
    case dataLoss(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m), .notFound(let m), .alreadyExists(let m),
             .failedPrecondition(let m), .tooLarge(let m), .dataLoss(let m): m
        }
    }
}

/// Whether an experiment or run is live or soft-deleted (restorable).
public enum Lifecycle: String, Codable, Sendable {
    case active = "ACTIVE"
    case deleted = "DELETED"
}

/// A run's status; RUNNING until it ends, then one of the other three.
public enum RunStatus: String, Codable, Sendable, CaseIterable {
    case running = "RUNNING"
    case finished = "FINISHED"
    case failed = "FAILED"
    case killed = "KILLED"

    public var isTerminal: Bool { self != .running }
}

/// A named group of runs.
public struct Experiment: Codable, Sendable, Equatable {
    public var id: UInt64
    public var name: String
    public var lifecycle: Lifecycle
    public var tags: [String: String]
    public var createdMs: Int64
    public var updatedMs: Int64
}

/// One feature definition a dataset read, with the definition versions in
/// force when the dataset was logged: the end of a lineage chain.
public struct FeatureVersion: Codable, Sendable, Equatable {
    /// The reference as the run gave it, "view:feature".
    public var reference: String
    /// The project that owns the view; empty when the catalog did not know it.
    public var project: String
    /// The project's definitions version when the dataset was logged.
    public var projectVersion: UInt64
    /// The view's schema version when the dataset was logged.
    public var schemaVersion: UInt32

    public init(reference: String, project: String = "", projectVersion: UInt64 = 0, schemaVersion: UInt32 = 0) {
        self.reference = reference
        self.project = project
        self.projectVersion = projectVersion
        self.schemaVersion = schemaVersion
    }
}

/// A run input: the exact training dataset.
public struct Dataset: Codable, Sendable, Equatable {
    public var name: String
    /// Digest of the entity spine (the entity keys and timestamps).
    public var digest: String
    /// Feature references "view:feature" the dataset joined.
    public var featureReferences: [String]
    /// The feature service the dataset used, when it used one.
    public var featureService: String
    /// The as-of time of the point-in-time join.
    public var asOfMs: Int64
    /// What the dataset was for: "training", "validation", ...
    public var context: String
    /// Filled in by the daemon from the feature catalog when logged.
    public var featureVersions: [FeatureVersion]

    public init(name: String, digest: String, featureReferences: [String] = [], featureService: String = "",
                asOfMs: Int64 = 0, context: String = "training", featureVersions: [FeatureVersion] = []) {
        self.name = name
        self.digest = digest
        self.featureReferences = featureReferences
        self.featureService = featureService
        self.asOfMs = asOfMs
        self.context = context
        self.featureVersions = featureVersions
    }
}

/// The code a run came from.
public struct CodeVersion: Codable, Sendable, Equatable {
    public var gitCommit: String
    /// True when the working tree had uncommitted changes.
    public var dirty: Bool

    public init(gitCommit: String, dirty: Bool) {
        self.gitCommit = gitCommit
        self.dirty = dirty
    }
}

/// A run: one execution of training code, with what it was given and what
/// it measured. Metrics live in their own table (see `TrackingStore`).
public struct Run: Codable, Sendable, Equatable {
    /// 32 lowercase hex digits, as MLflow's run ids.
    public var id: String
    /// The compact number metric keys are stored under.
    public var seq: UInt64
    public var experimentId: UInt64
    public var name: String
    public var status: RunStatus
    public var startMs: Int64
    /// 0 while the run is RUNNING.
    public var endMs: Int64
    public var lifecycle: Lifecycle
    public var tags: [String: String]
    public var params: [String: String]
    public var inputs: [Dataset]
    public var codeVersion: CodeVersion?
}

/// One metric measurement.
public struct MetricPoint: Sendable, Equatable {
    public var key: String
    /// Any double, NaN and infinities included (as MLflow allows).
    public var value: Double
    public var step: Int64
    public var timestampMs: Int64

    public init(key: String, value: Double, step: Int64 = 0, timestampMs: Int64) {
        self.key = key
        self.value = value
        self.step = step
        self.timestampMs = timestampMs
    }

    /// Equality that treats two NaNs as the same value (bit-for-bit).
    public static func == (a: MetricPoint, b: MetricPoint) -> Bool {
        a.key == b.key && a.value.bitPattern == b.value.bitPattern && a.step == b.step && a.timestampMs == b.timestampMs
    }
}

/// A run with the latest value of each of its metrics (by step, then time).
public struct RunRecord: Sendable, Equatable {
    public var run: Run
    public var metrics: [String: MetricPoint]

    public init(run: Run, metrics: [String: MetricPoint]) {
        self.run = run
        self.metrics = metrics
    }
}

/// Everything one `logBatch` writes; the only way anything is logged to a run.
public struct LogBatch: Sendable {
    public var runId: String
    public var metrics: [MetricPoint]
    public var params: [String: String]
    public var tags: [String: String]
    public var inputs: [Dataset]
    public var codeVersion: CodeVersion?

    public init(runId: String, metrics: [MetricPoint] = [], params: [String: String] = [:],
                tags: [String: String] = [:], inputs: [Dataset] = [], codeVersion: CodeVersion? = nil) {
        self.runId = runId
        self.metrics = metrics
        self.params = params
        self.tags = tags
        self.inputs = inputs
        self.codeVersion = codeVersion
    }
}

/// One page of a search or listing; `nextPageToken` is empty on the last page.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextPageToken: String
}

/// Milliseconds since the Unix epoch, from the system clock.
public func currentMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
