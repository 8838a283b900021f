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
