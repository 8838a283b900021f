// Definitions: entities, feature views and feature services as declared by
// users (spec) and as completed by the catalog (meta: ids, schema versions,
// times). Semantics follow Feast's where Feast has them.
import Foundation

public struct EntityDefinition: Sendable, Hashable, Codable {
    public var name: String
    public var joinKey: String
    public var type: FeatureType
    public var description: String = ""

    public init(name: String, joinKey: String, type: FeatureType, description: String = "") {
        self.name = name
        self.joinKey = joinKey
        self.type = type
        self.description = description
    }
}

public struct FeatureDefinition: Sendable, Hashable, Codable {
    public var name: String
    public var type: FeatureType
    public var description: String = ""
    /// A row-level transform (see Expression.swift); the feature is then
    /// computed at push, never pushed.
    public var expression: String? = nil
    /// A windowed aggregation over the view's own events; computed at push.
    public var aggregation: AggregationDefinition? = nil

    /// Whether the feature is computed rather than pushed.
    public var isDerived: Bool { expression != nil || aggregation != nil }

    public init(name: String, type: FeatureType, description: String = "", expression: String? = nil,
                aggregation: AggregationDefinition? = nil) {
        self.name = name
        self.type = type
        self.description = description
        self.expression = expression
        self.aggregation = aggregation
    }
}

/// count, sum, mean, min, max or last of a feature over the events of the
/// same entity whose event time is within `windowSeconds` before (and up to
/// and including) each event.
public struct AggregationDefinition: Sendable, Hashable, Codable {
    public enum Function: String, Sendable, Codable, CaseIterable {
        case count, sum, mean, min, max, last
    }

    public var function: Function
    /// The feature aggregated; nil only for count (counts events).
    public var of: String?
    public var windowSeconds: Int64

    public init(function: Function, of: String?, windowSeconds: Int64) {
        self.function = function
        self.of = of
        self.windowSeconds = windowSeconds
    }
}

public struct FeatureViewDefinition: Sendable, Hashable, Codable {
    public var name: String
    public var entities: [String]
    public var features: [FeatureDefinition]
    /// Values older than this (by event time) read as OUTSIDE_MAX_AGE; 0 = never.
    public var ttlSeconds: Int64
    public var description: String = ""
    public var owner: String = ""
    public var tags: [String: String] = [:]
    /// False for `online: false`: the view lives on the offline face only
    /// (pushes write offline, online reads are refused, materialisation
    /// skips it), for features that only training needs.
    public var online: Bool = true

    public init(name: String, entities: [String], features: [FeatureDefinition], ttlSeconds: Int64,
                description: String = "", owner: String = "", tags: [String: String] = [:], online: Bool = true) {
        self.name = name
        self.entities = entities
        self.features = features
        self.ttlSeconds = ttlSeconds
        self.description = description
        self.owner = owner
        self.tags = tags
        self.online = online
    }

    private enum CodingKeys: String, CodingKey {
        case name, entities, features, ttlSeconds, description, owner, tags, online
    }

    // Definitions stored before `online` existed have no such key; they were
    // all online views, and must decode as such (and compare equal to the
    // same file applied again, so a re-apply stays a no-op).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        entities = try c.decode([String].self, forKey: .entities)
        features = try c.decode([FeatureDefinition].self, forKey: .features)
        ttlSeconds = try c.decode(Int64.self, forKey: .ttlSeconds)
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        owner = try c.decodeIfPresent(String.self, forKey: .owner) ?? ""
        tags = try c.decodeIfPresent([String: String].self, forKey: .tags) ?? [:]
        online = try c.decodeIfPresent(Bool.self, forKey: .online) ?? true
    }
}

public struct FeatureServiceDefinition: Sendable, Hashable, Codable {
    public var name: String
    /// References "view:feature".
    public var features: [String]
    public var description: String = ""

    public init(name: String, features: [String], description: String = "") {
        self.name = name
        self.features = features
        self.description = description
    }
}

/// What a user declared for one project: the content of one YAML file.
public struct ProjectSpec: Sendable, Hashable, Codable {
    public var project: String
    public var entities: [EntityDefinition]
    public var featureViews: [FeatureViewDefinition]
    public var featureServices: [FeatureServiceDefinition]

    public init(project: String, entities: [EntityDefinition] = [], featureViews: [FeatureViewDefinition] = [],
                featureServices: [FeatureServiceDefinition] = []) {
        self.project = project
        self.entities = entities
        self.featureViews = featureViews
        self.featureServices = featureServices
    }
}

/// What the catalog keeps about a feature view beyond its spec.
public struct FeatureViewMeta: Sendable, Hashable, Codable {
    /// Stable id used in storage keys; never reused.
    public var viewID: UInt32
    /// Increments whenever the view's features change.
    public var schemaVersion: UInt32
    public var createdAtMicros: Int64
    public var updatedAtMicros: Int64
}

/// One project's definitions at one version, as stored.
public struct ProjectDefinitions: Sendable, Hashable, Codable {
    public var spec: ProjectSpec
    public var version: UInt64
    public var appliedAtMicros: Int64
    /// Meta of each view, by view name.
    public var viewMeta: [String: FeatureViewMeta]
}

/// A parsed feature reference "view:feature" (Feast's "view@vN:feature" is
/// not supported: Plinth versions whole projects).
public struct FeatureReference: Sendable, Hashable, CustomStringConvertible {
    public var view: String
    public var feature: String

    public init(view: String, feature: String) {
        self.view = view
        self.feature = feature
    }

    public init?(_ text: String) {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let view = String(text[..<colon])
        let feature = String(text[text.index(after: colon)...])
        // utf8.contains: String.contains(String) would go through Foundation's search.
        guard !view.isEmpty, !feature.isEmpty, !feature.utf8.contains(UInt8(ascii: ":")) else { return nil }
        self.init(view: view, feature: feature)
    }

    public var description: String { "\(view):\(feature)" }
}
