// The native binary form: every fixture model survives encode → decode with
// an identical IR and identical scores, and a 500-tree model loads fast.

import Foundation
import Testing
@testable import PlinthInference

@Suite struct NativeModelFormatTests {
    static let models = ["xgb_binary_100x6.json", "xgb_binary_500x8.ubj", "xgb_multiclass.json", "lgb_binary_cat.txt",
                         "lgb_rf.txt", "lgb_zero_missing.txt", "sk_logreg_multi.plinth.json", "sk_mlp_binary.plinth.json"]

    @Test(arguments: models)
    func roundTrip(_ name: String) throws {
        let original = try ModelLoader.load(path: try Fixture.path(name))
        let bytes = try NativeModelFormat.encode(original)
        #expect(ModelLoader.detect(bytes) == .plinthBinary)
        let decoded = try ModelLoader.load(data: bytes)
        #expect(decoded.kind == original.kind)
        #expect(decoded.featureNames == original.featureNames)
        let rows = try Fixture.rows(name.hasPrefix("sk_") ? "rows_dense.csv" : "rows.csv")
        for row in rows.prefix(50) {
            #expect(try decoded.predict(row) == original.predict(row))
        }
    }

    /// The IR that XGBoost's other kinds brought: categorical splits whose
    /// missing values go left and `negativeIsNoCategory`, the step transform,
    /// gblinear's float32 summation, vector leaves split per target, and
    /// the importer's note.
    @Test(arguments: ["xgb_cat_partition.json", "xgb_hinge.json", "xgb_gblinear.json",
                      "xgb_multi_output_tree.json", "xgb_sklearn_early_stop.json"])
    func xgboostKindsRoundTrip(_ name: String) throws {
        let original = try ModelLoader.load(path: try Fixture.path(name))
        let decoded = try ModelLoader.load(data: try NativeModelFormat.encode(original))
        #expect(decoded.kind == original.kind)
        #expect(decoded.note == original.note)
        if case let .trees(e) = decoded.kind {
            #expect(e.negativeIsNoCategory)
            if name == "xgb_hinge.json" { #expect(e.transform == .step) }
            if name == "xgb_cat_partition.json" {
                #expect(e.trees.contains { $0.nodes.contains { $0.categorySet >= 0 && $0.defaultLeft } })
            }
        } else if case let .linear(l) = decoded.kind {
            #expect(l.summation == .float32SkippingMissing)
        }
        let rows = try Fixture.rows(name.hasPrefix("xgb_cat") ? "xgb_cat_rows.csv" : "xgb_kinds_rows.csv")
        for row in rows.prefix(50) where row.count >= original.featureCount {
            #expect(try decoded.predict(row, kind: .margin) == original.predict(row, kind: .margin))
        }
    }

    @Test func fiveHundredTreeModelLoadsUnder50ms() throws {
        let original = try ModelLoader.load(path: try Fixture.path("xgb_binary_500x8.ubj"))
        let bytes = try NativeModelFormat.encode(original)
        var best = Double.infinity
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try NativeModelFormat.decode(bytes)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        // The 50 ms target is for optimized builds (`swift test -c release`,
        // and Benchmarks/inference measures it); unoptimized Swift is about
        // ten times slower, so a debug run only guards against gross regressions.
        #if DEBUG
        let bound = 500.0
        #else
        let bound = 50.0
        #endif
        #expect(best < bound, "decode took \(best) ms")
    }

    @Test func rejectsNewerFormatVersion() throws {
        var ir = PBModelIR()
        ir.formatVersion = 99
        ir.featureCount = 1
        let bytes = NativeModelFormat.magic + (try ir.serializedBytes() as [UInt8])
        #expect(throws: ModelError.unsupported(format: "Plinth binary", feature: "format_version 99 (this build reads up to 1)")) {
            try NativeModelFormat.decode(bytes)
        }
    }
}

@Suite struct ModelLoaderTests {
    @Test(arguments: [("xgb_binary_100x6.json", ModelLoader.Detected.xgboostJSON),
                      ("xgb_binary_100x6.ubj", .xgboostUBJSON), ("lgb_rf.txt", .lightgbm),
                      ("sk_linreg.plinth.json", .plinthJSON)])
    func detectsFormat(_ name: String, _ expected: ModelLoader.Detected) throws {
        #expect(ModelLoader.detect(try Fixture.bytes(name)) == expected)
    }

    @Test func explicitFormatMismatchIsAnError() throws {
        #expect(throws: ModelError.self) {
            try ModelLoader.load(path: try Fixture.path("lgb_rf.txt"), format: .xgboost)
        }
        #expect(throws: ModelError.self) {
            try ModelLoader.load(path: try Fixture.path("xgb_regression.json"), format: .lightgbm)
        }
    }

    @Test func missingFileNamesThePath() {
        #expect {
            try ModelLoader.load(path: "/nonexistent/model.json")
        } throws: { error in
            "\(error)".contains("/nonexistent/model.json")
        }
    }
}
