// DefinitionParser: turns a YAML definitions document into a ProjectSpec.
//
// A file is accepted whole or refused whole: every problem found is
// reported as file:line, naming the field, so a user fixes the file in one
// pass instead of one error per apply. A field Plinth does not implement is
// one of those problems: a definition that reads as if it did something
// (a Feast `source`, a misspelt `ttl_seconds`) must never be stored as if
// it had been understood.
import Yams

/// Every problem in a definitions document.
public struct DefinitionError: Error, CustomStringConvertible, Sendable {
    public struct Problem: Sendable, CustomStringConvertible {
        /// The document's name as the user knows it ("features.yaml").
        public let file: String
        public let line: Int?
        /// Where in the document ("feature_views[0].ttl"); empty when the
        /// message names the place itself.
        public let path: String
        public let message: String
        public var description: String {
            let at = line.map { "\(file):\($0): " } ?? "\(file): "
            return path.isEmpty ? "\(at)\(message)" : "\(at)\(path): \(message)"
        }
    }

    public let problems: [Problem]
    public var description: String {
        "invalid definitions (\(problems.count) problem\(problems.count == 1 ? "" : "s")): "
            + problems.map(\.description).joined(separator: "; ")
    }
}

public enum DefinitionParser {
    /// The name problems cite when the caller gives none.
    public static let unnamedFile = "<yaml>"

    /// Parses and validates `yaml`.
    /// - Parameter file: the document's name, cited in every problem as
    ///   `file:line:`; empty means `unnamedFile`.
    /// - Throws: `DefinitionError` listing every problem found.
    public static func parse(_ yaml: String, file: String = "") throws(DefinitionError) -> ProjectSpec {
        let file = file.isEmpty ? unnamedFile : file
        var parser = Walker(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw DefinitionError(problems: [.init(file: file, line: error.line, path: "", message: "not valid YAML: \(error.problemText)")])
        } catch {
            throw DefinitionError(problems: [.init(file: file, line: nil, path: "", message: "not valid YAML: \(error)")])
        }
        guard let root else {
            throw DefinitionError(problems: [.init(file: file, line: nil, path: "", message: "the document is empty")])
        }
        let spec = parser.project(root)
        if !parser.problems.isEmpty { throw DefinitionError(problems: parser.problems) }
        return spec
    }

    /// Parses a TTL: seconds as a number, or a sum of units such as "7d",
    /// "1h30m", "90s", "2w". Returns nil when malformed.
    public static func parseDuration(_ text: String) -> Int64? {
        if let seconds = Int64(text), seconds >= 0 { return seconds }
        var total: Int64 = 0
        var number: Int64? = nil
        var sawUnit = false
        for ch in text {
            if let digit = ch.wholeNumberValue, ch.isASCII {
                let (m, o1) = (number ?? 0).multipliedReportingOverflow(by: 10)
                let (n, o2) = m.addingReportingOverflow(Int64(digit))
                if o1 || o2 { return nil }
                number = n
                continue
            }
            let unit: Int64
            switch ch {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86_400
            case "w": unit = 604_800
            default: return nil
            }
            guard let n = number else { return nil }
            let (product, o1) = n.multipliedReportingOverflow(by: unit)
            let (sum, o2) = total.addingReportingOverflow(product)
            if o1 || o2 { return nil }
            total = sum
            number = nil
            sawUnit = true
        }
        return sawUnit && number == nil ? total : nil
    }
}

private extension YamlError {
    var line: Int? {
        switch self {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _): mark.line
        default: nil
        }
    }

    var problemText: String {
        switch self {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _): problem
        default: "\(self)"
        }
    }
}

/// The fields each mapping of the document may have, in the order the docs
/// list them (docs/concepts/features.md). Anything else is refused.
enum DefinitionFields {
    static let project = ["project", "entities", "feature_views", "feature_services"]
    static let entity = ["name", "join_key", "type", "description"]
    static let featureView = ["name", "entities", "features", "ttl", "online", "description", "owner", "tags"]
    static let feature = ["name", "type", "description", "expr", "aggregate"]
    static let aggregate = ["function", "of", "window"]
    static let featureService = ["name", "features", "description"]

    private static let noSources = "Plinth reads no sources: rows arrive by push (plinthctl push, Client.push, Client.ingest)"

    /// Why some fields users bring from Feast are not there, beyond "unknown".
    static let hints: [String: String] = [
        "source": noSources,
        "batch_source": noSources,
        "stream_source": noSources,
        "schema": "declare the view's columns under features",
        "ttl_seconds": "the field is ttl (e.g. ttl: 7d or ttl: 3600)",
        "value_type": "the field is type",
        "dtype": "the field is type",
    ]
}

/// Walks the node tree, collecting problems instead of stopping at the first.
private struct Walker {
    let file: String
    var problems: [DefinitionError.Problem] = []

    init(file: String) { self.file = file }

    mutating func fail(_ node: Node?, _ path: String, _ message: String) {
        problems.append(.init(file: file, line: node?.mark?.line, path: path, message: message))
    }

    /// How a problem names a mapping: its kind and, when it has one yet,
    /// its name ("feature view 'user_stats'"), else its place.
    static func owner(_ kind: String, _ node: Node, _ path: String) -> String {
        if let name = node.mapping?["name"]?.scalar?.string, !name.isEmpty { return "\(kind) '\(name)'" }
        return path.isEmpty ? kind : "\(kind) at \(path)"
    }

    /// The fields of a mapping, refusing non-mappings and every key that is
    /// not in `allowed`: a typo or a field Plinth does not implement.
    /// - Parameter owner: the mapping as a problem names it.
    mutating func fields(_ node: Node, _ path: String, allowed: [String], owner: String) -> [String: Node] {
        guard let mapping = node.mapping else {
            fail(node, path, "expected a mapping")
            return [:]
        }
        var out: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.string else { fail(key, path, "keys must be strings"); continue }
            if !allowed.contains(name) {
                let hint = DefinitionFields.hints[name].map { "; \($0)" } ?? ""
                fail(key, "", "unknown field '\(name)' in \(owner) (known: \(allowed.joined(separator: ", ")))\(hint)")
                continue
            }
            if out[name] != nil { fail(key, path, "field '\(name)' appears twice") }
            out[name] = value
        }
        return out
    }

    mutating func string(_ fields: [String: Node], _ key: String, _ path: String, required: Bool, parent: Node) -> String? {
        guard let node = fields[key] else {
            if required { fail(parent, path, "missing required field '\(key)'") }
            return nil
        }
        guard let scalar = node.scalar else { fail(node, "\(path).\(key)", "expected a string"); return nil }
        return scalar.string
    }

    mutating func name(_ fields: [String: Node], _ key: String, _ path: String, parent: Node) -> String? {
        guard let value = string(fields, key, path, required: true, parent: parent) else { return nil }
        let ok = !value.isEmpty && value.count <= 128
            && value.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil)) || $0 == "_" || $0 == "-" || $0 == "." }
        if !ok {
            fail(fields[key], "\(path).\(key)", "'\(value)' is not a valid name (letters, digits, '_', '-', '.'; at most 128)")
            return nil
        }
        return value
    }

    mutating func sequence(_ fields: [String: Node], _ key: String, _ path: String) -> [Node] {
        guard let node = fields[key] else { return [] }
        guard let seq = node.sequence else { fail(node, "\(path).\(key)", "expected a list"); return [] }
        return Array(seq)
    }

    mutating func type(_ fields: [String: Node], _ path: String, parent: Node) -> FeatureType? {
        guard let spelling = string(fields, "type", path, required: true, parent: parent) else { return nil }
        guard let type = FeatureType(spelling: spelling) else {
            fail(fields["type"], "\(path).type",
                 "unknown type '\(spelling)' (int64, float32, float64, bool, string, bytes, float32[N] with 1 <= N <= \(FeatureType.maxVectorLength))")
            return nil
        }
        return type
    }

    /// Parses `aggregate: {function: sum, of: amount, window: 1h}`.
    mutating func aggregate(_ node: Node?, _ path: String, feature: String) -> AggregationDefinition? {
        guard let node else { return nil }
        let f = fields(node, path, allowed: DefinitionFields.aggregate, owner: "the aggregate of \(feature)")
        guard let text = string(f, "function", path, required: true, parent: node) else { return nil }
        guard let function = AggregationDefinition.Function(rawValue: text) else {
            fail(f["function"], "\(path).function",
                 "unknown aggregation '\(text)' (\(AggregationDefinition.Function.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        guard let window = string(f, "window", path, required: true, parent: node) else { return nil }
        guard let seconds = DefinitionParser.parseDuration(window), seconds > 0 else {
            fail(f["window"], "\(path).window", "'\(window)' is not a positive duration (e.g. 10m, 1h, 1d, 7d)")
            return nil
        }
        let of = string(f, "of", path, required: function != .count, parent: node)
        if function != .count && of == nil { return nil }
        return AggregationDefinition(function: function, of: of, windowSeconds: seconds)
    }

    mutating func project(_ root: Node) -> ProjectSpec {
        let top = fields(root, "", allowed: DefinitionFields.project, owner: "the top level")
        let project = name(top, "project", "", parent: root) ?? ""
        var spec = ProjectSpec(project: project)
        var entityNames: [String: EntityDefinition] = [:]
        for (i, node) in sequence(top, "entities", "").enumerated() {
            let path = "entities[\(i)]"
            let f = fields(node, path, allowed: DefinitionFields.entity, owner: Self.owner("entity", node, path))
            let entityName = name(f, "name", path, parent: node)
            let joinKey = name(f, "join_key", path, parent: node)
            let type = type(f, path, parent: node)
            if let type, !type.isKeyType {
                fail(f["type"], "\(path).type", "an entity key must be int64, string or bytes, not \(type)")
            }
            guard let entityName, let joinKey, let type, type.isKeyType else { continue }
            if entityNames[entityName] != nil { fail(node, "\(path).name", "entity '\(entityName)' is declared twice"); continue }
            let entity = EntityDefinition(name: entityName, joinKey: joinKey, type: type,
                                          description: string(f, "description", path, required: false, parent: node) ?? "")
            entityNames[entityName] = entity
            spec.entities.append(entity)
        }
        var views: [String: FeatureViewDefinition] = [:]
        for (i, node) in sequence(top, "feature_views", "").enumerated() {
            let path = "feature_views[\(i)]"
            let f = fields(node, path, allowed: DefinitionFields.featureView, owner: Self.owner("feature view", node, path))
            guard let viewName = name(f, "name", path, parent: node) else { continue }
            var entities: [String] = []
            var joinKeys: Set<String> = []
            for (j, e) in sequence(f, "entities", path).enumerated() {
                guard let entity = e.string else { fail(e, "\(path).entities[\(j)]", "expected an entity name"); continue }
                guard let definition = entityNames[entity] else {
                    fail(e, "\(path).entities[\(j)]", "unknown entity '\(entity)' (declare it under entities)")
                    continue
                }
                if !joinKeys.insert(definition.joinKey).inserted {
                    fail(e, "\(path).entities[\(j)]", "join key '\(definition.joinKey)' is used twice in this view")
                }
                entities.append(entity)
            }
            if f["entities"] == nil { fail(node, path, "missing required field 'entities'") }
            var features: [FeatureDefinition] = []
            var featureNames: Set<String> = []
            for (j, fnode) in sequence(f, "features", path).enumerated() {
                let fpath = "\(path).features[\(j)]"
                let featureOwner = Self.owner("feature", fnode, fpath) + " of " + Self.owner("feature view", node, path)
                let ff = fields(fnode, fpath, allowed: DefinitionFields.feature, owner: featureOwner)
                guard let featureName = name(ff, "name", fpath, parent: fnode), let type = type(ff, fpath, parent: fnode) else { continue }
                let expression = string(ff, "expr", fpath, required: false, parent: fnode)
                let aggregation = aggregate(ff["aggregate"], "\(fpath).aggregate", feature: featureOwner)
                if expression != nil && ff["aggregate"] != nil {
                    fail(fnode, fpath, "a feature has either expr or aggregate, not both")
                }
                let derived = FeatureDefinition(name: featureName, type: type, expression: expression, aggregation: aggregation)
                if let problem = TransformPlan.check(derived, after: features) {
                    fail(ff["expr"] ?? ff["aggregate"] ?? fnode, fpath, problem)
                }
                if joinKeys.contains(featureName) {
                    fail(ff["name"], "\(fpath).name", "'\(featureName)' is a join key of this view; features need other names")
                }
                if !featureNames.insert(featureName).inserted {
                    fail(ff["name"], "\(fpath).name", "feature '\(featureName)' is declared twice"); continue
                }
                features.append(FeatureDefinition(name: featureName, type: type,
                                                  description: string(ff, "description", fpath, required: false, parent: fnode) ?? "",
                                                  expression: expression, aggregation: aggregation))
            }
            if features.isEmpty { fail(node, path, "a feature view needs at least one feature") }
            var ttl: Int64 = 0
            if let text = string(f, "ttl", path, required: false, parent: node) {
                if let parsed = DefinitionParser.parseDuration(text) { ttl = parsed } else {
                    fail(f["ttl"], "\(path).ttl", "'\(text)' is not a duration (e.g. 0, 3600, 90s, 30m, 12h, 7d, 2w)")
                }
            }
            var tags: [String: String] = [:]
            if let tagNode = f["tags"] {
                if let mapping = tagNode.mapping {
                    for (k, v) in mapping {
                        guard let key = k.string, let value = v.string else { fail(k, "\(path).tags", "tags map strings to strings"); continue }
                        tags[key] = value
                    }
                } else { fail(tagNode, "\(path).tags", "expected a mapping") }
            }
            var online = true
            if let onlineNode = f["online"] {
                if let flag = onlineNode.bool { online = flag } else {
                    fail(onlineNode, "\(path).online", "expected true or false")
                }
            }
            if views[viewName] != nil { fail(node, "\(path).name", "feature view '\(viewName)' is declared twice"); continue }
            let view = FeatureViewDefinition(
                name: viewName, entities: entities, features: features, ttlSeconds: ttl,
                description: string(f, "description", path, required: false, parent: node) ?? "",
                owner: string(f, "owner", path, required: false, parent: node) ?? "", tags: tags, online: online)
            views[viewName] = view
            spec.featureViews.append(view)
        }
        var services: Set<String> = []
        for (i, node) in sequence(top, "feature_services", "").enumerated() {
            let path = "feature_services[\(i)]"
            let f = fields(node, path, allowed: DefinitionFields.featureService, owner: Self.owner("feature service", node, path))
            guard let serviceName = name(f, "name", path, parent: node) else { continue }
            var refs: [String] = []
            for (j, r) in sequence(f, "features", path).enumerated() {
                let rpath = "\(path).features[\(j)]"
                guard let text = r.string, let ref = FeatureReference(text) else {
                    fail(r, rpath, "expected a reference 'view:feature' or 'view:*'"); continue
                }
                guard let view = views[ref.view] else { fail(r, rpath, "unknown feature view '\(ref.view)'"); continue }
                if ref.feature == "*" {
                    refs.append(contentsOf: view.features.map { "\(ref.view):\($0.name)" })
                } else if view.features.contains(where: { $0.name == ref.feature }) {
                    refs.append(text)
                } else {
                    fail(r, rpath, "feature view '\(ref.view)' has no feature '\(ref.feature)'")
                }
            }
            if refs.isEmpty && f["features"] == nil { fail(node, path, "missing required field 'features'") }
            if !services.insert(serviceName).inserted { fail(node, "\(path).name", "feature service '\(serviceName)' is declared twice"); continue }
            spec.featureServices.append(FeatureServiceDefinition(
                name: serviceName, features: refs,
                description: string(f, "description", path, required: false, parent: node) ?? ""))
        }
        return spec
    }
}
