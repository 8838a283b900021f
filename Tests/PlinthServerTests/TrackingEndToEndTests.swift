// End-to-end tests of the Tracking and Registry services against an
// in-process server on a free port: the wire mapping, the status codes the
// issue names (NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED), streamed
// artifacts, concurrent writers, and alias changes attributed to the
// connection's token. Each test has its own data directory and port.
import Crypto
import Foundation
import Logging
import PlinthClient
import PlinthStorage
import PlinthWire
import XCTest
@testable import PlinthServer

/// An in-process server with its own data directory, on a free port, with
/// a small artifact limit and no disk syncs (these tests are not about
/// durability).
final class TrackingTestServer {
    let server: PlinthServer
    let address: String
    let dataDir: String

    init(tokens: [Token] = [], maxArtifactBytes: Int64 = 1 << 20) throws {
        dataDir = NSTemporaryDirectory() + "plinth-trk-e2e-\(UUID().uuidString)"
        var config = ServerConfig()
        config.dataDir = dataDir
        config.listen = "127.0.0.1:0"
        config.tokens = tokens
        config.maxFrameBytes = 1 << 20
        config.maxArtifactBytes = maxArtifactBytes
        config.eventLoopThreads = 2
        config.durable = false
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        server = try PlinthServer(config: config, logger: logger)
        address = try server.start()[0]
    }

    func stop() {
        server.stop()
        try? FileManager.default.removeItem(atPath: dataDir)
    }
}

final class TrackingEndToEndTests: XCTestCase {
    var running: TrackingTestServer?
    var address: String { running?.address ?? "" }
    var dataDir: String { running?.dataDir ?? "" }

    func start(tokens: [Token] = [], maxArtifactBytes: Int64 = 1 << 20) throws {
        running = try TrackingTestServer(tokens: tokens, maxArtifactBytes: maxArtifactBytes)
    }

    override func tearDown() { running?.stop() }

    func expectCode<T>(_ code: Int, _ body: @autoclosure () throws -> T, contains text: String = "",
                       file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("expected status \(code), got OK", file: file, line: line)
        } catch let error as PlinthError {
            XCTAssertEqual(error.code, code, error.message, file: file, line: line)
            if !text.isEmpty { XCTAssertTrue(error.message.contains(text), error.message, file: file, line: line) }
        } catch { XCTFail("\(error)", file: file, line: line) }
    }

    func startRun(_ c: Connection, experiment: String = "exp") throws -> (UInt64, String) {
        let e = try c.call(Method.createExperiment, PBCreateExperimentRequest.with { $0.name = experiment }, as: PBExperimentResponse.self)
        let r = try c.call(Method.startRun, PBStartRunRequest.with { $0.experimentID = e.experiment.experimentID; $0.name = "r" },
                           as: PBRunResponse.self)
        return (e.experiment.experimentID, r.run.runID)
    }

    func testRunLifecycleOverTheWire() throws {
        try start()
        let c = try Connection(address: address)
        let (experimentID, runID) = try startRun(c)
        XCTAssertEqual(try c.call(Method.getExperiment, PBGetExperimentRequest.with { $0.name = "exp" }, as: PBExperimentResponse.self)
            .experiment.experimentID, experimentID)
        var batch = PBLogBatchRequest()
        batch.runID = runID
        batch.metrics = [PBMetricSeries.with { $0.key = "loss"; $0.values = [0.5, 0.25, .nan]; $0.steps = [0, 1, 2]; $0.timestampsMs = [10, 20, 30] },
                         PBMetricSeries.with { $0.key = "auc"; $0.values = [0.91] }]
        batch.params = [PBParam.with { $0.key = "model"; $0.value = "xgb" }]
        batch.tags = ["team": "growth"]
        batch.codeVersion = PBCodeVersion.with { $0.gitCommit = "deadbeef"; $0.dirty = false }
        XCTAssertEqual(try c.call(Method.logBatch, batch, as: PBLogBatchResponse.self).metricPoints, 4)

        let run = try c.call(Method.getRun, PBRunIdRequest.with { $0.runID = runID }, as: PBRunResponse.self).run
        XCTAssertEqual(run.params, ["model": "xgb"])
        XCTAssertEqual(run.codeVersion.gitCommit, "deadbeef")
        XCTAssertEqual(run.metrics.map(\.key), ["auc", "loss"])
        XCTAssertTrue(run.metrics[1].value.isNaN)
        let history = try c.call(Method.getMetricHistory, PBGetMetricHistoryRequest.with { $0.runID = runID; $0.key = "loss" },
                                 as: PBGetMetricHistoryResponse.self)
        XCTAssertEqual(history.steps, [0, 1, 2])
        XCTAssertEqual(Array(history.values.prefix(2)), [0.5, 0.25])

        let found = try c.call(Method.searchRuns, PBSearchRunsRequest.with {
            $0.experimentIds = [experimentID]
            $0.filter = "metrics.auc > 0.8 and params.model = 'xgb' and tags.team != 'x' and attributes.status = 'RUNNING'"
        }, as: PBSearchRunsResponse.self)
        XCTAssertEqual(found.runs.map(\.runID), [runID])
        expectCode(3, try c.call(Method.searchRuns, PBSearchRunsRequest.with { $0.experimentIds = [experimentID]; $0.filter = "metrics.auc >> 1" },
                                 as: PBSearchRunsResponse.self), contains: "position 14")

        // A changed param is INVALID_ARGUMENT; the run ends; then logging is FAILED_PRECONDITION.
        batch.metrics = []
        batch.params = [PBParam.with { $0.key = "model"; $0.value = "lgbm" }]
        expectCode(3, try c.call(Method.logBatch, batch, as: PBLogBatchResponse.self), contains: "immutable")
        let ended = try c.call(Method.endRun, PBEndRunRequest.with { $0.runID = runID; $0.status = .failed }, as: PBRunResponse.self)
        XCTAssertEqual(ended.run.status, .failed)
        XCTAssertEqual(ended.run.metrics.count, 2)
        batch.params = []
        batch.metrics = [PBMetricSeries.with { $0.key = "loss"; $0.values = [1] }]
        expectCode(9, try c.call(Method.logBatch, batch, as: PBLogBatchResponse.self), contains: "FAILED")
        // Unknown ids are NOT_FOUND.
        expectCode(5, try c.call(Method.getRun, PBRunIdRequest.with { $0.runID = "0000" }, as: PBRunResponse.self))
        expectCode(5, try c.call(Method.getExperiment, PBGetExperimentRequest.with { $0.experimentID = 77 }, as: PBExperimentResponse.self))
        expectCode(5, try c.call(Method.startRun, PBStartRunRequest.with { $0.experimentID = 77 }, as: PBRunResponse.self))
        expectCode(6, try c.call(Method.createExperiment, PBCreateExperimentRequest.with { $0.name = "exp" }, as: PBExperimentResponse.self))
        // Mismatched columns are refused before anything is stored.
        let (_, other) = try startRun(c, experiment: "exp2")
        expectCode(3, try c.call(Method.logBatch, PBLogBatchRequest.with {
            $0.runID = other
            $0.metrics = [PBMetricSeries.with { $0.key = "a"; $0.values = [1, 2]; $0.steps = [1] }]
        }, as: PBLogBatchResponse.self))
    }

    func testConcurrentConnectionsLoggingToOneRunLoseNothing() throws {
        try start()
        let setup = try Connection(address: address)
        let (_, runID) = try startRun(setup)
        let failures = Counter()
        let address = self.address
        DispatchQueue.concurrentPerform(iterations: 6) { worker in
            do {
                let c = try Connection(address: address)
                for i in 0..<40 {
                    let step = Int64(worker * 1000 + i)
                    _ = try c.call(Method.logBatch, PBLogBatchRequest.with {
                        $0.runID = runID
                        $0.metrics = [PBMetricSeries.with { $0.key = "m"; $0.values = [Double(step)]; $0.steps = [step] }]
                        $0.params = [PBParam.with { $0.key = "w\(worker)_\(i)"; $0.value = "x" }]
                    }, as: PBLogBatchResponse.self)
                }
            } catch { failures.add() }
        }
        XCTAssertEqual(failures.value, 0)
        let history = try setup.call(Method.getMetricHistory, PBGetMetricHistoryRequest.with { $0.runID = runID; $0.key = "m" },
                                     as: PBGetMetricHistoryResponse.self)
        XCTAssertEqual(history.steps.count, 240)
        let run = try setup.call(Method.getRun, PBRunIdRequest.with { $0.runID = runID }, as: PBRunResponse.self).run
        XCTAssertEqual(run.params.count, 240)
    }

    func upload(_ c: Connection, run: String, path: String, _ content: [UInt8], chunk: Int = 100_000) throws -> PBUploadArtifactResponse {
        var id = ""
        var offset = 0
        while true {
            let end = min(content.count, offset + chunk)
            let last = end == content.count
            let answer = try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with {
                $0.runID = run
                $0.path = path
                $0.uploadID = id
                $0.data = Data(content[offset..<end])
                $0.finish = last
            }, as: PBUploadArtifactResponse.self)
            id = answer.uploadID
            offset = end
            if last { return answer }
        }
    }

    func testArtifactsStreamUpAndDown() throws {
        try start(maxArtifactBytes: 700_000)
        let c = try Connection(address: address)
        let (_, runID) = try startRun(c)
        let content = (0..<650_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        let stored = try upload(c, run: runID, path: "model/weights.bin", content)
        XCTAssertEqual(stored.artifact.size, 650_000)
        XCTAssertEqual(stored.artifact.digest.count, 64)
        let blob = dataDir + "/blobs/sha256/\(stored.artifact.digest.prefix(2))/\(stored.artifact.digest.dropFirst(2))"
        XCTAssertTrue(FileManager.default.fileExists(atPath: blob))

        let id = try c.send(Method.downloadArtifact, PBDownloadArtifactRequest.with { $0.runID = runID; $0.path = "model/weights.bin" })
        var received = Data()
        var frames = 0
        while true {
            let frame = try c.receive()
            XCTAssertEqual(frame.id, id)
            XCTAssertEqual(frame.code, 0, frame.message)
            let part = try PBDownloadArtifactResponse(serializedBytes: frame.body)
            for chunk in part.chunks { received.append(chunk) }
            frames += 1
            if !frame.more {
                XCTAssertEqual(part.artifact.digest, stored.artifact.digest)
                break
            }
        }
        XCTAssertGreaterThan(frames, 2, "a 650 KB artifact under a 1 MiB frame limit comes in several frames")
        XCTAssertEqual(Array(received), content)

        let listed = try c.call(Method.listArtifacts, PBListArtifactsRequest.with { $0.runID = runID }, as: PBListArtifactsResponse.self)
        XCTAssertEqual(listed.artifacts.map(\.path), ["model/weights.bin"])
        expectCode(8, try upload(c, run: runID, path: "big.bin", [UInt8](repeating: 0, count: 800_000)), contains: "max_artifact_bytes")
        for bad in ["../escape", "/etc/passwd", "a/../../b"] {
            expectCode(3, try upload(c, run: runID, path: bad, [1]))
        }
        expectCode(5, try c.call(Method.downloadArtifact, PBDownloadArtifactRequest.with { $0.runID = runID; $0.path = "nope" },
                                 as: PBDownloadArtifactResponse.self))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dataDir + "/blobs/tmp"), [])
    }

    func testAnnouncedDigestSkipsTheBytesTheDaemonHas() throws {
        try start()
        let c = try Connection(address: address)
        let (_, runID) = try startRun(c)
        let content = (0..<250_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 7) }
        let digest = SHA256.hash(data: content).hex
        func ask(run: String, path: String, _ digest: String) throws -> PBUploadArtifactResponse {
            try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with {
                $0.runID = run
                $0.path = path
                $0.expectedDigest = digest
            }, as: PBUploadArtifactResponse.self)
        }
        // Unknown bytes: an upload begins and the bytes follow, checked against the digest.
        let first = try ask(run: "", path: "", digest)
        XCTAssertFalse(first.alreadyStored)
        XCTAssertFalse(first.hasArtifact)
        XCTAssertFalse(first.uploadID.isEmpty)
        var id = first.uploadID
        for (offset, end) in [(0, 100_000), (100_000, 250_000)] {
            let answer = try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with {
                $0.uploadID = id
                $0.data = Data(content[offset..<end])
                $0.finish = end == content.count
            }, as: PBUploadArtifactResponse.self)
            id = answer.uploadID
            if end == content.count { XCTAssertEqual(answer.artifact.digest, digest) }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dataDir + "/blobs/sha256/\(digest.prefix(2))/\(digest.dropFirst(2))"))
        // Known bytes: answered at once, listed under the run, nothing more to send.
        let known = try ask(run: runID, path: "model/weights.bin", digest)
        XCTAssertTrue(known.alreadyStored)
        XCTAssertEqual(known.artifact.digest, digest)
        XCTAssertEqual(known.artifact.size, 250_000)
        XCTAssertEqual(known.uploadID, "")
        let listed = try c.call(Method.listArtifacts, PBListArtifactsRequest.with { $0.runID = runID }, as: PBListArtifactsResponse.self)
        XCTAssertEqual(listed.artifacts.map(\.digest), [digest])
        // Bytes that do not match the announced digest: DATA_LOSS, nothing stored.
        var other = content
        other[5] ^= 0xFF
        let begun = try ask(run: "", path: "", String(repeating: "ab", count: 32))
        expectCode(15, try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with {
            $0.uploadID = begun.uploadID
            $0.data = Data(other)
            $0.finish = true
        }, as: PBUploadArtifactResponse.self), contains: "announced")
        expectCode(15, try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with {
            $0.expectedDigest = digest
            $0.data = Data(other)
            $0.finish = true
        }, as: PBUploadArtifactResponse.self), contains: "announced")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dataDir + "/blobs/tmp"), [])
        expectCode(3, try ask(run: "", path: "", "not-a-digest"))
        // CreateModelVersion takes the digest the daemon confirmed.
        var create = PBCreateModelVersionRequest()
        create.model = "m"
        create.artifactDigest = known.artifact.digest
        create.aliases = ["champion"]
        XCTAssertEqual(try c.call(Method.createModelVersion, create, as: PBModelVersionResponse.self).version.aliases, ["champion"])
    }

    func testRegistryPromotionIsCheckedAuditedAndTraced() throws {
        try start(tokens: [Token(name: "alice", secret: "alice-secret", scopes: .all),
                           Token(name: "bot", secret: "bot-secret-1", scopes: [.read, .write])])
        let admin = try Connection(address: address, token: "alice-secret")
        let bot = try Connection(address: address, token: "bot-secret-1")
        _ = try admin.call(Method.applyDefinitions, PBApplyDefinitionsRequest.with { $0.yaml = definitionsYAML }, as: PBApplyDefinitionsResponse.self)
        let (_, runID) = try startRun(admin)
        _ = try admin.call(Method.logBatch, PBLogBatchRequest.with {
            $0.runID = runID
            $0.metrics = [PBMetricSeries.with { $0.key = "auc"; $0.values = [0.83] }]
            $0.inputs = [PBRunInput.with { $0.name = "train"; $0.digest = "spine-digest"; $0.featureService = "svc"; $0.asOfMs = 1000 }]
        }, as: PBLogBatchResponse.self)
        let model = try upload(admin, run: "", path: "", Array("{\"trees\": []}".utf8))
        var create = PBCreateModelVersionRequest()
        create.model = "churn"
        create.runID = runID
        create.artifactDigest = model.artifact.digest
        create.artifactFormat = "xgboost-json"
        create.signature = PBModelSignature.with {
            $0.featureService = "svc"
            $0.requestFields = [PBSignatureField.with { $0.name = "amount"; $0.type = "float64" }]
        }
        let v1 = try bot.call(Method.createModelVersion, create, as: PBModelVersionResponse.self).version
        XCTAssertEqual(v1.version, 1)
        XCTAssertEqual(v1.metrics, ["auc": 0.83])
        create.artifactDigest = String(repeating: "0", count: 64)
        expectCode(5, try bot.call(Method.createModelVersion, create, as: PBModelVersionResponse.self), contains: "upload")

        let policy = PBSetModelPolicyRequest.with {
            $0.model = "churn"
            $0.policy = PBModelPolicy.with {
                $0.metricThresholds = [PBMetricThreshold.with { $0.metric = "auc"; $0.comparison = ">="; $0.value = 0.85 }]
                $0.requiredCardFields = ["owner", "intended use"]
                $0.requireLineage = true
            }
        }
        expectCode(7, try bot.call(Method.setModelPolicy, policy, as: PBRegisteredModelResponse.self))
        _ = try admin.call(Method.setModelPolicy, policy, as: PBRegisteredModelResponse.self)
        let promote = PBSetModelAliasRequest.with { $0.model = "churn"; $0.alias = "production"; $0.version = 1; $0.reason = "Q3 launch" }
        expectCode(9, try bot.call(Method.setModelAlias, promote, as: PBAliasChangeResponse.self), contains: "3 checks failed")
        let check = try bot.call(Method.checkModelPolicy, PBCheckModelPolicyRequest.with { $0.model = "churn"; $0.version = 1 },
                                 as: PBCheckModelPolicyResponse.self)
        XCTAssertEqual(check.failures.count, 3, "\(check.failures)")

        _ = try bot.call(Method.updateRegisteredModel, PBUpdateRegisteredModelRequest.with {
            $0.name = "churn"
            $0.card = ["owner": "growth", "intended_use": "retention"]
        }, as: PBRegisteredModelResponse.self)
        _ = try bot.call(Method.setModelAlias, PBSetModelAliasRequest.with { $0.model = "churn"; $0.alias = "champion"; $0.version = 1; $0.reason = "try" },
                         as: PBAliasChangeResponse.self)
        var relaxed = policy
        relaxed.policy.metricThresholds[0].value = 0.8
        _ = try admin.call(Method.setModelPolicy, relaxed, as: PBRegisteredModelResponse.self)
        let change = try bot.call(Method.setModelAlias, promote, as: PBAliasChangeResponse.self).change
        XCTAssertEqual(change.who, "bot")
        XCTAssertTrue(change.checked)

        let resolved = try bot.call(Method.getModelVersion, PBGetModelVersionRequest.with { $0.model = "churn"; $0.alias = "production" },
                                    as: PBModelVersionResponse.self).version
        XCTAssertEqual(resolved.version, 1)
        XCTAssertEqual(resolved.aliases, ["champion", "production"])
        let audit = try bot.call(Method.getAliasAudit, PBGetAliasAuditRequest.with { $0.model = "churn" }, as: PBGetAliasAuditResponse.self)
        XCTAssertEqual(audit.changes.map(\.alias), ["champion", "production"])
        XCTAssertEqual(audit.changes.last?.reason, "Q3 launch")
        XCTAssertEqual(audit.changes.last?.fromVersion, 0)

        let lineage = try bot.call(Method.getModelLineage, PBGetModelLineageRequest.with { $0.model = "churn"; $0.alias = "production" },
                                   as: PBGetModelLineageResponse.self)
        XCTAssertEqual(lineage.run.runID, runID)
        XCTAssertEqual(lineage.datasets.first?.digest, "spine-digest")
        let versions = lineage.datasets.first?.featureVersions ?? []
        XCTAssertEqual(versions.map(\.reference), ["stats:count", "stats:score"])
        XCTAssertEqual(versions.map(\.project), ["e2e", "e2e"])
        XCTAssertEqual(versions.first?.projectVersion, 1)
        XCTAssertEqual(versions.first?.schemaVersion, 1)
        XCTAssertEqual(lineage.signatureFeatures.count, 2)
        expectCode(5, try bot.call(Method.getModelVersion, PBGetModelVersionRequest.with { $0.model = "churn"; $0.alias = "nope" },
                                   as: PBModelVersionResponse.self))
        expectCode(5, try bot.call(Method.getModelLineage, PBGetModelLineageRequest.with { $0.model = "nope" },
                                   as: PBGetModelLineageResponse.self))

        // The model field takes a whole reference; a bare name is @production, as in Predict.
        for reference in ["churn", "churn@production", "churn/1", "churn:1"] {
            let v = try bot.call(Method.getModelVersion, PBGetModelVersionRequest.with { $0.model = reference },
                                 as: PBModelVersionResponse.self).version
            XCTAssertEqual(v.version, 1, reference)
        }
        for bad in ["churn/0", "churn@", "a@b@c", "/1"] {
            expectCode(3, try bot.call(Method.getModelVersion, PBGetModelVersionRequest.with { $0.model = bad },
                                       as: PBModelVersionResponse.self))
        }
        expectCode(3, try bot.call(Method.getModelVersion, PBGetModelVersionRequest.with { $0.model = "churn/1"; $0.version = 1 },
                                   as: PBModelVersionResponse.self))
    }
}
