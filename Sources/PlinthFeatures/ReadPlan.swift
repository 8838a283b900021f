// ReadPlan and RowLookup: the online read path's two halves. A plan is a
// request's feature references resolved against one definitions snapshot
// (cached, so hot requests resolve no names); a lookup holds the packed
// rows found for each (view, entity row) and decides, in one place, what
// each result cell is. The Column builder and the server's direct protobuf
// encoder both read cells through `cell`, so they cannot disagree.

/// The cache key of a plan.
struct PlanKey: Hashable {
    let features: [String]
    let service: String
    let fullFeatureNames: Bool
}

public final class ReadPlan: Sendable {
    /// One result column.
    public struct Output: Sendable {
        /// Index into `views`.
        public let view: Int
        /// Index of the feature in its view's current layout.
        public let index: Int
        public let feature: FeatureDefinition
        /// "feature", or "view__feature" with full feature names.
        public let name: String
    }

    let snapshot: CatalogSnapshot
    /// Each view once, in first-requested order: one lookup per view per row.
    public let views: [ResolvedView]
    public let outputs: [Output]

    init(snapshot: CatalogSnapshot, features: [String], service: String?, fullFeatureNames: Bool) throws {
        self.snapshot = snapshot
        let references: [String]
        if let service, !service.isEmpty {
            guard features.isEmpty else {
                throw FeatureStoreError.invalidArgument("give either features or a feature service, not both")
            }
            guard let definition = snapshot.services[service] else {
                throw FeatureStoreError.notFound("unknown feature service '\(service)'")
            }
            references = definition.features
        } else {
            references = features
        }
        guard !references.isEmpty else {
            throw FeatureStoreError.invalidArgument("no features requested: give feature references or a feature service")
        }
        var views: [ResolvedView] = []
        var outputs: [Output] = []
        var names: Set<String> = []
        for text in references {
            guard let ref = FeatureReference(text) else {
                throw FeatureStoreError.invalidArgument("'\(text)' is not a feature reference (expected 'view:feature')")
            }
            guard let view = snapshot.views[ref.view] else {
                throw FeatureStoreError.notFound("unknown feature view '\(ref.view)' in '\(text)'")
            }
            guard let index = view.layout.indexByName[ref.feature] else {
                throw FeatureStoreError.notFound("feature view '\(ref.view)' has no feature '\(ref.feature)'")
            }
            let name = fullFeatureNames ? "\(view.name)__\(ref.feature)" : ref.feature
            guard names.insert(name).inserted else {
                throw FeatureStoreError.invalidArgument(fullFeatureNames
                    ? "feature '\(name)' is requested twice"
                    : "two requested features are both named '\(name)'; set full_feature_names to name them view__feature")
            }
            let v: Int
            if let existing = views.firstIndex(where: { $0 === view }) { v = existing } else { v = views.count; views.append(view) }
            outputs.append(Output(view: v, index: index, feature: view.layout.features[index], name: name))
        }
        self.views = views
        self.outputs = outputs
    }
}

/// What one result cell is.
public enum Cell {
    /// A value: feature `index` of `row`, laid out by `layout`; bounds checked.
    case value(PackedRow, index: Int, layout: RowLayout)
    /// No value, with the status saying why and the row's event time (0 if none).
    case missing(FieldStatus, eventTime: Int64)
}

/// The rows found for one lookup. Valid only inside `OnlineStore.lookup`.
public struct RowLookup: ~Copyable {
    public let plan: ReadPlan
    /// Entity rows in the request.
    public let count: Int
    let found: [UnsafeRawBufferPointer?]
    let now: Int64

    init(plan: ReadPlan, rows: Int, found: [UnsafeRawBufferPointer?], now: Int64) {
        self.plan = plan
        self.count = rows
        self.found = found
        self.now = now
    }

    /// The cell of output `output` for entity row `row`.
    @inline(__always)
    public func cell(_ output: Int, _ row: Int) -> Cell {
        let out = plan.outputs[output]
        let view = plan.views[out.view]
        guard let bytes = found[out.view * count + row], let packed = PackedRow(bytes) else {
            return .missing(.notFound, eventTime: 0)
        }
        let layout: RowLayout
        let index: Int
        if packed.schemaVersion == view.layout.schemaVersion {
            layout = view.layout
            index = out.index
        } else {
            // Written under an earlier schema: find the feature by name and type.
            guard let old = view.layouts[packed.schemaVersion],
                  let oldIndex = old.index(of: out.feature.name, type: out.feature.type) else {
                return .missing(.nullValue, eventTime: packed.eventTime)
            }
            layout = old
            index = oldIndex
        }
        guard packed.fits(layout) else { return .missing(.nullValue, eventTime: packed.eventTime) }
        let ttl = view.definition.ttlSeconds
        if ttl > 0, now - packed.eventTime > ttl.multipliedReportingOverflow(by: 1_000_000).partialValue {
            return .missing(.outsideMaxAge, eventTime: packed.eventTime)
        }
        if packed.isNull(index) || (layout.features[index].type.isVariableWidth && packed.variable(index, layout) == nil) {
            return .missing(.nullValue, eventTime: packed.eventTime)
        }
        return .value(packed, index: index, layout: layout)
    }
}
