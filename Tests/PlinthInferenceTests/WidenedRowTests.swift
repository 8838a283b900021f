// The perfect and hybrid layouts step on widened rows (values, negated
// values, one column per categorical split) with one comparison whatever the
// default direction. These tests check the encoding against a plain walk of
// the IR where it is easiest to get wrong: values exactly at thresholds, ±0,
// ±infinity, NaN on either default side, categorical splits both as columns
// and as flagged nodes (more distinct sets than `maxCategoryColumns`), and a
// threshold of −∞, which the encoding cannot express (pointer layout).

import Testing
@testable import PlinthInference

@Suite struct WidenedRowTests {
    typealias Generator = HybridLayoutTests.Generator

    static let featureCount = 5
    /// Feature 4 is categorical; the others are numerical and take values
    /// from a small grid that includes every threshold.
    static let thresholds: [Float] = [-1.5, -0.25, 0, 0.5, 2, .infinity]
    static let values: [Float] = [-.infinity, -1.5, -1.4999999, -0.25, -0.0, 0, 1e-40, 0.5, 0.50000006, 2,
                                  3e38, .infinity, .nan]
    static let categories: [Float] = [.nan, -3, -1, -0.5, 0, 0.9, 1, 2, 3, 5, 31, 32, 33, 40, 63, 64, 1e10]

    /// A random tree; categorical splits draw their set from `setPool` words
    /// (one or two words), or a fresh random set per split when `fresh`.
    static func tree(_ g: inout Generator, depth maxDepth: Int, fresh: Bool) -> TreeEnsemble.Tree {
        var nodes = [TreeEnsemble.Node]()
        var leaves = [Double]()
        var sets = [[UInt32]]()
        func build(_ depth: Int) -> Int32 {
            if depth == maxDepth || (depth > 2 && g.unit() < 0.25) {
                leaves.append(g.unit() * 2 - 1)
                return ~Int32(leaves.count - 1)
            }
            let index = nodes.count
            if g.unit() < 0.3 {
                let words: [UInt32] = fresh ? [UInt32(truncatingIfNeeded: g.next()), UInt32(truncatingIfNeeded: g.next())]
                    : [[0b1011_0110], [0x8000_0001, 0x0000_0003], [0xFFFF_FFFE]][Int(g.next() % 3)]
                sets.append(words)
                nodes.append(TreeEnsemble.Node(feature: 4, threshold: 0, left: 0, right: 0, defaultLeft: false,
                                               categorySet: Int32(sets.count - 1)))
            } else {
                nodes.append(TreeEnsemble.Node(feature: Int32(g.next() % 4),
                                               threshold: thresholds[Int(g.next() % UInt64(thresholds.count))],
                                               left: 0, right: 0, defaultLeft: g.next() & 1 == 0))
            }
            let left = build(depth + 1)
            let right = build(depth + 1)
            nodes[index].left = left
            nodes[index].right = right
            return Int32(index)
        }
        _ = build(0)
        return TreeEnsemble.Tree(nodes: nodes, leaves: leaves, categorySets: sets)
    }

    /// The IR walked node by node, with LightGBM's categorical rule.
    static func reference(_ e: TreeEnsemble, _ row: [Float]) -> Double {
        var sum = e.baseMargins[0]
        for tree in e.trees {
            var ref: Int32 = tree.nodes.isEmpty ? ~0 : 0
            while ref >= 0 {
                let n = tree.nodes[Int(ref)]
                let x = row[Int(n.feature)]
                let right: Bool
                if n.categorySet >= 0 {
                    if x.isNaN || x <= -1 || x >= 2_147_483_648 {
                        right = true
                    } else {
                        let c = Int(x), set = tree.categorySets[Int(n.categorySet)]
                        right = c / 32 >= set.count || (set[c / 32] >> UInt32(c % 32)) & 1 == 0
                    }
                } else {
                    right = x.isNaN ? !n.defaultLeft : !(x < n.threshold)
                }
                ref = right ? n.right : n.left
            }
            sum += tree.leaves[Int(~ref)]
        }
        return sum
    }

    static func check(_ trees: [TreeEnsemble.Tree], layout: TreeEvaluator.Layout, _ g: inout Generator) throws {
        let ensemble = TreeEnsemble(trees: trees, treeOutputs: trees.map { _ in 0 }, outputCount: 1,
                                    baseMargins: [0.25], precision: .float64, averageTrees: false,
                                    transform: .identity, featureCount: featureCount)
        let model = try Model(kind: .trees(ensemble), featureNames: nil)
        let evaluator = try #require(model.evaluator as? TreeEvaluator)
        #expect(evaluator.layout == layout)
        let rows = (0..<200).map { _ in
            (0..<4).map { _ in values[Int(g.next() % UInt64(values.count))] }
                + [categories[Int(g.next() % UInt64(categories.count))]]
        }
        // Sums in tree order on both sides: equal to the bit.
        let expected = rows.map { reference(ensemble, $0) }
        for (r, row) in rows.enumerated() {
            #expect(try model.predict(row, kind: .margin) == [expected[r]], "row \(r): \(row)")
        }
        let flat = rows.flatMap { $0 }
        var out = [Double](repeating: .nan, count: rows.count)
        try flat.withUnsafeBufferPointer { f in
            try out.withUnsafeMutableBufferPointer { o in
                try model.predictBatch(rows: f, rowCount: rows.count, into: o, kind: .margin, threads: 1)
            }
        }
        #expect(out == expected, "batch")
    }

    @Test func perfectLayoutWithCategoryColumns() throws {
        var g = Generator(state: 11)
        try Self.check((0..<9).map { _ in Self.tree(&g, depth: 7, fresh: false) }, layout: .perfect, &g)
    }

    @Test func hybridLayoutWithCategoryColumns() throws {
        var g = Generator(state: 12)
        try Self.check((0..<9).map { _ in Self.tree(&g, depth: 16, fresh: false) }, layout: .hybrid, &g)
    }

    @Test func flaggedCategoriesBeyondTheColumnLimit() throws {
        var g = Generator(state: 13)
        let trees = (0..<40).map { _ in Self.tree(&g, depth: 14, fresh: true) }
        let sets = trees.reduce(0) { $0 + $1.categorySets.count }
        #expect(sets > TreeEvaluator.maxCategoryColumns)
        try Self.check(trees, layout: .hybrid, &g)
        let shallow = (0..<60).map { _ in Self.tree(&g, depth: 8, fresh: true) }
        #expect(shallow.reduce(0) { $0 + $1.categorySets.count } > TreeEvaluator.maxCategoryColumns)
        try Self.check(shallow, layout: .perfect, &g)
    }

    @Test func minusInfinityThresholdUsesThePointerLayout() throws {
        var g = Generator(state: 14)
        var trees = (0..<5).map { _ in Self.tree(&g, depth: 6, fresh: false) }
        if let n = trees[2].nodes.firstIndex(where: { $0.categorySet < 0 }) {
            trees[2].nodes[n].threshold = -.infinity
        }
        try Self.check(trees, layout: .pointer, &g)
    }
}
