// Exactness of XGBoost models: every fixture row scored by Plinth must match
// what XGBoost itself predicted (within 1e-6 on probabilities, 1e-5 on
// margins), through the JSON and UBJSON readers and every evaluation path.

import Testing
@testable import PlinthInference

@Suite struct XGBoostImporterTests {
    func check(_ file: String, expected: String, rows: String = "rows.csv",
               marginTolerance: Double = 1e-5, probTolerance: Double = 1e-6) throws {
        let data = try Fixture.bytes(file)
        let model = file.hasSuffix(".ubj") ? try XGBoostImporter.load(ubjson: data)
                                           : try XGBoostImporter.load(json: data)
        let (m, p) = try compare(model, rows: try Fixture.rows(rows), expected: try Fixture.expected(expected))
        #expect(m <= marginTolerance, "\(file): worst margin error \(m)")
        #expect(p <= probTolerance, "\(file): worst probability error \(p)")
    }

    @Test func scikitLearnWrapperAfterEarlyStoppingScoresWithTheBestIteration() throws {
        // XGBClassifier saved after early stopping: its predict_proba uses
        // the trees up to best_iteration (the fixture's whole-ensemble sum
        // differs from it by up to 0.10 in probability).
        try check("xgb_sklearn_early_stop.json", expected: "xgb_sklearn_early_stop.expected.csv")
        let model = try XGBoostImporter.load(json: try Fixture.bytes("xgb_sklearn_early_stop.json"))
        #expect(model.note == "using 87 of 92 trees (best_iteration 86, as XGBoost's scikit-learn wrapper predicts)")
        #expect("\(model)".contains("; using 87 of 92 trees"))
    }

    @Test func aBoosterFileKeepsEveryTree() throws {
        // The same file without the wrapper's mark is the native Booster's,
        // whose predict sums every tree, best_iteration or not.
        var text = String(decoding: try Fixture.bytes("xgb_sklearn_early_stop.json"), as: UTF8.self)
        let mark = try #require(text.range(of: "\"scikit_learn\""))
        text.replaceSubrange(mark, with: "\"not_sklearn\"")
        let model = try XGBoostImporter.load(json: Array(text.utf8))
        #expect(model.note == nil)
        guard case let .trees(ensemble) = model.kind else { Issue.record("not a tree model"); return }
        #expect(ensemble.trees.count == 92)
        // A best_iteration beyond the trees is refused, not clamped.
        let bad = text.replacingOccurrences(of: "\"not_sklearn\"", with: "\"scikit_learn\"")
            .replacingOccurrences(of: "\"best_iteration\":\"86\"", with: "\"best_iteration\":\"500\"")
        #expect(throws: ModelError.self) { try XGBoostImporter.load(json: Array(bad.utf8)) }
    }

    @Test func binary100x6JSON() throws {
        try check("xgb_binary_100x6.json", expected: "xgb_binary_100x6.expected.csv")
    }

    @Test func binary100x6UBJSON() throws {
        try check("xgb_binary_100x6.ubj", expected: "xgb_binary_100x6.expected.csv")
    }

    @Test func binary500x8() throws {
        try check("xgb_binary_500x8.ubj", expected: "xgb_binary_500x8.expected.csv")
    }

    @Test func regression() throws {
        try check("xgb_regression.json", expected: "xgb_regression.expected.csv")
    }

    @Test func regressionWithPre31ScalarBaseScore() throws {
        try check("xgb_regression_scalar_base.json", expected: "xgb_regression.expected.csv")
    }

    @Test func multiclassSoftprob() throws {
        try check("xgb_multiclass.json", expected: "xgb_multiclass.expected.csv")
    }

    @Test func randomForest() throws {
        try check("xgb_rf.json", expected: "xgb_rf.expected.csv")
    }

    @Test func keepsFeatureNames() throws {
        let model = try XGBoostImporter.load(json: try Fixture.bytes("xgb_binary_100x6.json"))
        #expect(model.featureNames == (0..<32).map { "x\($0)" })
        #expect(model.featureCount == 32)
        #expect(model.outputCount == 1)
    }

    @Test func baseScoreSpellings() throws {
        #expect(try XGBoostImporter.parseBaseScore(.string("5E-1"), format: "t") == [0.5])
        #expect(try XGBoostImporter.parseBaseScore(.string("[5E-1]"), format: "t") == [0.5])
        #expect(try XGBoostImporter.parseBaseScore(.string("[1E-1,2E-1]"), format: "t") == [0.1, 0.2])
        #expect(throws: ModelError.self) { try XGBoostImporter.parseBaseScore(.string("[abc]"), format: "t") }
    }
}
