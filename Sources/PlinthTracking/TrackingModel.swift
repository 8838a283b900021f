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
    /// Who started the run: the `mlflow.user` tag it was started with, as
    /// MLflow's client fills `user_id`. Optional so runs stored before it
    /// existed still decode (see `user`).
    public var userId: String?

    /// The tag MLflow keeps the run name in; Plinth keeps it in step with
    /// `name` (see `TrackingStore`), so filters on either agree.
    public static let nameTag = "mlflow.runName"
    /// The tag MLflow's client takes `user_id` from.
    public static let userTag = "mlflow.user"

    /// `user_id` as search sees it; "unknown" when the run was started
    /// without a user, which is what MLflow's client stores then.
    public var user: String { userId ?? "unknown" }

    /// `artifact_uri` as search sees it. Plinth's artifacts are content
    /// addressed and listed per run, so there is no storage path: this URI
    /// names the run's listing the way MLflow's `<root>/<experiment>/<run>/artifacts` does.
    public var artifactUri: String { "plinth:/\(experimentId)/\(id)/artifacts" }

    /// `end_time` as search sees it: nil while the run is RUNNING (MLflow's
    /// NULL, which no comparison matches and which sorts last).
    public var endTime: Int64? { status == .running ? nil : endMs }
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

    /// Whether this point replaces `other` as a metric's latest value:
    /// MLflow's order, the highest step, then timestamp, then value. A tie
    /// keeps the point logged first (MLflow replaces only on "strictly newer").
    func isNewer(than other: MetricPoint) -> Bool {
        if step != other.step { return step > other.step }
        if timestampMs != other.timestampMs { return timestampMs > other.timestampMs }
        return Self.supersedes(value, other.value)
    }

    /// Whether `value` beats `other` at the same step and timestamp. MLflow's
    /// SQL store keeps NaN as 0 (with a flag) and ±infinity as ±Double.max,
    /// and compares those, so this does too: the choice of value is then the
    /// one MLflow makes, while the value kept is still the one logged.
    static func supersedes(_ value: Double, _ other: Double) -> Bool {
        func stored(_ v: Double) -> Double {
            v.isNaN ? 0 : (v.isInfinite ? (v > 0 ? .greatestFiniteMagnitude : -.greatestFiniteMagnitude) : v)
        }
        return stored(value) > stored(other)
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

/// Whether two strings are the same bytes. Swift's `==` is canonical
/// equivalence ("é" precomposed equals "e" + combining accent); MLflow's
/// stores compare the stored bytes, so everything a user can see compared
/// (search, param immutability, tag changes, names) uses this instead.
@inline(__always)
public func sameBytes(_ a: String, _ b: String) -> Bool {
    a.utf8.elementsEqual(b.utf8)
}

/// -1, 0, 1 by UTF-8 bytes: SQLite's BINARY collation, which is also code
/// point order (Swift's `<` orders canonically equivalent forms together).
public func compareBytes(_ a: String, _ b: String) -> Int {
    var i = a.utf8.makeIterator(), j = b.utf8.makeIterator()
    while true {
        switch (i.next(), j.next()) {
        case (nil, nil): return 0
        case (nil, _): return -1
        case (_, nil): return 1
        case (let x?, let y?): if x != y { return x < y ? -1 : 1 }
        }
    }
}

extension Dataset {
    /// Field by field with `sameBytes`: whether logging `other` again would add nothing.
    func isIdentical(to other: Dataset) -> Bool {
        sameBytes(name, other.name) && sameBytes(digest, other.digest) && sameBytes(context, other.context)
            && sameBytes(featureService, other.featureService) && asOfMs == other.asOfMs
            && featureReferences.count == other.featureReferences.count
            && zip(featureReferences, other.featureReferences).allSatisfy { sameBytes($0, $1) }
            && featureVersions.count == other.featureVersions.count
            && zip(featureVersions, other.featureVersions).allSatisfy {
                sameBytes($0.reference, $1.reference) && sameBytes($0.project, $1.project)
                    && $0.projectVersion == $1.projectVersion && $0.schemaVersion == $1.schemaVersion
            }
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
public func currentMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
