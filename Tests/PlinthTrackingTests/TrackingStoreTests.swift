// The tracking store: experiments, runs, the log_batch primitive, metric
// history, and the refusals (unknown ids, finished runs, changed params),
// each test in its own temporary environment.
import Foundation
import PlinthStorage
import XCTest
@testable import PlinthTracking

/// A fresh environment and tracking store in a temporary directory.
final class TrackingFixture {
    let path: String
    let environment: Environment
    let store: TrackingStore

    init(name: String = #function) throws {
        path = NSTemporaryDirectory() + "plinth-tracking-\(name.filter { $0.isLetter })-\(UUID().uuidString)"
        var options = Environment.Options()
        options.mapSize = 1 << 26
        options.durable = false
        environment = try Environment(path: path, options: options)
        store = try TrackingStore(environment: environment)
    }

    deinit {
        environment.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}

final class TrackingStoreTests: XCTestCase {
    func testExperimentLifecycle() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "churn", tags: ["team": "growth"])
        XCTAssertEqual(try f.store.experiment(named: "churn").id, e.id)
        XCTAssertEqual(try f.store.experiment(id: e.id).tags, ["team": "growth"])
        do { _ = try await f.store.createExperiment(name: "churn"); XCTFail("duplicate name accepted") }
        catch let error as TrackingError { guard case .alreadyExists = error else { return XCTFail("\(error)") } }

        let renamed = try await f.store.renameExperiment(id: e.id, to: "churn-v2")
        XCTAssertEqual(renamed.name, "churn-v2")
        XCTAssertThrowsError(try f.store.experiment(named: "churn"))
        _ = try await f.store.deleteExperiment(id: e.id)
        XCTAssertEqual(try f.store.listExperiments().count, 0)
        XCTAssertEqual(try f.store.listExperiments(includeDeleted: true).count, 1)
        do { _ = try await f.store.startRun(experimentId: e.id); XCTFail("run started in a deleted experiment") }
        catch let error as TrackingError { guard case .failedPrecondition = error else { return XCTFail("\(error)") } }
        _ = try await f.store.restoreExperiment(id: e.id)
        XCTAssertEqual(try f.store.listExperiments().map(\.name), ["churn-v2"])
        XCTAssertThrowsError(try f.store.experiment(id: 999)) { error in
            XCTAssertEqual(error as? TrackingError, .notFound("no experiment has id 999"))
        }
    }

    func testLogBatchParamsTagsMetricsAndHistory() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let run = try await f.store.startRun(experimentId: e.id, name: "first")
        XCTAssertEqual(run.status, .running)
        XCTAssertEqual(run.id.count, 32)
        var points: [MetricPoint] = []
        for step in 0..<100 { points.append(MetricPoint(key: "loss", value: 1 / Double(step + 1), step: Int64(step), timestampMs: 1000 + Int64(step))) }
        points.append(MetricPoint(key: "weird", value: .nan, step: 0, timestampMs: 5))
        points.append(MetricPoint(key: "inf", value: -.infinity, step: 0, timestampMs: 5))
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: points, params: ["lr": "0.1"], tags: ["team": "a"],
                                            codeVersion: CodeVersion(gitCommit: "abc123", dirty: true)))
        let record = try f.store.run(id: run.id)
        XCTAssertEqual(record.run.params, ["lr": "0.1"])
        XCTAssertEqual(record.run.tags, ["team": "a", Run.nameTag: record.run.name], "the name is mirrored in its tag")
        XCTAssertEqual(record.run.codeVersion, CodeVersion(gitCommit: "abc123", dirty: true))
        XCTAssertEqual(record.metrics["loss"]?.step, 99)
        XCTAssertEqual(record.metrics["loss"]?.value, 0.01)
        XCTAssertTrue(record.metrics["weird"]?.value.isNaN == true)
        XCTAssertEqual(record.metrics["inf"]?.value, -.infinity)

        // Same param, same value: fine. Different value: refused, and the
        // whole batch (with its metric) is not stored.
        try await f.store.logBatch(LogBatch(runId: run.id, params: ["lr": "0.1"]))
        do {
            try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "loss", value: 9, step: 500, timestampMs: 1)],
                                                params: ["lr": "0.2"]))
            XCTFail("changed param accepted")
        } catch let error as TrackingError {
            guard case .invalidArgument(let m) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("immutable"), m)
        }
        XCTAssertEqual(try f.store.run(id: run.id).metrics["loss"]?.step, 99)

        let history = try f.store.metricHistory(runId: run.id, key: "loss")
        XCTAssertEqual(history.items.count, 100)
        XCTAssertEqual(history.items.map(\.step), (0..<100).map(Int64.init))
        XCTAssertEqual(history.nextPageToken, "")
        // Paging walks the same points in the same order.
        var paged: [MetricPoint] = []
        var token = ""
        repeat {
            let page = try f.store.metricHistory(runId: run.id, key: "loss", maxResults: 30, pageToken: token)
            paged += page.items
            token = page.nextPageToken
        } while !token.isEmpty
        XCTAssertEqual(paged, history.items)
        // A key that shares a prefix with another is not mixed into its history.
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "loss2", value: 1, step: 0, timestampMs: 1)]))
        XCTAssertEqual(try f.store.metricHistory(runId: run.id, key: "loss").items.count, 100)
    }

    func testLatestMetricIsHighestStepNotLastWritten() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let run = try await f.store.startRun(experimentId: e.id)
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "acc", value: 0.9, step: 10, timestampMs: 10)]))
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "acc", value: 0.1, step: 2, timestampMs: 20)]))
        XCTAssertEqual(try f.store.run(id: run.id).metrics["acc"]?.value, 0.9)
        XCTAssertEqual(try f.store.metricHistory(runId: run.id, key: "acc").items.map(\.value), [0.1, 0.9])
    }

    func testInterleavedKeysInOneBatch() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let run = try await f.store.startRun(experimentId: e.id)
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [
            MetricPoint(key: "a", value: 10, step: 10, timestampMs: 1), MetricPoint(key: "a", value: 11, step: 11, timestampMs: 1),
            MetricPoint(key: "b", value: 5, step: 5, timestampMs: 1),
            MetricPoint(key: "a", value: 2, step: 2, timestampMs: 1), MetricPoint(key: "b", value: 6, step: 6, timestampMs: 1),
        ]))
        let record = try f.store.run(id: run.id)
        XCTAssertEqual(record.metrics["a"]?.value, 11)
        XCTAssertEqual(record.metrics["b"]?.value, 6)
        XCTAssertEqual(try f.store.metricHistory(runId: run.id, key: "a").items.map(\.step), [2, 10, 11])
        XCTAssertEqual(try f.store.metricHistory(runId: run.id, key: "b").items.map(\.value), [5, 6])
    }

    func testOlderRunsAndOutOfOrderStepsFallBackFromAppend() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let older = try await f.store.startRun(experimentId: e.id)
        let newer = try await f.store.startRun(experimentId: e.id)
        func points(_ steps: [Int64]) -> [MetricPoint] { steps.map { MetricPoint(key: "m", value: Double($0), step: $0, timestampMs: 1) } }
        try await f.store.logBatch(LogBatch(runId: newer.id, metrics: points([5, 6, 7])))
        // Sorts before the newer run's points: every put is a fallback.
        try await f.store.logBatch(LogBatch(runId: older.id, metrics: points([1, 2, 3])))
        // Appends, then a step that goes back (and one that repeats), then appends again.
        try await f.store.logBatch(LogBatch(runId: newer.id, metrics: points([8, 9, 1, 9, 10])))
        XCTAssertEqual(try f.store.metricHistory(runId: older.id, key: "m").items.map(\.step), [1, 2, 3])
        XCTAssertEqual(try f.store.metricHistory(runId: newer.id, key: "m").items.map(\.step), [1, 5, 6, 7, 8, 9, 10])
        XCTAssertEqual(try f.store.run(id: newer.id).metrics["m"]?.step, 10)
    }

    func testFinishedRunRefusesLogging() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let run = try await f.store.startRun(experimentId: e.id)
        let ended = try await f.store.endRun(id: run.id, status: .finished)
        XCTAssertEqual(ended.status, .finished)
        XCTAssertGreaterThan(ended.endMs, 0)
        do {
            try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "a", value: 1, timestampMs: 1)]))
            XCTFail("logged to a finished run")
        } catch let error as TrackingError { guard case .failedPrecondition = error else { return XCTFail("\(error)") } }
        do { _ = try await f.store.endRun(id: run.id, status: .failed); XCTFail("ended twice") }
        catch let error as TrackingError { guard case .failedPrecondition = error else { return XCTFail("\(error)") } }
        do { _ = try await f.store.endRun(id: "nope", status: .failed); XCTFail("unknown run ended") }
        catch let error as TrackingError { guard case .notFound = error else { return XCTFail("\(error)") } }
        XCTAssertThrowsError(try f.store.metricHistory(runId: "nope", key: "a"))
    }

    func testBadKeysAreRefused() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let run = try await f.store.startRun(experimentId: e.id)
        for key in ["", "a..b", "/abs", "semi;colon", String(repeating: "k", count: 251)] {
            do {
                try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: key, value: 1, timestampMs: 1)]))
                XCTFail("key '\(key)' accepted")
            } catch let error as TrackingError { guard case .invalidArgument = error else { return XCTFail("\(error)") } }
        }
    }

    func testConcurrentWritersToOneRunLoseNothing() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let run = try await f.store.startRun(experimentId: e.id)
        let writers = 8, perWriter = 50
        let store = f.store
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    for i in 0..<perWriter {
                        let step = Int64(w * perWriter + i)
                        try await store.logBatch(LogBatch(runId: run.id,
                                                          metrics: [MetricPoint(key: "m", value: Double(step), step: step, timestampMs: step)],
                                                            params: ["p\(w)_\(i)": "v"], tags: ["t\(w)": "\(i)"]))
                    }
                }
            }
            try await group.waitForAll()
        }
        let record = try f.store.run(id: run.id)
        XCTAssertEqual(record.run.params.count, writers * perWriter)
        XCTAssertEqual(record.run.tags.count, writers + 1, "one per writer, and mlflow.runName")
        XCTAssertEqual(record.metrics["m"]?.step, Int64(writers * perWriter - 1))
        XCTAssertEqual(try f.store.metricHistory(runId: run.id, key: "m").items.count, writers * perWriter)
    }

    func testDeletedRunIsHiddenFromSearchUntilRestored() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let run = try await f.store.startRun(experimentId: e.id)
        _ = try await f.store.deleteRun(id: run.id)
        XCTAssertEqual(try f.store.searchRuns(experimentIds: [e.id]).items.count, 0)
        XCTAssertEqual(try f.store.searchRuns(experimentIds: [e.id], view: .deletedOnly).items.count, 1)
        _ = try await f.store.restoreRun(id: run.id)
        XCTAssertEqual(try f.store.searchRuns(experimentIds: [e.id]).items.map(\.run.id), [run.id])
    }

    func testSearchSeesEveryWriteAnsweredBeforeIt() async throws {
        // Searches reuse a snapshot of the experiment's runs; every kind of
        // write must be seen by the next search, through either logBatch.
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let other = try await f.store.createExperiment(name: "y")
        let a = try await f.store.startRun(experimentId: e.id, name: "a")
        func ids(_ filter: String = "") throws -> [String] {
            try f.store.searchRuns(experimentIds: [e.id], filter: filter, orderBy: ["attributes.run_name"]).items.map(\.run.name)
        }
        XCTAssertEqual(try ids(), ["a"])
        XCTAssertEqual(try ids(), ["a"], "a second search, from the snapshot")
        _ = try await f.store.startRun(experimentId: e.id, name: "b")
        XCTAssertEqual(try ids(), ["a", "b"])
        try await f.store.logBatch(LogBatch(runId: a.id, metrics: [MetricPoint(key: "auc", value: 0.9, step: 0, timestampMs: 1)]))
        XCTAssertEqual(try ids("metrics.auc > 0.5"), ["a"])
        let done = expectation(description: "logged")
        f.store.logBatch(LogBatch(runId: a.id, metrics: [MetricPoint(key: "auc", value: 0.1, step: 1, timestampMs: 1)],
                                  params: ["model": "xgb"])) { _ in done.fulfill() }
        await fulfillment(of: [done], timeout: 10)
        XCTAssertEqual(try ids("metrics.auc > 0.5"), [])
        XCTAssertEqual(try ids("params.model = 'xgb'"), ["a"])
        _ = try await f.store.renameRun(id: a.id, to: "c")
        XCTAssertEqual(try ids(), ["b", "c"])
        _ = try await f.store.endRun(id: a.id, status: .finished)
        XCTAssertEqual(try ids("attributes.status = 'FINISHED'"), ["c"])
        _ = try await f.store.startRun(experimentId: other.id, name: "elsewhere")
        XCTAssertEqual(try ids(), ["b", "c"], "a run of another experiment")
        XCTAssertEqual(try f.store.searchRuns(experimentIds: [e.id, other.id]).items.count, 3)
    }

    func testBatchedThroughput() async throws {
        // Not a benchmark (see Benchmarks/tracking), a guard against an
        // accidental per-point slowdown: 200,000 points must take well under
        // the seconds a per-point transaction would.
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "x")
        let run = try await f.store.startRun(experimentId: e.id)
        let start = Date()
        for batch in 0..<20 {
            let points = (0..<10_000).map { i in
                MetricPoint(key: "m\(i % 10)", value: Double(i), step: Int64(batch * 10_000 + i), timestampMs: 1)
            }
            try await f.store.logBatch(LogBatch(runId: run.id, metrics: points))
        }
        let seconds = Date().timeIntervalSince(start)
        XCTAssertLessThan(seconds, 20, "200,000 points took \(seconds) s")
        XCTAssertEqual(try f.store.metricHistory(runId: run.id, key: "m3").items.count, 20_000)
    }
}
