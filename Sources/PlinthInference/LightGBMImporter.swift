// Imports LightGBM text models (`Booster.save_model`, format v4). LightGBM
// compares `value <= threshold` on doubles; Plinth compares `value < t` on
// float32. For a float32 input the two agree exactly when `t` is the float
// just above the largest float not exceeding the double threshold, so the
// conversion is done once here and the kernels share XGBoost's comparison.
// Missing-value rules are translated per node: missing type None treats NaN
// as 0 (so its direction is fixed by `0 <= threshold`), Zero sends NaN and
// |x| ≤ 1e-35 the default way, NaN sends NaN the default way. Categorical
// splits keep LightGBM's bitsets. Leaf values already include shrinkage and
// the first tree holds the average (boost_from_average), so there is no base
// score; sums are float64, as LightGBM's.

public enum LightGBMImporter {
    static let format = "LightGBM"
    static let maxLeaves = 1 << 24
    static let maxTrees = 1_000_000

    /// Loads a LightGBM text model.
    public static func load(text data: [UInt8]) throws(ModelError) -> Model {
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })[...]
        guard let first = lines.first, first.trimmingCharacters() == "tree" else {
            throw .malformed(format: format, detail: "the file does not start with 'tree'")
        }
        lines = lines.dropFirst()

        // Header: key=value lines (and bare flags such as average_output) up to the first tree.
        var header = [Substring: Substring]()
        while let line = lines.first, !line.hasPrefix("Tree=") {
            lines = lines.dropFirst()
            if line.hasPrefix("end of trees") { break }
            if let eq = line.firstIndex(of: "=") {
                header[line[..<eq]] = line[line.index(after: eq)...]
            } else if !line.isEmpty {
                header[line] = ""
            }
        }
        func headerInt(_ key: Substring) throws(ModelError) -> Int {
            guard let v = header[key] else { throw .missingField(format: format, field: String(key)) }
            guard let i = Int(v.trimmingCharacters()) else {
                throw .invalidField(format: format, field: String(key), detail: "'\(v)' is not an integer")
            }
            return i
        }
        let featureCount = try headerInt("max_feature_idx") + 1
        guard featureCount >= 1, featureCount <= maxFeatureCount else {
            throw .invalidField(format: format, field: "max_feature_idx", detail: "\(featureCount - 1) is out of range")
        }
        let classCount = try headerInt("num_class")
        let perIteration = header["num_tree_per_iteration"] == nil ? classCount : try headerInt("num_tree_per_iteration")
        guard perIteration >= 1, perIteration <= 100_000, classCount >= 1 else {
            throw .invalidField(format: format, field: "num_tree_per_iteration",
                                detail: "\(perIteration) trees per iteration for \(classCount) classes")
        }
        let outputCount = perIteration
        let transform = try objective(header["objective"].map(String.init) ?? "", outputCount: outputCount)

        var trees = [TreeEnsemble.Tree]()
        var outputs = [Int32]()
        while let line = lines.first, line.hasPrefix("Tree=") {
            lines = lines.dropFirst()
            var fields = [Substring: Substring]()
            while let l = lines.first, !l.hasPrefix("Tree="), !l.hasPrefix("end of trees") {
                lines = lines.dropFirst()
                if let eq = l.firstIndex(of: "=") { fields[l[..<eq]] = l[l.index(after: eq)...] }
            }
            let t = trees.count
            guard t < maxTrees else { throw .tooLarge(what: "tree count", count: t + 1, limit: maxTrees) }
            trees.append(try tree(fields, index: t, featureCount: featureCount))
            outputs.append(Int32(t % perIteration))
        }
        guard let end = lines.first, end.hasPrefix("end of trees") else {
            throw .malformed(format: format, detail: "'end of trees' not found after tree \(trees.count - 1): the file is truncated or corrupt")
        }
        guard !trees.isEmpty else { throw .malformed(format: format, detail: "the model has no trees") }
        if let declared = header["tree_sizes"] {
            let n = declared.split(separator: " ").count
            guard n == trees.count else {
                throw .malformed(format: format, detail: "tree_sizes lists \(n) trees but the file holds \(trees.count)")
            }
        }
        let names = header["feature_names"].map { $0.split(separator: " ").map(String.init) }
            .flatMap { $0.count == featureCount ? $0 : nil }
        let ensemble = TreeEnsemble(trees: trees, treeOutputs: outputs, outputCount: outputCount,
                                    baseMargins: [Double](repeating: 0, count: outputCount), precision: .float64,
                                    averageTrees: header["average_output"] != nil, transform: transform,
                                    featureCount: featureCount)
        return try Model(kind: .trees(ensemble), featureNames: names)
    }

    /// Maps LightGBM's `objective=` line (name, then `key:value` parameters) to a transform.
    static func objective(_ line: String, outputCount: Int) throws(ModelError) -> OutputTransform {
        let parts = line.split(separator: " ")
        let name = parts.first.map(String.init) ?? ""
        var params = [String: String]()
        for p in parts.dropFirst() {
            let kv = p.split(separator: ":", maxSplits: 1)
            params[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
        }
        let sigmoid = Double(params["sigmoid"] ?? "1") ?? 1
        switch name {
        case "binary", "multiclassova", "multiclass_ova", "ova", "ovr":
            return .sigmoid(scale: sigmoid)
        case "cross_entropy", "xentropy":
            return .sigmoid(scale: 1)
        case "multiclass", "softmax":
            guard outputCount >= 2 else {
                throw .invalidField(format: format, field: "objective", detail: "multiclass with \(outputCount) trees per iteration")
            }
            return .softmax
        case "regression", "regression_l2", "l2", "regression_l1", "l1", "huber", "fair", "quantile", "mape",
             "lambdarank", "rank_xendcg", "":
            if params["sqrt"] != nil {
                throw .unsupported(format: format, feature: "objective '\(line)' (sqrt-transformed regression)")
            }
            return .identity
        case "poisson", "gamma", "tweedie":
            return .exp
        default:
            throw .unsupported(format: format, feature: "objective '\(line)'")
        }
    }

    private static func numbers<T>(_ fields: [Substring: Substring], _ key: Substring, tree t: Int, count: Int,
                                   _ parse: (Substring) -> T?) throws(ModelError) -> [T] {
        guard let text = fields[key] else { throw .missingField(format: format, field: "Tree=\(t).\(key)") }
        var out = [T]()
        // Each value takes at least two characters, so the text bounds the
        // reservation even when a corrupt header claims a huge count.
        out.reserveCapacity(min(count, text.utf8.count / 2 + 1))
        for part in text.split(separator: " ") {
            guard let v = parse(part) else {
                throw .invalidField(format: format, field: "Tree=\(t).\(key)", detail: "'\(part)' is not a number")
            }
            out.append(v)
        }
        guard out.count == count else {
            throw .invalidField(format: format, field: "Tree=\(t).\(key)", detail: "\(out.count) values, expected \(count)")
        }
        return out
    }

    static func tree(_ fields: [Substring: Substring], index t: Int,
                     featureCount: Int) throws(ModelError) -> TreeEnsemble.Tree {
        guard let leavesText = fields["num_leaves"], let leafCount = Int(leavesText) else {
            throw .missingField(format: format, field: "Tree=\(t).num_leaves")
        }
        guard leafCount >= 1, leafCount <= maxLeaves else {
            throw .invalidField(format: format, field: "Tree=\(t).num_leaves", detail: "\(leafCount) is not in 1...\(maxLeaves)")
        }
        if let linear = fields["is_linear"], linear != "0" {
            throw .unsupported(format: format, feature: "linear trees (Tree=\(t) has is_linear=1)")
        }
        let leaves = try numbers(fields, "leaf_value", tree: t, count: leafCount) { Double($0) }
        if leafCount == 1 { return TreeEnsemble.Tree(nodes: [], leaves: leaves) }
        let n = leafCount - 1
        let features = try numbers(fields, "split_feature", tree: t, count: n) { Int32($0) }
        let thresholds = try numbers(fields, "threshold", tree: t, count: n) { Double($0) }
        let decisions = try numbers(fields, "decision_type", tree: t, count: n) { Int($0) }
        let lefts = try numbers(fields, "left_child", tree: t, count: n) { Int32($0) }
        let rights = try numbers(fields, "right_child", tree: t, count: n) { Int32($0) }
        let catCount = Int(fields["num_cat"] ?? "0") ?? -1
        guard catCount >= 0, catCount <= n else {
            throw .invalidField(format: format, field: "Tree=\(t).num_cat", detail: "'\(fields["num_cat"] ?? "")'")
        }
        var sets = [[UInt32]]()
        if catCount > 0 {
            let bounds = try numbers(fields, "cat_boundaries", tree: t, count: catCount + 1) { Int($0) }
            guard let text = fields["cat_threshold"] else {
                throw .missingField(format: format, field: "Tree=\(t).cat_threshold")
            }
            let words = text.split(separator: " ").compactMap { UInt32($0) }
            for c in 0..<catCount {
                guard bounds[c] >= 0, bounds[c] <= bounds[c + 1], bounds[c + 1] <= words.count else {
                    throw .invalidField(format: format, field: "Tree=\(t).cat_boundaries",
                                        detail: "set \(c) spans \(bounds[c])..<\(bounds[c + 1]) of \(words.count) words")
                }
                sets.append(Array(words[bounds[c]..<bounds[c + 1]]))
            }
        }
        var nodes = [TreeEnsemble.Node]()
        nodes.reserveCapacity(n)
        for i in 0..<n {
            let d = decisions[i]
            let defaultLeft = d & 2 != 0
            let missingType = (d >> 2) & 3
            var node = TreeEnsemble.Node(feature: features[i], threshold: TreeEnsemble.strictThreshold(thresholds[i]),
                                         left: lefts[i], right: rights[i], defaultLeft: defaultLeft)
            if d & 1 != 0 {
                guard let set = Int32(exactly: thresholds[i]), set >= 0, Int(set) < sets.count else {
                    throw .invalidField(format: format, field: "Tree=\(t).threshold",
                                        detail: "node \(i) names category set \(thresholds[i]) of \(sets.count)")
                }
                node.categorySet = set
                node.threshold = 0
                // LightGBM sends NaN right at a categorical split, whatever
                // the default-left bit says.
                node.defaultLeft = false
            } else {
                switch missingType {
                case 0: node.defaultLeft = 0 <= thresholds[i]  // NaN is scored as 0
                case 1: node.zeroIsMissing = true
                case 2: break
                default:
                    throw .invalidField(format: format, field: "Tree=\(t).decision_type",
                                        detail: "node \(i) has unknown missing type \(missingType)")
                }
            }
            nodes.append(node)
        }
        return TreeEnsemble.Tree(nodes: nodes, leaves: leaves, categorySets: sets)
    }
}

extension Substring {
    func trimmingCharacters() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" || c == "\r" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s = s.dropLast() }
        return s
    }
}
