// plinthctl experiments, runs and models, run as the real binary against an
// in-process server: the tables and --json output carry what the daemon
// holds, and refusals exit non-zero with the daemon's message.
import Foundation
import PlinthClient
import PlinthWire
import XCTest
@testable import PlinthServer

final class PlinthctlTrackingTests: XCTestCase {
    var server: TrackingTestServer!

    override func setUpWithError() throws { server = try TrackingTestServer() }

    override func tearDown() { server?.stop() }

    /// Runs plinthctl with the server's address; returns (exit code, stdout, stderr).
    func ctl(_ arguments: String...) throws -> (Int32, String, String) {
        try runPlinthctl(arguments, address: server.address)
    }

    func testExperimentsAndRuns() throws {
        var (code, out, _) = try ctl("experiments", "create", "churn", "--tag", "team=growth")
        XCTAssertEqual(code, 0)
        XCTAssertTrue(out.contains("created experiment 1 'churn'"), out)
        (code, out, _) = try ctl("experiments", "list", "--json")
        let listed = try PBListExperimentsResponse(jsonString: out)
        XCTAssertEqual(listed.experiments.map(\.name), ["churn"])
        XCTAssertEqual(listed.experiments.first?.tags, ["team": "growth"])

        let c = try Connection(address: server.address)
        let run = try c.call(Method.startRun, PBStartRunRequest.with { $0.experimentID = 1; $0.name = "xgb" }, as: PBRunResponse.self).run
        _ = try c.call(Method.logBatch, PBLogBatchRequest.with {
            $0.runID = run.runID
            $0.metrics = [PBMetricSeries.with { $0.key = "auc"; $0.values = [0.9] }]
            $0.params = [PBParam.with { $0.key = "model"; $0.value = "xgb" }]
        }, as: PBLogBatchResponse.self)
        (code, out, _) = try ctl("runs", "search", "--experiment", "churn", "--filter", "metrics.auc > 0.8 and params.model = 'xgb'")
        XCTAssertEqual(code, 0)
        XCTAssertTrue(out.contains(run.runID) && out.contains("auc=0.9") && out.contains("RUNNING"), out)
        (code, out, _) = try ctl("runs", "show", run.runID)
        XCTAssertTrue(out.contains("param model") && out.contains("metric auc"), out)
        (code, out, _) = try ctl("runs", "list", "--experiment", "1", "--json")
        XCTAssertEqual(try PBSearchRunsResponse(jsonString: out).runs.map(\.runID), [run.runID])

        var err = ""
        (code, _, err) = try ctl("runs", "search", "--experiment", "churn", "--filter", "metrics.auc >> 1")
        XCTAssertEqual(code, 1)
        XCTAssertTrue(err.contains("INVALID_ARGUMENT") && err.contains("position 14"), err)
        (code, _, err) = try ctl("experiments", "show", "nope")
        XCTAssertEqual(code, 1)
        XCTAssertTrue(err.contains("NOT_FOUND"), err)
        (code, out, _) = try ctl("experiments", "delete", "churn")
        XCTAssertEqual(code, 0)
        (code, out, _) = try ctl("experiments", "list")
        XCTAssertFalse(out.contains("churn"), out)
        (code, out, _) = try ctl("experiments", "list", "--all")
        XCTAssertTrue(out.contains("deleted"), out)
    }

    func testModelsRegisterUploadsAndRecordsTheSignature() throws {
        let c = try Connection(address: server.address)
        _ = try c.call(Method.applyDefinitions, PBApplyDefinitionsRequest.with { $0.yaml = definitionsYAML },
                       as: PBApplyDefinitionsResponse.self)
        let file = NSTemporaryDirectory() + "plinthctl-model-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data("""
        {"plinth_model": "linear", "format_version": 1, "n_features": 3, "feature_names": ["count", "score", "amount"],
         "coefficients": [[1, 10, 100]], "intercepts": [0.5], "output": "identity"}
        """.utf8).write(to: URL(fileURLWithPath: file))
        var (code, out, err) = try ctl("models", "register", "lin", "--file", file, "--service", "svc",
                                       "--request-field", "amount:float64", "--default", "stats:count=7",
                                       "--alias", "production", "--reason", "first")
        XCTAssertEqual(code, 0, err)
        XCTAssertTrue(out.contains("plinth-json") && out.contains("amount: float64") && out.contains("stats:count=7"), out)
        XCTAssertTrue(out.contains("lin@production: unset -> version 1"), out)
        // Version and alias came in one request: one audit entry, with the reason.
        let audit = try c.call(Method.getAliasAudit, PBGetAliasAuditRequest.with { $0.model = "lin" }, as: PBGetAliasAuditResponse.self)
        XCTAssertEqual(audit.changes.map { [$0.alias, "\($0.toVersion)", $0.reason] }, [["production", "1", "first"]])
        for reference in ["lin:1", "lin/1", "lin@production"] {
            (code, out, err) = try ctl("models", "show", reference)
            XCTAssertEqual(code, 0, err)
            XCTAssertTrue(out.contains("feature service  svc"), out)
        }
        (code, out, err) = try ctl("models", "show", "lin/0")
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(err.contains("'lin/0' is not valid") && err.contains("name@alias"), err)
        (code, _, err) = try ctl("predict", "--model", "lin@a:1", "--entity", "user_id=1")
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(err.contains("both '@' and ':'"), err)
        // The registered version serves: an unknown user takes the default count.
        let r = try c.call(Method.predict, PBPredictRequest.with {
            $0.modelName = "lin"
            $0.inputs = [PBColumn.with { $0.name = "user_id"; $0.type = .int64; $0.int64Values = [9] },
                         PBColumn.with { $0.name = "amount"; $0.type = .float64; $0.float64Values = [1] }]
        }, as: PBPredictResponse.self)
        XCTAssertTrue(r.outputs[0].float64Values[0].isNaN, "score has no default: \(r.outputs[0].float64Values)")
        (code, _, err) = try ctl("models", "register", "lin", "--file", file, "--request-field", "amount")
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(err.contains("NAME:TYPE"), err)
    }

    /// A scikit-learn tree ensemble exported by plinth.export ("plinth_model":
    /// "trees") registers and serves like any other model.
    func testModelsRegisterServesAnExportedTreeEnsemble() throws {
        let c = try Connection(address: server.address)
        _ = try c.call(Method.applyDefinitions, PBApplyDefinitionsRequest.with { $0.yaml = definitionsYAML },
                       as: PBApplyDefinitionsResponse.self)
        let file = NSTemporaryDirectory() + "plinthctl-trees-\(UUID().uuidString).plinth.json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        // amount <= 10 -> 1.5; else count <= 5 -> 10, else 20. score (no
        // default, so missing) is not split on.
        try Data("""
        {"plinth_model": "trees", "format_version": 1, "source": "sklearn.RandomForestRegressor", "n_features": 3,
         "feature_names": ["count", "score", "amount"], "n_outputs": 1, "base_margins": [0], "average": true,
         "output": "identity",
         "trees": [{"output": 0, "split_feature": [2, 0], "threshold": [10, 5], "left": [-1, -2], "right": [1, -3],
                    "missing_left": [false, true], "leaf_value": [1.5, 10, 20]}]}
        """.utf8).write(to: URL(fileURLWithPath: file))
        let (code, out, err) = try ctl("models", "register", "forest", "--file", file, "--service", "svc",
                                       "--request-field", "amount:float64", "--default", "stats:count=7",
                                       "--alias", "production", "--reason", "sklearn export")
        XCTAssertEqual(code, 0, err)
        XCTAssertTrue(out.contains("plinth-json"), out)
        let r = try c.call(Method.predict, PBPredictRequest.with {
            $0.modelName = "forest"
            $0.inputs = [PBColumn.with { $0.name = "user_id"; $0.type = .int64; $0.int64Values = [9, 9] },
                         PBColumn.with { $0.name = "amount"; $0.type = .float64; $0.float64Values = [5, 50] }]
        }, as: PBPredictResponse.self)
        XCTAssertEqual(r.outputs[0].float64Values, [1.5, 20])
    }

    func testModelsAliasPolicyLineageAudit() throws {
        let c = try Connection(address: server.address)
        let content = Data("{\"trees\": []}".utf8)
        let blob = try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with { $0.data = content; $0.finish = true },
                              as: PBUploadArtifactResponse.self)
        _ = try c.call(Method.createModelVersion, PBCreateModelVersionRequest.with {
            $0.model = "churn"; $0.artifactDigest = blob.artifact.digest; $0.artifactFormat = "xgboost-json"
        }, as: PBModelVersionResponse.self)

        var (code, out, err) = try ctl("models", "policy", "churn", "--threshold", "auc >= 0.85", "--require-card", "owner")
        XCTAssertEqual(code, 0, err)
        XCTAssertTrue(out.contains("auc >= 0.85") && out.contains("protects production"), out)
        (code, out, _) = try ctl("models", "policy", "churn", "--check", "1")
        XCTAssertEqual(code, 1)
        XCTAssertTrue(out.contains("fails 2 checks"), out)
        (code, _, err) = try ctl("models", "alias", "churn", "production", "1", "--reason", "launch")
        XCTAssertEqual(code, 1)
        XCTAssertTrue(err.contains("FAILED_PRECONDITION") && err.contains("2 checks failed"), err)
        (code, out, err) = try ctl("models", "alias", "churn", "champion", "1", "--reason", "first")
        XCTAssertEqual(code, 0, err)
        XCTAssertTrue(out.contains("churn@champion: unset -> version 1 by anonymous"), out)
        (code, out, _) = try ctl("models", "show", "churn@champion", "--json")
        XCTAssertEqual(try PBModelVersion(jsonString: out).version, 1)
        (code, out, _) = try ctl("models", "versions", "churn")
        XCTAssertTrue(out.contains("xgboost-json") && out.contains("champion"), out)
        (code, out, _) = try ctl("models", "lineage", "churn/1")
        XCTAssertTrue(out.contains("churn version 1") && out.contains("no source run"), out)
        (code, out, _) = try ctl("models", "alias", "churn", "champion", "--delete", "--reason", "done")
        XCTAssertEqual(code, 0)
        (code, out, _) = try ctl("models", "audit", "churn", "--json")
        let audit = try PBGetAliasAuditResponse(jsonString: out)
        XCTAssertEqual(audit.changes.map(\.reason), ["first", "done"])
        (code, out, _) = try ctl("models", "list")
        XCTAssertTrue(out.contains("churn") && out.contains("yes"), out)
    }
}
