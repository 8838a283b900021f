// A model whose signature reads an offline-only feature view cannot be
// served, and the reason names the view.
import Foundation
import PlinthFeatures
import PlinthInference
import PlinthRegistry
import PlinthStorage
import XCTest
@testable import PlinthServing

final class OfflineOnlyServingTests: XCTestCase {
    func testASignatureNamingAnOfflineOnlyViewIsRefused() throws {
        let path = NSTemporaryDirectory() + "plinth-serving-offline-\(UUID().uuidString)"
        var options = Environment.Options()
        options.mapSize = 1 << 24
        options.durable = false
        let env = try Environment(path: path, options: options)
        defer { env.close(); try? FileManager.default.removeItem(atPath: path) }
        let catalog = try Catalog(environment: env)
        _ = try catalog.apply(DefinitionParser.parse("""
        project: p
        entities:
          - {name: user, join_key: user_id, type: int64}
        feature_views:
          - name: labels
            entities: [user]
            online: false
            features:
              - {name: churned, type: float64}
        """))
        let store = try OnlineStore(environment: env, catalog: catalog)
        let model = try Model(kind: .linear(LinearModel(featureCount: 1, outputCount: 1, weights: [1], intercepts: [0],
                                                        transform: .identity)), featureNames: nil)
        XCTAssertThrowsError(try ServedModel(name: "m", version: 1, format: "linear", model: model,
                                             signature: Signature(featureReferences: ["labels:churned"]), store: store)) { error in
            guard case ServingError.failedPrecondition(let message)? = error as? ServingError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("feature view 'labels' is offline-only (online: false)"), message)
        }
    }
}
