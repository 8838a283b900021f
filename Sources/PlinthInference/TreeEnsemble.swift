// The tree-ensemble kind of the model IR: what XGBoost and LightGBM models
// become after import. It keeps every decision the original library makes
// explicit (comparison, where a missing value goes, categorical sets, the
// precision of the sum, the output transform), so the evaluator needs no
// knowledge of where a model came from. `validate()` is the single place
// that checks a tree is well formed; importers and the binary form call it.

/// An ensemble of binary decision trees whose leaf values are summed (or
/// averaged) per output, then transformed.
public struct TreeEnsemble: Sendable, Equatable {
    /// One split. Children are node indices when non-negative and leaves
    /// (`~child` indexes `Tree.leaves`) when negative, as in LightGBM.
    public struct Node: Sendable, Equatable {
        /// The feature the split reads.
        public var feature: Int32
        /// Numerical split: a present value goes left when `value < threshold`
        /// (float32 comparison, as XGBoost does; LightGBM's `value <= t` on
        /// doubles is converted exactly at import).
        public var threshold: Float
        public var left: Int32
        public var right: Int32
        /// Where a missing value (NaN) goes.
        public var defaultLeft: Bool
        /// LightGBM `zero_as_missing`: a value with |x| ≤ 1e-35 also follows `defaultLeft`.
        public var zeroIsMissing: Bool
        /// For a categorical split, the index of its set in `Tree.categorySets`;
        /// -1 for a numerical split. A categorical split sends a value left when
        /// it is a non-negative integer-valued category in the set; NaN and
        /// negative values go right (LightGBM's rule).
        public var categorySet: Int32

        public init(feature: Int32, threshold: Float, left: Int32, right: Int32, defaultLeft: Bool,
                    zeroIsMissing: Bool = false, categorySet: Int32 = -1) {
            self.feature = feature
            self.threshold = threshold
            self.left = left
            self.right = right
            self.defaultLeft = defaultLeft
            self.zeroIsMissing = zeroIsMissing
            self.categorySet = categorySet
        }
    }

    public struct Tree: Sendable, Equatable {
        /// Split nodes; node 0 is the root. Empty for a tree that is a single leaf.
        public var nodes: [Node]
        /// Leaf values, already scaled by the learning rate.
        public var leaves: [Double]
        /// Bitsets of categorical splits: bit `c` of word `c / 32` is set when
        /// category `c` goes left.
        public var categorySets: [[UInt32]]

        public init(nodes: [Node], leaves: [Double], categorySets: [[UInt32]] = []) {
            self.nodes = nodes
            self.leaves = leaves
            self.categorySets = categorySets
        }
    }

    /// The precision in which leaf values are summed. XGBoost sums in float32,
    /// LightGBM in float64; matching the original to the last bit needs the same.
    public enum Precision: String, Sendable, Equatable {
        case float32
        case float64
    }

    public var trees: [Tree]
    /// The output (class) each tree adds to; same length as `trees`.
    public var treeOutputs: [Int32]
    public var outputCount: Int
    /// Added to each output's sum before the transform, in margin space.
    public var baseMargins: [Double]
    public var precision: Precision
    /// Divide each output's sum of trees by its tree count (random forests
    /// from LightGBM's `rf` mode).
    public var averageTrees: Bool
    public var transform: OutputTransform
    public var featureCount: Int

    public init(trees: [Tree], treeOutputs: [Int32], outputCount: Int, baseMargins: [Double],
                precision: Precision, averageTrees: Bool, transform: OutputTransform, featureCount: Int) {
        self.trees = trees
        self.treeOutputs = treeOutputs
        self.outputCount = outputCount
        self.baseMargins = baseMargins
        self.precision = precision
        self.averageTrees = averageTrees
        self.transform = transform
        self.featureCount = featureCount
    }

    /// Checks that every index is in range and every tree is a tree (each node
    /// reached once from the root, no cycles), so evaluation cannot read out of
    /// bounds or loop.
    public func validate() throws(ModelError) {
        guard outputCount >= 1 else { throw .invalidField(format: "model", field: "outputs", detail: "must be at least 1") }
        guard treeOutputs.count == trees.count else {
            throw .invalidField(format: "model", field: "tree outputs",
                                detail: "\(treeOutputs.count) entries for \(trees.count) trees")
        }
        guard baseMargins.count == outputCount else {
            throw .invalidField(format: "model", field: "base margins",
                                detail: "\(baseMargins.count) values for \(outputCount) outputs")
        }
        if case .softmax = transform, outputCount < 2 {
            throw .invalidField(format: "model", field: "transform", detail: "softmax needs at least 2 outputs")
        }
        for (t, tree) in trees.enumerated() {
            let out = treeOutputs[t]
            guard out >= 0, Int(out) < outputCount else {
                throw .badTree(tree: t, detail: "adds to output \(out) but the model has \(outputCount) outputs")
            }
            try Self.validate(tree: tree, index: t, featureCount: featureCount)
        }
    }

    static func validate(tree: Tree, index t: Int, featureCount: Int) throws(ModelError) {
        if tree.nodes.isEmpty {
            guard tree.leaves.count == 1 else {
                throw .badTree(tree: t, detail: "no split nodes but \(tree.leaves.count) leaves (expected 1)")
            }
            return
        }
        guard tree.leaves.count == tree.nodes.count + 1 else {
            throw .badTree(tree: t, detail: "\(tree.nodes.count) split nodes need \(tree.nodes.count + 1) leaves, found \(tree.leaves.count)")
        }
        var seenNode = [Bool](repeating: false, count: tree.nodes.count)
        var seenLeaf = [Bool](repeating: false, count: tree.leaves.count)
        seenNode[0] = true
        for (n, node) in tree.nodes.enumerated() {
            guard node.feature >= 0, Int(node.feature) < featureCount else {
                throw .featureOutOfRange(tree: t, node: n, feature: Int(node.feature), featureCount: featureCount)
            }
            if node.categorySet >= 0 {
                guard Int(node.categorySet) < tree.categorySets.count else {
                    throw .badTree(tree: t, detail: "node \(n) uses category set \(node.categorySet) of \(tree.categorySets.count)")
                }
            }
            for child in [node.left, node.right] {
                if child >= 0 {
                    // Children must come after their parent: this rules out cycles
                    // and lets a single "seen" pass prove the structure is a tree.
                    guard Int(child) < tree.nodes.count, Int(child) > n else {
                        throw .badTree(tree: t, detail: "node \(n) has child \(child), which is out of order or out of range")
                    }
                    guard !seenNode[Int(child)] else {
                        throw .badTree(tree: t, detail: "node \(child) has more than one parent")
                    }
                    seenNode[Int(child)] = true
                } else {
                    let leaf = Int(~child)
                    guard leaf < tree.leaves.count else {
                        throw .badTree(tree: t, detail: "node \(n) points to leaf \(leaf) of \(tree.leaves.count)")
                    }
                    guard !seenLeaf[leaf] else {
                        throw .badTree(tree: t, detail: "leaf \(leaf) has more than one parent")
                    }
                    seenLeaf[leaf] = true
                }
            }
        }
        if let n = seenNode.firstIndex(of: false) {
            throw .badTree(tree: t, detail: "node \(n) is not reachable from the root")
        }
    }

    /// The depth of each tree (a single leaf has depth 0).
    func depths() -> [Int] {
        trees.map { tree in
            if tree.nodes.isEmpty { return 0 }
            // Children follow parents (checked by validate), so one forward pass works.
            var depth = [Int](repeating: 0, count: tree.nodes.count)
            var maxDepth = 1
            for (n, node) in tree.nodes.enumerated() {
                for child in [node.left, node.right] where child >= 0 {
                    depth[Int(child)] = depth[n] + 1
                    maxDepth = max(maxDepth, depth[n] + 2)
                }
            }
            return maxDepth
        }
    }
}

extension TreeEnsemble {
    /// The float32 threshold `t` such that, for every float32 `x`,
    /// `x < t` exactly when `Double(x) <= threshold`. LightGBM and
    /// scikit-learn send a value left when it is `<=` a float64 threshold;
    /// the IR compares `x < t` in float32, and this is the one conversion
    /// that keeps every float32 input on the same side.
    static func strictThreshold(_ threshold: Double) -> Float {
        if threshold.isNaN { return .nan }
        var f = Float(threshold)
        if Double(f) > threshold { f = f.nextDown }
        return f.nextUp
    }
}
