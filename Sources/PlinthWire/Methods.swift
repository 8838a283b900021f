// Methods: the protocol version and the method table — every method's
// path, the scope it needs, whether it streams its answer, whether it is
// open before Hello, and whether the server answers it on a fast path.
// This is the one declarative list: the server dispatches through it
// (PlinthServer/MethodDispatch.swift), and MethodTableTests checks it
// against the `service` blocks in Proto/ and the method list in
// docs/protocol.md, and the Python client's method paths against it.

public enum PlinthProtocol {
    /// The protocol version this code speaks (HelloRequest.protocol_version).
    public static let version: UInt32 = 1
    public static let defaultMaxFrameBytes = 16 << 20
    public static let defaultPort = 7433
}

/// The rights a method needs (a connection's token grants a set of them).
public enum MethodScope: String, Sendable, CaseIterable {
    /// Anyone connected, before or without Hello.
    case none
    case read
    case write
    case admin
}

/// How a method answers.
public enum MethodStreaming: Sendable, Equatable {
    /// One answer frame.
    case unary
    /// Several answer frames with `more` set, then a last one (`returns (stream X)` in Proto/).
    case serverStreaming
}

/// How the server runs a method. A fast path is a property of the entry,
/// not a second dispatcher: the connection looks every method up here.
public enum MethodFastPath: Sendable, Equatable {
    /// Runs through the method's handler, answering from any thread.
    case none
    /// Changes the connection's own state (Hello): run by the connection.
    case connection
    /// Answered synchronously on the event loop, straight into the
    /// connection's output buffer, sharing the read transaction of the
    /// socket read it arrived in (GetOnlineFeatures, Predict of a loaded
    /// model). May hand over to the general path when it cannot answer now.
    case snapshotRead
}

/// One method of the protocol.
public struct MethodDescriptor: Sendable, Hashable {
    /// "/plinth.v1.Features/GetOnlineFeatures"
    public let path: String
    /// The proto message names: "GetOnlineFeaturesRequest".
    public let request: String
    public let response: String
    public let scope: MethodScope
    public let streaming: MethodStreaming
    public let fastPath: MethodFastPath

    /// "Features"
    public var service: String { path.split(separator: "/").first.map { String($0.dropFirst("plinth.v1.".count)) } ?? "" }
    /// "GetOnlineFeatures"
    public var name: String { path.split(separator: "/").last.map(String.init) ?? "" }
    /// Whether it may be called before a Hello on a server that requires tokens.
    public var openBeforeHello: Bool { scope == .none }

    public static func == (a: MethodDescriptor, b: MethodDescriptor) -> Bool { a.path == b.path }
    public func hash(into hasher: inout Hasher) { hasher.combine(path) }
}

private func method(_ service: String, _ name: String, _ request: String, _ response: String, _ scope: MethodScope,
                    _ streaming: MethodStreaming = .unary, fastPath: MethodFastPath = .none) -> MethodDescriptor {
    MethodDescriptor(path: "/plinth.v1.\(service)/\(name)", request: request, response: response, scope: scope,
                     streaming: streaming, fastPath: fastPath)
}

public enum MethodTable {
    /// Every method, in the order of the `service` blocks in Proto/.
    public static let all: [MethodDescriptor] = [
        // admin.proto
        method("Admin", "Hello", "HelloRequest", "HelloResponse", .none, fastPath: .connection),
        method("Admin", "Health", "HealthRequest", "HealthResponse", .none),
        method("Admin", "ServerInfo", "ServerInfoRequest", "ServerInfoResponse", .read),
        // features.proto (docs/concepts/features.md)
        method("Features", "ApplyDefinitions", "ApplyDefinitionsRequest", "ApplyDefinitionsResponse", .admin),
        method("Features", "ListDefinitions", "ListDefinitionsRequest", "ListDefinitionsResponse", .read),
        method("Features", "Push", "PushRequest", "PushResponse", .write),
        method("Features", "GetOnlineFeatures", "GetOnlineFeaturesRequest", "GetOnlineFeaturesResponse", .read,
               fastPath: .snapshotRead),
        method("Features", "GetHistoricalFeatures", "GetHistoricalFeaturesRequest", "GetHistoricalFeaturesResponse",
               .read, .serverStreaming),
        method("Features", "GetDataset", "GetDatasetRequest", "Dataset", .read),
        method("Features", "Materialize", "MaterializeRequest", "MaterializeResponse", .write, .serverStreaming),
        method("Features", "SkewCheck", "SkewCheckRequest", "SkewCheckResponse", .read),
        // inference.proto (docs/concepts/serving.md)
        method("Inference", "Predict", "PredictRequest", "PredictResponse", .read, fastPath: .snapshotRead),
        method("Inference", "BatchPredict", "BatchPredictRequest", "PredictResponse", .read, .serverStreaming),
        method("Inference", "ServerLive", "ServerLiveRequest", "ServerLiveResponse", .none),
        method("Inference", "ServerReady", "ServerReadyRequest", "ServerReadyResponse", .none),
        method("Inference", "ModelReady", "ModelReadyRequest", "ModelReadyResponse", .read),
        method("Inference", "ModelMetadata", "ModelMetadataRequest", "ModelMetadataResponse", .read),
        method("Inference", "LoadModel", "ModelReadyRequest", "ModelReadyResponse", .read),
        // registry.proto (docs/concepts/registry.md)
        method("Registry", "CreateRegisteredModel", "CreateRegisteredModelRequest", "RegisteredModelResponse", .write),
        method("Registry", "UpdateRegisteredModel", "UpdateRegisteredModelRequest", "RegisteredModelResponse", .write),
        method("Registry", "GetRegisteredModel", "GetRegisteredModelRequest", "RegisteredModelResponse", .read),
        method("Registry", "ListRegisteredModels", "ListRegisteredModelsRequest", "ListRegisteredModelsResponse", .read),
        method("Registry", "CreateModelVersion", "CreateModelVersionRequest", "ModelVersionResponse", .write),
        method("Registry", "GetModelVersion", "GetModelVersionRequest", "ModelVersionResponse", .read),
        method("Registry", "ListModelVersions", "ListModelVersionsRequest", "ListModelVersionsResponse", .read),
        method("Registry", "SetModelAlias", "SetModelAliasRequest", "AliasChangeResponse", .write),
        method("Registry", "DeleteModelAlias", "DeleteModelAliasRequest", "AliasChangeResponse", .write),
        method("Registry", "SetModelPolicy", "SetModelPolicyRequest", "RegisteredModelResponse", .admin),
        method("Registry", "CheckModelPolicy", "CheckModelPolicyRequest", "CheckModelPolicyResponse", .read),
        method("Registry", "GetModelLineage", "GetModelLineageRequest", "GetModelLineageResponse", .read),
        method("Registry", "GetAliasAudit", "GetAliasAuditRequest", "GetAliasAuditResponse", .read),
        // tracking.proto (docs/concepts/tracking.md)
        method("Tracking", "CreateExperiment", "CreateExperimentRequest", "ExperimentResponse", .write),
        method("Tracking", "GetExperiment", "GetExperimentRequest", "ExperimentResponse", .read),
        method("Tracking", "ListExperiments", "ListExperimentsRequest", "ListExperimentsResponse", .read),
        method("Tracking", "RenameExperiment", "RenameExperimentRequest", "ExperimentResponse", .write),
        method("Tracking", "DeleteExperiment", "ExperimentIdRequest", "ExperimentResponse", .write),
        method("Tracking", "RestoreExperiment", "ExperimentIdRequest", "ExperimentResponse", .write),
        method("Tracking", "StartRun", "StartRunRequest", "RunResponse", .write),
        method("Tracking", "EndRun", "EndRunRequest", "RunResponse", .write),
        method("Tracking", "GetRun", "RunIdRequest", "RunResponse", .read),
        method("Tracking", "DeleteRun", "RunIdRequest", "RunResponse", .write),
        method("Tracking", "RestoreRun", "RunIdRequest", "RunResponse", .write),
        method("Tracking", "LogBatch", "LogBatchRequest", "LogBatchResponse", .write),
        method("Tracking", "GetMetricHistory", "GetMetricHistoryRequest", "GetMetricHistoryResponse", .read),
        method("Tracking", "SearchRuns", "SearchRunsRequest", "SearchRunsResponse", .read),
        method("Tracking", "UploadArtifact", "UploadArtifactRequest", "UploadArtifactResponse", .write),
        method("Tracking", "DownloadArtifact", "DownloadArtifactRequest", "DownloadArtifactResponse", .read,
               .serverStreaming),
        method("Tracking", "ListArtifacts", "ListArtifactsRequest", "ListArtifactsResponse", .read),
    ]

    /// The entry for `path`; nil for a method this protocol does not have.
    public static func descriptor(_ path: String) -> MethodDescriptor? { byPath[path] }

    private static let byPath: [String: MethodDescriptor] = Dictionary(uniqueKeysWithValues: all.map { ($0.path, $0) })
}

/// The method paths, by name, for callers that send requests.
public enum Method {
    public static let hello = "/plinth.v1.Admin/Hello"
    public static let health = "/plinth.v1.Admin/Health"
    public static let serverInfo = "/plinth.v1.Admin/ServerInfo"
    public static let applyDefinitions = "/plinth.v1.Features/ApplyDefinitions"
    public static let listDefinitions = "/plinth.v1.Features/ListDefinitions"
    public static let push = "/plinth.v1.Features/Push"
    public static let getOnlineFeatures = "/plinth.v1.Features/GetOnlineFeatures"
    public static let getHistoricalFeatures = "/plinth.v1.Features/GetHistoricalFeatures"
    public static let getDataset = "/plinth.v1.Features/GetDataset"
    public static let materialize = "/plinth.v1.Features/Materialize"
    public static let skewCheck = "/plinth.v1.Features/SkewCheck"
    public static let createExperiment = "/plinth.v1.Tracking/CreateExperiment"
    public static let getExperiment = "/plinth.v1.Tracking/GetExperiment"
    public static let listExperiments = "/plinth.v1.Tracking/ListExperiments"
    public static let renameExperiment = "/plinth.v1.Tracking/RenameExperiment"
    public static let deleteExperiment = "/plinth.v1.Tracking/DeleteExperiment"
    public static let restoreExperiment = "/plinth.v1.Tracking/RestoreExperiment"
    public static let startRun = "/plinth.v1.Tracking/StartRun"
    public static let endRun = "/plinth.v1.Tracking/EndRun"
    public static let getRun = "/plinth.v1.Tracking/GetRun"
    public static let deleteRun = "/plinth.v1.Tracking/DeleteRun"
    public static let restoreRun = "/plinth.v1.Tracking/RestoreRun"
    public static let logBatch = "/plinth.v1.Tracking/LogBatch"
    public static let getMetricHistory = "/plinth.v1.Tracking/GetMetricHistory"
    public static let searchRuns = "/plinth.v1.Tracking/SearchRuns"
    public static let uploadArtifact = "/plinth.v1.Tracking/UploadArtifact"
    public static let downloadArtifact = "/plinth.v1.Tracking/DownloadArtifact"
    public static let listArtifacts = "/plinth.v1.Tracking/ListArtifacts"
    public static let createRegisteredModel = "/plinth.v1.Registry/CreateRegisteredModel"
    public static let updateRegisteredModel = "/plinth.v1.Registry/UpdateRegisteredModel"
    public static let getRegisteredModel = "/plinth.v1.Registry/GetRegisteredModel"
    public static let listRegisteredModels = "/plinth.v1.Registry/ListRegisteredModels"
    public static let createModelVersion = "/plinth.v1.Registry/CreateModelVersion"
    public static let getModelVersion = "/plinth.v1.Registry/GetModelVersion"
    public static let listModelVersions = "/plinth.v1.Registry/ListModelVersions"
    public static let setModelAlias = "/plinth.v1.Registry/SetModelAlias"
    public static let deleteModelAlias = "/plinth.v1.Registry/DeleteModelAlias"
    public static let setModelPolicy = "/plinth.v1.Registry/SetModelPolicy"
    public static let checkModelPolicy = "/plinth.v1.Registry/CheckModelPolicy"
    public static let getModelLineage = "/plinth.v1.Registry/GetModelLineage"
    public static let getAliasAudit = "/plinth.v1.Registry/GetAliasAudit"
    public static let predict = "/plinth.v1.Inference/Predict"
    public static let batchPredict = "/plinth.v1.Inference/BatchPredict"
    public static let serverLive = "/plinth.v1.Inference/ServerLive"
    public static let serverReady = "/plinth.v1.Inference/ServerReady"
    public static let modelReady = "/plinth.v1.Inference/ModelReady"
    public static let modelMetadata = "/plinth.v1.Inference/ModelMetadata"
    public static let loadModel = "/plinth.v1.Inference/LoadModel"
}

extension PBPushTarget {
    /// The spellings users type (`--to`, the Python client's `to=`):
    /// "online", "offline", "online_and_offline".
    public static let names = ["online", "offline", "online_and_offline"]

    /// Parses a user's spelling; nil when it is not one of `names`.
    public init?(name: String) {
        switch name {
        case "online": self = .online
        case "offline": self = .offline
        case "online_and_offline": self = .onlineAndOffline
        default: return nil
        }
    }
}
