// Exactness of LightGBM models against LightGBM's own predictions: binary
// with a categorical feature, regression, multiclass, random forest
// (averaged trees), zero-as-missing and use_missing=false (NaN scored as 0).

import Testing
@testable import PlinthInference

@Suite struct LightGBMImporterTests {
    func check(_ name: String, rows: String = "rows.csv") throws {
        let model = try LightGBMImporter.load(text: try Fixture.bytes("\(name).txt"))
        let (m, p) = try compare(model, rows: try Fixture.rows(rows), expected: try Fixture.expected("\(name).expected.csv"))
        #expect(m <= 1e-9, "\(name): worst margin error \(m)")
        #expect(p <= 1e-9, "\(name): worst probability error \(p)")
    }

    @Test func binaryWithCategoricalFeature() throws { try check("lgb_binary_cat") }
    @Test func binaryWithCategoricalFeatureDepthLimited() throws { try check("lgb_binary_cat_d8") }
    @Test func regression() throws { try check("lgb_regression") }
    @Test func multiclass() throws { try check("lgb_multiclass") }
    @Test func randomForestAveragesTrees() throws { try check("lgb_rf") }
    @Test func zeroAsMissing() throws { try check("lgb_zero_missing") }
    @Test func missingDisabledScoresNaNAsZero() throws { try check("lgb_no_missing") }

    /// The fixtures above cover all three layouts and categorical splits in
    /// each: binary_cat (trees up to 17 deep) uses the hybrid layout (a padded
    /// top over pointer tails), multiclass (categorical, at most 12 deep) and
    /// regression the perfect layout, zero_missing the pointer layout.
    @Test func fixturesCoverAllLayouts() throws {
        func evaluator(_ name: String) throws -> TreeEvaluator? {
            let model = try LightGBMImporter.load(text: try Fixture.bytes(name))
            return model.evaluator as? TreeEvaluator
        }
        let deep = try evaluator("lgb_binary_cat.txt")
        #expect(deep?.layout == .hybrid)
        #expect(deep?.perfectDepth == TreeEvaluator.hybridTopDepth)
        #expect(try evaluator("lgb_multiclass.txt")?.layout == .perfect)
        #expect(try evaluator("lgb_multiclass.txt")?.perfectDepth == 12)
        #expect(try evaluator("lgb_binary_cat_d8.txt")?.perfectDepth == 8)
        #expect(try (evaluator("lgb_regression.txt")?.perfectDepth ?? 0) > 0)
        #expect(try evaluator("lgb_zero_missing.txt")?.layout == .pointer)
        #expect(try evaluator("lgb_zero_missing.txt")?.perfectDepth == 0)
    }

    @Test func strictThresholdMatchesLessOrEqualOnDoubles() {
        for t in [0.066577952355146422, -1.1452788114547727, 0, 1e-35, -3.5, 1.0000000001, 16777217.0] {
            let s = TreeEnsemble.strictThreshold(t)
            var x = Float(t).nextDown.nextDown
            for _ in 0..<5 {
                #expect((x < s) == (Double(x) <= t), "threshold \(t), x \(x)")
                x = x.nextUp
            }
        }
    }
}
