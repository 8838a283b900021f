// The registry: versions numbered from 1, aliases set/resolved/deleted,
// protected aliases gated by the policy (every failed check listed), and
// the audit of every alias change. Each test has its own environment.
import Foundation
import PlinthStorage
import XCTest
@testable import PlinthRegistry

final class RegistryFixture {
    let path: String
    let environment: Environment
    let store: RegistryStore

    init(name: String = #function) throws {
        path = NSTemporaryDirectory() + "plinth-registry-\(name.filter { $0.isLetter })-\(UUID().uuidString)"
        var options = Environment.Options()
        options.mapSize = 1 << 24
        options.durable = false
        environment = try Environment(path: path, options: options)
        store = try RegistryStore(environment: environment)
    }

    deinit {
        environment.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}

let digestA = String(repeating: "a", count: 64)
let digestB = String(repeating: "b", count: 64)

func source(auc: Double, datasets: [String] = ["spine1"], resolved: Int = 2) -> VersionSource {
    VersionSource(runId: "run1", experimentId: 1, metrics: ["auc": auc], datasetDigests: datasets, resolvedFeatures: resolved)
}

final class RegistryStoreTests: XCTestCase {
    func testVersionsAutoIncrementAndCreateTheModel() async throws {
        let f = try RegistryFixture()
        let signature = Signature(featureReferences: ["stats:count"], requestFields: [SignatureField(name: "amount", type: "float64")],
                                  outputs: [SignatureField(name: "score", type: "float32")])
        let v1 = try await f.store.createVersion(NewVersion(model: "churn", source: source(auc: 0.9), artifactDigest: digestA,
                                                            artifactFormat: "xgboost-json", signature: signature))
        let v2 = try await f.store.createVersion(NewVersion(model: "churn", artifactDigest: digestB, artifactFormat: "xgboost-json"))
        XCTAssertEqual([v1.version, v2.version], [1, 2])
        XCTAssertEqual(try f.store.model(named: "churn").latestVersion, 2)
        XCTAssertEqual(try f.store.version(model: "churn", version: 1).signature, signature)
        XCTAssertEqual(try f.store.version(model: "churn", version: 1).source?.metrics, ["auc": 0.9])
        XCTAssertEqual(try f.store.versions(model: "churn").map(\.version), [1, 2])
        XCTAssertEqual(try f.store.resolve(reference: "churn/1").version, 1)
        XCTAssertEqual(try f.store.resolve(reference: "churn:2").version, 2)
        // A bare name means @production, which churn does not have yet.
        XCTAssertThrowsError(try f.store.resolve(reference: "churn")) { error in
            guard case .notFound(let message) = error as? RegistryError, message.contains("production") else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try f.store.version(model: "churn", version: 3)) { error in
            guard case .notFound = error as? RegistryError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try f.store.model(named: "nope"))
        do {
            _ = try await f.store.createVersion(NewVersion(model: "churn", artifactDigest: "short", artifactFormat: "x"))
            XCTFail("bad digest accepted")
        } catch let error as RegistryError { guard case .invalidArgument = error else { return XCTFail("\(error)") } }
        do { _ = try await f.store.createModel(name: "churn"); XCTFail("duplicate model") }
        catch let error as RegistryError { guard case .alreadyExists = error else { return XCTFail("\(error)") } }
        do { _ = try await f.store.createModel(name: "a@b"); XCTFail("bad name") }
        catch let error as RegistryError { guard case .invalidArgument = error else { return XCTFail("\(error)") } }
    }

    func testAliasesSetResolveMoveDeleteAndAudit() async throws {
        let f = try RegistryFixture()
        _ = try await f.store.createVersion(NewVersion(model: "m", artifactDigest: digestA, artifactFormat: "f"))
        _ = try await f.store.createVersion(NewVersion(model: "m", artifactDigest: digestB, artifactFormat: "f"))
        let first = try await f.store.setAlias(model: "m", alias: "champion", version: 1, who: "alice", reason: "baseline", now: 10)
        XCTAssertEqual(first.fromVersion, 0)
        XCTAssertEqual(try f.store.resolve(reference: "m@champion").version, 1)
        XCTAssertEqual(try f.store.version(model: "m", version: 1).aliases, ["champion"])
        _ = try await f.store.setAlias(model: "m", alias: "champion", version: 2, who: "bob", reason: "better", now: 20)
        XCTAssertEqual(try f.store.resolve(model: "m", alias: "champion").version, 2)
        XCTAssertEqual(try f.store.version(model: "m", version: 1).aliases, [])
        _ = try await f.store.deleteAlias(model: "m", alias: "champion", who: "carol", reason: "rollback plan", now: 30)
        XCTAssertThrowsError(try f.store.resolve(reference: "m@champion")) { error in
            guard case .notFound = error as? RegistryError else { return XCTFail("\(error)") }
        }
        let log = try f.store.auditLog(model: "m")
        XCTAssertEqual(log.map(\.who), ["alice", "bob", "carol"])
        XCTAssertEqual(log.map(\.fromVersion), [0, 1, 2])
        XCTAssertEqual(log.map(\.toVersion), [1, 2, 0])
        XCTAssertEqual(log.map(\.reason), ["baseline", "better", "rollback plan"])
        XCTAssertEqual(log.map(\.atMs), [10, 20, 30])
        for bad in ["v3", "latest", "", "has space", "a@b"] {
            do { _ = try await f.store.setAlias(model: "m", alias: bad, version: 1, who: "x", reason: ""); XCTFail(bad) }
            catch let error as RegistryError { guard case .invalidArgument = error else { return XCTFail("\(error)") } }
        }
        do { _ = try await f.store.setAlias(model: "m", alias: "x", version: 9, who: "x", reason: ""); XCTFail("unknown version") }
        catch let error as RegistryError { guard case .notFound = error else { return XCTFail("\(error)") } }
    }

    func testProtectedAliasListsEveryFailedCheck() async throws {
        let f = try RegistryFixture()
        _ = try await f.store.createVersion(NewVersion(model: "m", source: source(auc: 0.80, datasets: []), artifactDigest: digestA, artifactFormat: "f"))
        _ = try await f.store.createVersion(NewVersion(model: "m", source: source(auc: 0.91), artifactDigest: digestB, artifactFormat: "f"))
        let policy = Policy(metricThresholds: [try MetricThreshold.parse("auc >= 0.85"), try MetricThreshold.parse("latency_ms<20")],
                            requiredCardFields: ["description", "owner", "intended use", "limitations"], requireLineage: true)
        _ = try await f.store.setPolicy(name: "m", policy: policy)
        do {
            _ = try await f.store.setAlias(model: "m", alias: "production", version: 1, who: "alice", reason: "ship it")
            XCTFail("policy did not refuse")
        } catch let error as RegistryError {
            guard case .policyViolation(_, _, _, let failures) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(failures.count, 7, failures.joined(separator: "\n"))
            XCTAssertTrue(failures[0].contains("auc >= 0.85") && failures[0].contains("0.8"), failures[0])
            XCTAssertTrue(failures[1].contains("no metric 'latency_ms'"), failures[1])
            XCTAssertTrue(failures.contains("model card field 'intended_use' is empty"))
            XCTAssertTrue(failures.last?.contains("no input dataset") == true)
            XCTAssertTrue(error.description.contains("7 checks failed"))
        }
        // A refused change changes nothing and is not in the audit.
        XCTAssertEqual(try f.store.model(named: "m").aliases, [:])
        XCTAssertEqual(try f.store.auditLog(model: "m"), [])
        // Unprotected aliases are not checked.
        _ = try await f.store.setAlias(model: "m", alias: "candidate", version: 1, who: "alice", reason: "try")

        _ = try await f.store.updateModel(name: "m", description: "predicts churn",
                                          card: ["owner": "growth", "Intended use": "retention offers", "limitations": "EU only"])
        var failures = try f.store.check(model: "m", version: 2)
        XCTAssertEqual(failures, ["metric latency_ms < 20.0 failed: version 2 has no metric 'latency_ms'"])
        var relaxed = policy
        relaxed.metricThresholds.removeLast()
        _ = try await f.store.setPolicy(name: "m", policy: relaxed)
        failures = try f.store.check(model: "m", version: 2)
        XCTAssertEqual(failures, [])
        let event = try await f.store.setAlias(model: "m", alias: "production", version: 2, who: "alice", reason: "passes")
        XCTAssertTrue(event.checked)
        XCTAssertEqual(try f.store.resolve(reference: "m@production").version, 2)
        XCTAssertEqual(try f.store.auditLog(model: "m").count, 2)
    }

    func testCreateVersionWithAliasesIsOneCommit() async throws {
        let f = try RegistryFixture()
        _ = try await f.store.createVersion(NewVersion(model: "m", artifactDigest: digestA, artifactFormat: "f"),
                                            aliases: ["champion"], who: "alice", reason: "first", now: 10)
        let commits = f.environment.writer.commits
        let v2 = try await f.store.createVersion(NewVersion(model: "m", artifactDigest: digestB, artifactFormat: "f"),
                                                 aliases: ["champion", "candidate"], who: "bob", reason: "better", now: 20)
        XCTAssertEqual(f.environment.writer.commits, commits + 1, "version, aliases and audit in one commit")
        XCTAssertEqual(v2.version, 2)
        XCTAssertEqual(v2.aliases, ["candidate", "champion"])
        XCTAssertEqual(try f.store.resolve(reference: "m@champion").version, 2)
        XCTAssertEqual(try f.store.resolve(reference: "m@candidate").version, 2)
        XCTAssertEqual(try f.store.version(model: "m", version: 1).aliases, [])
        let log = try f.store.auditLog(model: "m")
        XCTAssertEqual(log.map(\.alias), ["champion", "champion", "candidate"])
        XCTAssertEqual(log.map(\.fromVersion), [0, 1, 0])
        XCTAssertEqual(log.map(\.toVersion), [1, 2, 2])
        XCTAssertEqual(log.map(\.who), ["alice", "bob", "bob"])
        XCTAssertEqual(log.map(\.reason), ["first", "better", "better"])
        XCTAssertEqual(log.map(\.atMs), [10, 20, 20])
        XCTAssertEqual(log.map(\.checked), [false, false, false])
        // Without aliases nothing is audited.
        _ = try await f.store.createVersion(NewVersion(model: "m", artifactDigest: digestA, artifactFormat: "f"))
        XCTAssertEqual(try f.store.auditLog(model: "m").count, 3)
    }

    func testCreateVersionWithARefusedAliasCreatesNothing() async throws {
        let f = try RegistryFixture()
        _ = try await f.store.createVersion(NewVersion(model: "m", source: source(auc: 0.9), artifactDigest: digestA, artifactFormat: "f"))
        _ = try await f.store.setPolicy(name: "m", policy: Policy(metricThresholds: [try MetricThreshold.parse("auc >= 0.85")],
                                                                 requiredCardFields: ["owner"]))
        let before = try f.store.model(named: "m")
        do {
            _ = try await f.store.createVersion(NewVersion(model: "m", source: source(auc: 0.5), artifactDigest: digestB, artifactFormat: "f"),
                                                aliases: ["candidate", "production"], who: "alice", reason: "ship it")
            XCTFail("policy did not refuse")
        } catch let error as RegistryError {
            guard case .policyViolation(_, let alias, let version, let failures) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(alias, "production")
            XCTAssertEqual(version, 2)
            XCTAssertEqual(failures.count, 2, failures.joined(separator: "\n"))
            XCTAssertTrue(failures.contains("model card field 'owner' is empty"), failures.joined(separator: "\n"))
        }
        // Nothing was written: no version 2, no aliases (not even the
        // unprotected one), no audit entry.
        let after = try f.store.model(named: "m")
        XCTAssertEqual(after.latestVersion, 1)
        XCTAssertEqual(after, before)
        XCTAssertEqual(try f.store.versions(model: "m").map(\.version), [1])
        XCTAssertEqual(try f.store.auditLog(model: "m"), [])
        // A passing version takes the protected alias, checked, in the same request.
        _ = try await f.store.updateModel(name: "m", card: ["owner": "growth"])
        let v2 = try await f.store.createVersion(NewVersion(model: "m", source: source(auc: 0.9), artifactDigest: digestB, artifactFormat: "f"),
                                                 aliases: ["production"], who: "alice", reason: "passes")
        XCTAssertEqual(v2.version, 2)
        XCTAssertEqual(try f.store.auditLog(model: "m").map(\.checked), [true])
    }

    func testCreateVersionRefusesDuplicateAndInvalidAliases() async throws {
        let f = try RegistryFixture()
        _ = try await f.store.createVersion(NewVersion(model: "m", artifactDigest: digestA, artifactFormat: "f"))
        for aliases in [["champion", "champion"], ["a", "b", "a"], ["v3"], ["latest"], [""], ["has space"], ["ok", "a@b"]] {
            do {
                _ = try await f.store.createVersion(NewVersion(model: "m", artifactDigest: digestB, artifactFormat: "f"),
                                                    aliases: aliases, who: "x", reason: "")
                XCTFail("\(aliases) accepted")
            } catch let error as RegistryError {
                guard case .invalidArgument(let message) = error else { return XCTFail("\(error)") }
                if aliases == ["champion", "champion"] { XCTAssertTrue(message.contains("'champion' given more than once"), message) }
            }
        }
        XCTAssertEqual(try f.store.model(named: "m").latestVersion, 1)
        XCTAssertEqual(try f.store.model(named: "m").aliases, [:])
        XCTAssertEqual(try f.store.auditLog(model: "m"), [])
    }

    func testCustomProtectedAliases() async throws {
        let f = try RegistryFixture()
        _ = try await f.store.createVersion(NewVersion(model: "m", source: source(auc: 0.5), artifactDigest: digestA, artifactFormat: "f"))
        _ = try await f.store.setPolicy(name: "m", policy: Policy(metricThresholds: [MetricThreshold(metric: "auc", comparison: .gt, value: 0.6)],
                                                                 protectedAliases: ["champion"]))
        _ = try await f.store.setAlias(model: "m", alias: "production", version: 1, who: "a", reason: "")
        do { _ = try await f.store.setAlias(model: "m", alias: "champion", version: 1, who: "a", reason: ""); XCTFail("not refused") }
        catch let error as RegistryError { guard case .policyViolation = error else { return XCTFail("\(error)") } }
    }

    func testModelRecordsRoundTripAndReadsNeverReturnAStaleRecord() async throws {
        // readModel keeps the last record it decoded or encoded, keyed by
        // the stored bytes; that is only right if encoding loses nothing.
        var model = RegistryStore.newModel("m", description: "d", card: ["owner": "ml", "intended_use": "x"], tags: ["t": "1"], now: 5)
        model.aliases = ["production": 3, "b": 1]
        model.latestVersion = 3
        model.policy = Policy(metricThresholds: [MetricThreshold(metric: "auc", comparison: .ge, value: 0.1 + 0.2),
                                                 MetricThreshold(metric: "loss", comparison: .lt, value: 1e-300)],
                              requiredCardFields: ["owner"], requireLineage: true, protectedAliases: ["production", "gold"])
        let bytes = try RegistryStore.encode(model)
        XCTAssertEqual(try JSONDecoder().decode(RegisteredModel.self, from: Data(bytes)), model)

        // A second store on the same environment changes the record behind
        // the first one's back: the first reads the new record.
        let f = try RegistryFixture()
        _ = try await f.store.createVersion(NewVersion(model: "m", source: source(auc: 0.5), artifactDigest: digestA, artifactFormat: "f"))
        XCTAssertEqual(try f.store.model(named: "m").description, "")
        let other = try RegistryStore(environment: f.environment)
        _ = try await other.updateModel(name: "m", description: "changed elsewhere", card: [:], tags: [:])
        XCTAssertEqual(try f.store.model(named: "m").description, "changed elsewhere")
        _ = try await f.store.createVersion(NewVersion(model: "m", source: source(auc: 0.5), artifactDigest: digestB, artifactFormat: "f"))
        let read = try other.model(named: "m")
        XCTAssertEqual(read.description, "changed elsewhere")
        XCTAssertEqual(read.latestVersion, 2)
    }

    func testThresholdParsing() throws {
        XCTAssertEqual(try MetricThreshold.parse("auc >= 0.85"), MetricThreshold(metric: "auc", comparison: .ge, value: 0.85))
        XCTAssertEqual(try MetricThreshold.parse("rmse<1.5"), MetricThreshold(metric: "rmse", comparison: .lt, value: 1.5))
        XCTAssertEqual(try MetricThreshold.parse("f1 = 1"), MetricThreshold(metric: "f1", comparison: .eq, value: 1))
        XCTAssertThrowsError(try MetricThreshold.parse("auc high"))
        XCTAssertThrowsError(try MetricThreshold.parse(">= 3"))
        XCTAssertThrowsError(try MetricThreshold.parse("auc >= x"))
    }

    func testAuditLogsOfModelsWithSimilarNamesStayApart() async throws {
        // The next audit sequence is found by one seek below (model, max):
        // models whose names extend each other, or sort right after, must
        // neither share nor skip sequence numbers.
        let f = try RegistryFixture()
        let names = ["a", "a\u{0}", "ab", "b"]
        for name in names {
            _ = try await f.store.createVersion(NewVersion(model: name, artifactDigest: digestA, artifactFormat: "f"))
        }
        for round in 1...3 {
            for name in names.reversed() {
                _ = try await f.store.createVersion(NewVersion(model: name, artifactDigest: digestA, artifactFormat: "f"),
                                                   aliases: ["r\(round)"], who: "w", reason: name)
            }
        }
        for name in names {
            let log = try f.store.auditLog(model: name)
            XCTAssertEqual(log.map(\.alias), ["r1", "r2", "r3"], name)
            XCTAssertEqual(Set(log.map(\.reason)), [name])
        }
    }

    func testConcurrentAliasChangesAreAllAudited() async throws {
        let f = try RegistryFixture()
        for _ in 0..<4 { _ = try await f.store.createVersion(NewVersion(model: "m", artifactDigest: digestA, artifactFormat: "f")) }
        let store = f.store
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask {
                    _ = try await store.setAlias(model: "m", alias: "champion", version: UInt64(i % 4 + 1), who: "w\(i)", reason: "")
                }
            }
            try await group.waitForAll()
        }
        let log = try f.store.auditLog(model: "m")
        XCTAssertEqual(log.count, 40)
        // Each change starts where the previous one ended.
        for (previous, next) in zip(log, log.dropFirst()) { XCTAssertEqual(next.fromVersion, previous.toVersion) }
        XCTAssertEqual(try f.store.resolve(reference: "m@champion").version, log.last?.toVersion)
    }
}
