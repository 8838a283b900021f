// Errors of the serving layer. Each carries a message a caller can act on;
// the server maps the case to a status code.

public enum ServingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The request is wrong: a malformed model name, a wrong input type, an
    /// input the signature does not use, a missing request field.
    case invalidArgument(String)
    /// No such model, alias or version.
    case notFound(String)
    /// The version exists but cannot be served: its artifact is not a model
    /// Plinth reads, or its signature does not fit the model.
    case failedPrecondition(String)
    /// More rows than the configured limit.
    case tooLarge(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m), .notFound(let m), .failedPrecondition(let m), .tooLarge(let m): m
        }
    }
}
