// The YAML definitions parser: accepts the documented form, and refuses a
// bad file whole with every problem named by field and line.
import Foundation
import XCTest
@testable import PlinthFeatures

let exampleYAML = """
project: fraud
entities:
  - {name: user, join_key: user_id, type: int64}
feature_views:
  - name: user_stats
    entities: [user]
    ttl: 7d
    features:
      - {name: txn_count_7d, type: int64}
      - {name: avg_amount_7d, type: float64}
      - {name: country, type: string}
      - {name: embedding, type: "float32[8]"}
feature_services:
  - {name: fraud_v1, features: ["user_stats:txn_count_7d", "user_stats:avg_amount_7d"]}
"""

final class DefinitionParserTests: XCTestCase {
    func testParsesTheDocumentedExample() throws {
        let spec = try DefinitionParser.parse(exampleYAML)
        XCTAssertEqual(spec.project, "fraud")
        XCTAssertEqual(spec.entities, [EntityDefinition(name: "user", joinKey: "user_id", type: .int64)])
        XCTAssertEqual(spec.featureViews.first?.ttlSeconds, 7 * 86_400)
        XCTAssertEqual(spec.featureViews.first?.features.map(\.type), [.int64, .float64, .string, .float32Vector(length: 8)])
        XCTAssertEqual(spec.featureServices.first?.features, ["user_stats:txn_count_7d", "user_stats:avg_amount_7d"])
    }

    func testEveryProblemIsReportedWithItsLine() {
        let yaml = """
        project: fraud
        entities:
          - {name: user, join_key: user_id, type: float64}
        feature_views:
          - name: stats
            entities: [usr]
            ttl: 7 days
            featurs: []
            features:
              - {name: a, type: int65}
              - {name: a, type: int64}
              - {name: a, type: int64}
        feature_services:
          - {name: s, features: ["stats:nope", "other:a", "bad"]}
        """
        XCTAssertThrowsError(try DefinitionParser.parse(yaml)) { error in
            guard let error = error as? DefinitionError else { return XCTFail("\(error)") }
            let text = error.problems.map(\.description)
            func has(_ line: Int, _ fragment: String) {
                XCTAssertTrue(text.contains { $0.hasPrefix("<yaml>:\(line):") && $0.contains(fragment) },
                              "expected line \(line) to mention '\(fragment)' in \(text)")
            }
            has(3, "an entity key must be int64, string or bytes")
            has(6, "unknown entity 'usr'")
            has(7, "not a duration")
            has(8, "unknown field 'featurs'")
            has(10, "unknown type 'int65'")
            has(12, "declared twice")
            has(14, "has no feature 'nope'")
            has(14, "unknown feature view 'other'")
            has(14, "expected a reference")
        }
    }

    func testRefusesNonYAMLAndEmptyDocuments() {
        XCTAssertThrowsError(try DefinitionParser.parse("project: [unclosed")) { error in
            XCTAssertTrue("\(error)".contains("not valid YAML"), "\(error)")
        }
        XCTAssertThrowsError(try DefinitionParser.parse(""))
        XCTAssertThrowsError(try DefinitionParser.parse("- just\n- a list\n")) { error in
            XCTAssertTrue("\(error)".contains("expected a mapping"), "\(error)")
        }
    }

    func testDurations() {
        XCTAssertEqual(DefinitionParser.parseDuration("0"), 0)
        XCTAssertEqual(DefinitionParser.parseDuration("3600"), 3600)
        XCTAssertEqual(DefinitionParser.parseDuration("90s"), 90)
        XCTAssertEqual(DefinitionParser.parseDuration("1h30m"), 5400)
        XCTAssertEqual(DefinitionParser.parseDuration("2w"), 1_209_600)
        XCTAssertNil(DefinitionParser.parseDuration("7 days"))
        XCTAssertNil(DefinitionParser.parseDuration("d"))
        XCTAssertNil(DefinitionParser.parseDuration("5"+"0000000000000000000d"))
        XCTAssertNil(DefinitionParser.parseDuration("-1"))
    }

    func testVectorTypesAreBounded() {
        XCTAssertEqual(FeatureType(spelling: "float32[3]"), .float32Vector(length: 3))
        XCTAssertNil(FeatureType(spelling: "float32[0]"))
        XCTAssertNil(FeatureType(spelling: "float32[99999999]"))
        XCTAssertNil(FeatureType(spelling: "float32[x]"))
    }

    func testWildcardServiceExpandsToTheViewsFeatures() throws {
        let yaml = exampleYAML.replacingOccurrences(of: #"["user_stats:txn_count_7d", "user_stats:avg_amount_7d"]"#, with: #"["user_stats:*"]"#)
        let spec = try DefinitionParser.parse(yaml)
        XCTAssertEqual(spec.featureServices.first?.features.count, 4)
    }

    /// The one problem `yaml` (named features.yaml) is refused with.
    private func refusal(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try DefinitionParser.parse(yaml, file: "features.yaml")
            XCTFail("accepted", file: file, line: line)
            return ""
        } catch {
            XCTAssertEqual(error.problems.count, 1, "\(error)", file: file, line: line)
            return error.problems.first?.description ?? ""
        }
    }

    func testUnknownFieldsAreRefusedAtEveryLevelWithFileLineAndOwner() {
        // One unknown field per mapping level, each on its own line.
        let top = refusal(exampleYAML + "\nsources: []")
        XCTAssertEqual(top, "features.yaml:15: unknown field 'sources' in the top level (known: project, entities, feature_views, feature_services)")

        let entity = refusal(exampleYAML.replacingOccurrences(
            of: "{name: user, join_key: user_id, type: int64}", with: "{name: user, join_key: user_id, type: int64, value_type: int64}"))
        XCTAssertEqual(entity, "features.yaml:3: unknown field 'value_type' in entity 'user' (known: name, join_key, type, description); the field is type")

        let view = refusal(exampleYAML.replacingOccurrences(of: "    ttl: 7d\n", with: "    ttl_seconds: 3600\n"))
        XCTAssertTrue(view.hasPrefix("features.yaml:7: unknown field 'ttl_seconds' in feature view 'user_stats' (known: name, entities, features, ttl, online,"), view)
        XCTAssertTrue(view.hasSuffix("; the field is ttl (e.g. ttl: 7d or ttl: 3600)"), view)

        let source = refusal(exampleYAML.replacingOccurrences(of: "    ttl: 7d\n", with: "    ttl: 7d\n    source: {path: data.parquet}\n"))
        XCTAssertTrue(source.hasPrefix("features.yaml:8: unknown field 'source' in feature view 'user_stats'"), source)
        XCTAssertTrue(source.contains("rows arrive by push"), source)

        let feature = refusal(exampleYAML.replacingOccurrences(
            of: "{name: country, type: string}", with: "{name: country, type: string, default: XX}"))
        XCTAssertEqual(feature, "features.yaml:11: unknown field 'default' in feature 'country' of feature view 'user_stats' (known: name, type, description, expr, aggregate)")

        let aggregate = refusal(exampleYAML.replacingOccurrences(
            of: "{name: txn_count_7d, type: int64}",
            with: "{name: txn_count_7d, type: int64, aggregate: {function: count, window: 7d, slide: 1h}}"))
        XCTAssertEqual(aggregate, "features.yaml:9: unknown field 'slide' in the aggregate of feature 'txn_count_7d' of feature view 'user_stats' (known: function, of, window)")

        let service = refusal(exampleYAML.replacingOccurrences(of: "{name: fraud_v1, features:", with: "{name: fraud_v1, owner: me, features:"))
        XCTAssertEqual(service, "features.yaml:14: unknown field 'owner' in feature service 'fraud_v1' (known: name, features, description)")
    }

    func testAMappingWithoutANameIsNamedByItsPlace() {
        let yaml = exampleYAML.replacingOccurrences(of: "{name: user, join_key: user_id, type: int64}",
                                                    with: "{join_key: user_id, type: int64, nmae: user}")
        XCTAssertThrowsError(try DefinitionParser.parse(yaml)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("<yaml>:3: unknown field 'nmae' in entity at entities[0]"), text)
        }
    }

    func testOnlineIsParsedAndMustBeABoolean() throws {
        XCTAssertEqual(try DefinitionParser.parse(exampleYAML).featureViews.first?.online, true)
        let offline = exampleYAML.replacingOccurrences(of: "    ttl: 7d\n", with: "    ttl: 7d\n    online: false\n")
        XCTAssertEqual(try DefinitionParser.parse(offline).featureViews.first?.online, false)
        let bad = refusal(exampleYAML.replacingOccurrences(of: "    ttl: 7d\n", with: "    ttl: 7d\n    online: sometimes\n"))
        XCTAssertEqual(bad, "features.yaml:8: feature_views[0].online: expected true or false")
    }

    func testDefinitionsStoredBeforeOnlineExistedDecodeAsOnline() throws {
        let stored = #"{"name":"v","entities":["user"],"features":[],"ttlSeconds":0,"description":"","owner":"","tags":{}}"#
        let view = try JSONDecoder().decode(FeatureViewDefinition.self, from: Data(stored.utf8))
        XCTAssertTrue(view.online)
        XCTAssertEqual(view, FeatureViewDefinition(name: "v", entities: ["user"], features: [], ttlSeconds: 0))
    }
}
