// The parts of an XGBoost model below the learner: one tree's parallel node
// arrays (numerical and categorical splits, scalar and vector leaves), the
// training categories XGBoost 3.1+ records (`cats`), and the gblinear
// booster. Each follows XGBoost 3.2's predictor exactly; see the notes on
// each function for the rule it copies.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension XGBoostImporter {
    /// Categories past this are not categories to XGBoost (`OutOfRangeCat`,
    /// 2^24); it also bounds a category set's bitset at 2 MiB.
    static let maxCategory = 1 << 24

    /// Converts one XGBoost tree (parallel node arrays, children by index,
    /// -1 for none) into the IR, numbering split nodes breadth-first so that
    /// children always follow parents.
    ///
    /// - Parameters:
    ///   - leaf: what a leaf value becomes: itself, or for DART what its
    ///     predict adds for it (`dartLeaf`), so the float32 sum stays exact.
    ///   - outputCount: the model's outputs; a vector-leaf tree must have one
    ///     leaf value per output.
    /// - Returns: one tree, or for a vector-leaf tree (`size_leaf_vector`
    ///   > 1) one tree per target, in target order, sharing the splits.
    static func tree(_ value: JSONValue, index t: Int, leaf: (Float) -> Float, outputCount: Int,
                     format: String) throws(ModelError) -> [TreeEnsemble.Tree] {
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
        var leafSize = 1
        if let size = value["tree_param"]?["size_leaf_vector"] {
            leafSize = max(1, try intParam(size, "trees[\(t)].tree_param.size_leaf_vector", format))
        }
        guard leafSize == 1 || leafSize == outputCount else {
            throw .badTree(tree: t, detail: "has \(leafSize) values a leaf but the model has \(outputCount) outputs")
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
        let sets = try categorySets(value, index: t, nodeCount: count, format: format)
        let vectorLeaves = leafSize > 1 ? try leafVectors(value, index: t, left: left, right: right, size: leafSize, format: format) : nil

        // Breadth-first renumbering; `visited` catches cycles and shared children.
        var visited = [Bool](repeating: false, count: count)
        var nodes = [TreeEnsemble.Node]()
        var categorySets = [[UInt32]]()
        var leafNodes = [Int]()
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
                ref = ~Int32(leafNodes.count)
                leafNodes.append(i)
            } else {
                guard right[i] != -1 else { throw .badTree(tree: t, detail: "node \(i) has a left child but no right child") }
                let feature = splitIndices[i]
                guard feature >= 0, feature <= Int64(Int32.max) else {
                    throw .featureOutOfRange(tree: t, node: i, feature: Int(feature), featureCount: 0)
                }
                guard left[i] >= 0, left[i] < Int64(count), right[i] >= 0, right[i] < Int64(count) else {
                    throw .badTree(tree: t, detail: "node \(i) has children \(left[i]), \(right[i]) outside 0..<\(count)")
                }
                ref = Int32(nodes.count)
                var first = Int(left[i]), second = Int(right[i])
                if let set = sets[i] {
                    // XGBoost sends a category in the set RIGHT (`Decision`
                    // returns "left" for the others, negative and
                    // out-of-range values included); the IR sends the set
                    // LEFT and the rest right. So the children swap, and with
                    // them the side a missing value takes.
                    nodes.append(TreeEnsemble.Node(feature: Int32(feature), threshold: 0, left: 0, right: 0,
                                                   defaultLeft: defaultLeft[i] == 0,
                                                   categorySet: Int32(categorySets.count)))
                    categorySets.append(set)
                    swap(&first, &second)
                } else {
                    nodes.append(TreeEnsemble.Node(feature: Int32(feature), threshold: conditions[i], left: 0, right: 0,
                                                   defaultLeft: defaultLeft[i] != 0))
                }
                queue.append((first, Int(ref), true))
                queue.append((second, Int(ref), false))
            }
            if parent >= 0 {
                if isLeft { nodes[parent].left = ref } else { nodes[parent].right = ref }
            }
        }
        func scaled(_ value: Float) -> Double { Double(leaf(value)) }
        guard let vectorLeaves else {
            return [TreeEnsemble.Tree(nodes: nodes, leaves: leafNodes.map { scaled(conditions[$0]) },
                                      categorySets: categorySets)]
        }
        return (0..<leafSize).map { target in
            TreeEnsemble.Tree(nodes: nodes, leaves: leafNodes.map { scaled(vectorLeaves[$0 * leafSize + target]) },
                              categorySets: categorySets)
        }
    }

    /// The leaf vectors of a vector-leaf tree, `size` values per node, by
    /// node index. XGBoost 3.x stores them in `leaf_weights`, one vector per
    /// leaf, the leaf's number in its `right_children` entry; 2.x kept every
    /// node's vector in `base_weights`.
    private static func leafVectors(_ value: JSONValue, index t: Int, left: [Int64], right: [Int64], size: Int,
                                    format: String) throws(ModelError) -> [Float] {
        let count = right.count
        if let stored = value["leaf_weights"] {
            guard let weights = stored.floatArray() else {
                throw .invalidField(format: format, field: "trees[\(t)].leaf_weights", detail: "expected numbers")
            }
            var byNode = [Float](repeating: 0, count: count * size)
            for i in 0..<count where left[i] == -1 {
                let leaf = right[i]
                guard leaf >= 0, (leaf + 1) * Int64(size) <= Int64(weights.count) else {
                    throw .badTree(tree: t, detail: "leaf node \(i) names leaf vector \(leaf) of \(weights.count / size)")
                }
                for k in 0..<size { byNode[i * size + k] = weights[Int(leaf) * size + k] }
            }
            return byNode
        }
        guard let weights = value["base_weights"]?.floatArray(), weights.count == count * size else {
            throw .invalidField(format: format, field: "trees[\(t)].leaf_weights",
                                detail: "a tree with \(size)-value leaves needs leaf_weights or \(count * size) base_weights")
        }
        return weights
    }

    /// Per node, the bitset of its categorical split (bit c of word c/32 for
    /// each category c in the set), or nil for a numerical split. XGBoost
    /// lists a node's categories in `categories`, at `categories_segments`
    /// for `categories_sizes` entries, for the nodes in `categories_nodes`.
    private static func categorySets(_ value: JSONValue, index t: Int, nodeCount: Int,
                                     format: String) throws(ModelError) -> [[UInt32]?] {
        var sets = [[UInt32]?](repeating: nil, count: nodeCount)
        guard let types = value["split_type"]?.intArray(), types.contains(where: { $0 != 0 }) else { return sets }
        guard types.count == nodeCount else {
            throw .badTree(tree: t, detail: "split_type has \(types.count) entries for \(nodeCount) nodes")
        }
        func ints(_ name: String) throws(ModelError) -> [Int64] {
            guard let a = value[name]?.intArray() else {
                throw .invalidField(format: format, field: "trees[\(t)].\(name)",
                                    detail: "a tree with categorical splits needs it as integers")
            }
            return a
        }
        let categories = try ints("categories")
        let nodes = try ints("categories_nodes")
        let segments = try ints("categories_segments")
        let sizes = try ints("categories_sizes")
        guard segments.count == nodes.count, sizes.count == nodes.count else {
            throw .badTree(tree: t, detail: "categories_nodes, categories_segments and categories_sizes differ in length")
        }
        for (k, node) in nodes.enumerated() {
            guard node >= 0, node < Int64(nodeCount), types[Int(node)] == 1 else {
                throw .badTree(tree: t, detail: "categories_nodes names node \(node), which is not a categorical split")
            }
            let start = segments[k], size = sizes[k]
            guard start >= 0, size >= 0, start + size <= Int64(categories.count) else {
                throw .badTree(tree: t, detail: "node \(node)'s categories \(start)..<\(start + size) are outside the \(categories.count) listed")
            }
            var words = [UInt32]()
            for c in categories[Int(start)..<Int(start + size)] {
                guard c >= 0, c < Int64(maxCategory) else {
                    throw .badTree(tree: t, detail: "node \(node) splits on category \(c), outside 0..<\(maxCategory)")
                }
                let word = Int(c) >> 5
                if word >= words.count { words.append(contentsOf: repeatElement(0, count: word + 1 - words.count)) }
                words[word] |= 1 << UInt32(c & 31)
            }
            sets[Int(node)] = words
        }
        if let n = types.indices.first(where: { types[$0] != 0 && sets[$0] == nil }) {
            throw .badTree(tree: t, detail: "node \(n) is a categorical split with no categories listed")
        }
        return sets
    }

    /// The training categories XGBoost 3.1+ stores in `cats` when it was
    /// trained on a DataFrame with `category` columns: per feature, the
    /// category list whose positions are the codes its trees split on, as
    /// strings (UTF-8 bytes in `values`, cut at `offsets`) or numbers.
    /// XGBoost re-encodes a DataFrame's categories through it at predict
    /// time, and scores a value it does not know as missing, as
    /// `CategoryMap` does.
    static func categoryMaps(_ cats: JSONValue?, featureCount: Int,
                             format: String) throws(ModelError) -> [Int: CategoryMap] {
        guard let cats, case let .array(encodings)? = cats["enc"], !encodings.isEmpty else { return [:] }
        let path = "gradient_booster.model.cats.enc"
        guard encodings.count == featureCount else {
            throw .invalidField(format: format, field: path, detail: "\(encodings.count) entries for \(featureCount) features")
        }
        var maps = [Int: CategoryMap]()
        for (feature, encoding) in encodings.enumerated() {
            guard let values = encoding["values"], let n = values.count, n > 0 else { continue }
            if let offsets = encoding["offsets"]?.intArray(), !offsets.isEmpty {
                guard let bytes = values.intArray() else {
                    throw .invalidField(format: format, field: "\(path)[\(feature)].values", detail: "expected bytes")
                }
                var strings = [String]()
                strings.reserveCapacity(offsets.count - 1)
                for k in 0..<(offsets.count - 1) {
                    let start = offsets[k], end = offsets[k + 1]
                    guard start >= 0, start <= end, end <= Int64(bytes.count) else {
                        throw .invalidField(format: format, field: "\(path)[\(feature)].offsets",
                                            detail: "\(start)..<\(end) is outside the \(bytes.count) bytes")
                    }
                    var utf8 = [UInt8]()
                    utf8.reserveCapacity(Int(end - start))
                    for b in bytes[Int(start)..<Int(end)] {
                        guard let byte = UInt8(exactly: b) else {
                            throw .invalidField(format: format, field: "\(path)[\(feature)].values", detail: "\(b) is not a byte")
                        }
                        utf8.append(byte)
                    }
                    strings.append(String(decoding: utf8, as: UTF8.self))
                }
                maps[feature] = try CategoryMap(.strings(strings))
            } else {
                guard let numbers = values.doubleArray() else {
                    throw .invalidField(format: format, field: "\(path)[\(feature)].values", detail: "expected numbers")
                }
                maps[feature] = try CategoryMap(.numbers(numbers))
            }
        }
        return maps
    }

    /// The gblinear booster as a linear model summed as XGBoost sums it
    /// (`GBLinear::Pred`): `weights` holds `(num_feature + 1) × groups`
    /// float32 values, feature-major, the bias row last; a row's margin
    /// starts at the float32 `bias + base_score(0)` (the first base margin
    /// for every output: XGBoost reads only that one) and adds
    /// `x * w` per present feature in float32, in feature order.
    static func linearModel(_ booster: JSONValue, featureCount: Int, outputCount: Int, baseMargins: [Double],
                            transform: OutputTransform, format: String) throws(ModelError) -> LinearModel {
        let path = "gradient_booster.model.weights"
        guard let stored = try field(booster["model"]?["weights"], path, format).floatArray() else {
            throw .invalidField(format: format, field: path, detail: "expected numbers")
        }
        let (rows, overflow) = (featureCount + 1).multipliedReportingOverflow(by: outputCount)
        guard !overflow, stored.count == rows else {
            throw .invalidField(format: format, field: path,
                                detail: "\(stored.count) weights for \(featureCount) features and \(outputCount) outputs (expected \(featureCount + 1) × \(outputCount))")
        }
        let base = Float(baseMargins[0])
        var weights = [Double](repeating: 0, count: featureCount * outputCount)
        var intercepts = [Double]()
        for g in 0..<outputCount {
            for j in 0..<featureCount { weights[g * featureCount + j] = Double(stored[j * outputCount + g]) }
            intercepts.append(Double(stored[featureCount * outputCount + g] + base))
        }
        return LinearModel(featureCount: featureCount, outputCount: outputCount, weights: weights,
                           intercepts: intercepts, transform: transform, summation: .float32SkippingMissing)
    }
}
