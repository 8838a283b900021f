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
