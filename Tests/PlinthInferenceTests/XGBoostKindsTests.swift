// XGBoost's model kinds beyond plain gbtree (categorical splits, DART,
// gblinear, multi-target, logitraw, hinge, Cox, AFT, Poisson with a
// base_score): every fixture row must give XGBoost 3.2's margin to the bit,
// through every evaluation path and after the native round trip, and its
// prediction within float32 rounding. Then the categorical rule's edges on
// hand-built trees, in every evaluator layout.

import Testing
@testable import PlinthInference

@Suite struct XGBoostKindsTests {
    /// Scores `rows` one at a time and in batches (one and two threads);
    /// margins must equal `expected` exactly, predictions within 1e-6
    /// relative (XGBoost transforms in float32, Plinth in float64).
    func expectExact(_ model: Model, rows: [[Float]], expected: [(margin: [Double], prob: [Double])],
                     _ label: String) throws {
        #expect(rows.count == expected.count, "\(label): row count")
        let k = model.outputCount
        func checkProb(_ got: Double, _ want: Double, _ r: Int) {
            #expect(abs(got - want) <= 1e-6 * max(1, abs(want)), "\(label) row \(r): prediction \(got), XGBoost \(want)")
        }
        for (r, row) in rows.enumerated() {
            let m = try model.predict(row, kind: .margin)
            let p = try model.predict(row, kind: .probability)
            #expect(m == expected[r].margin, "\(label) row \(r): margin \(m), XGBoost \(expected[r].margin)")
            #expect(p.count == expected[r].prob.count || expected[r].prob.count == 1, "\(label): outputs")
            for i in 0..<min(k, expected[r].prob.count) { checkProb(p[i], expected[r].prob[i], r) }
        }
        for threads in [1, 2] {
            for kind in OutputKind.allCases {
                let out = try scoreBatch(model, rows, kind: kind, threads: threads)
                for r in 0..<rows.count {
                    let got = Array(out[(r * k)..<(r * k + k)])
                    if kind == .margin {
                        #expect(got == expected[r].margin, "\(label) batch row \(r) (\(threads) threads)")
                    } else {
                        for i in 0..<min(k, expected[r].prob.count) { checkProb(got[i], expected[r].prob[i], r) }
                    }
                }
            }
        }
    }

    @discardableResult
    func check(_ name: String, rows: String = "xgb_kinds_rows.csv") throws -> Model {
        let model = try XGBoostImporter.load(json: try Fixture.bytes("\(name).json"))
        let input = try Fixture.rows(rows), expected = try Fixture.expected("\(name).expected.csv")
        try expectExact(model, rows: input, expected: expected, name)
        let decoded = try NativeModelFormat.decode(try NativeModelFormat.encode(model))
        #expect(decoded.kind == model.kind, "\(name): the native form keeps the IR")
        try expectExact(decoded, rows: input, expected: expected, "\(name) (native)")
        return model
    }

    @Test func logitrawKeepsBaseScoreUnchanged() throws {
        let model = try check("xgb_logitraw")
        guard case let .trees(e) = model.kind else { Issue.record("not trees"); return }
        // base_score 0.3 is a margin for logitraw (XGBoost ≥ 1.4), not a probability.
        #expect(e.baseMargins == [Double(Float(0.3))])
    }

    @Test func hinge() throws { try check("xgb_hinge") }
    @Test func dart() throws { try check("xgb_dart") }
    @Test func dartMulticlass() throws { try check("xgb_dart_multiclass") }
    /// The wrapper's predict takes DART's inplace path, not Booster.predict's.
    @Test func scikitLearnDart() throws { try check("xgb_sklearn_dart") }
    @Test func poissonWithBaseScore() throws { try check("xgb_poisson_base") }
    @Test func cox() throws { try check("xgb_cox") }
    @Test func aft() throws { try check("xgb_aft") }
    @Test func quantiles() throws { try check("xgb_quantiles") }
    @Test func oneOutputPerTree() throws { try check("xgb_one_output_per_tree") }

    @Test func vectorLeavesBecomeOneTreePerTarget() throws {
        let model = try check("xgb_multi_output_tree")
        guard case let .trees(e) = model.kind else { Issue.record("not trees"); return }
        #expect(e.outputCount == 3)
        #expect(e.trees.count == 18)
        #expect(e.treeOutputs.prefix(6) == [0, 1, 2, 0, 1, 2])
    }

    @Test func gblinear() throws {
        let model = try check("xgb_gblinear")
        guard case let .linear(l) = model.kind else { Issue.record("not linear"); return }
        #expect(l.summation == .float32SkippingMissing)
    }

    @Test func gblinearMulticlass() throws { try check("xgb_gblinear_multiclass") }

    @Test func categoricalPartitionSplits() throws {
        let model = try check("xgb_cat_partition", rows: "xgb_cat_rows.csv")
        // The file records the DataFrame's categories: strings for colour,
        // numbers for store, codes in category order.
        #expect(model.categoryMaps.keys.sorted() == [1, 2])
        #expect(model.categoryMaps[1]?.code(utf8: Array("c4".utf8)) == 4)
        #expect(model.categoryMaps[2]?.code(number: 517) == 17)
        #expect(model.categoryMaps[2]?.code(number: 518).isNaN == true)
        #expect(model.categoryMaps[0] == nil)
    }

    @Test func categoricalFromUBJSON() throws {
        let json = try XGBoostImporter.load(json: try Fixture.bytes("xgb_cat_partition.json"))
        let ubj = try XGBoostImporter.load(ubjson: try Fixture.bytes("xgb_cat_partition.ubj"))
        #expect(ubj.kind == json.kind)
        #expect(ubj.categoryMaps == json.categoryMaps)
    }

    @Test func categoricalOneHotSplits() throws {
        try check("xgb_cat_onehot", rows: "xgb_cat_rows.csv")
    }

    @Test func refusesWhatItCannotScore() throws {
        var text = String(decoding: try Fixture.bytes("xgb_gblinear.json"), as: UTF8.self)
        text = text.replacingOccurrences(of: "\"gblinear\"", with: "\"gbforest\"")
        #expect(throws: ModelError.self) { try XGBoostImporter.load(json: Array(text.utf8)) }
        var dart = String(decoding: try Fixture.bytes("xgb_dart.json"), as: UTF8.self)
        dart = dart.replacingOccurrences(of: "\"weight_drop\"", with: "\"weight_dropped\"")
        #expect(throws: ModelError.self) { try XGBoostImporter.load(json: Array(dart.utf8)) }
    }

    // MARK: - The categorical rule on hand-built trees

    /// Tree 0 splits feature 0 on the set {1, 3} with missing values going
    /// `missingLeft`; leaves 10 (left: in the set) and 20. `extra` trees,
    /// all of whose leaves are 0, force the evaluator's other layouts.
    static func model(missingLeft: Bool, negativeIsNoCategory: Bool,
                      extra: [TreeEnsemble.Tree] = []) throws -> Model {
        let root = TreeEnsemble.Node(feature: 0, threshold: 0, left: ~0, right: ~1, defaultLeft: missingLeft,
                                     categorySet: 0)
        let tree = TreeEnsemble.Tree(nodes: [root], leaves: [10, 20], categorySets: [[0b1010]])
        var e = TreeEnsemble(trees: [tree] + extra, treeOutputs: [Int32](repeating: 0, count: 1 + extra.count),
                             outputCount: 1, baseMargins: [0], precision: .float32, averageTrees: false,
                             transform: .identity, featureCount: 3)
        e.negativeIsNoCategory = negativeIsNoCategory
        return try Model(kind: .trees(e), featureNames: nil)
    }

    /// Extra trees for each layout: none (perfect, category columns); 300
    /// distinct categorical splits (perfect, flagged steps); a 14-deep
    /// chain (hybrid); a zero-as-missing split (pointer).
    static let layouts: [(String, [TreeEnsemble.Tree])] = {
        let flagged = (0..<300).map { k in
            TreeEnsemble.Tree(nodes: [TreeEnsemble.Node(feature: 1, threshold: 0, left: ~0, right: ~1, defaultLeft: false,
                                                        categorySet: 0)],
                              leaves: [0, 0], categorySets: [[UInt32](repeating: 0, count: k / 32) + [1 << UInt32(k % 32)]])
        }
        var chain = [TreeEnsemble.Node]()
        for d in 0..<14 {
            chain.append(TreeEnsemble.Node(feature: 2, threshold: Float(d), left: ~Int32(d),
                                           right: d == 13 ? ~14 : Int32(d + 1), defaultLeft: true))
        }
        let deep = TreeEnsemble.Tree(nodes: chain, leaves: [Double](repeating: 0, count: 15))
        let zero = TreeEnsemble.Tree(nodes: [TreeEnsemble.Node(feature: 2, threshold: 0.5, left: ~0, right: ~1,
                                                               defaultLeft: true, zeroIsMissing: true)],
                                     leaves: [0, 0])
        return [("perfect", []), ("perfect, flagged", flagged), ("hybrid", [deep]), ("pointer", [zero])]
    }()

    @Test func missingFollowsDefaultAndNegativesAreNoCategory() throws {
        for (layout, extra) in Self.layouts {
            for missingLeft in [false, true] {
                let model = try Self.model(missingLeft: missingLeft, negativeIsNoCategory: true, extra: extra)
                // (value, expected leaf): in the set → 10; NaN → the default
                // side; not in the set, negative (even -0.5, which truncates
                // to 0 but is below zero), past the set's words or past
                // Int32 → 20; a fraction is truncated.
                let cases: [(Float, Double)] = [
                    (1, 10), (3, 10), (3.9, 10), (0, 20), (2, 20), (-0.0, 20), (-0.5, 20), (-1, 20), (-3, 20),
                    (1e9, 20), (3e9, 20), (.infinity, 20), (-.infinity, 20), (.nan, missingLeft ? 10 : 20),
                ]
                for (x, want) in cases {
                    let row: [Float] = [x, 7, 1]
                    let got = try model.predict(row, kind: .margin)[0]
                    #expect(got == want, "\(layout), missingLeft \(missingLeft): x = \(x) gave \(got)")
                    let batch = try scoreBatch(model, [row, row, row], kind: .margin, threads: 1)
                    #expect(batch == [want, want, want], "\(layout) batch, missingLeft \(missingLeft): x = \(x)")
                }
            }
        }
    }

    @Test func lightGBMTruncatesSmallNegativesToCategoryZero() throws {
        // LightGBM's rule (negativeIsNoCategory false): -0.5 is category 0.
        let root = TreeEnsemble.Node(feature: 0, threshold: 0, left: ~0, right: ~1, defaultLeft: false, categorySet: 0)
        let tree = TreeEnsemble.Tree(nodes: [root], leaves: [10, 20], categorySets: [[0b1]])
        let e = TreeEnsemble(trees: [tree], treeOutputs: [0], outputCount: 1, baseMargins: [0], precision: .float64,
                             averageTrees: false, transform: .identity, featureCount: 1)
        let model = try Model(kind: .trees(e), featureNames: nil)
        #expect(try model.predict([-0.5], kind: .margin) == [10])
        #expect(try model.predict([-1], kind: .margin) == [20])
        #expect(try model.predict([.nan], kind: .margin) == [20])
    }

    @Test func hingeAtExactlyZeroIsZero() throws {
        let tree = TreeEnsemble.Tree(nodes: [TreeEnsemble.Node(feature: 0, threshold: 0, left: ~0, right: ~1,
                                                               defaultLeft: true)],
                                     leaves: [0, 0.25])
        let e = TreeEnsemble(trees: [tree], treeOutputs: [0], outputCount: 1, baseMargins: [0], precision: .float32,
                             averageTrees: false, transform: .step, featureCount: 1)
        let model = try Model(kind: .trees(e), featureNames: nil)
        #expect(try model.predict([-1]) == [0])
        #expect(try model.predict([-1], kind: .margin) == [0])
        #expect(try model.predict([1]) == [1])
        let decoded = try NativeModelFormat.decode(try NativeModelFormat.encode(model))
        #expect(decoded.kind == model.kind)
    }

    @Test func gblinearSkipsMissingInputs() throws {
        let linear = LinearModel(featureCount: 2, outputCount: 1, weights: [2, 3], intercepts: [0.5],
                                 transform: .identity, summation: .float32SkippingMissing)
        let model = try Model(kind: .linear(linear), featureNames: nil)
        #expect(try model.predict([.nan, 1], kind: .margin) == [3.5])
        #expect(try model.predict([1, 1], kind: .margin) == [5.5])
        // Weights that are not float32 values cannot be summed as XGBoost does.
        let bad = LinearModel(featureCount: 1, outputCount: 1, weights: [0.1], intercepts: [0],
                              transform: .identity, summation: .float32SkippingMissing)
        #expect(throws: ModelError.self) { try Model(kind: .linear(bad), featureNames: nil) }
    }

    @Test func nativeFormKeepsTheNote() throws {
        let model = try XGBoostImporter.load(json: try Fixture.bytes("xgb_sklearn_early_stop.json"))
        let decoded = try NativeModelFormat.decode(try NativeModelFormat.encode(model))
        #expect(decoded.note == model.note)
        #expect(decoded.note?.hasPrefix("using 87 of 92 trees") == true)
    }
}
