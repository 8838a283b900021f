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
// score; sums are float64, as LightGBM's. Inputs with |x| ≤ 1e-35 are read
// as 0 (`TreeEnsemble.tinyInputsAreZero`), as LightGBM's dense-row
// conversion drops them. Linear trees (`linear_tree`) keep each leaf's
// model. A model trained on pandas `category` columns carries their
// category lists on its last line (`pandas_categorical:`); they become the
// model's `categoryMaps`, so inputs are given as the original categories.

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
                                    featureCount: featureCount, tinyInputsAreZero: true)
        let maps = try categoryMaps(trailer: lines.dropFirst(), header: header, featureCount: featureCount)
        return try Model(kind: .trees(ensemble), featureNames: names, categoryMaps: maps)
    }

    /// The category maps of a model trained on pandas `category` columns.
    ///
    /// lightgbm's Python package (basic.py, `_data_from_pandas`) takes every
    /// `category` column of the DataFrame, in column order, replaces its
    /// values by `cat.codes` (unknown and missing values: -1, then NaN), and
    /// appends the columns' category lists to the model file as
    /// `pandas_categorical:[[...], ...]`, one list per column in that order.
    /// The file does not say which columns those were. With
    /// `categorical_feature="auto"` (the default) they are exactly the
    /// model's categorical features, so the lists are matched to those in
    /// feature order. When the counts differ (an ordered category column,
    /// which LightGBM splits as a number; `categorical_feature` given
    /// explicitly), the file cannot tell which feature a list belongs to,
    /// and the model is refused rather than scored on guessed codes.
    static func categoryMaps(trailer: ArraySlice<Substring>, header: [Substring: Substring],
                             featureCount: Int) throws(ModelError) -> [Int: CategoryMap] {
        let key = "pandas_categorical:"
        // lightgbm reads the file's last line that has the key (its reader
        // looks at the last two lines; the key is written last).
        guard let line = trailer.last(where: { $0.trimmingCharacters().hasPrefix(key) }) else { return [:] }
        let json = line.trimmingCharacters().dropFirst(key.count)
        let value = try JSONReader.parse(Array(json.utf8), format: "\(format) pandas_categorical")
        let lists: [JSONValue]
        switch value {
        case .null: return [:]
        case let .array(items): lists = items
        default:
            throw .invalidField(format: format, field: "pandas_categorical", detail: "a \(value.typeName), expected a list of lists")
        }
        if lists.isEmpty { return [:] }
        let categorical = categoricalFeatures(header: header, featureCount: featureCount)
        guard categorical.count == lists.count else {
            throw .unsupported(format: format, feature: "pandas_categorical with \(lists.count) category column\(lists.count == 1 ? "" : "s") for \(categorical.count) categorical feature\(categorical.count == 1 ? "" : "s"): the file does not record which columns were pandas categories (an ordered category column, or categorical_feature given explicitly, makes the counts differ); retrain with categorical_feature='auto' and unordered categories, or give the codes yourself with a model saved from a numpy array")
        }
        var maps = [Int: CategoryMap]()
        for (i, list) in lists.enumerated() {
            let feature = categorical[i]
            guard case let .array(items) = list else {
                throw .invalidField(format: format, field: "pandas_categorical[\(i)]", detail: "a \(list.typeName), expected a list")
            }
            var numbers = [Double](), strings = [String]()
            for item in items {
                switch item {
                case let .int(v): numbers.append(Double(v))
                case let .double(v): numbers.append(v)
                case let .string(v): strings.append(v)
                default:
                    throw .unsupported(format: format, feature: "pandas_categorical[\(i)] holds a \(item.typeName) category; Plinth maps number and string categories")
                }
            }
            guard numbers.isEmpty || strings.isEmpty else {
                throw .unsupported(format: format, feature: "pandas_categorical[\(i)] mixes numbers and strings; Plinth maps a column whose categories are all numbers or all strings")
            }
            do throws(ModelError) {
                maps[feature] = try CategoryMap(strings.isEmpty ? .numbers(numbers) : .strings(strings))
            } catch {
                throw .invalidField(format: format, field: "pandas_categorical[\(i)]", detail: "\(error)")
            }
        }
        return maps
    }

    /// The model's categorical features, in feature order: those whose
    /// `feature_infos` entry is a category list (a numerical one is
    /// `[min:max]`, an unused one `none`).
    static func categoricalFeatures(header: [Substring: Substring], featureCount: Int) -> [Int] {
        if let infos = header["feature_infos"] {
            let parts = infos.split(separator: " ")
            if parts.count == featureCount {
                return parts.indices.filter { !parts[$0].hasPrefix("[") && parts[$0] != "none" }
            }
        }
        return []
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
        // Each case is the objective's ConvertOutput in LightGBM 4.7
        // (src/objective/*.hpp), checked against its predict.
        switch name {
        case "binary", "multiclassova", "multiclass_ova", "ova", "ovr":
            guard let sigmoid = Double(params["sigmoid"] ?? "1"), sigmoid.isFinite else {
                throw .invalidField(format: format, field: "objective", detail: "'\(line)' has a sigmoid that is not a number")
            }
            return .sigmoid(scale: sigmoid)
        case "cross_entropy", "xentropy":
            return .sigmoid(scale: 1)
        case "cross_entropy_lambda", "xentlambda":
            return .softplus
        case "multiclass", "softmax":
            guard outputCount >= 2 else {
                throw .invalidField(format: format, field: "objective", detail: "multiclass with \(outputCount) trees per iteration")
            }
            return .softmax
        case "regression", "regression_l2", "l2", "mean_squared_error", "mse", "l2_root", "root_mean_squared_error",
             "rmse", "regression_l1", "l1", "mean_absolute_error", "mae", "huber", "fair", "quantile", "mape",
             "mean_absolute_percentage_error":
            // These share RegressionL2loss::ConvertOutput: with `sqrt` (reg_sqrt,
            // the model fits sqrt of the label) the output is Sign(x)·x·x.
            // Huber drops reg_sqrt at training, so its files never say sqrt.
            return params["sqrt"] != nil ? .signedSquare : .identity
        case "lambdarank", "rank_xendcg", "xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart":
            return .identity
        case "", "custom", "none":
            // A custom objective (a Python callable, objective="none") saves
            // no objective line, and LightGBM predicts the raw score.
            return .identity
        case "poisson", "gamma", "tweedie":
            // Their ConvertOutput is exp whatever `sqrt` says; LightGBM drops
            // reg_sqrt for them at training.
            return .exp
        default:
            throw .unsupported(format: format, feature: "objective '\(line)' (Plinth knows LightGBM 4.7's objectives; this one's output transform is unknown, so its probabilities cannot be matched)")
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
        let leaves = try numbers(fields, "leaf_value", tree: t, count: leafCount) { Double($0) }
        var linear: [TreeEnsemble.LinearLeaf]?
        if let flag = fields["is_linear"], flag.trimmingCharacters() != "0" {
            linear = try linearLeaves(fields, tree: t, leafCount: leafCount, featureCount: featureCount)
        }
        if leafCount == 1 { return TreeEnsemble.Tree(nodes: [], leaves: leaves, linearLeaves: linear) }
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
        return TreeEnsemble.Tree(nodes: nodes, leaves: leaves, categorySets: sets, linearLeaves: linear)
    }

    /// A linear tree's leaf models (`Tree::ToString` with is_linear=1):
    /// `leaf_const` and `num_features` per leaf, then `leaf_features` and
    /// `leaf_coeff`, each leaf's list written after the previous one's
    /// (a leaf with no features writes nothing), all space-separated.
    static func linearLeaves(_ fields: [Substring: Substring], tree t: Int, leafCount: Int,
                             featureCount: Int) throws(ModelError) -> [TreeEnsemble.LinearLeaf] {
        let constants = try numbers(fields, "leaf_const", tree: t, count: leafCount) { Double($0) }
        let counts = try numbers(fields, "num_features", tree: t, count: leafCount) { Int($0) }
        var terms = 0
        for (l, c) in counts.enumerated() {
            guard c >= 0, c <= featureCount else {
                throw .invalidField(format: format, field: "Tree=\(t).num_features", detail: "leaf \(l) has \(c) features of \(featureCount)")
            }
            terms += c
        }
        let features = try numbers(fields, "leaf_features", tree: t, count: terms) { Int32($0) }
        let coefficients = try numbers(fields, "leaf_coeff", tree: t, count: terms) { Double($0) }
        var out = [TreeEnsemble.LinearLeaf]()
        out.reserveCapacity(leafCount)
        var start = 0
        for l in 0..<leafCount {
            let end = start + counts[l]
            out.append(TreeEnsemble.LinearLeaf(constant: constants[l], features: Array(features[start..<end]),
                                               coefficients: Array(coefficients[start..<end])))
            start = end
        }
        return out
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
