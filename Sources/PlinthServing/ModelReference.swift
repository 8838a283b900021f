// How callers name a model: "name@alias", "name:version", or "name", which
// means "name@production". Every layer asks for a model this way, never by
// path, so moving an alias is all it takes to change what is served.

/// A parsed model name.
public struct ModelReference: Hashable, Sendable, CustomStringConvertible {
    public enum Selector: Hashable, Sendable {
        case alias(String)
        case version(UInt64)
    }

    public static let defaultAlias = "production"

    public let name: String
    public let selector: Selector

    public init(name: String, selector: Selector) {
        self.name = name
        self.selector = selector
    }

    /// Parses `text`; `version` is KServe's separate model_version field
    /// (empty when the version, if any, is in `text`).
    public init(parsing text: String, version: String = "") throws(ServingError) {
        let hint = "name a model as 'name@alias', 'name:version' or 'name' (alias \(Self.defaultAlias))"
        guard !text.isEmpty else { throw .invalidArgument("no model given: \(hint)") }
        let at = text.firstIndex(of: "@"), colon = text.firstIndex(of: ":")
        if at != nil && colon != nil { throw .invalidArgument("model '\(text)' has both '@' and ':': \(hint)") }
        var name = text
        var selector = Selector.alias(Self.defaultAlias)
        if let at {
            name = String(text[..<at])
            let alias = String(text[text.index(after: at)...])
            guard !alias.isEmpty, !alias.contains("@") else { throw .invalidArgument("model '\(text)' has an empty or repeated alias: \(hint)") }
            selector = .alias(alias)
        } else if let colon {
            name = String(text[..<colon])
            let number = text[text.index(after: colon)...]
            guard let v = UInt64(number), v > 0 else {
                throw .invalidArgument("model '\(text)': '\(number)' is not a version number (1, 2, ...): \(hint)")
            }
            selector = .version(v)
        }
        guard !name.isEmpty else { throw .invalidArgument("model '\(text)' has no name: \(hint)") }
        if !version.isEmpty {
            guard at == nil, colon == nil else {
                throw .invalidArgument("model '\(text)' already says which version; leave model_version empty")
            }
            guard let v = UInt64(version), v > 0 else {
                throw .invalidArgument("model_version '\(version)' is not a version number (1, 2, ...)")
            }
            selector = .version(v)
        }
        self.name = name
        self.selector = selector
    }

    public var description: String {
        switch selector {
        case .alias(let a): "\(name)@\(a)"
        case .version(let v): "\(name):\(v)"
        }
    }
}
