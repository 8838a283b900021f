// A served model whose inputs have category maps (a LightGBM model trained
// on pandas category columns): a mapped online feature and a string request
// field are given as original categories and encoded; an unknown category
// and a null are missing; a string input for an unmapped feature is refused
// at load.
import Foundation
import PlinthFeatures
import PlinthInference
import PlinthRegistry
import Testing
@testable import PlinthServing

@Suite struct CategoryServingTests {
    /// Inputs by position: stats:count (categories 4 and 3), stats:score,
    /// and request field city (categories "s0", "s1"). Tree 0 adds 10 when
    /// count's code is 1 (count 3), else 20; tree 1 adds 100 when city's
    /// code is 0 ("s0"), else 200. Missing categories go right.
    static func model() throws -> Model {
        func tree(_ feature: Int32, _ word: UInt32, _ leaves: [Double]) -> TreeEnsemble.Tree {
            TreeEnsemble.Tree(nodes: [TreeEnsemble.Node(feature: feature, threshold: 0, left: -1, right: -2,
                                                        defaultLeft: false, categorySet: 0)],
                              leaves: leaves, categorySets: [[word]])
        }
        let e = TreeEnsemble(trees: [tree(0, 0b10, [10, 20]), tree(2, 0b01, [100, 200])], treeOutputs: [0, 0],
                             outputCount: 1, baseMargins: [0], precision: .float64, averageTrees: false,
                             transform: .identity, featureCount: 3)
        return try Model(kind: .trees(e), featureNames: nil,
                         categoryMaps: [0: try CategoryMap(.numbers([4, 3])), 2: try CategoryMap(.strings(["s0", "s1"]))])
    }

    static let signature = Signature(featureReferences: ["stats:count", "stats:score"],
                                     requestFields: [SignatureField(name: "city", type: "string")])

    @Test func originalCategoriesInFeaturesAndRequestsAreEncoded() throws {
        let f = try ServingFixture()
        defer { f.close() }
        let served = try ServedModel(name: "m", version: 1, format: "lightgbm-text", model: try Self.model(),
                                     signature: Self.signature, store: f.store)
        var users = Column(name: "user_id", type: .int64)
        users.int64s = [1, 2, 3, 4]
        var city = Column(name: "city", type: .string)
        city.strings = ["s0", "s1", "zz", ""]
        city.nullRows = [3]
        let inputs = try served.inputs([users, city], maxRows: 10)
        // User 1: count 3 (code 1: 10), city s0 (100). User 2: not found (20),
        // s1 (200). User 3: count 4 (code 0: 20), unknown city (200). User 4:
        // expired (20), null city (200).
        let output = try f.predictor.predict(served, inputs, now: ServingFixture.now)
        #expect(output.values == [110, 220, 220, 220])
        var inPlace: [Double] = []
        try f.predictor.predictInPlace(served, inputs, now: ServingFixture.now) { inPlace = Array($0) }
        #expect(inPlace == output.values)
        let vectors = try f.vectors(served, inputs)
        #expect(vectors[2].isEqual(to: 0) && vectors[5] == 1 && vectors[8].isNaN && vectors[11].isNaN, "\(vectors)")
        // The fast path leaves mapped features alone; the category pass writes them.
        var m = [Float](repeating: .nan, count: 4 * 3)
        try m.withUnsafeMutableBufferPointer { m in
            try f.store.withRows(try #require(served.plan), entities: inputs.keys, now: ServingFixture.now) { rows in
                served.fillFeatures(from: rows, into: m)
                served.fillCategoryFeatures(from: rows, into: m)
            }
        }
        #expect(m[0] == 1 && m[3].isNaN && m[6] == 0 && m[9].isNaN, "\(m)")
        // The offline (as-of) path encodes the same way.
        let asOf = try f.predictor.predict(served, inputs, asOf: ServingFixture.now)
        #expect(asOf.values[0] == 110 && asOf.values[2] == 220)
    }

    @Test func numbersForAMappedRequestFieldAreCategories() throws {
        let f = try ServingFixture()
        defer { f.close() }
        let model = try Self.model()
        let e: TreeEnsemble
        guard case let .trees(ensemble) = model.kind else { return }
        e = ensemble
        let numeric = try Model(kind: .trees(e), featureNames: nil,
                                categoryMaps: [0: try CategoryMap(.numbers([4, 3])), 2: try CategoryMap(.numbers([517, 103]))])
        let served = try ServedModel(name: "m", version: 1, format: "lightgbm-text", model: numeric,
                                     signature: Signature(featureReferences: ["stats:count", "stats:score"],
                                                          requestFields: [SignatureField(name: "city", type: "int64")]),
                                     store: f.store)
        var users = Column(name: "user_id", type: .int64)
        users.int64s = [1, 1]
        var city = Column(name: "city", type: .int64)
        city.int64s = [517, 0]  // 517 is code 0 (100); 0 is no category (200)
        let output = try f.predictor.predict(served, try served.inputs([users, city], maxRows: 10), now: ServingFixture.now)
        #expect(output.values == [110, 210])
    }

    @Test func stringInputForAnUnmappedFeatureIsRefused() throws {
        let f = try ServingFixture()
        defer { f.close() }
        let model = try ModelLoader.load(data: Array(ServingFixture.linearModel(intercept: 0).utf8))
        #expect(throws: ServingError.self) {
            try ServedModel(name: "m", version: 1, format: "plinth-json", model: model,
                            signature: Self.signature, store: f.store)
        }
    }
}
