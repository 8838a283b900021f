// The LightGBM model kinds of issue 20, each against LightGBM 4.7's own
// predict on rows that exercise its rule (fixtures from
// scripts/fixtures_lightgbm.py): linear trees, reg_sqrt, cross-entropy
// lambda, one-vs-all multiclass, a custom objective, the |x| ≤ 1e-35 input
// rule, and a model trained on pandas category columns scored from a CSV
// of original values (numbers and strings, unknown ones included). Margins
// must be bit-exact; outputs agree to the last bits of libm.

import Foundation
import Testing
@testable import PlinthInference

@Suite struct LightGBMKindsTests {
    static let kinds = ["lgbk_linear", "lgbk_linear_binary", "lgbk_reg_sqrt", "lgbk_l1_sqrt", "lgbk_xentlambda",
                        "lgbk_xentropy", "lgbk_multiova", "lgbk_gamma", "lgbk_custom", "lgbk_tiny"]

    func check(_ model: Model, _ name: String) throws {
        let (m, p) = try compare(model, rows: try Fixture.rows("lgbk_rows.csv"),
                                 expected: try Fixture.expected("\(name).expected.csv"))
        #expect(m == 0, "\(name): worst margin error \(m)")
        #expect(p <= 1e-12, "\(name): worst output error \(p)")
    }

    @Test(arguments: kinds) func scoresAsLightGBM(_ name: String) throws {
        try check(try LightGBMImporter.load(text: try Fixture.bytes("\(name).txt")), name)
    }

    /// The native form carries linear leaves, the new transforms and the
    /// input rule: a round trip scores every row the same.
    @Test(arguments: kinds) func nativeRoundTripScoresTheSame(_ name: String) throws {
        let model = try LightGBMImporter.load(text: try Fixture.bytes("\(name).txt"))
        let back = try NativeModelFormat.decode(try NativeModelFormat.encode(model))
        guard case let .trees(a) = model.kind, case let .trees(b) = back.kind else {
            Issue.record("not a tree ensemble")
            return
        }
        #expect(a == b)
        try check(back, name)
    }

    @Test func importedKindsAreWhatTheFileSays() throws {
        func ensemble(_ name: String) throws -> TreeEnsemble {
            let model = try LightGBMImporter.load(text: try Fixture.bytes("\(name).txt"))
            guard case let .trees(e) = model.kind else { throw FixtureError.missing(name) }
            return e
        }
        #expect(try ensemble("lgbk_reg_sqrt").transform == .signedSquare)
        #expect(try ensemble("lgbk_l1_sqrt").transform == .signedSquare)
        #expect(try ensemble("lgbk_xentlambda").transform == .softplus)
        #expect(try ensemble("lgbk_multiova").transform == .sigmoid(scale: 0.8))
        #expect(try ensemble("lgbk_custom").transform == .identity)
        #expect(try ensemble("lgbk_tiny").tinyInputsAreZero)
        let linear = try ensemble("lgbk_linear")
        #expect(linear.trees.allSatisfy { $0.linearLeaves?.count == $0.leaves.count })
        #expect(linear.trees.contains { $0.linearLeaves?.contains { !$0.features.isEmpty } == true })
    }

    @Test func unknownObjectiveIsRefused() throws {
        let text = String(decoding: try Fixture.bytes("lgbk_custom.txt"), as: UTF8.self)
            .replacingOccurrences(of: "max_feature_idx=", with: "objective=my_loss\nmax_feature_idx=")
        #expect(throws: ModelError.self) { try LightGBMImporter.load(text: Array(text.utf8)) }
    }

    // MARK: - |x| ≤ 1e-35 is 0

    /// One split at a threshold between -1e-35 and 0, in every layout: a
    /// value LightGBM reads as 0 must go the way 0 goes.
    @Test func tinyInputsAreZeroInEveryLayout() throws {
        // x < -1e-36 (strict, float) goes left (1), else right (2).
        let t: Float = -1e-36
        for zeroMissing in [false, true] {
            let node = TreeEnsemble.Node(feature: 0, threshold: t, left: -1, right: -2, defaultLeft: true,
                                         zeroIsMissing: zeroMissing)
            for flag in [false, true] {
                let e = TreeEnsemble(trees: [TreeEnsemble.Tree(nodes: [node], leaves: [1, 2])], treeOutputs: [0],
                                     outputCount: 1, baseMargins: [0], precision: .float64, averageTrees: false,
                                     transform: .identity, featureCount: 2, tinyInputsAreZero: flag)
                let model = try Model(kind: .trees(e), featureNames: nil)
                let layout = (model.evaluator as? TreeEvaluator)?.layout
                #expect(layout == (zeroMissing ? .pointer : .perfect))
                for x: Float in [-5e-36, -1e-35, 1e-36, -0.0] {
                    // zero-as-missing sends 0 and tiny values the default way (left).
                    let want: Double = zeroMissing ? 1 : (flag || !(x < t) ? 2 : 1)
                    let single = try model.predict([x, 0], kind: .margin)
                    var batch = [Double](repeating: 0, count: 3)
                    let rows: [Float] = [x, 0, x, 0, x, 0]
                    try rows.withUnsafeBufferPointer { r in
                        try batch.withUnsafeMutableBufferPointer { o in
                            try model.predictBatch(rows: r, rowCount: 3, into: o, kind: .margin)
                        }
                    }
                    #expect(single == [want], "x \(x), flag \(flag), zero missing \(zeroMissing)")
                    #expect(batch == [want, want, want], "x \(x), flag \(flag), zero missing \(zeroMissing)")
                }
            }
        }
    }

    // MARK: - pandas categories

    @Test func pandasCategoriesBecomeCategoryMaps() throws {
        let model = try LightGBMImporter.load(text: try Fixture.bytes("lgbk_pandas.txt"))
        #expect(model.featureNames == ["a", "store", "b", "c", "city"])
        #expect(Set(model.categoryMaps.keys) == [1, 4])
        #expect(model.categoryMaps[1]?.values == .numbers([9, 42, 103, 517, 2048]))
        #expect(model.categoryMaps[4]?.values == .strings(["s0", "s1", "Zürich", "a,b", "q\"t"]))
    }

    /// The CSV holds original values (store ids, city names, quoted ones,
    /// unknown ones, empty cells); every row scores as LightGBM scores the
    /// same DataFrame with category columns.
    @Test(arguments: [false, true]) func csvOfOriginalCategoriesScoresAsLightGBM(native: Bool) throws {
        var model = try LightGBMImporter.load(text: try Fixture.bytes("lgbk_pandas.txt"))
        if native { model = try NativeModelFormat.decode(try NativeModelFormat.encode(model)) }
        #expect(model.categoryMaps.count == 2)
        let csv = String(decoding: try Fixture.bytes("lgbk_pandas_rows.csv"), as: UTF8.self)
        let expected = try Fixture.expected("lgbk_pandas.expected.csv")
        for kind in OutputKind.allCases {
            let out = try CSVScorer(model: model, kind: kind, threads: 2).score(csv: csv)
            let values = out.split(separator: "\n").dropFirst().map { Double(String($0)) ?? .nan }
            #expect(values.count == expected.count)
            for (r, v) in values.enumerated() {
                let want = kind == .margin ? expected[r].margin[0] : expected[r].prob[0]
                #expect(kind == .margin ? v == want : abs(v - want) <= 1e-12, "row \(r + 1) \(kind): \(v) vs \(want)")
            }
        }
    }

    @Test func codesAreNotAcceptedForMappedFeatures() throws {
        let model = try LightGBMImporter.load(text: try Fixture.bytes("lgbk_pandas.txt"))
        // "2" is not a store id: missing, not code 2 (store 103).
        let asCode = try CSVScorer(model: model, kind: .margin).score(csv: "a,store,b,c,city\n0.5,2,0,0,s1\n")
        let missing = try CSVScorer(model: model, kind: .margin).score(csv: "a,store,b,c,city\n0.5,,0,0,s1\n")
        let store = try CSVScorer(model: model, kind: .margin).score(csv: "a,store,b,c,city\n0.5,103.0,0,0,s1\n")
        let code = try model.predict([0.5, 2, 0, 0, 1], kind: .margin)
        #expect(asCode == missing)
        #expect(store.split(separator: "\n").last.map(String.init) == "\(code[0])")
    }

    @Test func pandasListsThatMatchNoCategoricalFeaturesAreRefused() throws {
        let text = String(decoding: try Fixture.bytes("lgbk_pandas.txt"), as: UTF8.self)
            .replacingOccurrences(of: "pandas_categorical:[", with: "pandas_categorical:[[\"x\"], ")
        #expect {
            try LightGBMImporter.load(text: Array(text.utf8))
        } throws: { error in
            guard case let .unsupported(_, feature) = error as? ModelError else { return false }
            return feature.contains("3 category columns for 2 categorical features")
        }
    }

    @Test func modelsWithoutPandasCategoriesHaveNoMaps() throws {
        #expect(try LightGBMImporter.load(text: try Fixture.bytes("lgbk_linear.txt")).categoryMaps.isEmpty)
        let text = String(decoding: try Fixture.bytes("lgbk_linear.txt"), as: UTF8.self) + "\npandas_categorical:null\n"
        #expect(try LightGBMImporter.load(text: Array(text.utf8)).categoryMaps.isEmpty)
    }
}
