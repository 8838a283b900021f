// The one error type of PlinthInference. Every importer and the scorer throw
// it, so a caller can tell a user exactly what is wrong with a model file or
// an input row: which tree, node or field, which row and column.

/// Why a model could not be loaded or an input could not be scored.
///
/// Messages name the offending part (tree, node, field, row, column) so that a
/// user can act on them without reading Plinth's source.
public enum ModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file is not in the expected format or is cut short.
    case malformed(format: String, detail: String)
    /// A required field is absent.
    case missingField(format: String, field: String)
    /// A field is present but its value is unusable.
    case invalidField(format: String, field: String, detail: String)
    /// The model uses something Plinth does not evaluate (an objective, a
    /// split operator, a booster kind).
    case unsupported(format: String, feature: String)
    /// A tree refers to a feature the model does not have.
    case featureOutOfRange(tree: Int, node: Int, feature: Int, featureCount: Int)
    /// A tree's structure is broken (a child index out of range, a cycle).
    case badTree(tree: Int, detail: String)
    /// A declared size exceeds what the file could possibly hold, or a limit.
    case tooLarge(what: String, count: Int, limit: Int)
    /// The format could not be recognised from the file's contents.
    case unknownFormat(detail: String)
    /// An input row could not be scored.
    case input(row: Int, column: String?, detail: String)
    /// The input shape does not match the model.
    case shape(detail: String)
    /// Reading or writing a file failed.
    case io(path: String, detail: String)

    public var description: String {
        switch self {
        case let .malformed(format, detail):
            return "\(format): malformed model: \(detail)"
        case let .missingField(format, field):
            return "\(format): missing field '\(field)'"
        case let .invalidField(format, field, detail):
            return "\(format): invalid field '\(field)': \(detail)"
        case let .unsupported(format, feature):
            return "\(format): unsupported: \(feature)"
        case let .featureOutOfRange(tree, node, feature, count):
            return "tree \(tree), node \(node): feature index \(feature) is out of range (model has \(count) features)"
        case let .badTree(tree, detail):
            return "tree \(tree): \(detail)"
        case let .tooLarge(what, count, limit):
            return "\(what) is \(count), more than the limit \(limit)"
        case let .unknownFormat(detail):
            return "unrecognised model format: \(detail)"
        case let .input(row, column, detail):
            if let column { return "row \(row), column '\(column)': \(detail)" }
            return "row \(row): \(detail)"
        case let .shape(detail):
            return "input shape: \(detail)"
        case let .io(path, detail):
            return "\(path): \(detail)"
        }
    }
}
