// FeatureStoreError: why a push or a read was refused, split by the
// status a client should see.

public enum FeatureStoreError: Error, CustomStringConvertible, Sendable {
    /// The request is malformed or does not match the definitions.
    case invalidArgument(String)
    /// A named view, feature or service does not exist.
    case notFound(String)
    /// Too many rows or bytes in one request.
    case tooLarge(String)
    /// The operation conflicts with one in progress (a materialisation).
    case conflict(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m), .notFound(let m), .tooLarge(let m), .conflict(let m): m
        }
    }
}
