// The hybrid layout (a padded top over pointer tails) against a plain
// recursive walk of the IR, on random unbalanced trees deeper than the
// perfect layout allows: both precisions, two outputs, a single-leaf tree, a
// tree count that is not a multiple of four, rows with and without missing
// values, and every scoring path. Sums are in tree order in both, so they agree exactly.

import Testing
@testable import PlinthInference

@Suite struct HybridLayoutTests {
    /// A small deterministic generator (SplitMix64), so failures reproduce.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    }

    static let featureCount = 6

    /// A random tree in the IR's order (children after parents). The leftmost
    /// path is a spine `spine` splits long, so the tree is deeper than 12.
    static func tree(_ g: inout Generator, spine: Int) -> TreeEnsemble.Tree {
        var nodes = [TreeEnsemble.Node]()
        var leaves = [Double]()
        func build(_ depth: Int, onSpine: Bool) -> Int32 {
            let split = onSpine ? depth < spine : depth < 22 && nodes.count < 150 && g.unit() < 0.5
            if !split {
                leaves.append(g.unit() * 2 - 1)
                return ~Int32(leaves.count - 1)
            }
            let index = nodes.count
            nodes.append(TreeEnsemble.Node(feature: Int32(g.next() % UInt64(featureCount)),
                                           threshold: Float(g.unit() * 2 - 1), left: 0, right: 0,
                                           defaultLeft: g.next() & 1 == 0))
            let left = build(depth + 1, onSpine: onSpine)
            let right = build(depth + 1, onSpine: false)
            nodes[index].left = left
            nodes[index].right = right
            return Int32(index)
        }
        _ = build(0, onSpine: true)
        return TreeEnsemble.Tree(nodes: nodes, leaves: leaves)
    }

    /// The IR walked node by node, as the importers define it.
    static func reference(_ e: TreeEnsemble, _ row: [Float]) -> [Double] {
        func leaf(_ tree: TreeEnsemble.Tree) -> Double {
            var ref: Int32 = tree.nodes.isEmpty ? ~0 : 0
            while ref >= 0 {
                let n = tree.nodes[Int(ref)]
                let x = row[Int(n.feature)]
                let right = x.isNaN ? !n.defaultLeft : !(x < n.threshold)
                ref = right ? n.right : n.left
            }
            return tree.leaves[Int(~ref)]
        }
        switch e.precision {
        case .float32:
            var sums = e.baseMargins.map { Float($0) }
            for (t, tree) in e.trees.enumerated() { sums[Int(e.treeOutputs[t])] += Float(leaf(tree)) }
            return sums.map { Double($0) }
        case .float64:
            var sums = e.baseMargins
            for (t, tree) in e.trees.enumerated() { sums[Int(e.treeOutputs[t])] += leaf(tree) }
            return sums
        }
    }

    @Test(arguments: [TreeEnsemble.Precision.float32, .float64])
    func matchesPlainWalk(precision: TreeEnsemble.Precision) throws {
        var g = Generator(state: 7)
        var trees = (0..<10).map { t in Self.tree(&g, spine: t % 3 == 0 ? 20 : 3) }
        trees.insert(TreeEnsemble.Tree(nodes: [], leaves: [0.125]), at: 5)
        let ensemble = TreeEnsemble(trees: trees, treeOutputs: trees.indices.map { Int32($0 % 2) }, outputCount: 2,
                                    baseMargins: [0.5, -0.25], precision: precision, averageTrees: false,
                                    transform: .identity, featureCount: Self.featureCount)
        let model = try Model(kind: .trees(ensemble), featureNames: nil)
        let evaluator = try #require(model.evaluator as? TreeEvaluator)
        #expect(evaluator.layout == .hybrid)

        let rowCount = 300
        // The first two blocks of 64 rows have no missing values (the kernels'
        // one-comparison step), the rest have some.
        let rows = (0..<rowCount).map { r in
            (0..<Self.featureCount).map { _ in r >= 128 && g.unit() < 0.1 ? Float.nan : Float(g.unit() * 2.4 - 1.2) }
        }
        let expected = rows.map { Self.reference(ensemble, $0) }
        for (r, row) in rows.enumerated() {
            #expect(try model.predict(row, kind: .margin) == expected[r], "row \(r)")
        }
        let flat = rows.flatMap { $0 }
        for threads in [1, 2] {
            var out = [Double](repeating: .nan, count: rowCount * 2)
            try flat.withUnsafeBufferPointer { f in
                try out.withUnsafeMutableBufferPointer { o in
                    try model.predictBatch(rows: f, rowCount: rowCount, into: o, kind: .margin, threads: threads)
                }
            }
            #expect(out == expected.flatMap { $0 }, "batch, \(threads) threads")
        }
    }
}
