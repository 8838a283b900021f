// Imports XGBoost models saved as JSON or UBJSON (`Booster.save_model`),
// versions 1.x to 3.x: one reader for both syntaxes (see JSONValue), then a
// walk of learner → gradient_booster → trees. XGBoost's semantics are kept
// exactly: float32 thresholds with `x < t` going left, missing values
// following `default_left`, leaf value in `split_conditions`, float32 sums,
// and base_score converted from the objective's output space into margin
// space. base_score is a scalar string ("5E-1") before 3.1 and an array
// string ("[5E-1]", one value per class or target) from 3.1 on. The gbtree,
// dart and gblinear boosters are read; trees, categorical splits, the
// recorded categories and gblinear's weights are in XGBoostTree.swift.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum XGBoostImporter {
    /// Upper bounds that stop a corrupt header from describing an absurd model.
    static let maxTrees = 1_000_000
    static let maxClasses = 100_000

    /// Loads a model from XGBoost's JSON text.
    public static func load(json data: [UInt8]) throws(ModelError) -> Model {
        try build(JSONReader.parse(data, format: "XGBoost JSON"), format: "XGBoost JSON")
    }

    /// Loads a model from XGBoost's UBJSON (`.ubj`, the default since 2.1).
    public static func load(ubjson data: [UInt8]) throws(ModelError) -> Model {
        try build(UBJSONReader.parse(data), format: "XGBoost UBJSON")
    }

    static func field(_ v: JSONValue?, _ path: String, _ format: String) throws(ModelError) -> JSONValue {
        guard let v else { throw .missingField(format: format, field: path) }
        return v
    }

    /// XGBoost stores learner parameters as strings ("32"), older writers sometimes as numbers.
    static func intParam(_ v: JSONValue?, _ path: String, _ format: String) throws(ModelError) -> Int {
        let value = try field(v, path, format)
        if let s = value.string, let i = Int(s.trimmingSpaces) { return i }
        if case let .int(i) = value, let n = Int(exactly: i) { return n }
        throw .invalidField(format: format, field: path, detail: "expected an integer, found \(value.typeName)")
    }

    static func build(_ doc: JSONValue, format: String) throws(ModelError) -> Model {
        let learner = try field(doc["learner"], "learner", format)
        let params = try field(learner["learner_model_param"], "learner.learner_model_param", format)
        let featureCount = try intParam(params["num_feature"], "learner_model_param.num_feature", format)
        guard featureCount >= 1, featureCount <= maxFeatureCount else {
            throw .invalidField(format: format, field: "learner_model_param.num_feature",
                                detail: "\(featureCount) is not in 1...\(maxFeatureCount)")
        }
        let numClass = params["num_class"] == nil ? 0 : try intParam(params["num_class"], "learner_model_param.num_class", format)
        guard numClass >= 0, numClass <= maxClasses else {
            throw .tooLarge(what: "learner_model_param.num_class", count: numClass, limit: maxClasses)
        }
        // Multi-target models (several labels, or reg:quantileerror with
        // several quantiles) have one output per target.
        let numTarget = params["num_target"] == nil ? 1 : try intParam(params["num_target"], "learner_model_param.num_target", format)
        guard numTarget >= 1, numTarget <= maxClasses else {
            throw .invalidField(format: format, field: "learner_model_param.num_target", detail: "\(numTarget) is not in 1...\(maxClasses)")
        }
        guard numClass <= 1 || numTarget == 1 else {
            throw .unsupported(format: format, feature: "num_class \(numClass) together with num_target \(numTarget)")
        }
        let objectiveName = try field(learner["objective"]?["name"], "learner.objective.name", format).string ?? ""
        let outputCount = max(1, numClass, numTarget)
        let (transform, toMargin) = try objective(objectiveName, outputCount: outputCount, format: format)
        let baseScores = try parseBaseScore(params["base_score"], format: format)
        let baseMargins: [Double]
        if baseScores.count == outputCount {
            baseMargins = baseScores.map(toMargin)
        } else if baseScores.count == 1 {
            baseMargins = [Double](repeating: toMargin(baseScores[0]), count: outputCount)
        } else {
            throw .invalidField(format: format, field: "learner_model_param.base_score",
                                detail: "\(baseScores.count) values for \(outputCount) outputs")
        }
        var names: [String]?
        if case let .array(list) = learner["feature_names"], !list.isEmpty {
            names = list.map { $0.string ?? "" }
        }

        let booster = try field(learner["gradient_booster"], "learner.gradient_booster", format)
        let boosterName = booster["name"]?.string ?? "gbtree"
        let model: JSONValue
        var treeWeights: [Float]?
        switch boosterName {
        case "gbtree":
            model = try field(booster["model"], "gradient_booster.model", format)
        case "dart":
            // DART keeps a gbtree and one weight per tree (`weight_drop`),
            // which its predict multiplies into each tree's output.
            model = try field(booster["gbtree"]?["model"], "gradient_booster.gbtree.model", format)
            guard let weights = try field(booster["weight_drop"], "gradient_booster.weight_drop", format).floatArray() else {
                throw .invalidField(format: format, field: "gradient_booster.weight_drop", detail: "expected numbers")
            }
            treeWeights = weights
        case "gblinear":
            let linear = try linearModel(booster, featureCount: featureCount, outputCount: outputCount,
                                         baseMargins: baseMargins, transform: transform, format: format)
            return try Model(kind: .linear(linear), featureNames: names)
        default:
            throw .unsupported(format: format, feature: "booster '\(boosterName)' (gbtree, dart and gblinear are)")
        }
        guard case let .array(treeValues) = try field(model["trees"], "gradient_booster.model.trees", format) else {
            throw .invalidField(format: format, field: "gradient_booster.model.trees", detail: "expected an array")
        }
        guard treeValues.count <= maxTrees else {
            throw .tooLarge(what: "tree count", count: treeValues.count, limit: maxTrees)
        }
        let treeInfo = try field(model["tree_info"], "gradient_booster.model.tree_info", format).intArray()
        guard let treeInfo, treeInfo.count == treeValues.count else {
            throw .invalidField(format: format, field: "gradient_booster.model.tree_info",
                                detail: "expected \(treeValues.count) integers, one per tree")
        }
        if let treeWeights, treeWeights.count != treeValues.count {
            throw .invalidField(format: format, field: "gradient_booster.weight_drop",
                                detail: "\(treeWeights.count) weights for \(treeValues.count) trees")
        }
        let wrapper = learner["attributes"]?["scikit_learn"] != nil
        var kept = treeValues.count
        var note: String?
        if let (wrapperKept, best) = try wrapperTrees(learner: learner, model: model, outputCount: outputCount,
                                                      trees: treeValues.count, format: format), wrapperKept < kept {
            note = "using \(wrapperKept) of \(kept) trees (best_iteration \(best), as XGBoost's scikit-learn wrapper predicts)"
            kept = wrapperKept
        }
        var trees = [TreeEnsemble.Tree]()
        trees.reserveCapacity(kept)
        var outputs = [Int32]()
        outputs.reserveCapacity(kept)
        for t in 0..<kept {
            guard treeInfo[t] >= 0, treeInfo[t] < Int64(outputCount) else {
                throw .badTree(tree: t, detail: "tree_info says output \(treeInfo[t]) but the model has \(outputCount) outputs")
            }
            // A vector-leaf tree (multi_strategy=multi_output_tree) becomes
            // one scalar tree per target, in target order: each target's
            // sum still adds its trees' leaves in XGBoost's tree order.
            let leaf: (Float) -> Float
            if let w = treeWeights?[t] {
                leaf = dartLeaf(weight: w, base: Float(baseMargins[Int(treeInfo[t])]), wrapper: wrapper)
            } else {
                leaf = { $0 }
            }
            let converted = try tree(treeValues[t], index: t, leaf: leaf, outputCount: outputCount, format: format)
            if converted.count == 1 {
                outputs.append(Int32(treeInfo[t]))
            } else {
                outputs.append(contentsOf: (0..<Int32(converted.count)))
            }
            trees.append(contentsOf: converted)
        }
        var ensemble = TreeEnsemble(trees: trees, treeOutputs: outputs, outputCount: outputCount,
                                    baseMargins: baseMargins, precision: .float32, averageTrees: false,
                                    transform: transform, featureCount: featureCount)
        ensemble.negativeIsNoCategory = true
        let maps = try categoryMaps(model["cats"], featureCount: featureCount, format: format)
        return try Model(kind: .trees(ensemble), featureNames: names, note: note, categoryMaps: maps)
    }

    /// What a DART tree's leaf adds to its output's sum, in float32 as
    /// XGBoost computes it. `Booster.predict` adds `leaf * weight`;
    /// the scikit-learn wrapper's `predict` goes through `inplace_predict`,
    /// whose DART adds `((base + leaf) - base) * weight` (the tree is
    /// predicted on top of the base margin, which is then taken off again),
    /// and the two differ in the last bit on many rows. A wrapper's file is
    /// scored as the wrapper scores it, as for best_iteration.
    static func dartLeaf(weight: Float, base: Float, wrapper: Bool) -> (Float) -> Float {
        if wrapper { return { leaf in ((base + leaf) - base) * weight } }
        return { leaf in leaf * weight }
    }

    /// The trees XGBoost's scikit-learn wrapper predicts with, for a file it
    /// saved after early stopping: those of iterations 0...best_iteration
    /// (`XGBModel._get_iteration_range`). The wrapper marks its files with a
    /// `scikit_learn` attribute; a file without it is the native Booster's,
    /// whose predict sums every tree, and keeps them all.
    /// - Returns: the tree count to keep and best_iteration; nil to keep all.
    private static func wrapperTrees(learner: JSONValue, model: JSONValue, outputCount: Int, trees: Int,
                                     format: String) throws(ModelError) -> (Int, Int)? {
        guard let attributes = learner["attributes"], attributes["scikit_learn"] != nil,
              let text = attributes["best_iteration"]?.string else { return nil }
        let path = "learner.attributes.best_iteration"
        guard let best = Int(text.trimmingSpaces), best >= 0 else {
            throw .invalidField(format: format, field: path, detail: "'\(text)' is not an iteration number")
        }
        let kept: Int
        if let indptr = model["iteration_indptr"]?.intArray(), !indptr.isEmpty {
            // Where each iteration's trees start, then the end (XGBoost ≥ 2.0).
            guard best + 1 < indptr.count, let end = Int(exactly: indptr[best + 1]), end >= 0, end <= trees else {
                throw .invalidField(format: format, field: path,
                                    detail: "iteration \(best) is beyond the \(indptr.count - 1) iterations the model has")
            }
            kept = end
        } else {
            var perIteration = outputCount
            if let parallel = model["gbtree_model_param"]?["num_parallel_tree"] {
                perIteration *= max(1, try intParam(parallel, "gbtree_model_param.num_parallel_tree", format))
            }
            let (end, overflow) = (best + 1).multipliedReportingOverflow(by: perIteration)
            guard !overflow, end <= trees else {
                throw .invalidField(format: format, field: path,
                                    detail: "iteration \(best) is beyond the \(trees) trees the model has")
            }
            kept = end
        }
        return (kept, best)
    }

    /// The output transform and base-score conversion (XGBoost's `ProbToMargin`) of an objective.
    ///
    /// From XGBoost 3.2's src/objective: the logistic losses clamp the score
    /// to [1e-6, 1 - 1e-6] and take `-logf(1/x - 1)`; the log-link ones
    /// (Poisson, gamma, Tweedie, Cox, AFT) take `logf`; every other objective,
    /// `binary:logitraw` included since 1.4, keeps base_score as it is.
    static func objective(_ name: String, outputCount: Int,
                          format: String) throws(ModelError) -> (OutputTransform, @Sendable (Float) -> Double) {
        let identity: @Sendable (Float) -> Double = { Double($0) }
        // XGBoost computes these in float32.
        let logit: @Sendable (Float) -> Double = { score in
            let bounded = min(max(score, 1e-6), 1 - 1e-6)
            return Double(-logf(1.0 / bounded - 1.0))
        }
        let log: @Sendable (Float) -> Double = { Double(logf($0)) }
        switch name {
        case "binary:logistic", "reg:logistic":
            return (.sigmoid(scale: 1), logit)
        case "binary:logitraw":
            return (.identity, identity)
        case "binary:hinge":
            return (.step, identity)
        case "reg:squarederror", "reg:linear", "reg:squaredlogerror", "reg:pseudohubererror",
             "reg:absoluteerror", "reg:quantileerror", "rank:pairwise", "rank:ndcg", "rank:map":
            return (.identity, identity)
        case "count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft":
            return (.exp, log)
        case "multi:softprob", "multi:softmax":
            guard outputCount >= 2 else {
                throw .invalidField(format: format, field: "learner_model_param.num_class",
                                    detail: "\(name) needs num_class ≥ 2")
            }
            return (.softmax, identity)
        default:
            throw .unsupported(format: format, feature: "objective '\(name)'")
        }
    }

    /// Reads base_score: "5E-1" (before 3.1) or "[5E-1]" / "[a,b,c]" (3.1+).
    static func parseBaseScore(_ value: JSONValue?, format: String) throws(ModelError) -> [Float] {
        let path = "learner_model_param.base_score"
        guard let value else { return [0.5] }
        if let d = value.number { return [Float(d)] }
        guard var text = value.string?.trimmingSpaces else {
            throw .invalidField(format: format, field: path, detail: "expected a string")
        }
        if text.hasPrefix("[") && text.hasSuffix("]") {
            text = String(text.dropFirst().dropLast())
        }
        var out = [Float]()
        for part in text.split(separator: ",") {
            guard let f = Float(String(part).trimmingSpaces), f.isFinite else {
                throw .invalidField(format: format, field: path, detail: "'\(part)' is not a number")
            }
            out.append(f)
        }
        guard !out.isEmpty else { throw .invalidField(format: format, field: path, detail: "empty") }
        return out
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" || c == "\r" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" || c == "\r" { s = s.dropLast() }
        return String(s)
    }
}
