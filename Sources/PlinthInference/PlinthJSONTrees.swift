// The `"plinth_model": "trees"` kind of Plinth JSON: tree ensembles written
// by `plinth.export.from_sklearn` (random forests, extra trees, gradient
// boosting, histogram gradient boosting), documented in docs/inference.md.
//
// The document states each split as scikit-learn evaluates it: a present
// value goes left when `Double(x) <= threshold`, a missing one the way
// `missing_left` says; a categorical split sends the categories in its set
// left and everything else (other categories, negative values, NaN) right.
// This file turns that into the IR exactly (`TreeEnsemble.strictThreshold`)
// and checks every size against the split count, so a hand-edited or
// truncated document fails with the field to fix rather than scoring wrong.

extension PlinthJSONImporter {
    /// The most outputs a tree document may declare (a classifier's classes).
    static let maxOutputs = 1 << 16

    static func trees(_ doc: JSONValue, featureCount: Int, names: [String]?) throws(ModelError) -> Model {
        let outputCount: Int
        if let v = doc["n_outputs"] {
            guard let n = v.number, let k = Int(exactly: n), k >= 1, k <= maxOutputs else {
                throw .invalidField(format: format, field: "n_outputs", detail: "expected an integer in 1...\(maxOutputs)")
            }
            outputCount = k
        } else {
            outputCount = 1
        }
        var baseMargins = [Double](repeating: 0, count: outputCount)
        if let v = doc["base_margins"] {
            guard let margins = v.doubleArray(), margins.count == outputCount else {
                throw .invalidField(format: format, field: "base_margins",
                                    detail: "expected \(outputCount) numbers, one per output")
            }
            baseMargins = margins
        }
        let average: Bool
        switch doc["average"] {
        case nil, .bool(false)?: average = false
        case .bool(true)?: average = true
        case let other?: throw .invalidField(format: format, field: "average", detail: "expected true or false, found \(other.typeName)")
        }
        guard case let .array(treeValues)? = doc["trees"], !treeValues.isEmpty else {
            throw .invalidField(format: format, field: "trees", detail: "expected a non-empty array of trees")
        }
        var trees = [TreeEnsemble.Tree]()
        var outputs = [Int32]()
        trees.reserveCapacity(treeValues.count)
        outputs.reserveCapacity(treeValues.count)
        for (t, value) in treeValues.enumerated() {
            let (tree, output) = try self.tree(value, index: t, outputCount: outputCount)
            trees.append(tree)
            outputs.append(output)
        }
        let ensemble = TreeEnsemble(trees: trees, treeOutputs: outputs, outputCount: outputCount,
                                    baseMargins: baseMargins, precision: .float64, averageTrees: average,
                                    transform: try outputTransform(doc), featureCount: featureCount)
        let maps = try categoryMaps(doc["categories"], featureCount: featureCount)
        return try Model(kind: .trees(ensemble), featureNames: names, categoryMaps: maps)
    }

    /// One tree: split arrays of equal length, `leaf_value` one longer (or a
    /// single leaf and no splits), children as in the IR (`~leaf` when negative).
    private static func tree(_ value: JSONValue, index t: Int,
                             outputCount: Int) throws(ModelError) -> (TreeEnsemble.Tree, Int32) {
        let field = "trees[\(t)]"
        guard case .object = value else {
            throw .invalidField(format: format, field: field, detail: "expected an object, found \(value.typeName)")
        }
        var output: Int32 = 0
        if let v = value["output"] {
            guard let n = v.number, let o = Int32(exactly: n), o >= 0, Int(o) < outputCount else {
                throw .invalidField(format: format, field: "\(field).output",
                                    detail: "expected an output index in 0..<\(outputCount)")
            }
            output = o
        }
        guard let leaves = value["leaf_value"]?.doubleArray(), !leaves.isEmpty else {
            throw .invalidField(format: format, field: "\(field).leaf_value", detail: "expected a non-empty array of numbers")
        }
        let splitCount = leaves.count - 1
        func ints(_ key: String, required: Bool = true) throws(ModelError) -> [Int64]? {
            guard let v = value[key] else {
                if required && splitCount > 0 { throw .missingField(format: format, field: "\(field).\(key)") }
                return nil
            }
            guard let list = v.intArray() else {
                throw .invalidField(format: format, field: "\(field).\(key)", detail: "expected an array of integers")
            }
            guard list.count == splitCount else {
                throw .invalidField(format: format, field: "\(field).\(key)",
                                    detail: "\(list.count) values for \(splitCount) splits (one fewer than leaf_value's \(leaves.count))")
            }
            return list
        }
        let features = try ints("split_feature") ?? []
        let lefts = try ints("left") ?? []
        let rights = try ints("right") ?? []
        let missingLeft = try ints("missing_left", required: false) ?? [Int64](repeating: 0, count: splitCount)
        let setIndices = try ints("category_set", required: false) ?? [Int64](repeating: -1, count: splitCount)
        var thresholds = [Double](repeating: 0, count: splitCount)
        if splitCount > 0 {
            guard let v = value["threshold"] else { throw .missingField(format: format, field: "\(field).threshold") }
            guard let list = v.doubleArray(), list.count == splitCount else {
                throw .invalidField(format: format, field: "\(field).threshold",
                                    detail: "expected \(splitCount) numbers, one per split")
            }
            thresholds = list
        }
        var sets = try categorySets(value["category_sets"], field: "\(field).category_sets")
        /// The empty set that stands for "every present value goes right"
        /// (see the +inf case below), added once per tree when needed.
        var allRight: Int32?
        let documentSets = sets.count

        var nodes = [TreeEnsemble.Node]()
        nodes.reserveCapacity(splitCount)
        for i in 0..<splitCount {
            // Out-of-range children and features are left to `validate`,
            // which names the tree and node; here only what cannot even be
            // stored in the IR's 32-bit fields is refused.
            guard let feature = Int32(exactly: features[i]), let left = Int32(exactly: lefts[i]),
                  let right = Int32(exactly: rights[i]), let set = Int32(exactly: setIndices[i]) else {
                throw .invalidField(format: format, field: field, detail: "split \(i) has an index outside 32 bits")
            }
            var node = TreeEnsemble.Node(feature: feature, threshold: 0, left: left, right: right,
                                         defaultLeft: missingLeft[i] != 0)
            if set >= 0 {
                guard Int(set) < documentSets else {
                    throw .invalidField(format: format, field: "\(field).category_set",
                                        detail: "split \(i) names set \(set) but the tree has \(documentSets)")
                }
                // The IR sends NaN right at a categorical split; a document
                // asking otherwise would be scored wrong, so it is refused
                // (the exporter swaps children instead, see export.py).
                guard !node.defaultLeft else {
                    throw .invalidField(format: format, field: "\(field).missing_left",
                                        detail: "split \(i) is categorical: missing values must go right (false)")
                }
                node.categorySet = set
            } else {
                let threshold = thresholds[i]
                guard !threshold.isNaN else {
                    throw .invalidField(format: format, field: "\(field).threshold", detail: "split \(i) is NaN")
                }
                if threshold == .infinity {
                    // `x <= +inf` holds for every present value, +inf
                    // included, and no float32 `t` has `+inf < t`. A
                    // categorical split on the empty set sends every present
                    // value right and NaN its default way, so with the
                    // children swapped and the missing side flipped it is
                    // this split exactly. (A threshold of -inf would say the
                    // same but keep the whole model off the perfect layout,
                    // which cannot express `x < -inf` with NaN going left.)
                    let empty: Int32
                    if let allRight { empty = allRight } else {
                        empty = Int32(sets.count)
                        sets.append([])
                        allRight = empty
                    }
                    node.categorySet = empty
                    node.left = right
                    node.right = left
                    node.defaultLeft.toggle()
                } else {
                    node.threshold = TreeEnsemble.strictThreshold(threshold)
                }
            }
            nodes.append(node)
        }
        return (TreeEnsemble.Tree(nodes: nodes, leaves: leaves, categorySets: sets), output)
    }

    /// Bitsets as arrays of 32-bit words: bit `c % 32` of word `c / 32` set
    /// when category `c` goes left.
    private static func categorySets(_ value: JSONValue?, field: String) throws(ModelError) -> [[UInt32]] {
        guard let value else { return [] }
        guard case let .array(list) = value else {
            throw .invalidField(format: format, field: field, detail: "expected an array of arrays of 32-bit words")
        }
        var sets = [[UInt32]]()
        for (s, words) in list.enumerated() {
            guard let ints = words.intArray() else {
                throw .invalidField(format: format, field: "\(field)[\(s)]", detail: "expected an array of integers")
            }
            var set = [UInt32]()
            for w in ints {
                guard let word = UInt32(exactly: w) else {
                    throw .invalidField(format: format, field: "\(field)[\(s)]", detail: "\(w) is not a 32-bit word")
                }
                set.append(word)
            }
            sets.append(set)
        }
        return sets
    }

    /// `categories`: per categorical feature trained on original values
    /// (pandas categories, or numbers scikit-learn encoded itself), the list
    /// whose positions are the codes the trees split on.
    private static func categoryMaps(_ value: JSONValue?, featureCount: Int) throws(ModelError) -> [Int: CategoryMap] {
        guard let value else { return [:] }
        guard case let .array(list) = value else {
            throw .invalidField(format: format, field: "categories", detail: "expected an array of {feature, values} objects")
        }
        var maps = [Int: CategoryMap]()
        for (i, entry) in list.enumerated() {
            let field = "categories[\(i)]"
            guard let n = entry["feature"]?.number, let feature = Int(exactly: n), feature >= 0, feature < featureCount else {
                throw .invalidField(format: format, field: "\(field).feature",
                                    detail: "expected a feature index in 0..<\(featureCount)")
            }
            guard maps[feature] == nil else {
                throw .invalidField(format: format, field: "\(field).feature", detail: "feature \(feature) is listed twice")
            }
            guard let values = entry["values"], let count = values.count else {
                throw .invalidField(format: format, field: "\(field).values", detail: "expected an array")
            }
            let strings: [String]? = {
                guard case let .array(items) = values else { return count == 0 ? [] : nil }
                var out = [String]()
                for item in items {
                    guard let s = item.string else { return nil }
                    out.append(s)
                }
                return out
            }()
            let list: CategoryMap.Values
            if let strings {
                list = .strings(strings)
            } else if let numbers = values.doubleArray() {
                list = .numbers(numbers)
            } else {
                throw .invalidField(format: format, field: "\(field).values",
                                    detail: "expected all strings or all numbers (one pandas dtype per column)")
            }
            do {
                maps[feature] = try CategoryMap(list)
            } catch {
                throw .invalidField(format: format, field: "\(field).values", detail: error.description)
            }
        }
        return maps
    }
}
