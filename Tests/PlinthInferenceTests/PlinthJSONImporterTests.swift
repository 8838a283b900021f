// Exactness of linear models and MLPs exported from scikit-learn with
// plinth.export.from_sklearn, against scikit-learn's own predictions.

import Testing
@testable import PlinthInference

@Suite struct PlinthJSONImporterTests {
    func check(_ name: String, margins: Bool) throws {
        let model = try PlinthJSONImporter.load(json: try Fixture.bytes("\(name).plinth.json"))
        let (m, p) = try compare(model, rows: try Fixture.rows("rows_dense.csv"),
                                 expected: try Fixture.expected("\(name).expected.csv"), checkMargin: margins)
        #expect(m <= 1e-9, "\(name): worst margin error \(m)")
        #expect(p <= 1e-9, "\(name): worst probability error \(p)")
    }

    @Test func logisticRegressionBinary() throws { try check("sk_logreg_binary", margins: true) }
    @Test func logisticRegressionMultinomial() throws { try check("sk_logreg_multi", margins: true) }
    @Test func linearRegression() throws { try check("sk_linreg", margins: true) }
    // scikit-learn's MLPs expose no margin, so only their probabilities are compared.
    @Test func mlpClassifierBinaryRelu() throws { try check("sk_mlp_binary", margins: false) }
    @Test func mlpClassifierMulticlassTanh() throws { try check("sk_mlp_multi", margins: false) }
    @Test func mlpRegressorLogistic() throws { try check("sk_mlp_regressor", margins: false) }

    @Test func missingInputPropagatesNaN() throws {
        let model = try PlinthJSONImporter.load(json: try Fixture.bytes("sk_logreg_binary.plinth.json"))
        var row = [Float](repeating: 0.5, count: 32)
        row[3] = .nan
        #expect(try model.predict(row)[0].isNaN)
    }

    @Test func rejectsShapeMismatch() {
        let doc = #"{"plinth_model":"linear","n_features":3,"coefficients":[[1,2]],"intercepts":[0]}"#
        #expect(throws: ModelError.invalidField(format: "Plinth JSON", field: "coefficients[0]",
                                                detail: "2 values for 3 features")) {
            try PlinthJSONImporter.load(json: Array(doc.utf8))
        }
        let mlp = #"{"plinth_model":"mlp","n_features":2,"layers":[{"weights":[[1,2],[3,4]],"bias":[0,0]},{"weights":[[1],[1],[1]],"bias":[0]}]}"#
        #expect(throws: ModelError.self) { try PlinthJSONImporter.load(json: Array(mlp.utf8)) }
        let act = #"{"plinth_model":"mlp","n_features":1,"layers":[{"weights":[[1]],"bias":[0],"activation":"gelu"}]}"#
        #expect(throws: ModelError.unsupported(format: "Plinth JSON",
                                               feature: "activation 'gelu' in layers[0] (use identity, relu, tanh or sigmoid)")) {
            try PlinthJSONImporter.load(json: Array(act.utf8))
        }
    }
}
