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
        /// Where a missing value (NaN) goes, at numerical and categorical
        /// splits alike (LightGBM's categorical splits send NaN right: its
        /// importer sets this false there).
        public var defaultLeft: Bool
        /// LightGBM `zero_as_missing`: a value with |x| ≤ 1e-35 also follows `defaultLeft`.
        public var zeroIsMissing: Bool
        /// For a categorical split, the index of its set in `Tree.categorySets`;
        /// -1 for a numerical split. A categorical split reads the value
        /// truncated toward zero as the category and sends it left when that
        /// category is in the set; NaN follows `defaultLeft`; a negative
        /// value (see `TreeEnsemble.negativeIsNoCategory`), one past the set's
        /// words, or one beyond Int32's range is in no set and goes right.
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

        /// LightGBM `linear_tree`: per leaf, the linear model that replaces
        /// its constant (`leaves[i]` stays the value used when one of the
        /// model's inputs is missing); nil for a tree with constant leaves.
        public var linearLeaves: [LinearLeaf]?

        public init(nodes: [Node], leaves: [Double], categorySets: [[UInt32]] = [],
                    linearLeaves: [LinearLeaf]? = nil) {
            self.nodes = nodes
            self.leaves = leaves
            self.categorySets = categorySets
            self.linearLeaves = linearLeaves
        }
    }

    /// A leaf's linear model (LightGBM `linear_tree`): its value is
    /// `constant + Σ coefficients[i] · x[features[i]]`, summed in float64 in
    /// this order, as LightGBM's `Tree::Predict` does; when any of those
    /// inputs is NaN the tree's plain leaf value is used instead.
    public struct LinearLeaf: Sendable, Equatable {
        public var constant: Double
        public var features: [Int32]
        public var coefficients: [Double]

        public init(constant: Double, features: [Int32] = [], coefficients: [Double] = []) {
            self.constant = constant
            self.features = features
            self.coefficients = coefficients
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
    /// LightGBM's input rule: a value with |x| ≤ 1e-35 (its kZeroThreshold)
    /// is read as 0 before any tree sees it, as LightGBM drops such values
    /// when it converts a dense row to its sparse form. False for XGBoost
    /// and every other source, which read inputs as given.
    public var tinyInputsAreZero: Bool
    /// How a categorical split reads a value in (−1, 0), −0.5 say. False
    /// (LightGBM): truncated toward zero, it is category 0. True (XGBoost,
    /// whose `InvalidCat` tests `x < 0` before truncating): every value
    /// below zero is no category and goes right.
    public var negativeIsNoCategory: Bool = false

    public init(trees: [Tree], treeOutputs: [Int32], outputCount: Int, baseMargins: [Double],
                precision: Precision, averageTrees: Bool, transform: OutputTransform, featureCount: Int,
                tinyInputsAreZero: Bool = false) {
        self.tinyInputsAreZero = tinyInputsAreZero
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
        try validateLinearLeaves(of: tree, index: t, featureCount: featureCount)
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

    /// Checks a tree's linear leaves: one per leaf, each feature in range and
    /// with one coefficient.
    static func validateLinearLeaves(of tree: Tree, index t: Int, featureCount: Int) throws(ModelError) {
        guard let linear = tree.linearLeaves else { return }
        guard linear.count == tree.leaves.count else {
            throw .badTree(tree: t, detail: "\(linear.count) linear leaves for \(tree.leaves.count) leaves")
        }
        for (l, leaf) in linear.enumerated() {
            guard leaf.features.count == leaf.coefficients.count else {
                throw .badTree(tree: t, detail: "linear leaf \(l) has \(leaf.features.count) features and \(leaf.coefficients.count) coefficients")
            }
            for f in leaf.features where f < 0 || Int(f) >= featureCount {
                throw .badTree(tree: t, detail: "linear leaf \(l) reads feature \(f) of \(featureCount)")
            }
        }
    }

    /// Whether any tree has linear leaves.
    var hasLinearLeaves: Bool { trees.contains { $0.linearLeaves != nil } }

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
