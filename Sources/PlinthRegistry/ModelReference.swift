// ModelReference: the one way a model version is named, wherever a user
// types one: plinthctl (models, predict, score-batch), the registry RPCs
// (GetModelVersion, GetModelLineage), the inference RPCs (Predict,
// BatchPredict, the KServe calls) and the Python client.
//
//     name@alias   the version the alias points at
//     name/3       version 3 (MLflow's spelling)
//     name:3       version 3 (kept: serving's first spelling)
//     name         the version the `production` alias points at
//
// A bare name means `production` everywhere. Serving always read it so,
// and a caller that names only a model wants the version that is live, not
// whichever was registered last; the registry RPCs used to answer the
// latest version, which made `predict fraud` and `get_model_version fraud`
// disagree. Model names may not contain '@', '/' or ':' (RegistryStore
// refuses them), so a reference splits at its only separator.
//
// The parser lives in PlinthRegistry, a domain target, so that the daemon,
// serving and plinthctl share it without any of them depending on the wire.

/// A parsed reference to one version of a registered model.
public struct ModelReference: Hashable, Sendable, CustomStringConvertible {
    public enum Selector: Hashable, Sendable {
        case alias(String)
        case version(UInt64)
    }

    /// The alias a bare name means.
    public static let defaultAlias = "production"

    /// The accepted spellings, as error messages list them.
    public static let acceptedForms =
        "name a model version as 'name@alias', 'name/VERSION' (or 'name:VERSION'), or 'name' for 'name@\(defaultAlias)'"

    public let name: String
    public let selector: Selector

    public init(name: String, selector: Selector) {
        self.name = name
        self.selector = selector
    }

    /// Parses `text`.
    /// - Parameter version: KServe's separate `model_version` field: a
    ///   version number when `text` is a bare name, else empty.
    /// - Throws: `RegistryError.invalidArgument` naming the reference and
    ///   the accepted forms.
    public init(parsing text: String, version: String = "") throws(RegistryError) {
        let separators = text.indices.filter { Self.isSeparator(text[$0]) }
        guard separators.count <= 1 else {
            var kinds: [Character] = []
            for i in separators where !kinds.contains(text[i]) { kinds.append(text[i]) }
            throw Self.invalid(text, kinds.count == 1 ? "it has more than one '\(kinds[0])'"
                               : "it has both " + kinds.map { "'\($0)'" }.joined(separator: " and "))
        }
        guard let separator = separators.first else {
            guard !text.isEmpty else { throw Self.invalid(text, "it is empty") }
            if version.isEmpty {
                self.init(name: text, selector: .alias(Self.defaultAlias))
            } else {
                guard let number = Self.versionNumber(version) else {
                    throw .invalidArgument("model_version '\(version)' is not a version number (1, 2, ...)")
                }
                self.init(name: text, selector: .version(number))
            }
            return
        }
        let name = String(text[..<separator])
        let rest = String(text[text.index(after: separator)...])
        guard !name.isEmpty else { throw Self.invalid(text, "it has no model name before '\(text[separator])'") }
        guard version.isEmpty else {
            throw .invalidArgument("model '\(text)' already says which version; leave model_version empty")
        }
        if text[separator] == "@" {
            guard !rest.isEmpty else { throw Self.invalid(text, "it has no alias after '@'") }
            self.init(name: name, selector: .alias(rest))
        } else {
            guard let number = Self.versionNumber(rest) else {
                throw Self.invalid(text, "'\(rest)' after '\(text[separator])' is not a version number (1, 2, ...)")
            }
            self.init(name: name, selector: .version(number))
        }
    }

    /// The reference of a request that gives the model, version and alias
    /// as separate fields (GetModelVersion, GetModelLineage): a version
    /// number or an alias, or neither and `model` may be a whole reference.
    /// - Throws: `RegistryError.invalidArgument` when it says the version twice.
    public init(model: String, version: UInt64, alias: String) throws(RegistryError) {
        guard version != 0 || !alias.isEmpty else {
            try self.init(parsing: model)
            return
        }
        guard version == 0 || alias.isEmpty else {
            throw .invalidArgument("model '\(model)': give a version or an alias, not both")
        }
        guard !model.isEmpty, !model.contains(where: Self.isSeparator) else {
            throw Self.invalid(model, "with a version or alias given apart, the model must be a bare name")
        }
        self.init(name: model, selector: version != 0 ? .version(version) : .alias(alias))
    }

    /// "name@alias" or "name/VERSION": the form every parser reads back.
    public var description: String {
        switch selector {
        case .alias(let alias): "\(name)@\(alias)"
        case .version(let version): "\(name)/\(version)"
        }
    }

    private static func isSeparator(_ c: Character) -> Bool { c == "@" || c == "/" || c == ":" }

    /// Digits only (`UInt64("+3")` would take a sign), not zero: versions count from 1.
    private static func versionNumber(_ text: String) -> UInt64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let number = UInt64(text), number > 0 else { return nil }
        return number
    }

    private static func invalid(_ text: String, _ problem: String) -> RegistryError {
        .invalidArgument("model reference '\(text)' is not valid: \(problem); \(acceptedForms)")
    }
}
