// Exactness of scikit-learn's tree ensembles exported with
// plinth.export.from_sklearn ("plinth_model": "trees"), against
// scikit-learn 1.9's own outputs (fixtures from scripts/fixtures_sklearn.py),
// and the importer's refusals of malformed tree documents.

import Foundation
import Testing
@testable import PlinthInference

@Suite struct SklearnEnsembleTests {
    static let format = "Plinth JSON"

    /// Input rows as a caller gives them: a feature with a category map is
    /// encoded through it (a value that is not a category becomes NaN), as
    /// CSV scoring and serving do; any other cell is a number, empty = NaN.
    static func rows(_ name: String, for model: Model) throws -> [[Float]] {
        let text = String(decoding: try Fixture.bytes(name), as: UTF8.self)
        return text.split(separator: "\n").dropFirst().map { line in
            line.split(separator: ",", omittingEmptySubsequences: false).enumerated().map { f, cell in
                if let map = model.categoryMaps[f] { return cell.isEmpty ? .nan : map.code(utf8: cell.utf8) }
                return Float(String(cell)) ?? .nan
            }
        }
    }

    /// - Parameters:
    ///   - probabilityULPs: how far the output may be from scikit-learn's, in
    ///     units in the last place of the expected value. Margins are always
    ///     compared exactly, and so are forests' means (both divide the sum
    ///     by the tree count).
    ///   - probabilityTolerance: absolute, for sigmoid/softmax/exp outputs,
    ///     which are scipy's functions in scikit-learn and libm's here.
    func check(_ name: String, rows rowsName: String = "sk_tree_rows.csv", probabilityULPs: Double = 0,
               probabilityTolerance: Double = 0) throws {
        let model = try PlinthJSONImporter.load(json: try Fixture.bytes("\(name).plinth.json"))
        let rows = try Self.rows(rowsName, for: model)
        let expected = try Fixture.expected("\(name).expected.csv")
        let (m, _) = try compare(model, rows: rows, expected: expected)
        #expect(m == 0, "\(name): worst margin error \(m)")
        for (r, row) in rows.enumerated() {
            let p = try model.predict(row)
            for (k, want) in expected[r].prob.enumerated() {
                let allowed = max(probabilityTolerance, probabilityULPs * want.ulp)
                #expect(abs(p[k] - want) <= allowed, "\(name) row \(r) output \(k): \(p[k]) vs scikit-learn's \(want)")
            }
        }
    }

    // Forests: the mean of the trees' class fractions / values; NaN follows
    // each split's learned direction.
    @Test func randomForestClassifierBinary() throws { try check("sk_rf_binary") }
    @Test func randomForestClassifierMulticlass() throws { try check("sk_rf_multi") }
    @Test func extraTreesClassifierMulticlass() throws { try check("sk_et_multi") }
    @Test func randomForestRegressor() throws { try check("sk_rf_regressor") }
    @Test func extraTreesRegressorTwoOutputs() throws { try check("sk_et_regressor_2out") }

    // Gradient boosting: init constant + learning_rate × leaf, bit-exact raw.
    @Test func gradientBoostingBinary() throws {
        try check("sk_gb_binary", rows: "sk_tree_rows_dense.csv", probabilityTolerance: 1e-15)
    }
    @Test func gradientBoostingMulticlass() throws {
        try check("sk_gb_multi", rows: "sk_tree_rows_dense.csv", probabilityTolerance: 1e-15)
    }
    @Test func gradientBoostingExponentialLoss() throws {
        try check("sk_gb_exponential", rows: "sk_tree_rows_dense.csv", probabilityTolerance: 1e-15)
    }
    @Test func gradientBoostingHuber() throws { try check("sk_gb_huber", rows: "sk_tree_rows_dense.csv") }

    // Histogram gradient boosting: baseline + leaves; missing values,
    // categorical splits, unknown categories (12, 2.5, -1 in the rows).
    @Test func histGradientBoostingBinary() throws { try check("sk_hgb_binary", probabilityTolerance: 1e-15) }
    @Test func histGradientBoostingMulticlassCategorical() throws {
        try check("sk_hgb_multi_cat", probabilityTolerance: 1e-15)
    }
    @Test func histGradientBoostingPoisson() throws { try check("sk_hgb_poisson", probabilityULPs: 2) }
    @Test func histGradientBoostingPandasCategories() throws {
        try check("sk_hgb_pandas_cat", rows: "sk_hgb_pandas_cat_rows.csv", probabilityTolerance: 1e-15)
    }

    @Test func pandasCategoryListsBecomeCategoryMaps() throws {
        let model = try PlinthJSONImporter.load(json: try Fixture.bytes("sk_hgb_pandas_cat.plinth.json"))
        #expect(model.featureNames == ["a", "tier", "b", "c", "store", "d", "e"])
        #expect(model.categoryMaps.keys.sorted() == [1, 4])
        #expect(model.categoryMaps[1]?.values == .strings(["bronze", "gold", "s0", "silver"]))
        #expect(model.categoryMaps[4]?.values == .numbers([9, 44, 103, 517, 2048]))
        #expect(model.categoryMaps[4]?.code(number: 517) == 3)
        #expect(model.categoryMaps[1]?.code(utf8: "platinum".utf8).isNaN == true)
        // A numpy-coded categorical feature gets its map too: scikit-learn
        // encodes those values itself, and 2.5 or 12 are not categories.
        let numeric = try PlinthJSONImporter.load(json: try Fixture.bytes("sk_hgb_multi_cat.plinth.json"))
        #expect(numeric.categoryMaps[0]?.count == 10)
        #expect(numeric.categoryMaps[0]?.code(number: 2.5).isNaN == true)
    }

    // MARK: split semantics on hand-written documents

    static func load(_ json: String) throws(ModelError) -> Model {
        try PlinthJSONImporter.load(json: Array(json.utf8))
    }

    /// One split on feature 0 with leaves 1 (left) and 2 (right).
    static func stump(threshold: String, missingLeft: Bool) -> String {
        #"{"plinth_model":"trees","n_features":1,"trees":[{"split_feature":[0],"threshold":[\#(threshold)],"#
            + #""left":[-1],"right":[-2],"missing_left":[\#(missingLeft)],"leaf_value":[1,2]}]}"#
    }

    @Test func thresholdsAreLessOrEqualOnDoubles() throws {
        // 0.1 as a double lies between two floats: Float(0.1) is above it.
        let model = try Self.load(Self.stump(threshold: "0.1", missingLeft: true))
        #expect(try model.predict([Float(0.1)]) == [2])
        #expect(try model.predict([Float(0.1).nextDown]) == [1])
        #expect(try model.predict([.nan]) == [1])
        // A threshold that is a float: equal goes left.
        let exact = try Self.load(Self.stump(threshold: "0.5", missingLeft: false))
        #expect(try exact.predict([0.5]) == [1])
        #expect(try exact.predict([Float(0.5).nextUp]) == [2])
        #expect(try exact.predict([.nan]) == [2])
    }

    @Test func infiniteThresholdSplitsOnMissingness() throws {
        // scikit-learn's "split on NaN": every present value, +inf included, goes left.
        let model = try Self.load(Self.stump(threshold: "Infinity", missingLeft: false))
        for x: Float in [.infinity, -.infinity, 0, .greatestFiniteMagnitude] {
            #expect(try model.predict([x]) == [1], "x = \(x)")
        }
        #expect(try model.predict([.nan]) == [2])
        // The same split with missing values sent left: everything goes left.
        let both = try Self.load(Self.stump(threshold: "Infinity", missingLeft: true))
        for x: Float in [.infinity, -.infinity, -1, 0.5, .nan] {
            #expect(try both.predict([x]) == [1], "x = \(x)")
        }
        let negative = try Self.load(Self.stump(threshold: "-Infinity", missingLeft: false))
        #expect(try negative.predict([-.infinity]) == [1])
        #expect(try negative.predict([-.greatestFiniteMagnitude]) == [2])
    }

    @Test func categoricalSetsSendMembersLeftAndEverythingElseRight() throws {
        let doc = #"{"plinth_model":"trees","n_features":1,"trees":[{"split_feature":[0],"threshold":[0],"#
            + #""left":[-1],"right":[-2],"category_set":[0],"category_sets":[[10]],"leaf_value":[1,2]}]}"#
        let model = try Self.load(doc)
        #expect(try model.predict([1]) == [1])
        #expect(try model.predict([3]) == [1])
        for x: Float in [0, 2, 40, -1, .nan] { #expect(try model.predict([x]) == [2], "x = \(x)") }
    }

    @Test func forestsAverageAndBoostingAddsTheBase() throws {
        let forest = #"{"plinth_model":"trees","n_features":1,"n_outputs":1,"average":true,"#
            + #""trees":[{"leaf_value":[1]},{"leaf_value":[2]},{"leaf_value":[4]},{"leaf_value":[5]}]}"#
        #expect(try Self.load(forest).predict([0]) == [3])
        let boosted = #"{"plinth_model":"trees","n_features":1,"n_outputs":2,"base_margins":[0.5,-1],"#
            + #""output":"softmax","trees":[{"output":1,"leaf_value":[1]},{"output":0,"leaf_value":[0.25]}]}"#
        #expect(try Self.load(boosted).predict([0], kind: .margin) == [0.75, 0])
        let scaled = #"{"plinth_model":"trees","n_features":1,"output":"sigmoid","sigmoid_scale":2,"#
            + #""trees":[{"leaf_value":[0.5]}]}"#
        #expect(abs(try Self.load(scaled).predict([0])[0] - 1 / (1 + exp(-1.0))) < 1e-15)
    }

    // MARK: malformed documents

    static func tree(_ body: String, top: String = "") -> String {
        #"{"plinth_model":"trees","n_features":2,\#(top)"trees":[{\#(body)}]}"#
    }

    static let good = #""split_feature":[0,1],"threshold":[0.5,1.5],"left":[1,-1],"right":[-3,-2],"leaf_value":[1,2,3]"#

    @Test func acceptsTheWellFormedTree() throws {
        let model = try Self.load(Self.tree(Self.good))
        #expect(try model.predict([0, 0]) == [1])
        #expect(try model.predict([0, 2]) == [2])
        #expect(try model.predict([1, 0]) == [3])
    }

    @Test func refusesWrongSizes() {
        #expect(throws: ModelError.invalidField(format: Self.format, field: "trees[0].split_feature",
                                                detail: "3 values for 2 splits (one fewer than leaf_value's 3)")) {
            try Self.load(Self.tree(Self.good.replacingOccurrences("[0,1]", "[0,1,1]")))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "trees[0].threshold",
                                                detail: "expected 2 numbers, one per split")) {
            try Self.load(Self.tree(Self.good.replacingOccurrences("[0.5,1.5]", "[0.5]")))
        }
        #expect(throws: ModelError.missingField(format: Self.format, field: "trees[0].left")) {
            try Self.load(Self.tree(Self.good.replacingOccurrences(#""left":[1,-1],"#, "")))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "base_margins",
                                                detail: "expected 2 numbers, one per output")) {
            try Self.load(Self.tree(Self.good, top: #""n_outputs":2,"base_margins":[0],"#))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "trees[0].output",
                                                detail: "expected an output index in 0..<1")) {
            try Self.load(Self.tree(Self.good + #","output":1"#))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "trees",
                                                detail: "expected a non-empty array of trees")) {
            try Self.load(#"{"plinth_model":"trees","n_features":2,"trees":[]}"#)
        }
    }

    @Test func refusesCyclesAndBadIndices() {
        // Node 1 points back at node 0.
        #expect(throws: ModelError.badTree(tree: 0, detail: "node 1 has child 0, which is out of order or out of range")) {
            try Self.load(Self.tree(Self.good.replacingOccurrences(#""right":[-3,-2]"#, #""right":[-3,0]"#)))
        }
        #expect(throws: ModelError.badTree(tree: 0, detail: "node 0 points to leaf 6 of 3")) {
            try Self.load(Self.tree(Self.good.replacingOccurrences(#""right":[-3,-2]"#, #""right":[-7,-2]"#)))
        }
        #expect(throws: ModelError.featureOutOfRange(tree: 0, node: 1, feature: 5, featureCount: 2)) {
            try Self.load(Self.tree(Self.good.replacingOccurrences("[0,1]", "[0,5]")))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "trees[0].threshold", detail: "split 1 is NaN")) {
            try Self.load(Self.tree(Self.good.replacingOccurrences("[0.5,1.5]", "[0.5,NaN]")))
        }
    }

    @Test func refusesBadCategoricalSplitsAndMaps() {
        let cat = Self.good + #","category_set":[-1,0],"category_sets":[[3]]"#
        #expect(throws: ModelError.invalidField(format: Self.format, field: "trees[0].category_set",
                                                detail: "split 1 names set 1 but the tree has 1")) {
            try Self.load(Self.tree(cat.replacingOccurrences("[-1,0]", "[-1,1]")))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "trees[0].missing_left",
                                                detail: "split 1 is categorical: missing values must go right (false)")) {
            try Self.load(Self.tree(cat + #","missing_left":[false,true]"#))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "trees[0].category_sets[0]",
                                                detail: "-3 is not a 32-bit word")) {
            try Self.load(Self.tree(cat.replacingOccurrences("[[3]]", "[[-3]]")))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "categories[0].values",
                                                detail: "expected all strings or all numbers (one pandas dtype per column)")) {
            try Self.load(Self.tree(cat, top: #""categories":[{"feature":1,"values":["a",2]}],"#))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "categories[1].feature",
                                                detail: "feature 1 is listed twice")) {
            try Self.load(Self.tree(cat, top: #""categories":[{"feature":1,"values":["a"]},{"feature":1,"values":[2]}],"#))
        }
        #expect(throws: ModelError.invalidField(format: Self.format, field: "categories[0].feature",
                                                detail: "expected a feature index in 0..<2")) {
            try Self.load(Self.tree(cat, top: #""categories":[{"feature":2,"values":["a"]}],"#))
        }
        #expect(throws: ModelError.self) {
            try Self.load(Self.tree(cat, top: #""categories":[{"feature":1,"values":["a","a"]}],"#))
        }
        #expect(throws: ModelError.unsupported(format: Self.format, feature: "output 'tanh' (use identity, sigmoid, softmax or exp)")) {
            try Self.load(Self.tree(Self.good, top: #""output":"tanh","#))
        }
    }
}

private extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        replacingOccurrences(of: target, with: replacement)
    }
}
