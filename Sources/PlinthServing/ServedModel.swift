// A registered version made ready to serve: the loaded model plus its
// signature compiled against the current feature definitions — which
// online features to read, which request fields to take, and where each
// value goes in the model's input vector. Compiling checks everything that
// does not depend on a request (types, counts, names), so a bad signature
// fails once, at load, with a message that says what to fix.
import Foundation
public import PlinthFeatures
public import PlinthInference
public import PlinthRegistry

/// A named, typed input a caller sends: an entity join key or a
/// request-time field.
public struct ServingInput: Sendable, Equatable {
    public let name: String
    public let type: FeatureType
}

public final class ServedModel: Sendable {
    public let name: String
    public let version: UInt64
    /// The artifact's format as registered ("xgboost-json", "lightgbm-text", ...).
    public let format: String
    public let model: Model
    public let signature: Signature
    /// The signature's features resolved against one definitions snapshot;
    /// nil when the model takes request fields only.
    public let plan: ReadPlan?
    /// Entity join keys a caller sends, in the order the views need them.
    public let entityKeys: [ServingInput]
    /// Request-time fields a caller sends, in signature order.
    public let requestFields: [ServingInput]
    /// Feature references, then request field names, in signature order
    /// (what `return_features` reports).
    public let signatureInputs: [String]
    /// Output column names: the signature's, else "score" or "class_N".
    public let outputNames: [String]
    /// Whether the model's inputs were matched to the signature by name
    /// (the model records feature names) rather than by position.
    public let matchedByName: Bool

    /// For plan output `o`, its elements' model input indices are
    /// `featureSlots[featureSlotStart[o] ..< featureSlotStart[o + 1]]`.
    let featureSlotStart: [Int]
    let featureSlots: [Int]
    let featureTypes: [FeatureType]
    /// How to copy each plan output into the vector, grouped by view: view
    /// `v`'s are `fills[viewFillStart[v] ..< viewFillStart[v + 1]]`, so a
    /// row is resolved once per view.
    let fills: [FeatureFill]
    let viewFillStart: [Int]
    /// For a view whose fills are all scalar float32 features (the usual
    /// case), (byte offset in the row, model input) of each, so a plain row
    /// is copied with one load and one store per feature:
    /// `float32Copies[float32CopyStart[v] ..< float32CopyStart[v + 1]]`,
    /// empty for a view with any other kind of feature.
    let float32Copies: [Float32Copy]
    let float32CopyStart: [Int]
    /// Model input index of each request field.
    let requestSlots: [Int]
    /// Per model input: the value used when it is missing (NaN: missing).
    let missingValues: [Float]
    /// The plan outputs feeding a model input with a category map (a
    /// LightGBM model trained on pandas `category` columns): they take the
    /// original categories (strings or numbers) and are encoded through the
    /// map, outside `fills`, so the usual path stays a plain copy.
    let categoryFeatures: [CategoryFeature]
    /// Per request field, the category map of its model input, if any.
    let requestMaps: [CategoryMap?]

    /// Compiles `model` with `signature` against the definitions `store`
    /// holds now.
    /// - Throws: `ServingError.failedPrecondition` naming what does not fit.
    public init(name: String, version: UInt64, format: String, model: Model, signature: Signature,
                store: OnlineStore) throws(ServingError) {
        let what = "\(name):\(version)"
        var references = signature.featureReferences
        let snapshot = store.catalog.snapshot
        if !signature.featureService.isEmpty {
            guard let service = snapshot.services[signature.featureService] else {
                throw .failedPrecondition("\(what) cannot be served: its signature's feature service '\(signature.featureService)' is not defined")
            }
            for reference in service.features where !references.contains(reference) { references.append(reference) }
        }
        var plan: ReadPlan?
        if !references.isEmpty {
            do {
                plan = try store.plan(features: references, service: nil, fullFeatureNames: true)
            } catch {
                throw .failedPrecondition("\(what) cannot be served: its signature's features do not resolve: \(error)")
            }
        }

        // The signature's inputs, element by element, with the names a
        // model might know them by.
        struct Element { var names: [String]; var label: String }
        var elements: [Element] = []
        var featureSlotStart = [0]
        var featureTypes: [FeatureType] = []
        var signatureInputs: [String] = []
        for output in plan?.outputs ?? [] {
            let reference = references[featureSlotStart.count - 1]
            let view = plan?.views[output.view].name ?? ""
            let feature = output.feature.name
            let type = output.feature.type
            switch type {
            case .int64, .float32, .float64, .bool:
                elements.append(Element(names: [reference, feature, "\(view)__\(feature)"], label: reference))
            case .float32Vector(let n):
                for i in 0..<n {
                    elements.append(Element(names: ["\(reference)[\(i)]", "\(feature)[\(i)]", "\(view)__\(feature)[\(i)]"],
                                            label: "\(reference)[\(i)]"))
                }
            case .string, .bytes:
                // Only for a model input with a category map (checked once
                // the inputs are matched to the model's features below).
                elements.append(Element(names: [reference, feature, "\(view)__\(feature)"], label: reference))
            }
            featureTypes.append(type)
            featureSlotStart.append(elements.count)
            signatureInputs.append(reference)
        }
        var entityKeys: [ServingInput] = []
        for view in plan?.views ?? [] {
            for key in view.joinKeys {
                if let existing = entityKeys.first(where: { $0.name == key.name }) {
                    guard existing.type == key.type else {
                        throw .failedPrecondition("\(what) cannot be served: join key '\(key.name)' is \(existing.type) in one view and \(key.type) in '\(view.name)'")
                    }
                } else {
                    entityKeys.append(ServingInput(name: key.name, type: key.type))
                }
            }
        }
        var requestFields: [ServingInput] = []
        for field in signature.requestFields {
            guard let type = FeatureType(spelling: field.type) else {
                throw .failedPrecondition("\(what) cannot be served: request field '\(field.name)' has unknown type '\(field.type)'")
            }
            switch type {
            case .int64, .float32, .float64, .bool, .string: break  // string: mapped inputs only, checked below
            default:
                throw .failedPrecondition("\(what) cannot be served: request field '\(field.name)' is \(type); a model takes numbers")
            }
            guard !entityKeys.contains(where: { $0.name == field.name }), !requestFields.contains(where: { $0.name == field.name }) else {
                throw .failedPrecondition("\(what) cannot be served: request field '\(field.name)' is named twice (or like a join key)")
            }
            requestFields.append(ServingInput(name: field.name, type: type))
            elements.append(Element(names: [field.name], label: field.name))
            signatureInputs.append(field.name)
        }
        guard !elements.isEmpty else {
            throw .failedPrecondition("\(what) cannot be served: its signature names no inputs; register it with features, a feature service or request fields")
        }

        // Model input index of each signature element. A model that records
        // feature names takes its inputs by name, in any signature order:
        // each name must match exactly one element (as `view:feature`,
        // `feature` or `view__feature`) and each element a name, else the
        // version is refused with the names that match nothing; falling back
        // to position there would feed a named model the wrong columns in
        // silence. A model without names (`Model.featureNames` nil: XGBoost
        // without feature_names, LightGBM's generated Column_N) takes them by
        // position, as the libraries do, and the counts must agree.
        var slotOfElement = Array(elements.indices)
        let byName = model.featureNames != nil
        if let names = model.featureNames {
            slotOfElement = try Self.slotsByName(names, elements.map(\.names), labels: elements.map(\.label), what: what)
        } else {
            guard model.featureCount == elements.count else {
                let detail = signatureInputs.count == elements.count ? "" : " (vector features count one input per element)"
                throw .failedPrecondition("\(what) cannot be served: the model takes \(model.featureCount) inputs but its signature gives \(elements.count)\(detail): \(Self.list(elements.map(\.label), limit: 8)) (the model has no feature names, so its inputs are taken by position)")
            }
        }

        // String inputs are original categories: only a model input with a
        // category map can take one.
        for o in featureTypes.indices where featureTypes[o] == .string || featureTypes[o] == .bytes {
            guard model.categoryMaps[slotOfElement[featureSlotStart[o]]] != nil else {
                throw .failedPrecondition("\(what) cannot be served: feature '\(signatureInputs[o])' is \(featureTypes[o]); a model takes numbers (int64, float32, float64, bool, float32 vectors), or original category values for a feature the model maps (a LightGBM model trained on pandas category columns)")
            }
        }
        for (f, field) in requestFields.enumerated() where field.type == .string {
            guard model.categoryMaps[slotOfElement[(featureSlotStart.last ?? 0) + f]] != nil else {
                throw .failedPrecondition("\(what) cannot be served: request field '\(field.name)' is string; a model takes numbers, or original category values for a feature the model maps (a LightGBM model trained on pandas category columns)")
            }
        }

        var missing = [Float](repeating: .nan, count: model.featureCount)
        let labels = Set(signatureInputs)
        for key in signature.defaults.keys {
            guard labels.contains(key) else {
                throw .failedPrecondition("\(what) cannot be served: its signature has a default for '\(key)', which is not one of its inputs")
            }
        }
        for (e, element) in elements.enumerated() {
            let base = element.label.firstIndex(of: "[").map { String(element.label[..<$0]) } ?? element.label
            if let value = signature.defaults[base] { missing[slotOfElement[e]] = Float(value) }
        }

        let outputCount = model.outputCount
        if signature.outputs.count == outputCount {
            outputNames = signature.outputs.map(\.name)
        } else if outputCount == 1 {
            outputNames = ["score"]
        } else {
            outputNames = (0..<outputCount).map { "class_\($0)" }
        }

        self.name = name
        self.version = version
        self.format = format
        self.model = model
        self.signature = signature
        self.plan = plan
        self.entityKeys = entityKeys
        self.requestFields = requestFields
        self.signatureInputs = signatureInputs
        self.matchedByName = byName
        self.featureSlotStart = featureSlotStart
        self.featureSlots = Array(slotOfElement[0..<(featureSlotStart.last ?? 0)])
        self.featureTypes = featureTypes
        self.requestSlots = Array(slotOfElement[(featureSlotStart.last ?? 0)...])
        self.missingValues = missing
        var categoryFeatures: [CategoryFeature] = []
        for o in featureTypes.indices where featureSlotStart[o + 1] == featureSlotStart[o] + 1 {
            let slot = slotOfElement[featureSlotStart[o]]
            if let map = model.categoryMaps[slot] {
                categoryFeatures.append(CategoryFeature(output: o, slot: slot, type: featureTypes[o], map: map))
            }
        }
        self.categoryFeatures = categoryFeatures
        let requestStart = featureSlotStart.last ?? 0
        self.requestMaps = requestFields.indices.map { model.categoryMaps[slotOfElement[requestStart + $0]] }
        var fills: [FeatureFill] = [], starts = [0]
        if let plan {
            for v in plan.views.indices {
                for o in plan.outputs.indices where plan.outputs[o].view == v
                    && !categoryFeatures.contains(where: { $0.output == o }) {
                    let hot = plan.hotOutputs[o]
                    fills.append(FeatureFill(output: o, type: featureTypes[o], index: hot.index, offset: hot.offset,
                                             start: featureSlotStart[o], end: featureSlotStart[o + 1]))
                }
                starts.append(fills.count)
            }
        }
        self.fills = fills
        viewFillStart = starts
        var copies: [Float32Copy] = [], copyStarts = [0]
        for v in 0..<(starts.count - 1) {
            let mine = fills[starts[v]..<starts[v + 1]]
            if mine.allSatisfy({ $0.type == .float32 && $0.end == $0.start + 1 }) {
                copies += mine.map { Float32Copy(offset: $0.offset, slot: slotOfElement[$0.start]) }
            }
            copyStarts.append(copies.count)
        }
        float32Copies = copies
        float32CopyStart = copyStarts
    }

    /// The model input of each signature element, matching the model's
    /// names to each element's `names` (the spellings it may go by).
    /// - Throws: `ServingError.failedPrecondition` listing the model's
    ///   names no element goes by, names several do, and elements left over.
    static func slotsByName(_ names: [String], _ elementNames: [[String]], labels: [String],
                            what: String) throws(ServingError) -> [Int] {
        var index: [String: Int] = [:]
        var ambiguous: Set<String> = []
        for (e, spellings) in elementNames.enumerated() {
            for n in Set(spellings) where index.updateValue(e, forKey: n) != nil { ambiguous.insert(n) }
        }
        var slots = [Int](repeating: -1, count: elementNames.count)
        var missing: [String] = [], unclear: [String] = []
        for (i, n) in names.enumerated() {
            guard !ambiguous.contains(n), let e = index[n], slots[e] == -1 else {
                if ambiguous.contains(n) || index[n] != nil { unclear.append(n) } else { missing.append(n) }
                continue
            }
            slots[e] = i
        }
        let unused = slots.indices.filter { slots[$0] == -1 }.map { labels[$0] }
        guard missing.isEmpty, unclear.isEmpty, unused.isEmpty else {
            var problems: [String] = []
            if !missing.isEmpty {
                problems.append("the signature gives no input for \(missing.count) of the model's \(names.count) features: \(list(missing, limit: 20))")
            }
            if !unclear.isEmpty {
                problems.append("these model features match more than one signature input, or one already matched: \(list(unclear, limit: 20))")
            }
            if !unused.isEmpty {
                problems.append("these signature inputs match none of the model's feature names: \(list(unused, limit: 20))")
            }
            throw .failedPrecondition("\(what) cannot be served: the model names its features, and they are matched by name (as view:feature, feature or view__feature): " + problems.joined(separator: "; "))
        }
        return slots
    }

    private static func list(_ items: [String], limit: Int) -> String {
        items.prefix(limit).joined(separator: ", ") + (items.count > limit ? ", ... (\(items.count) in all)" : "")
    }

    /// A copy compiled against the definitions current now (after an
    /// apply), sharing the loaded model.
    public func recompiled(store: OnlineStore) throws(ServingError) -> ServedModel {
        try ServedModel(name: name, version: version, format: format, model: model, signature: signature, store: store)
    }

    /// Whether the definitions changed since this was compiled.
    public func isCurrent(_ store: OnlineStore) -> Bool {
        guard let plan else { return true }
        return store.isCurrent(plan)
    }

    /// KServe's platform: "xgboost", "lightgbm" or "plinth" from the
    /// registered artifact format ("xgboost-json", "lightgbm-text", ...).
    public var platform: String {
        for family in ["xgboost", "lightgbm", "plinth"] where format.lowercased().hasPrefix(family) { return family }
        switch model.kind {
        case .linear, .network: return "plinth"
        case .trees: return format
        }
    }

    /// "name:version".
    public var label: String { "\(name):\(version)" }

    /// The inputs a caller sends, keys first.
    public var callerInputs: [ServingInput] { entityKeys + requestFields }
}

/// A served feature whose model input has a category map: its value, a
/// string or a number, is encoded through `map` (see `ServedModel.categoryFeatures`).
struct CategoryFeature: Sendable {
    let output: Int
    let slot: Int
    let type: FeatureType
    let map: CategoryMap
}

/// One feature's copy into the input vector: its plan output and type, and
/// its elements' range in `featureSlots`.
/// See `ServedModel.float32Copies`.
struct Float32Copy {
    let offset: Int
    let slot: Int
}

struct FeatureFill {
    let output: Int
    let type: FeatureType
    /// The feature's index and byte offset in its view's current layout.
    let index: Int
    let offset: Int
    let start: Int
    let end: Int
}
