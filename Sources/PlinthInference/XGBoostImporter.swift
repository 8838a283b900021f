// Imports XGBoost models saved as JSON or UBJSON (`Booster.save_model`),
// versions 1.x to 3.x: one reader for both syntaxes (see JSONValue), then a
// walk of learner → gradient_booster → trees. XGBoost's semantics are kept
// exactly: float32 thresholds with `x < t` going left, missing values
// following `default_left`, leaf value in `split_conditions`, float32 sums,
// and base_score converted from the objective's output space into margin
// space. base_score is a scalar string ("5E-1") before 3.1 and an array
// string ("[5E-1]", one value per class or target) from 3.1 on.

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

    private static func field(_ v: JSONValue?, _ path: String, _ format: String) throws(ModelError) -> JSONValue {
        guard let v else { throw .missingField(format: format, field: path) }
        return v
    }

    /// XGBoost stores learner parameters as strings ("32"), older writers sometimes as numbers.
    private static func intParam(_ v: JSONValue?, _ path: String, _ format: String) throws(ModelError) -> Int {
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
        if params["num_target"] != nil {
            let targets = try intParam(params["num_target"], "learner_model_param.num_target", format)
            guard targets <= 1 else {
                throw .unsupported(format: format, feature: "multi-target models (num_target = \(targets))")
            }
        }
        let objectiveName = try field(learner["objective"]?["name"], "learner.objective.name", format).string ?? ""
        let outputCount = max(1, numClass)
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

        let booster = try field(learner["gradient_booster"], "learner.gradient_booster", format)
        let boosterName = booster["name"]?.string ?? "gbtree"
        guard boosterName == "gbtree" else {
            throw .unsupported(format: format, feature: "booster '\(boosterName)' (only gbtree is supported)")
        }
        let model = try field(booster["model"], "gradient_booster.model", format)
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
        var trees = [TreeEnsemble.Tree]()
        trees.reserveCapacity(treeValues.count)
        var outputs = [Int32]()
        outputs.reserveCapacity(treeValues.count)
        for (t, value) in treeValues.enumerated() {
            trees.append(try tree(value, index: t, format: format))
            guard treeInfo[t] >= 0, treeInfo[t] < Int64(outputCount) else {
                throw .badTree(tree: t, detail: "tree_info says class \(treeInfo[t]) but the model has \(outputCount) outputs")
            }
            outputs.append(Int32(treeInfo[t]))
        }
        var names: [String]?
        if case let .array(list) = learner["feature_names"], !list.isEmpty {
            names = list.map { $0.string ?? "" }
        }
        var note: String?
        if let (kept, best) = try wrapperTrees(learner: learner, model: model, outputCount: outputCount,
                                               trees: trees.count, format: format), kept < trees.count {
            note = "using \(kept) of \(trees.count) trees (best_iteration \(best), as XGBoost's scikit-learn wrapper predicts)"
            trees.removeLast(trees.count - kept)
            outputs.removeLast(outputs.count - kept)
        }
        let ensemble = TreeEnsemble(trees: trees, treeOutputs: outputs, outputCount: outputCount,
                                    baseMargins: baseMargins, precision: .float32, averageTrees: false,
                                    transform: transform, featureCount: featureCount)
        return try Model(kind: .trees(ensemble), featureNames: names, note: note)
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
    static func objective(_ name: String, outputCount: Int,
                          format: String) throws(ModelError) -> (OutputTransform, @Sendable (Float) -> Double) {
        let identity: @Sendable (Float) -> Double = { Double($0) }
        // XGBoost computes these in float32.
        let logit: @Sendable (Float) -> Double = { Double(-logf(1.0 / $0 - 1.0)) }
        let log: @Sendable (Float) -> Double = { Double(logf($0)) }
        switch name {
        case "binary:logistic", "reg:logistic":
            return (.sigmoid(scale: 1), logit)
        case "binary:logitraw":
            return (.identity, logit)
        case "reg:squarederror", "reg:linear", "reg:squaredlogerror", "reg:pseudohubererror",
             "reg:absoluteerror", "reg:quantileerror", "rank:pairwise", "rank:ndcg", "rank:map":
            return (.identity, identity)
        case "count:poisson", "reg:gamma", "reg:tweedie":
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

    /// Converts one XGBoost tree (parallel node arrays, children by index,
    /// -1 for none) into the IR, numbering split nodes breadth-first so that
    /// children always follow parents.
    static func tree(_ value: JSONValue, index t: Int, format: String) throws(ModelError) -> TreeEnsemble.Tree {
        func array(_ name: String) throws(ModelError) -> JSONValue {
            guard let v = value[name] else { throw .missingField(format: format, field: "trees[\(t)].\(name)") }
            return v
        }
        func ints(_ name: String) throws(ModelError) -> [Int64] {
            guard let a = try array(name).intArray() else {
                throw .invalidField(format: format, field: "trees[\(t)].\(name)", detail: "expected integers")
            }
            return a
        }
        if let size = value["tree_param"]?["size_leaf_vector"]?.string, let n = Int(size), n > 1 {
            throw .unsupported(format: format, feature: "vector leaves (tree \(t), size_leaf_vector = \(n))")
        }
        let left = try ints("left_children")
        let right = try ints("right_children")
        let splitIndices = try ints("split_indices")
        let defaultLeft = try ints("default_left")
        guard let conditions = try array("split_conditions").floatArray() else {
            throw .invalidField(format: format, field: "trees[\(t)].split_conditions", detail: "expected numbers")
        }
        let count = left.count
        guard count >= 1 else { throw .badTree(tree: t, detail: "has no nodes") }
        for (name, n) in [("right_children", right.count), ("split_indices", splitIndices.count),
                          ("split_conditions", conditions.count), ("default_left", defaultLeft.count)] where n != count {
            throw .badTree(tree: t, detail: "\(name) has \(n) entries but left_children has \(count)")
        }
        if let declared = value["tree_param"]?["num_nodes"]?.string, let n = Int(declared), n != count {
            throw .badTree(tree: t, detail: "tree_param.num_nodes is \(n) but the node arrays hold \(count)")
        }
        if let types = value["split_type"]?.intArray(), let n = types.firstIndex(where: { $0 != 0 }) {
            throw .unsupported(format: format, feature: "categorical split (tree \(t), node \(n))")
        }

        // Breadth-first renumbering; `visited` catches cycles and shared children.
        var visited = [Bool](repeating: false, count: count)
        var nodes = [TreeEnsemble.Node]()
        var leaves = [Double]()
        var queue = [(source: Int, parent: Int, isLeft: Bool)]()
        queue.reserveCapacity(count)
        queue.append((0, -1, false))
        var head = 0
        while head < queue.count {
            let (i, parent, isLeft) = queue[head]
            head += 1
            guard i >= 0, i < count else { throw .badTree(tree: t, detail: "child index \(i) is out of range 0..<\(count)") }
            guard !visited[i] else { throw .badTree(tree: t, detail: "node \(i) is reached twice (cycle or shared child)") }
            visited[i] = true
            let ref: Int32
            if left[i] == -1 {
                ref = ~Int32(leaves.count)
                leaves.append(Double(conditions[i]))
            } else {
                guard right[i] != -1 else { throw .badTree(tree: t, detail: "node \(i) has a left child but no right child") }
                let feature = splitIndices[i]
                guard feature >= 0, feature <= Int64(Int32.max) else {
                    throw .featureOutOfRange(tree: t, node: i, feature: Int(feature), featureCount: 0)
                }
                ref = Int32(nodes.count)
                nodes.append(TreeEnsemble.Node(feature: Int32(feature), threshold: conditions[i], left: 0, right: 0,
                                               defaultLeft: defaultLeft[i] != 0))
                guard left[i] >= 0, left[i] < Int64(count), right[i] >= 0, right[i] < Int64(count) else {
                    throw .badTree(tree: t, detail: "node \(i) has children \(left[i]), \(right[i]) outside 0..<\(count)")
                }
                queue.append((Int(left[i]), Int(ref), true))
                queue.append((Int(right[i]), Int(ref), false))
            }
            if parent >= 0 {
                if isLeft { nodes[parent].left = ref } else { nodes[parent].right = ref }
            }
        }
        return TreeEnsemble.Tree(nodes: nodes, leaves: leaves)
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
