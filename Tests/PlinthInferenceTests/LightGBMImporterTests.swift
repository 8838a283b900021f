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

    /// The fixtures above cover both layouts and categorical splits in each:
    /// binary_cat (trees up to 17 deep) needs the pointer layout, multiclass
    /// (categorical, at most 12 deep) and regression use the perfect layout.
    @Test func fixturesCoverBothLayouts() throws {
        func depth(_ name: String) throws -> Int? {
            let model = try LightGBMImporter.load(text: try Fixture.bytes(name))
            return (model.evaluator as? TreeEvaluator)?.perfectDepth
        }
        #expect(try depth("lgb_binary_cat.txt") == 0)
        #expect(try depth("lgb_multiclass.txt") == 12)
        #expect(try depth("lgb_binary_cat_d8.txt") == 8)
        #expect(try (depth("lgb_regression.txt") ?? 0) > 0)
        #expect(try depth("lgb_zero_missing.txt") == 0)
    }

    @Test func strictThresholdMatchesLessOrEqualOnDoubles() {
        for t in [0.066577952355146422, -1.1452788114547727, 0, 1e-35, -3.5, 1.0000000001, 16777217.0] {
            let s = LightGBMImporter.strictThreshold(t)
            var x = Float(t).nextDown.nextDown
            for _ in 0..<5 {
                #expect((x < s) == (Double(x) <= t), "threshold \(t), x \(x)")
                x = x.nextUp
            }
        }
    }
}
