// The tree-ensemble kernels. Two layouts, chosen per model when it is built:
//
// * Perfect layout: every tree is padded to the ensemble's maximum depth D and
//   stored breadth-first as 2^D−1 eight-byte nodes {feature, threshold}
//   followed by its 2^D leaves. A walk is exactly D steps of
//   `i = 2i + 1 + (x > threshold)`, with no leaf test and no unpredictable loop exit,
//   so several trees (single row) or several rows (batch) can be walked in
//   lockstep and their memory loads overlap. This is the array layout that
//   treelite/tl2cgen-style compiled code and QuickScorer-like kernels reach
//   for: thresholds and feature indices packed together, top levels of each
//   tree sharing a cache line. Missing values cost nothing extra: NaN compares
//   false, so a step goes to child 2i+1 exactly when x is missing, and every
//   split is stored so that its default side is that child (see
//   `PerfectNode`). Padding nodes compare against NaN, which always goes to
//   2i+1 (where the padded leaf's copies are). Categorical splits are
//   flagged nodes, checked only in models that have them. Used when the model
//   has no zero-as-missing splits, no tree is deeper than 12 and the padding
//   stays within a fixed multiple of the model's size.
// * Hybrid layout (no zero-as-missing splits, but some tree deeper than 12):
//   the top levels of every tree (at most `hybridTopDepth`) in the perfect
//   layout, each bottom slot holding either a leaf or the root of the
//   subtree below it in the pointer layout. LightGBM's leaf-wise trees are
//   deep only along a few paths, so most of each walk is the branch-free
//   lockstep one and only the rows that go deeper pay for pointer steps,
//   which are stepped together across trees (single row) or rows (batch);
//   padding stays small because the top is shallow.
// * Pointer layout: 16-byte nodes with explicit children, as in the IR; it
//   handles every split kind and any depth.
//
// Both layouts sum leaf values per tree in the model's precision, in tree
// order, starting from the base margin: XGBoost sums float32 in that order,
// which is what bit-for-bit agreement needs.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A node of the perfect layout. A step reads a *widened* row: the row's F
/// values followed by their negations (`widen`), and goes to child
/// `2i + 1 + (x > threshold)`. NaN compares false, so a missing value always
/// goes to child 2i+1, and each split is stored so that its default side is
/// that child, with one comparison whatever the default:
/// * default left: `feature` = f, `threshold` = t.nextDown, since for every
///   float x, `x >= t` exactly when `x > t.nextDown` (t is not −∞: such
///   models use the pointer layout);
/// * default right: the two subtrees are swapped (the original right one is
///   child 2i+1), `feature` = F + f (the negated copy) and `threshold` = −t:
///   `-x > -t` exactly when `x < t`, which leads to the original left subtree.
/// This is the trick of treelite and lleaves (pick the comparison so that NaN
/// falls the default way); the negated copy makes it one comparison without
/// a per-node choice of operator.
struct PerfectNode {
    /// Feature index into the widened row in the low 30 bits; bit 30 is set
    /// for a categorical split (which reads the plain value, f < F), and
    /// bit 31 for one whose missing value goes left.
    var feature: UInt32
    /// Threshold as above, or for a categorical split the bit pattern of its
    /// set index.
    var threshold: Float

    static let categorical: UInt32 = 1 << 30
    static let missingLeft: UInt32 = 1 << 31
    static let featureMask: UInt32 = (1 << 30) - 1
}

/// Whether a pointer-layout walk ends at a linear leaf (LightGBM
/// `linear_tree`); as with `SplitRule`, only such models pay for the test.
protocol LeafRule {
    static var linear: Bool { get }
}

enum ConstantLeaves: LeafRule {
    static var linear: Bool { false }
}

enum LinearLeaves: LeafRule {
    static var linear: Bool { true }
}

/// Whether a perfect-layout step checks for categorical splits (only models
/// that have them pay for the test).
protocol SplitRule {
    static var categories: Bool { get }
}

enum NumericalSplits: SplitRule {
    static var categories: Bool { false }
}

enum WithCategories: SplitRule {
    static var categories: Bool { true }
}

/// A node of the pointer layout.
struct PointerNode {
    /// Feature index in the low 29 bits; flags above.
    var feature: UInt32
    /// Threshold, or for a categorical split the bit pattern of its set index.
    var threshold: Float
    /// Global node index if ≥ 0, else `~global leaf index`.
    var left: Int32
    var right: Int32

    static let defaultLeft: UInt32 = 1 << 31
    static let categorical: UInt32 = 1 << 30
    static let zeroMissing: UInt32 = 1 << 29
    static let featureMask: UInt32 = (1 << 29) - 1
}

/// The largest feature count a model may declare: far beyond any real model,
/// within what the packed node formats can address, and small enough that a
/// corrupt header cannot make a caller allocate gigabytes for one row.
let maxFeatureCount = 1 << 24

/// Whether a present or missing value goes right at a plain numerical split.
/// Branch-free: for a number, `x >= t` is the comparison; for NaN both
/// comparisons are false and the default-left bit decides.
@inline(__always)
func goesRight(_ x: Float, _ threshold: Float, _ defaultLeftBit: UInt32) -> Int {
    let ge = x >= threshold ? 1 : 0
    let notLess = x < threshold ? 0 : 1
    let defaultRight = Int(1 &- defaultLeftBit)
    return ge | (notLess & defaultRight)
}

// Safe: all storage is written once in init and only read afterwards.
final class TreeEvaluator: Evaluator, @unchecked Sendable {
    private let precision: TreeEnsemble.Precision
    private let outputCount: Int
    private let transform: OutputTransform
    private let treeCount: Int
    private let treeOutputs: UnsafeMutablePointer<Int32>
    /// Per output: base margin.
    private let baseMargins: UnsafeMutablePointer<Double>
    /// Per output: its tree count when averaging (else 1). Divided by, not
    /// multiplied by the reciprocal: scikit-learn's forests and LightGBM
    /// divide, and `x * (1/n)` differs from `x / n` in the last bit for most n.
    private let divisor: UnsafeMutablePointer<Double>
    private let averaging: Bool
    private let singleOutput: Bool
    /// Values per input row (the distance between rows in a block).
    private let featureStride: Int

    // Perfect layout (perfectDepth > 0), else pointer layout. Trees are padded
    // to the deepest tree of their group of four (the trees walked in
    // lockstep), not of the whole ensemble, so one deep tree does not inflate
    // the rest.
    enum Layout: Equatable { case perfect, hybrid, pointer }
    let layout: Layout
    /// The deepest padded tree (or padded top, in the hybrid layout); 0 when
    /// the pointer layout is used.
    let perfectDepth: Int
    private let treeDepth: UnsafeMutablePointer<Int>
    private let treeNodeBase: UnsafeMutablePointer<Int>
    /// Leaf base minus the tree's inner node count: the final walk index plus
    /// this is the leaf's global index.
    private let treeLeafBias: UnsafeMutablePointer<Int>
    private let perfectNodes: UnsafeMutablePointer<PerfectNode>
    private let perfectLeavesF: UnsafeMutablePointer<Float>
    private let perfectLeavesD: UnsafeMutablePointer<Double>
    /// Hybrid layout: per bottom slot of a padded top (indexed like the
    /// perfect layout's leaves), a pointer-layout reference: a global node
    /// index (≥ 0) where the walk goes on, else `~global leaf index`.
    private let slotRefs: UnsafeMutablePointer<Int32>

    private let nodes: UnsafeMutablePointer<PointerNode>
    private let roots: UnsafeMutablePointer<Int32>
    /// Per tree, its depth (longest root-to-leaf path) in the pointer layout.
    private let pointerDepth: UnsafeMutablePointer<Int>
    private let leaves: UnsafeMutablePointer<Double>
    private let leavesF: UnsafeMutablePointer<Float>
    private let catWords: UnsafeMutablePointer<UInt32>
    /// Per category set: start in `catWords` and word count.
    private let catRanges: UnsafeMutablePointer<SIMD2<Int32>>
    private let hasCategories: Bool
    /// Categorical splits as columns of the widened row (see `widen`): per
    /// column, the feature it reads and its category set. Empty when the
    /// model has more distinct splits than `maxCategoryColumns`; then
    /// `flaggedCategories` is set and steps test a flag instead.
    private let columnCount: Int
    private let columnFeature: UnsafeMutablePointer<Int32>
    private let columnSet: UnsafeMutablePointer<Int32>
    /// Per column, whether its split sends a missing value left.
    private let columnMissingLeft: UnsafeMutablePointer<Bool>
    /// A value at or below this is no category: −1 where (−1, 0) truncates
    /// to category 0 (LightGBM), the largest negative float where every
    /// negative value is no category (XGBoost); see `negativeIsNoCategory`.
    private let categoryFloor: Float
    private let flaggedCategories: Bool
    /// Values per widened row: the row, its negation, the category columns.
    private let wideStride: Int
    /// LightGBM's |x| ≤ 1e-35 → 0 input rule (`TreeEnsemble.tinyInputsAreZero`):
    /// applied while widening, or to a copy of the rows in the pointer layout.
    private let tinyInputsAreZero: Bool
    /// Linear leaves (LightGBM `linear_tree`), by global pointer-layout leaf
    /// index: `linearStart[l] ..< linearStart[l + 1]` in `linearFeatures` and
    /// `linearCoefficients`, and `linearConstant[l]`; a constant leaf of such
    /// a model has no terms, its constant is its value, and it never falls
    /// back. Such models use the pointer layout.
    private let hasLinearLeaves: Bool
    private let linearStart: UnsafeMutablePointer<Int32>
    private let linearConstant: UnsafeMutablePointer<Double>
    private let linearFeatures: UnsafeMutablePointer<Int32>
    private let linearCoefficients: UnsafeMutablePointer<Double>

    private let allocations: [UnsafeMutableRawPointer]

    static let maxPerfectDepth = 12
    /// The deepest padded top of the hybrid layout. Every row pays every
    /// padded level of every tree, while a tail step is paid only by the rows
    /// that go that deep, and with the tails stepped branch-free that is the
    /// cheaper side: on lgb_binary_cat (leaf-wise, 31 leaves, mean leaf depth
    /// about 6) a top of 6 beat 5, 7, 8, 9 and 10 on single rows and on
    /// batches with missing values, and was within 3% of 7 on dense batches.
    /// It also keeps the tops small (2^6 slots, under 1 KiB a tree). With
    /// widened rows (one comparison a step) 6 still wins on instruction
    /// counts: batch 14.4k a row, against 14.4k-14.5k for 5 and 14.7k for 7;
    /// single rows 10.9k, against 11.2k for 5 and 10.8k for 7.
    static let hybridTopDepth = 6
    /// The most distinct categorical splits (feature and category set) turned
    /// into columns of the widened row. Each column costs every row a few
    /// instructions when it is widened, while a flagged categorical step costs
    /// a branch on every step and a mispredicted one on many; LightGBM reuses
    /// the same sets, so real models have few distinct ones.
    static let maxCategoryColumns = 256

    init(_ e: TreeEnsemble) {
        precision = e.precision
        outputCount = e.outputCount
        transform = e.transform
        treeCount = e.trees.count
        averaging = e.averageTrees
        singleOutput = e.outputCount == 1
        featureStride = e.featureCount
        var owned = [UnsafeMutableRawPointer]()
        func alloc<T>(_ type: T.Type, _ count: Int) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(1, count))
            owned.append(UnsafeMutableRawPointer(p))
            return p
        }

        treeOutputs = alloc(Int32.self, e.trees.count)
        for (i, o) in e.treeOutputs.enumerated() { treeOutputs[i] = o }
        baseMargins = alloc(Double.self, e.outputCount)
        divisor = alloc(Double.self, e.outputCount)
        var perOutput = [Int](repeating: 0, count: e.outputCount)
        for o in e.treeOutputs { perOutput[Int(o)] += 1 }
        for o in 0..<e.outputCount {
            baseMargins[o] = e.baseMargins[o]
            divisor[o] = e.averageTrees && perOutput[o] > 0 ? Double(perOutput[o]) : 1.0
        }

        let depths = e.depths()
        // Category sets, all trees concatenated; both layouts use them.
        let setCount = e.trees.reduce(0) { $0 + $1.categorySets.count }
        let wordCount = e.trees.reduce(0) { $0 + $1.categorySets.reduce(0) { $0 + $1.count } }
        catWords = alloc(UInt32.self, wordCount)
        catRanges = alloc(SIMD2<Int32>.self, setCount)
        var setBases = [Int]()
        var setBase = 0, wordBase = 0
        for tree in e.trees {
            setBases.append(setBase)
            for set in tree.categorySets {
                catRanges[setBase] = SIMD2(Int32(wordBase), Int32(set.count))
                for (w, word) in set.enumerated() { catWords[wordBase + w] = word }
                wordBase += set.count
                setBase += 1
            }
        }
        hasCategories = setCount > 0
        categoryFloor = e.negativeIsNoCategory ? -Float.leastNonzeroMagnitude : -1
        // Distinct categorical splits, numbered in order of appearance.
        var columnOf = [[Int32]]()
        var columnKeys = [[UInt32]: Int32]()
        var columnSources = [(feature: Int32, set: Int32, missingLeft: Bool)]()
        for (t, tree) in e.trees.enumerated() {
            columnOf.append(tree.nodes.map { node in
                guard node.categorySet >= 0 else { return -1 }
                let key = [UInt32(bitPattern: node.feature), node.defaultLeft ? 1 : 0]
                    + tree.categorySets[Int(node.categorySet)]
                if let c = columnKeys[key] { return c }
                let c = Int32(columnSources.count)
                columnKeys[key] = c
                columnSources.append((node.feature, Int32(setBases[t]) + node.categorySet, node.defaultLeft))
                return c
            })
        }
        if columnSources.count > Self.maxCategoryColumns {
            columnSources = []
            columnOf = columnOf.map { $0.map { _ in -1 } }
        }
        columnCount = columnSources.count
        columnFeature = alloc(Int32.self, columnCount)
        columnSet = alloc(Int32.self, columnCount)
        columnMissingLeft = alloc(Bool.self, columnCount)
        for (c, source) in columnSources.enumerated() {
            columnFeature[c] = source.feature
            columnSet[c] = source.set
            columnMissingLeft[c] = source.missingLeft
        }
        flaggedCategories = hasCategories && columnCount == 0
        wideStride = 2 * e.featureCount + columnCount
        tinyInputsAreZero = e.tinyInputsAreZero
        hasLinearLeaves = e.hasLinearLeaves
        do {
            let leafTotal = hasLinearLeaves ? e.trees.reduce(0) { $0 + $1.leaves.count } : 0
            let termTotal = e.trees.reduce(0) { $0 + ($1.linearLeaves ?? []).reduce(0) { $0 + $1.features.count } }
            linearStart = alloc(Int32.self, leafTotal + 1)
            linearConstant = alloc(Double.self, leafTotal)
            linearFeatures = alloc(Int32.self, termTotal)
            linearCoefficients = alloc(Double.self, termTotal)
            var leaf = 0, term = 0
            linearStart[0] = 0
            for tree in e.trees where hasLinearLeaves {
                for (l, value) in tree.leaves.enumerated() {
                    let model = tree.linearLeaves?[l] ?? TreeEnsemble.LinearLeaf(constant: value)
                    linearConstant[leaf] = model.constant
                    for (f, c) in zip(model.features, model.coefficients) {
                        linearFeatures[term] = f
                        linearCoefficients[term] = c
                        term += 1
                    }
                    leaf += 1
                    linearStart[leaf] = Int32(term)
                }
            }
        }
        // The perfect and hybrid layouts need no zero-as-missing split and no
        // numerical threshold of −∞ or NaN (see `PerfectNode`); XGBoost and
        // LightGBM never write those thresholds.
        // Linear leaves are computed from the plain row after the walk, which
        // the pointer layout keeps; the widened layouts would need it beside.
        let plain = !hasLinearLeaves && e.trees.allSatisfy { t in
            t.nodes.allSatisfy { !$0.zeroIsMissing && ($0.categorySet >= 0 || $0.threshold > -.infinity) }
        }
        var groupDepths = [Int](repeating: 1, count: e.trees.count)
        for g in stride(from: 0, to: e.trees.count, by: 4) {
            let end = Swift.min(g + 4, e.trees.count)
            let d = Swift.max(1, depths[g..<end].max() ?? 1)
            for t in g..<end { groupDepths[t] = d }
        }
        let paddedNodes = groupDepths.reduce(0) { $0 + (1 << Swift.min($1, 30)) }
        let realNodes = e.trees.reduce(0) { $0 + $1.nodes.count + $1.leaves.count }
        let maxDepth = groupDepths.max() ?? 1
        // Padding is bounded: at most maxPerfectDepth levels and a fixed
        // multiple of the model's real size, so memory follows the model.
        let paddingBound = 64 * realNodes + (1 << 20)
        let topDepths = groupDepths.map { Swift.min($0, Self.hybridTopDepth) }
        let paddedTops = topDepths.reduce(0) { $0 + (1 << $1) }
        if plain && maxDepth <= Self.maxPerfectDepth && paddedNodes <= paddingBound {
            layout = .perfect
        } else if plain && paddedTops <= paddingBound {
            layout = .hybrid
        } else {
            layout = .pointer
        }
        if layout == .perfect {
            perfectDepth = maxDepth
            treeDepth = alloc(Int.self, e.trees.count)
            treeNodeBase = alloc(Int.self, e.trees.count)
            treeLeafBias = alloc(Int.self, e.trees.count)
            perfectNodes = alloc(PerfectNode.self, paddedNodes)
            perfectLeavesF = alloc(Float.self, paddedNodes)
            perfectLeavesD = alloc(Double.self, paddedNodes)
            slotRefs = alloc(Int32.self, 0)
            var nodeBase = 0, leafBase = 0
            for (t, tree) in e.trees.enumerated() {
                let depth = groupDepths[t]
                let innerCount = (1 << depth) - 1
                treeDepth[t] = depth
                treeNodeBase[t] = nodeBase
                treeLeafBias[t] = leafBase - innerCount
                let leavesF = perfectLeavesF + leafBase, leavesD = perfectLeavesD + leafBase
                Self.place(tree: tree, ref: tree.nodes.isEmpty ? ~0 : 0, position: 0, level: 0, depth: depth,
                           setBase: setBases[t], featureCount: e.featureCount, columns: columnOf[t],
                           nodes: perfectNodes + nodeBase) { ref, slot in
                    let value = tree.leaves[Int(~ref)]
                    leavesD[slot] = value
                    leavesF[slot] = Float(value)
                }
                nodeBase += innerCount
                leafBase += innerCount + 1
            }
            nodes = alloc(PointerNode.self, 0)
            roots = alloc(Int32.self, 0)
            pointerDepth = alloc(Int.self, 0)
            leaves = alloc(Double.self, 0)
            leavesF = alloc(Float.self, 0)
        } else {
            perfectLeavesF = alloc(Float.self, 0)
            perfectLeavesD = alloc(Double.self, 0)
            let nodeCount = e.trees.reduce(0) { $0 + $1.nodes.count }
            let leafCount = e.trees.reduce(0) { $0 + $1.leaves.count }
            nodes = alloc(PointerNode.self, nodeCount)
            roots = alloc(Int32.self, e.trees.count)
            pointerDepth = alloc(Int.self, e.trees.count)
            for (t, d) in depths.enumerated() { pointerDepth[t] = d }
            leaves = alloc(Double.self, leafCount)
            leavesF = alloc(Float.self, leafCount)
            var nodeBases = [Int](), leafBases = [Int]()
            var nodeBase = 0, leafBase = 0
            for (t, tree) in e.trees.enumerated() {
                nodeBases.append(nodeBase)
                leafBases.append(leafBase)
                for (l, v) in tree.leaves.enumerated() {
                    leaves[leafBase + l] = v
                    leavesF[leafBase + l] = Float(v)
                }
                func global(_ child: Int32) -> Int32 {
                    child >= 0 ? Int32(nodeBase) + child : ~(Int32(leafBase) + ~child)
                }
                roots[t] = tree.nodes.isEmpty ? ~Int32(leafBase) : Int32(nodeBase)
                for (n, node) in tree.nodes.enumerated() {
                    var f = UInt32(node.feature)
                    var threshold = node.threshold
                    var left = global(node.left), right = global(node.right)
                    if layout == .hybrid && columnOf[t][n] >= 0 {
                        // A category column of the widened row: 1 goes right.
                        f = UInt32(2 * e.featureCount) + UInt32(columnOf[t][n])
                        threshold = 0.5
                    } else if node.categorySet >= 0 {
                        f |= PointerNode.categorical
                        if node.defaultLeft { f |= PointerNode.defaultLeft }
                        threshold = Float(bitPattern: UInt32(setBases[t]) + UInt32(node.categorySet))
                    } else if layout == .hybrid {
                        // The hybrid tails read widened rows, as the tops do
                        // (see `PerfectNode`): `x > threshold` goes to `right`
                        // and NaN to `left`, which holds the default side.
                        if node.defaultLeft {
                            threshold = threshold.nextDown
                        } else {
                            f += UInt32(e.featureCount)
                            threshold = -threshold
                            swap(&left, &right)
                        }
                    } else {
                        if node.defaultLeft { f |= PointerNode.defaultLeft }
                        if node.zeroIsMissing { f |= PointerNode.zeroMissing }
                    }
                    nodes[nodeBase + n] = PointerNode(feature: f, threshold: threshold, left: left, right: right)
                }
                nodeBase += tree.nodes.count
                leafBase += tree.leaves.count
            }
            if layout == .hybrid {
                // The tops refer into the pointer layout just built: a slot
                // whose path is still at a split continues at that split's
                // pointer node; a slot reached by a leaf holds the leaf.
                perfectDepth = topDepths.max() ?? 1
                treeDepth = alloc(Int.self, e.trees.count)
                treeNodeBase = alloc(Int.self, e.trees.count)
                treeLeafBias = alloc(Int.self, e.trees.count)
                perfectNodes = alloc(PerfectNode.self, paddedTops)
                slotRefs = alloc(Int32.self, paddedTops)
                var topBase = 0, slotBase = 0
                for (t, tree) in e.trees.enumerated() {
                    let depth = topDepths[t]
                    let innerCount = (1 << depth) - 1
                    treeDepth[t] = depth
                    treeNodeBase[t] = topBase
                    treeLeafBias[t] = slotBase - innerCount
                    let slots = slotRefs + slotBase
                    let treeNodes = Int32(nodeBases[t]), treeLeaves = Int32(leafBases[t])
                    Self.place(tree: tree, ref: tree.nodes.isEmpty ? ~0 : 0, position: 0, level: 0, depth: depth,
                               setBase: setBases[t], featureCount: e.featureCount, columns: columnOf[t],
                               nodes: perfectNodes + topBase) { ref, slot in
                        slots[slot] = ref >= 0 ? treeNodes + ref : ~(treeLeaves + ~ref)
                    }
                    topBase += innerCount
                    slotBase += innerCount + 1
                }
            } else {
                perfectDepth = 0
                treeDepth = alloc(Int.self, 0)
                treeNodeBase = alloc(Int.self, 0)
                treeLeafBias = alloc(Int.self, 0)
                perfectNodes = alloc(PerfectNode.self, 0)
                slotRefs = alloc(Int32.self, 0)
            }
        }
        allocations = owned
    }

    deinit {
        for p in allocations { p.deallocate() }
    }

    /// Writes the top `depth` levels of one IR subtree into the perfect
    /// layout, each split encoded as `PerfectNode` describes (a default-right
    /// split with its subtrees swapped); a leaf above the bottom level becomes
    /// an always-2i+1 padding node over copies of itself. `bottom` receives
    /// the IR reference (a leaf, or in the hybrid layout possibly a split)
    /// reaching each bottom slot, with the slot's index.
    private static func place(tree: TreeEnsemble.Tree, ref: Int32, position: Int, level: Int, depth: Int,
                              setBase: Int, featureCount: Int, columns: [Int32],
                              nodes: UnsafeMutablePointer<PerfectNode>,
                              bottom: (Int32, Int) -> Void) {
        if level == depth {
            bottom(ref, position - ((1 << depth) - 1))
            return
        }
        // The subtree placed at 2i+1 (taken by NaN and by `x > threshold`
        // false) and the one at 2i+2.
        var firstRef = ref, secondRef = ref
        if ref >= 0 {
            let node = tree.nodes[Int(ref)]
            var feature = UInt32(node.feature)
            var threshold: Float
            firstRef = node.left
            secondRef = node.right
            if columns[Int(ref)] >= 0 {
                // A category column of the widened row: 1 (not in the set,
                // or missing) goes right.
                feature = UInt32(2 * featureCount) + UInt32(columns[Int(ref)])
                threshold = 0.5
            } else if node.categorySet >= 0 {
                feature |= PerfectNode.categorical
                if node.defaultLeft { feature |= PerfectNode.missingLeft }
                threshold = Float(bitPattern: UInt32(setBase + Int(node.categorySet)))
            } else if node.defaultLeft {
                threshold = node.threshold.nextDown
            } else {
                feature += UInt32(featureCount)
                threshold = -node.threshold
                swap(&firstRef, &secondRef)
            }
            nodes[position] = PerfectNode(feature: feature, threshold: threshold)
        } else {
            nodes[position] = PerfectNode(feature: 0, threshold: .nan)
        }
        place(tree: tree, ref: firstRef, position: 2 * position + 1, level: level + 1, depth: depth,
              setBase: setBase, featureCount: featureCount, columns: columns, nodes: nodes, bottom: bottom)
        place(tree: tree, ref: secondRef, position: 2 * position + 2, level: level + 1, depth: depth,
              setBase: setBase, featureCount: featureCount, columns: columns, nodes: nodes, bottom: bottom)
    }

    /// Writes `count` rows widened for the perfect and hybrid layouts,
    /// `wideStride` apart: each row's values, then their negations (NaN stays
    /// NaN), then one column per distinct categorical split, 1 where the row
    /// goes right (`categoryGoesRight`) and 0 where it goes
    /// left, so that a categorical split is a numerical one (`> 0.5`) and no
    /// step needs to ask which kind its node is.
    /// With `tinyInputsAreZero`, LightGBM's input rule is applied here too
    /// (|x| ≤ 1e-35 written as 0; the category columns read the written value).
    @inline(__always)
    private func widen(_ rows: UnsafePointer<Float>, _ count: Int, into wide: UnsafeMutablePointer<Float>) {
        if tinyInputsAreZero {
            widen(rows, count, into: wide, clampTiny: true)
        } else {
            widen(rows, count, into: wide, clampTiny: false)
        }
    }

    /// `widen`, with the input rule fixed at compile time so models without
    /// it keep the plain copy loop.
    @inline(__always)
    private func widen(_ rows: UnsafePointer<Float>, _ count: Int, into wide: UnsafeMutablePointer<Float>,
                       clampTiny: Bool) {
        let f = featureStride
        var src = rows, dst = wide
        for _ in 0..<count {
            for i in 0..<f {
                let x = clampTiny ? Self.zeroIfTiny(src[i]) : src[i]
                dst[i] = x
                dst[f &+ i] = -x
            }
            for c in 0..<columnCount {
                let right = categoryGoesRight(dst[Int(columnFeature[c])], Int(columnSet[c]), columnMissingLeft[c])
                dst[2 &* f &+ c] = right ? 1 : 0
            }
            src += f
            dst += wideStride
        }
    }

    /// LightGBM's kZeroThreshold rule: 0 for |x| ≤ 1e-35 (−0 included), x
    /// otherwise (NaN stays NaN). LightGBM's threshold is the float 1e-35f
    /// widened to double, which is exactly this float comparison.
    @inline(__always)
    static func zeroIfTiny(_ x: Float) -> Float {
        x >= -1e-35 && x <= 1e-35 ? 0 : x
    }

    /// Calls `body` with `rows` as the kernels should read them: the rows
    /// themselves, or for a pointer-layout model with `tinyInputsAreZero` a
    /// copy with LightGBM's input rule applied (the widened layouts apply it
    /// while widening).
    @inline(__always)
    private func withPointerRows(_ rows: UnsafePointer<Float>, _ count: Int,
                                 _ body: (UnsafePointer<Float>) -> Void) {
        guard tinyInputsAreZero, layout == .pointer else { return body(rows) }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: count * featureStride) { buffer in
            guard let copy = buffer.baseAddress else { return }
            for i in 0..<(count * featureStride) { copy[i] = Self.zeroIfTiny(rows[i]) }
            body(copy)
        }
    }

    /// The value of pointer-layout leaf `leaf` for `row`: a linear leaf's
    /// model in LightGBM's order (constant, then each term in turn, float64),
    /// or the plain leaf value when one of its inputs is missing.
    @inline(__always)
    private func linearLeafValue(_ leaf: Int, _ row: UnsafePointer<Float>) -> Double {
        var value = linearConstant[leaf]
        for term in Int(linearStart[leaf])..<Int(linearStart[leaf + 1]) {
            let x = Double(row[Int(linearFeatures[term])])
            if x.isNaN { return leaves[leaf] }
            value += linearCoefficients[term] * x
        }
        return value
    }

    // MARK: - Single row

    func predictRow(_ row: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Double>, _ kind: OutputKind) {
        withPointerRows(row, 1) { row in
            switch (precision, hasLinearLeaves) {
            case (.float32, false): accumulateRow(row, out, Float.self, ConstantLeaves.self)
            case (.float64, false): accumulateRow(row, out, Double.self, ConstantLeaves.self)
            case (.float32, true): accumulateRow(row, out, Float.self, LinearLeaves.self)
            case (.float64, true): accumulateRow(row, out, Double.self, LinearLeaves.self)
            }
        }
        finishAveraging(out, kind)
        if kind == .probability { Transform.apply(transform, out, outputCount) }
    }

    @inline(__always)
    private func leafValue<L: BinaryFloatingPoint>(_ index: Int, _: L.Type) -> L {
        if L.self == Float.self { return L(layout == .perfect ? perfectLeavesF[index] : leavesF[index]) }
        return L(layout == .perfect ? perfectLeavesD[index] : leaves[index])
    }

    /// A leaf of the pointer layout's leaf arrays (the hybrid layout's leaves).
    @inline(__always)
    private func pointerLeafValue<L: BinaryFloatingPoint>(_ index: Int, _: L.Type) -> L {
        L.self == Float.self ? L(leavesF[index]) : L(leaves[index])
    }

    /// A pointer-layout leaf's value for `row`, constant or linear (`V`).
    @inline(__always)
    private func pointerValue<L: BinaryFloatingPoint, V: LeafRule>(_ leaf: Int, _ row: UnsafePointer<Float>,
                                                                    _: L.Type, _: V.Type) -> L {
        V.linear ? L(linearLeafValue(leaf, row)) : leafValue(leaf, L.self)
    }

    private func accumulateRow<L: BinaryFloatingPoint, V: LeafRule>(_ row: UnsafePointer<Float>,
                                                                     _ out: UnsafeMutablePointer<Double>,
                                                                     _: L.Type, _: V.Type) {
        // Sums start at the base margin (XGBoost's order); with averaging they
        // start at zero and the base is added after scaling.
        for o in 0..<outputCount { out[o] = averaging ? 0 : Double(L(baseMargins[o])) }
        if layout == .hybrid {
            accumulateHybridRow(row, out, L.self)
            return
        }
        if singleOutput {
            var acc = L(out[0])
            if layout == .perfect {
                walkPerfect(row) { _, leaf in acc += leafValue(leaf, L.self) }
            } else {
                // Pointer trees are walked one at a time: their depths vary too
                // much for lockstep walking to pay off on a single row.
                for t in 0..<treeCount { acc += pointerValue(walkPointer(row, roots[t]), row, L.self, V.self) }
            }
            out[0] = Double(acc)
        } else {
            // Storing a float32 sum in a Double and back is exact, so the
            // caller's buffer can hold the per-output sums.
            if layout == .perfect {
                walkPerfect(row) { t, leaf in
                    let o = Int(treeOutputs[t])
                    out[o] = Double(L(out[o]) + leafValue(leaf, L.self))
                }
            } else {
                for t in 0..<treeCount {
                    let o = Int(treeOutputs[t])
                    out[o] = Double(L(out[o]) + pointerValue(walkPointer(row, roots[t]), row, L.self, V.self))
                }
            }
        }
    }

    /// The hybrid layout's single row: every tree's top first (four trees in
    /// lockstep), then the pointer tails of the trees whose slot holds a split,
    /// all stepped together (`finishTails`), then the leaves summed in tree
    /// order from the sums already in `out`, as the other layouts do.
    private func accumulateHybridRow<L: BinaryFloatingPoint>(_ row: UnsafePointer<Float>,
                                                              _ out: UnsafeMutablePointer<Double>, _: L.Type) {
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 2 * treeCount) { buffer in
          withUnsafeTemporaryAllocation(of: Float.self, capacity: wideStride) { wideBuffer in
            guard let refs = buffer.baseAddress, let wide = wideBuffer.baseAddress else { return }
            widen(row, 1, into: wide)
            if flaggedCategories {
                walkPerfect(wide, WithCategories.self) { t, slot in refs[t] = slotRefs[slot] }
            } else {
                walkPerfect(wide, NumericalSplits.self) { t, slot in refs[t] = slotRefs[slot] }
            }
            if flaggedCategories {
                finishTails(refs, refs + treeCount, treeCount, WithCategories.self) { _ in UnsafePointer(wide) }
            } else {
                finishTails(refs, refs + treeCount, treeCount, NumericalSplits.self) { _ in UnsafePointer(wide) }
            }
            if singleOutput {
                var acc = L(out[0])
                for t in 0..<treeCount { acc += pointerLeafValue(Int(~refs[t]), L.self) }
                out[0] = Double(acc)
            } else {
                for t in 0..<treeCount {
                    let o = Int(treeOutputs[t])
                    out[o] = Double(L(out[o]) + pointerLeafValue(Int(~refs[t]), L.self))
                }
            }
          }
        }
    }

    /// 1 when pointer-layout reference `i` is a node (≥ 0), else 0; spelled
    /// as a shift because `i >= 0 ? 1 : 0` compiles to a branch here, and
    /// whether a walk is done is exactly what a predictor cannot guess.
    @inline(__always)
    private static func isNode(_ i: Int32) -> Int { Int(UInt32(bitPattern: ~i) &>> 31) }

    /// Walks `count` lanes of the hybrid layout's tails to their leaves:
    /// `refs[k]` is a reference (a node if ≥ 0, else `~leaf`), lane `k` reads
    /// widened row `row(k)`; on
    /// return every `refs[k]` is `~leaf`. The lanes still at a split are kept
    /// in a compacted list (`pending`, room for `count`) and each round steps
    /// every one of them once, so the lanes' loads overlap and no lane's exit
    /// is a branch to mispredict: only the round count, the longest tail, is.
    @inline(__always)
    private func finishTails<R: SplitRule>(_ refs: UnsafeMutablePointer<Int32>, _ pending: UnsafeMutablePointer<Int32>,
                             _ count: Int, _: R.Type, _ row: (Int) -> UnsafePointer<Float>) {
        var n = 0
        for k in 0..<count {
            pending[n] = Int32(truncatingIfNeeded: k)
            n &+= Self.isNode(refs[k])
        }
        while n > 0 {
            var m = 0
            for j in 0..<n {
                let k = Int(pending[j])
                let i = nextInTail(nodes[Int(refs[k])], row(k), R.self)
                refs[k] = i
                pending[m] = Int32(truncatingIfNeeded: k)
                m &+= Self.isNode(i)
            }
            n = m
        }
    }

    /// Averages the sums of a random forest. LightGBM reports the raw score of
    /// an averaged model as the plain sum and averages only before its output
    /// transform; Plinth follows it so margins match LightGBM's raw scores.
    @inline(__always)
    private func finishAveraging(_ out: UnsafeMutablePointer<Double>, _ kind: OutputKind) {
        guard averaging else { return }
        for o in 0..<outputCount {
            out[o] = (kind == .probability ? out[o] / divisor[o] : out[o]) + baseMargins[o]
        }
    }

    /// Walks every tree for one row, four trees in lockstep, calling `visit`
    /// with (tree, global leaf index) in tree order.
    @inline(__always)
    private func walkPerfect(_ row: UnsafePointer<Float>, _ visit: (Int, Int) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: wideStride) { buffer in
            guard let wide = buffer.baseAddress else { return }
            widen(row, 1, into: wide)
            if flaggedCategories {
                walkPerfect(wide, WithCategories.self, visit)
            } else {
                walkPerfect(wide, NumericalSplits.self, visit)
            }
        }
    }

    /// `row` is widened (see `PerfectNode`).
    @inline(__always)
    private func walkPerfect<R: SplitRule>(_ row: UnsafePointer<Float>, _: R.Type, _ visit: (Int, Int) -> Void) {
        var t = 0
        while t + 4 <= treeCount {
            // The four trees of a group share one padded depth.
            let depth = treeDepth[t]
            let n0 = perfectNodes + treeNodeBase[t]
            let n1 = perfectNodes + treeNodeBase[t + 1]
            let n2 = perfectNodes + treeNodeBase[t + 2]
            let n3 = perfectNodes + treeNodeBase[t + 3]
            var i0 = 0, i1 = 0, i2 = 0, i3 = 0
            for _ in 0..<depth {
                i0 = step(n0, i0, row, R.self)
                i1 = step(n1, i1, row, R.self)
                i2 = step(n2, i2, row, R.self)
                i3 = step(n3, i3, row, R.self)
            }
            visit(t, treeLeafBias[t] + i0)
            visit(t + 1, treeLeafBias[t + 1] + i1)
            visit(t + 2, treeLeafBias[t + 2] + i2)
            visit(t + 3, treeLeafBias[t + 3] + i3)
            t += 4
        }
        while t < treeCount {
            let n0 = perfectNodes + treeNodeBase[t]
            var i0 = 0
            for _ in 0..<treeDepth[t] { i0 = step(n0, i0, row, R.self) }
            visit(t, treeLeafBias[t] + i0)
            t += 1
        }
    }

    /// Walks one tree of the pointer layout; returns the global leaf index.
    @inline(__always)
    private func walkPointer(_ row: UnsafePointer<Float>, _ root: Int32) -> Int {
        var i = root
        while i >= 0 { i = next(nodes[Int(i)], row) }
        return Int(~i)
    }

    /// The child of pointer-layout node `n` that `row` goes to.
    @inline(__always)
    private func next(_ n: PointerNode, _ row: UnsafePointer<Float>) -> Int32 {
        let x = row[Int(n.feature & PointerNode.featureMask)]
        let right: Bool
        if n.feature & (PointerNode.categorical | PointerNode.zeroMissing) == 0 {
            right = goesRight(x, n.threshold, n.feature >> 31) != 0
        } else {
            right = slowGoesRight(x, n)
        }
        return right ? n.right : n.left
    }

    /// The child of hybrid-tail node `n` that widened row `row` goes to: one
    /// comparison, NaN going to `left` (see the tail encoding in `init`).
    @inline(__always)
    private func nextInTail<R: SplitRule>(_ n: PointerNode, _ row: UnsafePointer<Float>, _: R.Type) -> Int32 {
        let x = row[Int(n.feature & PointerNode.featureMask)]
        let right: Bool
        if !R.categories || n.feature & PointerNode.categorical == 0 {
            right = x > n.threshold
        } else {
            right = categoryGoesRight(x, Int(n.threshold.bitPattern), n.feature & PointerNode.defaultLeft != 0)
        }
        return right ? n.right : n.left
    }

    /// The IR's categorical rule (see `TreeEnsemble.Node.categorySet`): NaN
    /// follows the split's missing side; a value at or below `categoryFloor`
    /// is no category and goes right; the category is the value truncated
    /// toward zero (C's static_cast<int>), and values past Int32's range
    /// behave as negative, as they do on x86. Only categorical splits call
    /// this, so numerical ones never pay for the NaN test.
    @inline(__always)
    private func categoryGoesRight(_ x: Float, _ set: Int, _ missingLeft: Bool) -> Bool {
        if x.isNaN { return !missingLeft }
        if x <= categoryFloor || x >= 2_147_483_648 { return true }
        let category = Int(x)
        let range = catRanges[set]
        let word = category >> 5
        if word >= Int(range.y) { return true }
        let bits = catWords[Int(range.x) + word]
        return (bits >> UInt32(category & 31)) & 1 == 0
    }

    private func slowGoesRight(_ x: Float, _ n: PointerNode) -> Bool {
        if n.feature & PointerNode.categorical != 0 {
            return categoryGoesRight(x, Int(n.threshold.bitPattern), n.feature & PointerNode.defaultLeft != 0)
        }
        // Zero as missing: NaN and |x| ≤ 1e-35 follow the default direction.
        if x.isNaN || (x >= -1e-35 && x <= 1e-35) {
            return n.feature & PointerNode.defaultLeft == 0
        }
        return !(x < n.threshold)
    }

    // MARK: - Batch

    func predictBlock(_ rows: UnsafePointer<Float>, _ count: Int, _ out: UnsafeMutablePointer<Double>,
                      _ kind: OutputKind) {
        switch (precision, layout) {
        case (.float32, .perfect), (.float32, .hybrid): blockWidened(rows, count, out, Float.self)
        case (.float64, .perfect), (.float64, .hybrid): blockWidened(rows, count, out, Double.self)
        case (.float32, .pointer), (.float64, .pointer):
            withPointerRows(rows, count) { rows in
                switch (precision, hasLinearLeaves) {
                case (.float32, false): blockPointer(rows, count, out, Float.self, ConstantLeaves.self)
                case (.float64, false): blockPointer(rows, count, out, Double.self, ConstantLeaves.self)
                case (.float32, true): blockPointer(rows, count, out, Float.self, LinearLeaves.self)
                case (.float64, true): blockPointer(rows, count, out, Double.self, LinearLeaves.self)
                }
            }
        }
        for r in 0..<count { finishAveraging(out + r * outputCount, kind) }
        if kind == .probability {
            for r in 0..<count { Transform.apply(transform, out + r * outputCount, outputCount) }
        }
    }

    /// The perfect and hybrid layouts' block walk: widens the block's rows
    /// (see `PerfectNode`) and walks them.
    private func blockWidened<L: BinaryFloatingPoint>(_ rows: UnsafePointer<Float>, _ count: Int,
                                                       _ out: UnsafeMutablePointer<Double>, _: L.Type) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: count * wideStride) { buffer in
            guard let wide = buffer.baseAddress else { return }
            widen(rows, count, into: wide)
            switch (layout == .hybrid, flaggedCategories) {
            case (false, false): blockPerfect(wide, count, out, L.self, NumericalSplits.self)
            case (false, true): blockPerfect(wide, count, out, L.self, WithCategories.self)
            case (true, false): blockHybrid(wide, count, out, L.self, NumericalSplits.self)
            case (true, true): blockHybrid(wide, count, out, L.self, WithCategories.self)
            }
        }
    }

    /// Tree-major walk of a widened block: each tree's nodes stay in cache
    /// while every row of the block passes through it.
    private func blockPerfect<L: BinaryFloatingPoint, R: SplitRule>(_ rows: UnsafePointer<Float>, _ count: Int,
                                                                     _ out: UnsafeMutablePointer<Double>,
                                                                     _: L.Type, _: R.Type) {
        let stride = wideStride
        withUnsafeTemporaryAllocation(of: L.self, capacity: count * outputCount) { accBuffer in
          withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { idxBuffer in
            guard let acc = accBuffer.baseAddress, let idx = idxBuffer.baseAddress else { return }
            startSums(acc, count, L.self)
            for t in 0..<treeCount {
                let n = perfectNodes + treeNodeBase[t]
                let lf = treeLeafBias[t]
                let depth = treeDepth[t]
                let o = Int(treeOutputs[t])
                // Level by level across the whole block: every row's step at one
                // level is independent of the others, so the core overlaps the
                // loads of many rows instead of waiting on one path at a time.
                for r in 0..<count { idx[r] = 0 }
                for _ in 0..<depth {
                    var x = rows
                    for r in 0..<count {
                        idx[r] = step(n, idx[r], x, R.self)
                        x += stride
                    }
                }
                for r in 0..<count { acc[r * outputCount + o] += leafValue(lf + idx[r], L.self) }
            }
            for i in 0..<(count * outputCount) { out[i] = Double(acc[i]) }
          }
        }
    }

    /// The hybrid layout's block walk: each tree's padded top as in
    /// `blockPerfect`, then the pointer tails of the block's rows stepped
    /// together (`finishTails`). A separate function, not a flag in
    /// `blockPerfect`, so the perfect layout's kernel stays exactly as it was.
    /// `wide` holds the block's rows widened (see `PerfectNode`), for the
    /// tops and the tails alike.
    private func blockHybrid<L: BinaryFloatingPoint, R: SplitRule>(_ wide: UnsafePointer<Float>, _ count: Int,
                                                                    _ out: UnsafeMutablePointer<Double>,
                                                                    _: L.Type, _: R.Type) {
        let stride = wideStride
        withUnsafeTemporaryAllocation(of: L.self, capacity: count * outputCount) { accBuffer in
          withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { idxBuffer in
          withUnsafeTemporaryAllocation(of: Int32.self, capacity: 2 * count) { refBuffer in
            guard let acc = accBuffer.baseAddress, let idx = idxBuffer.baseAddress,
                  let refs = refBuffer.baseAddress else { return }
            startSums(acc, count, L.self)
            for t in 0..<treeCount {
                let n = perfectNodes + treeNodeBase[t]
                let lf = treeLeafBias[t]
                let depth = treeDepth[t]
                let o = Int(treeOutputs[t])
                for r in 0..<count { idx[r] = 0 }
                for _ in 0..<depth {
                    var x = wide
                    for r in 0..<count {
                        idx[r] = step(n, idx[r], x, R.self)
                        x += stride
                    }
                }
                for r in 0..<count { refs[r] = slotRefs[lf + idx[r]] }
                finishTails(refs, refs + count, count, R.self) { r in wide + r &* stride }
                for r in 0..<count { acc[r * outputCount + o] += pointerLeafValue(Int(~refs[r]), L.self) }
            }
            for i in 0..<(count * outputCount) { out[i] = Double(acc[i]) }
          }
          }
        }
    }

    /// Sets a block's per-row sums to their starting values (see `accumulateRow`).
    @inline(__always)
    private func startSums<L: BinaryFloatingPoint>(_ acc: UnsafeMutablePointer<L>, _ count: Int, _: L.Type) {
        for r in 0..<count {
            for o in 0..<outputCount { acc[r * outputCount + o] = averaging ? 0 : L(baseMargins[o]) }
        }
    }

    /// One step down a perfect-layout tree: from node `i` to its child, for
    /// a widened row (see `PerfectNode`): one comparison, missing or not.
    @inline(__always)
    private func step<R: SplitRule>(_ nodes: UnsafeMutablePointer<PerfectNode>, _ i: Int,
                                    _ row: UnsafePointer<Float>, _: R.Type) -> Int {
        let n = nodes[i]
        let x = row[Int(n.feature & PerfectNode.featureMask)]
        if R.categories && n.feature & PerfectNode.categorical != 0 {
            let right = categoryGoesRight(x, Int(n.threshold.bitPattern), n.feature & PerfectNode.missingLeft != 0)
            return 2 &* i &+ 1 &+ (right ? 1 : 0)
        }
        return 2 &* i &+ 1 &+ (x > n.threshold ? 1 : 0)
    }

    /// One lockstep step of the pointer layout: a lane whose walk is done (a
    /// negative index) reads its root node and keeps its index, without a branch.
    @inline(__always)
    private func pointerStep(_ i: Int32, _ root: Int32, _ row: UnsafePointer<Float>) -> Int32 {
        let child = next(nodes[Int(Swift.max(i, root))], row)
        return i >= 0 ? child : i
    }

    /// The pointer layout's block walk: level by level across the block like
    /// `blockPerfect`, each tree stepped as many times as it is deep. A row
    /// that has reached its leaf keeps its (negative) index; its lane reads
    /// the root node again instead of branching, so the loop has no
    /// data-dependent exit and the rows' loads overlap.
    private func blockPointer<L: BinaryFloatingPoint, V: LeafRule>(_ rows: UnsafePointer<Float>, _ count: Int,
                                                                    _ out: UnsafeMutablePointer<Double>,
                                                                    _: L.Type, _: V.Type) {
        let stride = featureStride
        withUnsafeTemporaryAllocation(of: L.self, capacity: count * outputCount) { accBuffer in
          withUnsafeTemporaryAllocation(of: Int32.self, capacity: count) { idxBuffer in
            guard let acc = accBuffer.baseAddress, let idx = idxBuffer.baseAddress else { return }
            startSums(acc, count, L.self)
            for t in 0..<treeCount {
                let root = roots[t]
                let o = Int(treeOutputs[t])
                for r in 0..<count { idx[r] = root }
                if root >= 0 {
                    for _ in 0..<pointerDepth[t] {
                        var x = rows
                        for r in 0..<count {
                            idx[r] = pointerStep(idx[r], root, x)
                            x += stride
                        }
                    }
                }
                for r in 0..<count {
                    acc[r * outputCount + o] += pointerValue(Int(~idx[r]), rows + r &* stride, L.self, V.self)
                }
            }
            for i in 0..<(count * outputCount) { out[i] = Double(acc[i]) }
          }
        }
    }
}
