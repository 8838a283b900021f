// RegistryModel: registered models, their versions, signatures, aliases,
// governance policies and the audit of alias changes. Concepts follow
// MLflow's registry (aliases, not stages: MLflow deprecated stages in 2.9).
// Times are milliseconds since the Unix epoch.
import Foundation

/// Why a registry request was refused, split by the status a client sees.
public enum RegistryError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidArgument(String)
    case notFound(String)
    case alreadyExists(String)
    /// The model's governance policy refused a protected alias; every failed check is listed.
    case policyViolation(model: String, alias: String, version: UInt64, failures: [String])

    public var description: String {
        switch self {
        case .invalidArgument(let m), .notFound(let m), .alreadyExists(let m): m
        case .policyViolation(let model, let alias, let version, let failures):
            "policy of model '\(model)' refuses version \(version) for protected alias '\(alias)': "
                + "\(failures.count) check\(failures.count == 1 ? "" : "s") failed: " + failures.joined(separator: "; ")
        }
    }
}

/// A named input or output of a model.
public struct SignatureField: Codable, Sendable, Equatable {
    public var name: String
    /// A Plinth value type name: int64, float32, float64, bool, string, bytes.
    public var type: String

    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }
}

/// What a model consumes and produces. Serving assembles the inputs from
/// the online store (features) and the request (request-time fields).
public struct Signature: Codable, Sendable, Equatable {
    /// Feature references "view:feature", in model input order.
    public var featureReferences: [String]
    /// A feature service name, instead of (or besides) explicit references.
    public var featureService: String
    /// Inputs the caller sends with each request.
    public var requestFields: [SignatureField]
    public var outputs: [SignatureField]
    /// Serving's value for a missing input (not found, null or expired),
    /// keyed by feature reference or request field name; inputs without
    /// one reach the model as missing values.
    public var defaults: [String: Double]

    public init(featureReferences: [String] = [], featureService: String = "",
                requestFields: [SignatureField] = [], outputs: [SignatureField] = [],
                defaults: [String: Double] = [:]) {
        self.featureReferences = featureReferences
        self.featureService = featureService
        self.requestFields = requestFields
        self.outputs = outputs
        self.defaults = defaults
    }

    private enum CodingKeys: String, CodingKey {
        case featureReferences, featureService, requestFields, outputs, defaults
    }

    // Versions registered before defaults existed have no such key.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        featureReferences = try c.decode([String].self, forKey: .featureReferences)
        featureService = try c.decode(String.self, forKey: .featureService)
        requestFields = try c.decode([SignatureField].self, forKey: .requestFields)
        outputs = try c.decode([SignatureField].self, forKey: .outputs)
        defaults = try c.decodeIfPresent([String: Double].self, forKey: .defaults) ?? [:]
    }
}

/// What a version was trained from, copied from its run when registered, so
/// that governance checks and lineage do not depend on later edits to the run.
public struct VersionSource: Codable, Sendable, Equatable {
    public var runId: String
    public var experimentId: UInt64
    /// The run's latest metric values.
    public var metrics: [String: Double]
    /// Digests of the run's input datasets.
    public var datasetDigests: [String]
    /// Feature references the datasets read whose definition versions are known.
    public var resolvedFeatures: Int

    public init(runId: String, experimentId: UInt64, metrics: [String: Double], datasetDigests: [String], resolvedFeatures: Int) {
        self.runId = runId
        self.experimentId = experimentId
        self.metrics = metrics
        self.datasetDigests = datasetDigests
        self.resolvedFeatures = resolvedFeatures
    }
}

public struct ModelVersion: Codable, Sendable, Equatable {
    public var model: String
    public var version: UInt64
    public var description: String
    /// Where the version came from; nil when registered without a run.
    public var source: VersionSource?
    /// sha256 of the model artifact in the blob store, hex.
    public var artifactDigest: String
    /// "xgboost-json", "xgboost-ubjson", "lightgbm-text", "plinth-json" or
    /// "plinth-binary": a label; serving reads the artifact by its content.
    public var artifactFormat: String
    public var signature: Signature
    public var tags: [String: String]
    public var createdMs: Int64
    /// Aliases pointing at this version (filled when read).
    public var aliases: [String]
}

/// A metric threshold such as `auc >= 0.85`.
public struct MetricThreshold: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Comparison: String, Codable, Sendable, CaseIterable {
        case ge = ">=", gt = ">", le = "<=", lt = "<", eq = "==", ne = "!="
    }
    public var metric: String
    public var comparison: Comparison
    public var value: Double

    public init(metric: String, comparison: Comparison, value: Double) {
        self.metric = metric
        self.comparison = comparison
        self.value = value
    }

    /// Parses `auc >= 0.85` (spaces optional; `=` means `==`).
    public static func parse(_ text: String) throws -> MetricThreshold {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for symbol in [">=", "<=", "==", "!=", ">", "<", "="] {
            guard let range = trimmed.range(of: symbol) else { continue }
            let metric = trimmed[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
            let number = trimmed[range.upperBound...].trimmingCharacters(in: .whitespaces)
            guard !metric.isEmpty else { throw RegistryError.invalidArgument("threshold '\(text)' names no metric") }
            guard let value = Double(number) else {
                throw RegistryError.invalidArgument("threshold '\(text)': '\(number)' is not a number")
            }
            let comparison = Comparison(rawValue: symbol == "=" ? "==" : symbol) ?? .eq
            return MetricThreshold(metric: metric, comparison: comparison, value: value)
        }
        throw RegistryError.invalidArgument("threshold '\(text)' needs a comparison: >=, >, <=, <, == or !=, e.g. 'auc >= 0.85'")
    }

    public var description: String { "\(metric) \(comparison.rawValue) \(value)" }

    func holds(_ actual: Double) -> Bool {
        switch comparison {
        case .ge: actual >= value
        case .gt: actual > value
        case .le: actual <= value
        case .lt: actual < value
        case .eq: actual == value
        case .ne: actual != value
        }
    }
}

/// A model's governance policy, run whenever a protected alias is set.
public struct Policy: Codable, Sendable, Equatable {
    public var metricThresholds: [MetricThreshold]
    /// Model-card fields that must be filled: description, owner,
    /// intended_use, limitations, or any other card key.
    public var requiredCardFields: [String]
    /// The version must come from a run with an input dataset whose feature
    /// definition versions are known.
    public var requireLineage: Bool
    /// Aliases that run this policy; `production` unless set.
    public var protectedAliases: [String]

    public init(metricThresholds: [MetricThreshold] = [], requiredCardFields: [String] = [],
                requireLineage: Bool = false, protectedAliases: [String] = ["production"]) {
        self.metricThresholds = metricThresholds
        self.requiredCardFields = requiredCardFields
        self.requireLineage = requireLineage
        self.protectedAliases = protectedAliases
    }

    /// Every check `version` fails, in policy order; empty when it passes.
    public func failures(model: RegisteredModel, version: ModelVersion) -> [String] {
        var out: [String] = []
        let metrics = version.source?.metrics ?? [:]
        for threshold in metricThresholds {
            if let actual = metrics[threshold.metric] {
                if !threshold.holds(actual) { out.append("metric \(threshold) failed: \(threshold.metric) is \(actual)") }
            } else {
                out.append("metric \(threshold) failed: version \(version.version) has no metric '\(threshold.metric)'")
            }
        }
        for field in requiredCardFields {
            let key = RegisteredModel.cardKey(field)
            let value = key == "description" ? (version.description.isEmpty ? model.description : version.description)
                                             : (model.card[key] ?? "")
            if value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                out.append("model card field '\(key)' is empty")
            }
        }
        if requireLineage {
            if let source = version.source {
                if source.datasetDigests.isEmpty {
                    out.append("lineage: run \(source.runId) logged no input dataset")
                } else if source.resolvedFeatures == 0 {
                    out.append("lineage: the datasets of run \(source.runId) name no known feature definition")
                }
            } else {
                out.append("lineage: version \(version.version) was registered without a source run")
            }
        }
        return out
    }
}

public struct RegisteredModel: Codable, Sendable, Equatable {
    public var name: String
    public var description: String
    /// Model-card fields besides the description: owner, intended_use, limitations, ...
    public var card: [String: String]
    public var tags: [String: String]
    public var createdMs: Int64
    public var updatedMs: Int64
    /// The highest version number handed out; versions count from 1.
    public var latestVersion: UInt64
    public var aliases: [String: UInt64]
    /// nil: the default policy (no checks, `production` protected).
    public var policy: Policy?

    public var effectivePolicy: Policy { policy ?? Policy() }

    /// Card keys are snake_case: "Intended use" and "intended-use" are `intended_use`.
    public static func cardKey(_ field: String) -> String {
        field.trimmingCharacters(in: .whitespaces).lowercased()
            .replacingOccurrences(of: " ", with: "_").replacingOccurrences(of: "-", with: "_")
    }
}

/// One alias change: who, when, from which version to which, and why.
public struct AliasEvent: Codable, Sendable, Equatable {
    public var model: String
    public var alias: String
    /// 0 when the alias did not exist before.
    public var fromVersion: UInt64
    /// 0 when the alias was deleted.
    public var toVersion: UInt64
    /// The token name of the connection that made the change.
    public var who: String
    public var atMs: Int64
    public var reason: String
    /// Policy checks that ran (all passed, or the change would not exist).
    public var checked: Bool
}

/// A version to register.
public struct NewVersion: Sendable {
    public var model: String
    public var description: String
    public var source: VersionSource?
    public var artifactDigest: String
    public var artifactFormat: String
    public var signature: Signature
    public var tags: [String: String]

    public init(model: String, description: String = "", source: VersionSource? = nil, artifactDigest: String,
                artifactFormat: String, signature: Signature = Signature(), tags: [String: String] = [:]) {
        self.model = model
        self.description = description
        self.source = source
        self.artifactDigest = artifactDigest
        self.artifactFormat = artifactFormat
        self.signature = signature
        self.tags = tags
    }
}
