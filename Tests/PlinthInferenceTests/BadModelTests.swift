// Bad model files: truncated, corrupted, unsupported or absurd. Each must end
// in a ModelError that names what is wrong — never a crash, never an
// allocation out of proportion to the file.

import Foundation
import Testing
@testable import PlinthInference

@Suite struct BadModelTests {
    static let fixtures = ["xgb_binary_100x6.json", "xgb_binary_100x6.ubj", "lgb_binary_cat.txt",
                           "sk_mlp_binary.plinth.json"]

    @Test(arguments: fixtures)
    func truncatedFilesAreErrors(_ name: String) throws {
        let data = try Fixture.bytes(name)
        // LightGBM's text after "end of trees" is metadata (importances,
        // parameters): a cut there still leaves a whole model.
        let fractions = name.hasPrefix("lgb_") ? [0.0, 0.01, 0.1, 0.5, 0.9] : [0.0, 0.01, 0.1, 0.5, 0.9, 0.999]
        for fraction in fractions {
            let cut = Array(data.prefix(Int(Double(data.count) * fraction)))
            #expect(throws: ModelError.self, "\(name) cut at \(cut.count) bytes") {
                try ModelLoader.load(data: cut)
            }
        }
    }

    @Test func truncatedNativeFileIsAnError() throws {
        let model = try ModelLoader.load(path: try Fixture.path("xgb_binary_100x6.json"))
        let bytes = try NativeModelFormat.encode(model)
        for fraction in [0.05, 0.5, 0.99] {
            #expect(throws: ModelError.self) {
                try ModelLoader.load(data: Array(bytes.prefix(Int(Double(bytes.count) * fraction))))
            }
        }
    }

    /// Flipped bytes may still give a valid model (a changed threshold), but
    /// whatever they give must be a model or a ModelError.
    @Test(arguments: fixtures + ["native"])
    func corruptedFilesNeverCrash(_ name: String) throws {
        let original = name == "native"
            ? try NativeModelFormat.encode(try ModelLoader.load(path: try Fixture.path("lgb_binary_cat.txt")))
            : try Fixture.bytes(name)
        var rng = SplitMix(seed: 42)
        let row = [Float](repeating: 0.25, count: 32)
        for _ in 0..<60 {
            var data = original
            for _ in 0..<4 {
                let i = Int(rng.next() % UInt64(data.count))
                data[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                let model = try ModelLoader.load(data: data)
                if model.featureCount <= row.count { _ = try model.predict(Array(row.prefix(model.featureCount))) }
            } catch {
                // Any ModelError is fine; the test is that we get here at all.
            }
        }
    }

    func xgboostJSON(_ edit: (inout [String: Any]) -> Void) throws -> [UInt8] {
        let data = try Data(contentsOf: try Fixture.url("xgb_regression.json"))
        guard var doc = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw FixtureError.missing("doc") }
        edit(&doc)
        return [UInt8](try JSONSerialization.data(withJSONObject: doc))
    }

    /// Applies `edit` to the first tree of the regression fixture.
    func editFirstTree(_ edit: @escaping (inout [String: Any]) -> Void) throws -> [UInt8] {
        try xgboostJSON { doc in
            var learner = doc["learner"] as! [String: Any]
            var booster = learner["gradient_booster"] as! [String: Any]
            var model = booster["model"] as! [String: Any]
            var trees = model["trees"] as! [[String: Any]]
            edit(&trees[0])
            model["trees"] = trees
            booster["model"] = model
            learner["gradient_booster"] = booster
            doc["learner"] = learner
        }
    }

    @Test func unsupportedObjectiveIsNamed() throws {
        let data = try xgboostJSON { doc in
            var learner = doc["learner"] as! [String: Any]
            learner["objective"] = ["name": "reg:custom"]
            doc["learner"] = learner
        }
        #expect(throws: ModelError.unsupported(format: "XGBoost JSON", feature: "objective 'reg:custom'")) {
            try XGBoostImporter.load(json: data)
        }
    }

    @Test func unsupportedLightGBMObjectiveIsNamed() throws {
        var text = String(decoding: try Fixture.bytes("lgb_regression.txt"), as: UTF8.self)
        // Every LightGBM 4.7 objective is known (cross_entropy_lambda among
        // them since issue 20); a name it never writes is refused.
        text = text.replacingOccurrences(of: "objective=regression", with: "objective=my_loss")
        #expect(throws: ModelError.unsupported(format: "LightGBM", feature: "objective 'my_loss' (Plinth knows LightGBM 4.7's objectives; this one's output transform is unknown, so its probabilities cannot be matched)")) {
            try LightGBMImporter.load(text: Array(text.utf8))
        }
    }

    @Test func featureIndexOutOfRangeNamesTreeAndNode() throws {
        let data = try editFirstTree { tree in
            var split = tree["split_indices"] as! [Int]
            split[0] = 77
            tree["split_indices"] = split
        }
        #expect(throws: ModelError.featureOutOfRange(tree: 0, node: 0, feature: 77, featureCount: 32)) {
            try XGBoostImporter.load(json: data)
        }
    }

    @Test func cycleIsRejected() throws {
        let data = try editFirstTree { tree in
            var left = tree["left_children"] as! [Int]
            left[1] = 0
            tree["left_children"] = left
        }
        #expect {
            try XGBoostImporter.load(json: data)
        } throws: { error in
            guard case let .badTree(tree, detail) = error as? ModelError else { return false }
            return tree == 0 && detail.contains("reached twice")
        }
    }

    @Test func categoricalXGBoostSplitWithoutCategoriesIsNamed() throws {
        // A node marked categorical must have its categories listed; one
        // that has none is a corrupt file, not an empty set.
        let data = try editFirstTree { tree in
            var types = tree["split_type"] as! [Int]
            types[2] = 1
            tree["split_type"] = types
        }
        #expect(throws: ModelError.badTree(tree: 0, detail: "node 2 is a categorical split with no categories listed")) {
            try XGBoostImporter.load(json: data)
        }
    }

    @Test func mismatchedNodeArraysAreNamed() throws {
        let data = try editFirstTree { tree in
            var c = tree["split_conditions"] as! [Double]
            c.removeLast()
            tree["split_conditions"] = c
        }
        #expect {
            try XGBoostImporter.load(json: data)
        } throws: { error in
            "\(error)".contains("split_conditions")
        }
    }

    @Test func absurdUBJSONCountIsRejectedBeforeAllocating() {
        // {  key "a"  [$d#L 2^40 ... — a typed float array claiming 2^40 elements.
        var data: [UInt8] = [UInt8(ascii: "{"), UInt8(ascii: "i"), 1, UInt8(ascii: "a"),
                             UInt8(ascii: "["), UInt8(ascii: "$"), UInt8(ascii: "d"), UInt8(ascii: "#"), UInt8(ascii: "L")]
        data += [0, 0, 1, 0, 0, 0, 0, 0]
        data += [UInt8](repeating: 0, count: 16)
        #expect {
            try XGBoostImporter.load(ubjson: data)
        } throws: { error in
            "\(error)".contains("exceeds")
        }
    }

    @Test func absurdLightGBMLeafCountIsRejected() throws {
        var text = String(decoding: try Fixture.bytes("lgb_regression.txt"), as: UTF8.self)
        text = text.replacingOccurrences(of: "Tree=0\nnum_leaves=15", with: "Tree=0\nnum_leaves=999999999")
        #expect(throws: ModelError.invalidField(format: "LightGBM", field: "Tree=0.num_leaves",
                                                detail: "999999999 is not in 1...16777216")) {
            try LightGBMImporter.load(text: Array(text.utf8))
        }
    }

    @Test func absurdFeatureCountIsRejected() throws {
        let data = try xgboostJSON { doc in
            var learner = doc["learner"] as! [String: Any]
            var params = learner["learner_model_param"] as! [String: Any]
            params["num_feature"] = "4000000000"
            learner["learner_model_param"] = params
            doc["learner"] = learner
        }
        #expect {
            try XGBoostImporter.load(json: data)
        } throws: { error in
            "\(error)".contains("num_feature")
        }
    }

    @Test func deepNestingIsRejected() {
        let data = [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
        #expect {
            try XGBoostImporter.load(json: data)
        } throws: { error in
            "\(error)".contains("nesting")
        }
    }

    @Test func lightGBMWithoutEndOfTreesIsTruncated() throws {
        var text = String(decoding: try Fixture.bytes("lgb_regression.txt"), as: UTF8.self)
        if let r = text.range(of: "end of trees") { text = String(text[..<r.lowerBound]) }
        #expect {
            try LightGBMImporter.load(text: Array(text.utf8))
        } throws: { error in
            "\(error)".contains("truncated")
        }
    }

    @Test func garbageIsAnUnknownFormat() {
        #expect(throws: ModelError.self) { try ModelLoader.load(data: Array("hello world".utf8)) }
        #expect(throws: ModelError.self) { try ModelLoader.load(data: []) }
    }
}

/// A small deterministic generator, so a failing corruption case reproduces.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
