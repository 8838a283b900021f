// Runs searched as MLflow 3.18's SQL store searches them (issue 20): the
// order of NaN, missing values and RUNNING runs' end_time, datasets' != and
// NOT IN, byte-exact strings, the mlflow.runName tag, IS [NOT] NULL,
// artifact_uri and user_id, backticked prefixes, and which of two points at
// one step and timestamp is the latest. Each test has its own data dir.
import Foundation
import PlinthStorage
import XCTest
@testable import PlinthTracking

final class MLflowSemanticsTests: XCTestCase {
    /// "café" with a precomposed é, and with e + U+0301: canonically
    /// equivalent (Swift's == says equal), different bytes (MLflow's stores
    /// say different).
    let composed = "caf\u{E9}"
    let decomposed = "cafe\u{301}"

    /// A store with one experiment; `runs` are started in order, one ms apart.
    func fixture(_ name: String = #function) async throws -> (TrackingFixture, UInt64) {
        let f = try TrackingFixture(name: name)
        let e = try await f.store.createExperiment(name: "e")
        return (f, e.id)
    }

    func start(_ f: TrackingFixture, _ e: UInt64, _ name: String, at ms: Int64, tags: [String: String] = [:]) async throws -> Run {
        try await f.store.startRun(experimentId: e, name: name, tags: tags, startMs: ms)
    }

    func names(_ f: TrackingFixture, _ e: UInt64, _ filter: String = "", _ orderBy: [String] = []) throws -> [String] {
        try f.store.searchRuns(experimentIds: [e], filter: filter, orderBy: orderBy).items.map(\.run.name)
    }

    // MARK: 1. NaN, infinities and missing metrics in order_by

    func testNaNSortsAfterEveryNumberInBothDirectionsAndMissingAfterNaN() async throws {
        let (f, e) = try await fixture()
        let values: [(String, Double?)] = [("one", 1), ("nan", .nan), ("inf", .infinity), ("missing", nil), ("ninf", -.infinity), ("two", 2)]
        for (i, (name, value)) in values.enumerated() {
            let run = try await start(f, e, name, at: Int64(100 + i))
            if let value { try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "x", value: value, timestampMs: 1)])) }
        }
        XCTAssertEqual(try names(f, e, "", ["metrics.x ASC"]), ["ninf", "one", "two", "inf", "nan", "missing"])
        XCTAssertEqual(try names(f, e, "", ["metrics.x DESC"]), ["inf", "two", "one", "ninf", "nan", "missing"])
        // NaN matches only != (every other comparison with NaN is false).
        XCTAssertEqual(Set(try names(f, e, "metrics.x != 1")), ["nan", "inf", "ninf", "two"])
        XCTAssertEqual(Set(try names(f, e, "metrics.x > -1e308")), ["one", "two", "inf"])
    }

    func testMissingParamsAndTagsSortLastInBothDirections() async throws {
        let (f, e) = try await fixture()
        for (i, value) in ["b", nil, "a"].enumerated() {
            let run = try await start(f, e, "r\(i)", at: Int64(100 + i))
            if let value { try await f.store.logBatch(LogBatch(runId: run.id, params: ["p": value], tags: ["t": value])) }
        }
        for field in ["params.p", "tags.t"] {
            XCTAssertEqual(try names(f, e, "", ["\(field) ASC"]), ["r2", "r0", "r1"], field)
            XCTAssertEqual(try names(f, e, "", ["\(field) DESC"]), ["r0", "r2", "r1"], field)
        }
    }

    // MARK: 2. end_time of a RUNNING run is NULL

    func testRunningRunsEndTimeMatchesNoComparisonAndSortsLast() async throws {
        let (f, e) = try await fixture()
        let done = try await start(f, e, "done", at: 100)
        _ = try await f.store.endRun(id: done.id, status: .finished, endMs: 200)
        let early = try await start(f, e, "early", at: 50)
        _ = try await f.store.endRun(id: early.id, status: .killed, endMs: 60)
        _ = try await start(f, e, "running", at: 300)
        for op in ["=", "!=", "<", "<=", ">", ">="] {
            XCTAssertFalse(try names(f, e, "attributes.end_time \(op) 0").contains("running"), op)
        }
        XCTAssertEqual(try names(f, e, "attributes.end_time != 200"), ["early"])
        XCTAssertEqual(try names(f, e, "", ["attributes.end_time ASC"]), ["early", "done", "running"])
        XCTAssertEqual(try names(f, e, "", ["attributes.end_time DESC"]), ["done", "early", "running"])
    }

    // MARK: 3. datasets: != and NOT IN mean "some dataset differs"

    func testDatasetNotEqualAndNotInMeanSomeDatasetDiffers() async throws {
        let (f, e) = try await fixture()
        let both = try await start(f, e, "both", at: 100)
        try await f.store.logBatch(LogBatch(runId: both.id, inputs: [Dataset(name: "a", digest: "d1"), Dataset(name: "b", digest: "d2")]))
        let onlyA = try await start(f, e, "onlyA", at: 101)
        try await f.store.logBatch(LogBatch(runId: onlyA.id, inputs: [Dataset(name: "a", digest: "d1")]))
        _ = try await start(f, e, "none", at: 102)
        XCTAssertEqual(try names(f, e, "datasets.name != 'a'"), ["both"])
        XCTAssertEqual(try names(f, e, "datasets.name NOT IN ('a')"), ["both"])
        XCTAssertEqual(try names(f, e, "datasets.name NOT IN ('a', 'b')"), [])
        XCTAssertEqual(Set(try names(f, e, "datasets.name = 'a'")), ["both", "onlyA"])
        XCTAssertEqual(try names(f, e, "datasets.context != 'training'"), [], "every dataset is 'training'; runs without one never match")
    }

    // MARK: 4. strings compare as bytes

    func testStringsCompareAsBytesNotCanonicalEquivalence() async throws {
        let (f, e) = try await fixture()
        let c = try await start(f, e, "composed", at: 100)
        try await f.store.logBatch(LogBatch(runId: c.id, params: ["p": composed], tags: ["t": composed]))
        let d = try await start(f, e, "decomposed", at: 101)
        try await f.store.logBatch(LogBatch(runId: d.id, params: ["p": decomposed], tags: ["t": decomposed]))
        for field in ["params.p", "tags.t"] {
            XCTAssertEqual(try names(f, e, "\(field) = '\(composed)'"), ["composed"], field)
            XCTAssertEqual(try names(f, e, "\(field) != '\(composed)'"), ["decomposed"], field)
            XCTAssertEqual(try names(f, e, "\(field) LIKE 'caf\u{E9}%'"), ["composed"], field)
            // Bytes: "e" (0x65) + U+0301 sorts before "é" (0xC3 0xA9).
            XCTAssertEqual(try names(f, e, "", ["\(field) ASC"]), ["decomposed", "composed"], field)
        }
        XCTAssertEqual(try names(f, e, "attributes.run_id IN ('\(c.id)')"), ["composed"])
        // A run name differing only in normalisation is another name.
        _ = try await f.store.renameRun(id: c.id, to: decomposed)
        XCTAssertEqual(try names(f, e, "attributes.run_name = '\(decomposed)'"), [decomposed])
        XCTAssertEqual(try names(f, e, "attributes.run_name = '\(composed)'"), [])
    }

    func testFilterTextIsReadByScalarsSoQuotedValuesKeepTheirBytes() throws {
        // A quote followed by a combining mark is one Character; the filter
        // must still see the quote, and the value must keep the mark.
        let filter = "tags.t = '\u{301}x' and params.p = '\(decomposed)'"
        let comparisons = try RunFilter.parse(filter).comparisons
        guard comparisons.count == 2, case .string(let first) = comparisons[0].value, case .string(let second) = comparisons[1].value else {
            return XCTFail("\(comparisons)")
        }
        XCTAssertEqual(Array(first.unicodeScalars), ["\u{301}", "x"])
        XCTAssertTrue(sameBytes(second, decomposed))
        XCTAssertFalse(sameBytes(second, composed))
    }

    func testParamLoggedAgainInTheOtherNormalFormIsAChange() async throws {
        let (f, e) = try await fixture()
        let run = try await start(f, e, "r", at: 100)
        try await f.store.logBatch(LogBatch(runId: run.id, params: ["p": composed], tags: ["t": composed]))
        do {
            try await f.store.logBatch(LogBatch(runId: run.id, params: ["p": decomposed]))
            XCTFail("a param changed bytes silently")
        } catch TrackingError.invalidArgument(let m) { XCTAssertTrue(m.contains("immutable"), m) }
        try await f.store.logBatch(LogBatch(runId: run.id, tags: ["t": decomposed]))
        XCTAssertTrue(sameBytes(try f.store.run(id: run.id).run.tags["t"] ?? "", decomposed), "the tag took the new bytes")
    }

    // MARK: 5. the mlflow.runName tag

    func testRunNameIsMirroredInItsTagThroughStartRenameAndSetTag() async throws {
        let (f, e) = try await fixture()
        let named = try await start(f, e, "alpha", at: 100)
        XCTAssertEqual(named.tags[Run.nameTag], "alpha")
        let fromTag = try await start(f, e, "", at: 101, tags: [Run.nameTag: "beta"])
        XCTAssertEqual(fromTag.name, "beta")
        let generated = try await start(f, e, "", at: 102)
        XCTAssertEqual(generated.tags[Run.nameTag], generated.name)
        do {
            _ = try await start(f, e, "gamma", at: 103, tags: [Run.nameTag: "delta"])
            XCTFail("a name and a different name tag")
        } catch TrackingError.invalidArgument(let m) { XCTAssertTrue(m.contains("differ"), m) }

        _ = try await f.store.renameRun(id: named.id, to: "alpha2")
        XCTAssertEqual(try f.store.run(id: named.id).run.tags[Run.nameTag], "alpha2")
        try await f.store.logBatch(LogBatch(runId: fromTag.id, tags: [Run.nameTag: "beta2"]))
        XCTAssertEqual(try f.store.run(id: fromTag.id).run.name, "beta2", "setting the tag renames the run")

        XCTAssertEqual(try names(f, e, "tags.mlflow.runName = 'alpha2'"), ["alpha2"])
        XCTAssertEqual(try names(f, e, "tags.`mlflow.runName` LIKE 'beta%'"), ["beta2"])
        XCTAssertEqual(try names(f, e, "attributes.run_name = 'beta2'"), ["beta2"])
        XCTAssertEqual(try names(f, e, "run_name = 'alpha2'"), ["alpha2"])
        XCTAssertEqual(try names(f, e, "attributes.run_name ILIKE 'ALPHA%'"), ["alpha2"])
        XCTAssertEqual(Array(try names(f, e, "", ["tags.mlflow.runName ASC"]).prefix(2)), ["alpha2", "beta2"])
        do {
            try await f.store.logBatch(LogBatch(runId: fromTag.id, tags: [Run.nameTag: ""]))
            XCTFail("an empty name through the tag")
        } catch TrackingError.invalidArgument {}
    }

    func testRunStoredBeforeTheNameTagGetsItOnRead() async throws {
        let (f, e) = try await fixture()
        let run = try await start(f, e, "old", at: 100)
        // Store the run as an older Plinth did: no mlflow.runName tag, no user_id.
        var legacy = run
        legacy.tags = [:]
        legacy.userId = nil
        let bytes = try TrackingStore.encode(legacy)
        XCTAssertFalse(String(decoding: bytes, as: UTF8.self).contains("runName"))
        let table = f.store.runs, key = Array(run.id.utf8)
        try await f.environment.writer.write { txn in try txn.put(table, key, bytes) }
        f.store.searchCache.changed(e)
        XCTAssertEqual(try f.store.run(id: run.id).run.tags, [Run.nameTag: "old"])
        XCTAssertEqual(try names(f, e, "tags.mlflow.runName = 'old'"), ["old"])
        XCTAssertEqual(try names(f, e, "attributes.user_id = 'unknown'"), ["old"])
        // The next write stores the tag, and a rename keeps it in step.
        _ = try await f.store.renameRun(id: run.id, to: "new")
        XCTAssertEqual(try names(f, e, "tags.mlflow.runName = 'new'"), ["new"])
    }

    // MARK: 6. IS NULL, artifact_uri, user_id, backticked prefixes, ties

    func testIsNullAndIsNotNullOnParamsAndTagsOnly() async throws {
        let (f, e) = try await fixture()
        let with = try await start(f, e, "with", at: 100)
        try await f.store.logBatch(LogBatch(runId: with.id, params: ["p": ""], tags: ["t": "x"]))
        _ = try await start(f, e, "without", at: 101)
        XCTAssertEqual(try names(f, e, "params.p IS NULL"), ["without"])
        XCTAssertEqual(try names(f, e, "params.p is not null"), ["with"], "an empty value is present")
        XCTAssertEqual(try names(f, e, "tags.t IS NOT NULL and tags.t IS NOT NULL"), ["with"])
        XCTAssertEqual(try names(f, e, "tags.t IS NULL"), ["without"])
        for refused in ["metrics.m IS NULL", "attributes.status IS NULL", "datasets.name IS NOT NULL", "params.p IS 'x'", "params.p IS NOT"] {
            XCTAssertThrowsError(try RunFilter.parse(refused), refused)
        }
    }

    func testArtifactUriAndUserIdFilterAndOrder() async throws {
        let (f, e) = try await fixture()
        let ann = try await start(f, e, "ann", at: 100, tags: [Run.userTag: "ann"])
        let bob = try await start(f, e, "bob", at: 101, tags: [Run.userTag: "bob"])
        _ = try await start(f, e, "nobody", at: 102)
        XCTAssertEqual(try names(f, e, "attributes.user_id = 'ann'"), ["ann"])
        XCTAssertEqual(try names(f, e, "user_id != 'ann'"), ["nobody", "bob"])
        XCTAssertEqual(try names(f, e, "", ["attributes.user_id DESC"]), ["nobody", "bob", "ann"])
        XCTAssertEqual(try names(f, e, "attributes.artifact_uri = 'plinth:/\(e)/\(bob.id)/artifacts'"), ["bob"])
        XCTAssertEqual(try names(f, e, "attributes.artifact_uri LIKE '%\(ann.id)%'"), ["ann"])
        XCTAssertEqual(try f.store.searchRuns(experimentIds: [e], orderBy: ["artifact_uri"]).items.map(\.run.id),
                       try f.store.searchRuns(experimentIds: [e], orderBy: ["run_id"]).items.map(\.run.id))
        for refused in ["attributes.artifact_uri IN ('a')", "attributes.user_id < 'a'", "attributes.artifact_uri > 'a'"] {
            XCTAssertThrowsError(try RunFilter.parse(refused), refused)
        }
    }

    func testBacktickedPrefixesAsMLflowsParser() throws {
        let expected: [(String, SearchField)] = [
            ("`metric`.a > 1", .metric("a")), ("`metrics`.a > 1", .metric("a")), ("`param`.a = 'x'", .param("a")),
            ("`params`.a = 'x'", .param("a")), ("`parameters`.a = 'x'", .param("a")), ("parameters.a = 'x'", .param("a")),
            ("`tag`.a = 'x'", .tag("a")), ("`tags`.`a b` = 'x'", .tag("a b")), ("`tags`.mlflow.runName = 'x'", .tag("mlflow.runName")),
            ("`attribute`.status = 'x'", .attribute(.status)), ("`attributes`.status = 'x'", .attribute(.status)),
            ("`attr`.status = 'x'", .attribute(.status)), ("`run`.status = 'x'", .attribute(.status)),
            ("`dataset`.name = 'x'", .dataset(.name)), ("`datasets`.name = 'x'", .dataset(.name)),
        ]
        for (filter, field) in expected {
            XCTAssertEqual(try RunFilter.parse(filter).comparisons.first?.field, field, filter)
        }
        XCTAssertEqual(try RunOrder.parse("`metric`.a DESC"), RunOrder(field: .metric("a"), ascending: false))
        // MLflow strips backticks from a prefix, not quotes, and wants the dot right after.
        for refused in ["\"metrics\".a > 1", "`metric` .a > 1", "`nope`.a > 1", "`metric`. > 1"] {
            XCTAssertThrowsError(try RunFilter.parse(refused), refused)
        }
    }

    func testSameStepAndTimestampTheLargerValueIsLatest() async throws {
        let (f, e) = try await fixture()
        let run = try await start(f, e, "r", at: 100)
        // In one batch, and across batches, in either order.
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [
            MetricPoint(key: "a", value: 5, step: 1, timestampMs: 10), MetricPoint(key: "a", value: 3, step: 1, timestampMs: 10),
        ]))
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "b", value: 3, step: 1, timestampMs: 10)]))
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "b", value: 5, step: 1, timestampMs: 10)]))
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "c", value: 5, step: 1, timestampMs: 10)]))
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "c", value: 3, step: 1, timestampMs: 10)]))
        // NaN counts as 0 (MLflow stores it so): it beats -1 and loses to 0.5.
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [
            MetricPoint(key: "n", value: -1, step: 0, timestampMs: 10), MetricPoint(key: "n", value: .nan, step: 0, timestampMs: 10),
            MetricPoint(key: "h", value: .nan, step: 0, timestampMs: 10), MetricPoint(key: "h", value: 0.5, step: 0, timestampMs: 10),
            MetricPoint(key: "i", value: .infinity, step: 0, timestampMs: 10), MetricPoint(key: "i", value: 1e300, step: 0, timestampMs: 10),
        ]))
        let latest = try f.store.run(id: run.id).metrics
        XCTAssertEqual(latest["a"]?.value, 5)
        XCTAssertEqual(latest["b"]?.value, 5)
        XCTAssertEqual(latest["c"]?.value, 5)
        XCTAssertTrue(latest["n"]?.value.isNaN ?? false)
        XCTAssertEqual(latest["h"]?.value, 0.5)
        XCTAssertEqual(latest["i"]?.value, .infinity)
        for key in ["a", "b", "c"] {
            XCTAssertEqual(try f.store.metricHistory(runId: run.id, key: key).items.map(\.value), [5], "history keeps the larger: \(key)")
        }
        XCTAssertEqual(try names(f, e, "metrics.c = 5 and metrics.b > 4 and metrics.h = 0.5"), ["r"])
        // A later step still wins whatever its value.
        try await f.store.logBatch(LogBatch(runId: run.id, metrics: [MetricPoint(key: "a", value: -9, step: 2, timestampMs: 0)]))
        XCTAssertEqual(try f.store.run(id: run.id).metrics["a"]?.value, -9)
    }

    func testOrderByTheSameFieldTwiceIsRefused() async throws {
        let (f, e) = try await fixture()
        XCTAssertThrowsError(try f.store.searchRuns(experimentIds: [e], orderBy: ["metrics.a", "metrics.a DESC"]))
        XCTAssertThrowsError(try f.store.searchRuns(experimentIds: [e], orderBy: ["created", "attributes.start_time"]))
        XCTAssertNoThrow(try f.store.searchRuns(experimentIds: [e], orderBy: ["metrics.a", "params.a"]))
    }

    // MARK: 7. where Plinth deliberately differs

    func testDeliberateDifferencesFromMLflow() throws {
        // A dangling AND is refused (MLflow ignores it).
        XCTAssertThrowsError(try RunFilter.parse("params.a = 'x' AND"))
        // A doubled quote is one quote (MLflow keeps both).
        XCTAssertEqual(try RunFilter.parse("tags.a = 'it''s'").comparisons.first?.value, .string("it's"))
        // ILIKE folds case beyond ASCII (SQLite's lower() does not).
        let run = Run(id: "r", seq: 1, experimentId: 1, name: "n", status: .finished, startMs: 1, endMs: 2, lifecycle: .active,
                      tags: ["t": "\u{C9}T\u{C9}"], params: [:], inputs: [], codeVersion: nil)
        XCTAssertTrue(try RunFilter.parse("tags.t ILIKE '\u{E9}t\u{E9}'").matches(RunRecord(run: run, metrics: [:])))
        // Infinities are kept: MLflow stores +inf as Double.max, so `= 1.7976931348623157e308` would match it there.
        let inf = RunRecord(run: run, metrics: ["m": MetricPoint(key: "m", value: .infinity, timestampMs: 1)])
        XCTAssertFalse(try RunFilter.parse("metrics.m = 1.7976931348623157e308").matches(inf))
        XCTAssertTrue(try RunFilter.parse("metrics.m > 1.7976931348623157e308").matches(inf))
    }
}
