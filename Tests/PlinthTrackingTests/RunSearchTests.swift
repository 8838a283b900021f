// MLflow's filter grammar: what parses, what is refused (and where the
// error points), what matches, order_by and paging.
import Foundation
import XCTest
@testable import PlinthTracking

final class RunSearchTests: XCTestCase {
    func record(id: String = "r1", metrics: [String: Double] = [:], params: [String: String] = [:],
                tags: [String: String] = [:], status: RunStatus = .finished, name: String = "run",
                start: Int64 = 100, datasets: [Dataset] = []) -> RunRecord {
        let run = Run(id: id, seq: 1, experimentId: 1, name: name, status: status, startMs: start, endMs: start + 10,
                      lifecycle: .active, tags: tags, params: params, inputs: datasets, codeVersion: nil)
        return RunRecord(run: run, metrics: metrics.mapValues { MetricPoint(key: "", value: $0, step: 0, timestampMs: 0) })
    }

    func matches(_ filter: String, _ r: RunRecord, file: StaticString = #filePath, line: UInt = #line) -> Bool {
        do { return try RunFilter.parse(filter).matches(r) } catch {
            XCTFail("'\(filter)' did not parse: \(error)", file: file, line: line)
            return false
        }
    }

    func parseError(_ filter: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try RunFilter.parse(filter)
            XCTFail("'\(filter)' parsed", file: file, line: line)
            return ""
        } catch let error as TrackingError {
            guard case .invalidArgument(let message) = error else { XCTFail("\(error)", file: file, line: line); return "" }
            return message
        } catch { XCTFail("\(error)", file: file, line: line); return "" }
    }

    func testTheIssueExample() {
        let r = record(metrics: ["auc": 0.85], params: ["model": "xgb"], tags: ["team": "y"])
        XCTAssertTrue(matches("metrics.auc > 0.8 and params.model = 'xgb' and tags.team != 'x' and attributes.status = 'FINISHED'", r))
        XCTAssertFalse(matches("metrics.auc > 0.9 and params.model = 'xgb'", r))
        XCTAssertFalse(matches("metrics.auc > 0.8 and attributes.status = 'RUNNING'", r))
    }

    func testNumericOperators() {
        let r = record(metrics: ["auc": 0.8])
        let cases: [(String, Bool)] = [
            ("metrics.auc = 0.8", true), ("metrics.auc != 0.8", false), ("metrics.auc < 0.9", true),
            ("metrics.auc <= 0.8", true), ("metrics.auc > 0.8", false), ("metrics.auc >= 0.8", true),
            ("metrics.auc <> 0.7", true), ("metric.auc > -1", true), ("metrics.auc > 1e-3", true),
            ("metrics.auc < .5", false), ("metrics.missing > 0", false), ("metrics.missing != 0", false),
        ]
        for (filter, expected) in cases { XCTAssertEqual(matches(filter, r), expected, filter) }
        XCTAssertFalse(matches("metrics.x > 0", record(metrics: ["x": .nan])))
        XCTAssertTrue(matches("metrics.x > 1e300", record(metrics: ["x": .infinity])))
    }

    func testStringOperatorsAndLike() {
        let r = record(params: ["model": "XGBoost-1.7"], tags: ["team": "growth"])
        let cases: [(String, Bool)] = [
            ("params.model = 'XGBoost-1.7'", true), ("params.model != 'xgb'", true),
            ("params.model LIKE 'XGB%'", true), ("params.model LIKE 'xgb%'", false),
            ("params.model ILIKE 'xgb%'", true), ("params.model like '%1._'", true),
            ("params.model LIKE '%1.'", false), ("tags.team LIKE 'gr_wth'", true),
            ("tag.team = \"growth\"", true), ("parameter.model LIKE '%'", true),
            ("params.missing != 'x'", false), ("tags.team = 'it''s'", false),
        ]
        for (filter, expected) in cases { XCTAssertEqual(matches(filter, r), expected, filter) }
        XCTAssertTrue(matches("tags.q = 'it''s'", record(tags: ["q": "it's"])))
    }

    func testQuotedAndBacktickedKeys() {
        let r = record(metrics: ["val loss": 0.2], params: ["my.param": "1"], tags: ["mlflow.user": "ann"])
        XCTAssertTrue(matches("metrics.`val loss` < 0.3", r))
        XCTAssertTrue(matches("metrics.\"val loss\" < 0.3", r))
        XCTAssertTrue(matches("params.my.param = '1'", r))
        XCTAssertTrue(matches("tags.`mlflow.user` = 'ann'", r))
        XCTAssertTrue(matches("`run name` = 'run'", r))
    }

    func testAttributes() {
        let r = record(id: "abc", status: .failed, name: "nightly", start: 5000)
        let cases: [(String, Bool)] = [
            ("attributes.status = 'FAILED'", true), ("status = 'FAILED'", true), ("run.status != 'FAILED'", false),
            ("attributes.run_id IN ('abc', 'def')", true), ("attributes.run_id NOT IN ('abc')", false),
            ("run_id = 'abc'", true), ("attributes.run_name LIKE 'night%'", true),
            ("attributes.start_time >= 5000", true), ("attributes.created < 5000", false),
            ("attributes.end_time = 5010", true), ("attr.status ILIKE 'fail%'", true),
        ]
        for (filter, expected) in cases { XCTAssertEqual(matches(filter, r), expected, filter) }
    }

    func testDatasets() {
        let r = record(datasets: [Dataset(name: "train", digest: "d1", context: "training")])
        XCTAssertTrue(matches("datasets.digest = 'd1'", r))
        XCTAssertTrue(matches("datasets.name IN ('train', 'x')", r))
        XCTAssertFalse(matches("datasets.context = 'eval'", r))
        XCTAssertTrue(matches("datasets.context != 'eval'", r))
    }

    func testEmptyFilterMatchesEverything() {
        XCTAssertTrue(matches("", record()))
        XCTAssertTrue(matches("   ", record()))
    }

    func testErrorsPointAtTheOffendingToken() {
        var m = parseError("metrics.auc > 0.8 and params.model == 'x'")
        XCTAssertTrue(m.contains("position 37") && m.contains("expected a value"), m)
        m = parseError("metrics.auc > 0.8 or params.model = 'x'")
        XCTAssertTrue(m.contains("position 19") && m.contains("OR"), m)
        m = parseError("metrics.auc > 'high'")
        XCTAssertTrue(m.contains("position 15") && m.contains("number"), m)
        m = parseError("params.model > 'x'")
        XCTAssertTrue(m.contains("position 14"), m)
        m = parseError("foo.bar = 'x'")
        XCTAssertTrue(m.contains("position 1") && m.contains("unknown prefix"), m)
        m = parseError("params.model = 'unclosed")
        XCTAssertTrue(m.contains("position 16") && m.contains("never closed"), m)
        m = parseError("metrics.auc >")
        XCTAssertTrue(m.contains("position 14") && m.contains("the end"), m)
        m = parseError("params.x IN ('a')")
        XCTAssertTrue(m.contains("position 10"), m)
        m = parseError("metrics.auc > 1 and")
        XCTAssertTrue(m.contains("after AND"), m)
        m = parseError("status = 'x' params.a = 'b'")
        XCTAssertTrue(m.contains("position 14") && m.contains("AND"), m)
        m = parseError("attributes.color = 'red'")
        XCTAssertTrue(m.contains("unknown attribute"), m)
        m = parseError("metrics.a ! 3")
        XCTAssertTrue(m.contains("position 11"), m)
        m = parseError("run_id IN ('a' 'b')")
        XCTAssertTrue(m.contains("position 16"), m)
        // The message shows the filter and a caret under the token.
        XCTAssertTrue(parseError("metrics.a ~ 1").hasSuffix("metrics.a ~ 1\n            ^"))
    }

    func testOrderByParsing() throws {
        XCTAssertEqual(try RunOrder.parse("metrics.rmse DESC"), RunOrder(field: .metric("rmse"), ascending: false))
        XCTAssertEqual(try RunOrder.parse("params.model"), RunOrder(field: .param("model"), ascending: true))
        XCTAssertEqual(try RunOrder.parse("attributes.start_time asc"), RunOrder(field: .attribute(.startTime), ascending: true))
        XCTAssertThrowsError(try RunOrder.parse("metrics.rmse sideways"))
        XCTAssertThrowsError(try RunOrder.parse("metrics.rmse DESC extra"))
    }

    func testSearchOrdersAndPagesOverAStore() async throws {
        let f = try TrackingFixture()
        let e = try await f.store.createExperiment(name: "search")
        let other = try await f.store.createExperiment(name: "other")
        var ids: [String] = []
        for i in 0..<25 {
            let run = try await f.store.startRun(experimentId: e.id, name: "r\(i)", startMs: Int64(1000 + i))
            ids.append(run.id)
            var metrics = [MetricPoint(key: "auc", value: Double(i) / 100, step: 0, timestampMs: 1)]
            if i == 3 { metrics = [] }
            try await f.store.logBatch(LogBatch(runId: run.id, metrics: metrics, params: ["model": i % 2 == 0 ? "xgb" : "lgbm"]))
            if i % 5 == 0 { _ = try await f.store.endRun(id: run.id, status: .finished) }
        }
        _ = try await f.store.startRun(experimentId: other.id)

        // Default order: newest first.
        let all = try f.store.searchRuns(experimentIds: [e.id])
        XCTAssertEqual(all.items.map(\.run.id), ids.reversed())
        // Filter and order by a metric, descending; the run without it is last.
        let xgb = try f.store.searchRuns(experimentIds: [e.id], filter: "params.model = 'xgb' and metrics.auc >= 0.1",
                                         orderBy: ["metrics.auc DESC"])
        XCTAssertEqual(xgb.items.map(\.run.name), ["r24", "r22", "r20", "r18", "r16", "r14", "r12", "r10"])
        let byAuc = try f.store.searchRuns(experimentIds: [e.id], orderBy: ["metrics.auc ASC"])
        XCTAssertEqual(byAuc.items.last?.run.name, "r3")
        XCTAssertEqual(byAuc.items.first?.run.name, "r0")
        let finished = try f.store.searchRuns(experimentIds: [e.id], filter: "attributes.status = 'FINISHED'")
        XCTAssertEqual(finished.items.count, 5)
        // Pages of 10 cover every run exactly once.
        var seen: [String] = []
        var token = ""
        repeat {
            let page = try f.store.searchRuns(experimentIds: [e.id, other.id], orderBy: ["params.model", "attributes.run_name DESC"],
                                              maxResults: 10, pageToken: token)
            XCTAssertLessThanOrEqual(page.items.count, 10)
            seen += page.items.map(\.run.id)
            token = page.nextPageToken
        } while !token.isEmpty
        XCTAssertEqual(seen.count, 26)
        XCTAssertEqual(Set(seen).count, 26)
        XCTAssertThrowsError(try f.store.searchRuns(experimentIds: [e.id], maxResults: 50_001))
        XCTAssertThrowsError(try f.store.searchRuns(experimentIds: [e.id], pageToken: "garbage"))
        XCTAssertThrowsError(try f.store.searchRuns(experimentIds: [999])) { error in
            guard case .notFound = error as? TrackingError else { return XCTFail("\(error)") }
        }
    }
}
