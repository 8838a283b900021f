// Models without feature names take their inputs by position, as XGBoost
// and LightGBM do: an XGBoost model saved without feature_names, and a
// LightGBM model whose names are the generated Column_0, Column_1, ... A
// model with real names takes CSV columns by name and refuses a header
// that lacks any of them, listing them all.

import Foundation
import Testing
@testable import PlinthInference

@Suite struct PositionalModelTests {
    /// `lgb_regression.txt` with its feature_names line replaced.
    func lightGBM(names: [String]) throws -> Model {
        let text = String(decoding: try Fixture.bytes("lgb_regression.txt"), as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("feature_names=") ? "feature_names=" + names.joined(separator: " ") : String(line)
        }
        return try LightGBMImporter.load(text: Array(lines.joined(separator: "\n").utf8))
    }

    /// `xgb_binary_100x6.json` without its learner's feature_names.
    func unnamedXGBoost() throws -> Model {
        let data = Data(try Fixture.bytes("xgb_binary_100x6.json"))
        guard var document = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              var learner = document["learner"] as? [String: Any] else {
            throw FixtureError.missing("xgb_binary_100x6.json learner")
        }
        learner["feature_names"] = nil
        learner["feature_types"] = nil
        document["learner"] = learner
        return try XGBoostImporter.load(json: Array(try JSONSerialization.data(withJSONObject: document)))
    }

    /// Fixture rows as CSV under `header`.
    func csv(header: [String], rows: Int = 20) throws -> String {
        let lines = String(decoding: try Fixture.bytes("rows.csv"), as: UTF8.self).split(separator: "\n")
        return ([header.joined(separator: ",")] + lines.dropFirst().prefix(rows).map(String.init)).joined(separator: "\n") + "\n"
    }

    let xNames = (0..<32).map { "x\($0)" }
    let otherNames = (0..<32).map { "col\($0)" }

    @Test func lightGBMGeneratedNamesMeanNoNames() throws {
        let generated = (0..<32).map { "Column_\($0)" }
        #expect(Model.areGenerated(generated))
        #expect(!Model.areGenerated(xNames))
        #expect(!Model.areGenerated(["Column_1", "Column_0"]))
        #expect(!Model.areGenerated(["Column_0", "x"]))
        #expect(try lightGBM(names: generated).featureNames == nil)
        #expect(try lightGBM(names: xNames).featureNames == xNames)
    }

    @Test func lightGBMWithGeneratedNamesScoresByPosition() throws {
        let named = try lightGBM(names: xNames)
        let positional = try lightGBM(names: (0..<32).map { "Column_\($0)" })
        let expected = try CSVScorer(model: named).score(csv: try csv(header: xNames))
        // Any header of the right width: the names are not compared.
        #expect(try CSVScorer(model: positional).score(csv: try csv(header: otherNames)) == expected)
        #expect(try CSVScorer(model: positional).score(csv: try csv(header: xNames)) == expected)
        #expect(throws: ModelError.self) { try CSVScorer(model: positional).score(csv: try csv(header: Array(otherNames.prefix(31)) + ["a", "b"])) }
    }

    @Test func generatedNamesMeanNoNamesInEveryFormat() throws {
        let json = """
        {"plinth_model": "linear", "format_version": 1, "n_features": 2, "feature_names": ["Column_0", "Column_1"],
         "coefficients": [[1, 2]], "intercepts": [0.5], "output": "identity"}
        """
        let linear = try ModelLoader.load(data: Array(json.utf8))
        #expect(linear.featureNames == nil)
        #expect(try CSVScorer(model: linear).score(csv: "a,b\n1,2\n") == "score\n5.5\n")
        #expect(try NativeModelFormat.decode(try NativeModelFormat.encode(linear)).featureNames == nil)
    }

    @Test func xgboostWithoutFeatureNamesScoresByPosition() throws {
        let named = try ModelLoader.load(path: try Fixture.path("xgb_binary_100x6.json"))
        let unnamed = try unnamedXGBoost()
        #expect(unnamed.featureNames == nil)
        let expected = try CSVScorer(model: named).score(csv: try csv(header: xNames))
        #expect(try CSVScorer(model: unnamed).score(csv: try csv(header: otherNames)) == expected)
    }

    @Test func aNamedModelRefusesAHeaderWithOtherNames() throws {
        let named = try lightGBM(names: xNames)
        var header = xNames
        header[4] = "x4_renamed"
        header[9] = "nine"
        #expect(throws: ModelError.input(row: 0, column: nil, detail: "the header lacks 2 of the model's 32 features: x4, x9")) {
            try CSVScorer(model: named).score(csv: try csv(header: header))
        }
        #expect(throws: ModelError.self) { try CSVScorer(model: named).score(csv: try csv(header: otherNames)) }
    }
}
