// Methods: the protocol version and the method paths of every service, in
// one place for the server's dispatch table, the clients and the docs.

public enum PlinthProtocol {
    /// The protocol version this code speaks (HelloRequest.protocol_version).
    public static let version: UInt32 = 1
    public static let defaultMaxFrameBytes = 16 << 20
    public static let defaultPort = 7433
}

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

    // Tracking (docs/concepts/tracking.md)
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
    // Registry (docs/concepts/registry.md)
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
    // Inference (docs/concepts/serving.md)
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
