// End-to-end tests of the Inference service against an in-process server:
// registered versions with signatures, Predict's vector assembly, bad input,
// BatchPredict's chunks and point-in-time reads, the KServe calls, and an
// alias moved under continuous load with no failed request.
import Foundation
import Logging
import PlinthClient
import PlinthServing
import PlinthWire
import XCTest
@testable import PlinthServer

final class ServingEndToEndTests: XCTestCase {
    var server: PlinthServer!
    var address = ""
    var dataDir = ""

    override func setUpWithError() throws {
        dataDir = NSTemporaryDirectory() + "plinth-serving-\(UUID().uuidString)"
        var config = ServerConfig()
        config.dataDir = dataDir
        config.listen = "127.0.0.1:0"
        config.eventLoopThreads = 2
        config.predictMaxRows = 100
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        server = try PlinthServer(config: config, logger: logger)
        address = try server.start()[0]
        let c = try Connection(address: address)
        _ = try c.call(Method.applyDefinitions, PBApplyDefinitionsRequest.with { $0.yaml = definitionsYAML },
                       as: PBApplyDefinitionsResponse.self)
    }

    override func tearDown() {
        server.stop()
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    /// A linear model with identity output: score = intercept + count + 10 * score + 100 * amount.
    func linearModel(intercept: Double) -> Data {
        Data("""
        {"plinth_model": "linear", "format_version": 1, "n_features": 3, "feature_names": null,
         "coefficients": [[1, 10, 100]], "intercepts": [\(intercept)], "output": "identity"}
        """.utf8)
    }

    @discardableResult
    func register(_ c: Connection, model: String = "fraud", intercept: Double = 0.5,
                  defaults: [String: Double] = ["stats:count": 7, "stats:score": 0], alias: String? = "production") throws -> UInt64 {
        let blob = try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with { $0.data = linearModel(intercept: intercept); $0.finish = true },
                              as: PBUploadArtifactResponse.self)
        let version = try c.call(Method.createModelVersion, PBCreateModelVersionRequest.with {
            $0.model = model
            $0.artifactDigest = blob.artifact.digest
            $0.artifactFormat = "plinth-json"
            $0.signature.featureReferences = ["stats:count", "stats:score"]
            $0.signature.requestFields = [PBSignatureField.with { $0.name = "amount"; $0.type = "float64" }]
            $0.signature.defaults = defaults
        }, as: PBModelVersionResponse.self).version.version
        if let alias {
            _ = try c.call(Method.setModelAlias, PBSetModelAliasRequest.with {
                $0.model = model; $0.alias = alias; $0.version = version; $0.reason = "test"
            }, as: PBAliasChangeResponse.self)
        }
        return version
    }

    func predictRequest(_ model: String = "fraud", users: [Int64], amounts: [Double]) -> PBPredictRequest {
        Self.predictRequest(model, users: users, amounts: amounts)
    }

    static func predictRequest(_ model: String = "fraud", users: [Int64], amounts: [Double]) -> PBPredictRequest {
        PBPredictRequest.with {
            $0.modelName = model
            $0.inputs = [
                PBColumn.with { $0.name = "user_id"; $0.type = .int64; $0.int64Values = users },
                PBColumn.with { $0.name = "amount"; $0.type = .float64; $0.float64Values = amounts },
            ]
        }
    }

    func expectCode(_ code: Int, contains text: String, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body()) { error in
            guard let e = error as? PlinthError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.code, code, e.message)
            XCTAssertTrue(e.message.contains(text), "'\(e.message)' lacks '\(text)'")
        }
    }

    func testPredictAssemblesFeaturesRequestFieldsAndDefaults() throws {
        let c = try Connection(address: address)
        _ = try c.call(Method.push, pushRequest(ids: [1, 2], count: 3), as: PBPushResponse.self)
        try register(c)
        var request = predictRequest("fraud@production", users: [1, 2, 99], amounts: [1, 2, 3])
        request.returnFeatures = true
        request.id = "req-1"
        let r = try c.call(Method.predict, request, as: PBPredictResponse.self)
        XCTAssertEqual(r.modelName, "fraud")
        XCTAssertEqual(r.modelVersion, 1)
        XCTAssertEqual(r.id, "req-1")
        XCTAssertEqual(r.rows, 3)
        XCTAssertEqual(r.outputs.map(\.name), ["score"])
        // count + 10 * (id / 2) + 100 * amount + 0.5; user 99 takes the defaults 7 and 0.
        let expected: [Double] = [108.5, 213.5, 307.5]
        XCTAssertEqual(r.outputs[0].float64Values, expected)
        XCTAssertEqual(r.predictionIds.count, 3)
        XCTAssertEqual(Set(r.predictionIds).count, 3)
        XCTAssertEqual(r.predictionIds, r.predictionIds.sorted())
        XCTAssertEqual(r.features.map(\.values.name), ["stats:count", "stats:score", "amount"])
        XCTAssertEqual(r.features[0].statuses, [.present, .present, .notFound])
        XCTAssertEqual(r.features[0].values.int64Values, [3, 3, 0])
        XCTAssertEqual(r.features[2].values.float64Values, [1, 2, 3])

        // The bare name means @production; name:version addresses a version.
        let bare = try c.call(Method.predict, predictRequest(users: [1], amounts: [0]), as: PBPredictResponse.self)
        XCTAssertEqual(bare.outputs[0].float64Values, [8.5])
        let byVersion = try c.call(Method.predict, predictRequest("fraud:1", users: [1], amounts: [0]), as: PBPredictResponse.self)
        XCTAssertEqual(byVersion.modelVersion, 1)
        var kserve = predictRequest("fraud", users: [1], amounts: [0])
        kserve.modelVersion = "1"
        XCTAssertEqual(try c.call(Method.predict, kserve, as: PBPredictResponse.self).modelVersion, 1)
        var margin = predictRequest(users: [1], amounts: [0])
        margin.margin = true
        XCTAssertEqual(try c.call(Method.predict, margin, as: PBPredictResponse.self).outputs[0].float64Values, [8.5])
    }

    func testBatchesAnsweredOffTheEventLoopMatchInlineAnswers() throws {
        let c = try Connection(address: address)
        _ = try c.call(Method.push, pushRequest(ids: Array(1...49), count: 3), as: PBPushResponse.self)
        try register(c)
        let users = Array(Int64(1)...49)
        let amounts = users.map { Double($0) }
        // 49 rows: above the inline limit (64 rows) only when doubled.
        let small = try c.call(Method.predict, predictRequest(users: users, amounts: amounts), as: PBPredictResponse.self)
        let big = try c.call(Method.predict, predictRequest(users: users + users, amounts: amounts + amounts), as: PBPredictResponse.self)
        XCTAssertEqual(big.outputs[0].float64Values, small.outputs[0].float64Values + small.outputs[0].float64Values)
        let expected: [Double] = users.map { 3.5 + 5 * Double($0) + 100 * Double($0) }
        XCTAssertEqual(small.outputs[0].float64Values, expected)
    }

    func testMultiClassModelsAnswerOneColumnPerClass() throws {
        let c = try Connection(address: address)
        _ = try c.call(Method.push, pushRequest(ids: [1], count: 3), as: PBPushResponse.self)
        let model = Data("""
        {"plinth_model": "linear", "format_version": 1, "n_features": 3, "feature_names": null,
         "coefficients": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "intercepts": [0, 0, 0], "output": "softmax", "classes": [0, 1, 2]}
        """.utf8)
        let blob = try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with { $0.data = model; $0.finish = true },
                              as: PBUploadArtifactResponse.self)
        _ = try c.call(Method.createModelVersion, PBCreateModelVersionRequest.with {
            $0.model = "multi"; $0.artifactDigest = blob.artifact.digest
            $0.signature.featureReferences = ["stats:count", "stats:score"]
            $0.signature.requestFields = [PBSignatureField.with { $0.name = "amount"; $0.type = "float64" }]
        }, as: PBModelVersionResponse.self)
        let r = try c.call(Method.predict, predictRequest("multi:1", users: [1], amounts: [0]), as: PBPredictResponse.self)
        XCTAssertEqual(r.outputs.map(\.name), ["class_0", "class_1", "class_2"])
        // softmax(3, 0.5, 0)
        let e = [exp(3.0), exp(0.5), exp(0.0)], sum = e.reduce(0, +)
        for k in 0..<3 { XCTAssertEqual(r.outputs[k].float64Values[0], e[k] / sum, accuracy: 1e-6) }
    }

    func testAServedVersionFollowsADefinitionsChange() throws {
        let c = try Connection(address: address)
        _ = try c.call(Method.push, pushRequest(ids: [1], count: 3), as: PBPushResponse.self)
        try register(c)
        let before = try c.call(Method.predict, predictRequest(users: [1], amounts: [0]), as: PBPredictResponse.self)
        XCTAssertEqual(before.outputs[0].float64Values, [8.5])
        // A new feature in the view: rows written before it keep the old
        // layout, and the served version is recompiled for the new one.
        let changed = definitionsYAML.replacingOccurrences(of: "      - {name: score, type: float32}",
                                                           with: "      - {name: extra, type: float64}\n      - {name: score, type: float32}")
        _ = try c.call(Method.applyDefinitions, PBApplyDefinitionsRequest.with { $0.yaml = changed },
                       as: PBApplyDefinitionsResponse.self)
        let after = try c.call(Method.predict, predictRequest(users: [1], amounts: [0]), as: PBPredictResponse.self)
        XCTAssertEqual(after.outputs[0].float64Values, [8.5])
        var push = pushRequest(ids: [2], count: 4)
        push.columns.append(PBColumn.with { $0.name = "extra"; $0.type = .float64; $0.float64Values = [9] })
        _ = try c.call(Method.push, push, as: PBPushResponse.self)
        let fresh = try c.call(Method.predict, predictRequest(users: [2], amounts: [0]), as: PBPredictResponse.self)
        XCTAssertEqual(fresh.outputs[0].float64Values, [14.5])
    }

    func testMissingInputWithoutDefaultReachesTheModelAsMissing() throws {
        let c = try Connection(address: address)
        try register(c, defaults: [:])
        let r = try c.call(Method.predict, predictRequest(users: [5], amounts: [1]), as: PBPredictResponse.self)
        XCTAssertTrue(r.outputs[0].float64Values[0].isNaN, "\(r.outputs[0].float64Values)")
    }

    func testBadInputIsAnErrorForThatRequestOnly() throws {
        let c = try Connection(address: address)
        try register(c)
        expectCode(5, contains: "nosuch") { _ = try c.call(Method.predict, self.predictRequest("nosuch", users: [1], amounts: [1]), as: PBPredictResponse.self) }
        expectCode(5, contains: "champion") { _ = try c.call(Method.predict, self.predictRequest("fraud@champion", users: [1], amounts: [1]), as: PBPredictResponse.self) }
        expectCode(5, contains: "9") { _ = try c.call(Method.predict, self.predictRequest("fraud:9", users: [1], amounts: [1]), as: PBPredictResponse.self) }
        expectCode(3, contains: "both") { _ = try c.call(Method.predict, self.predictRequest("fraud@a:1", users: [1], amounts: [1]), as: PBPredictResponse.self) }

        var wrongKey = predictRequest(users: [1], amounts: [1])
        wrongKey.inputs[0] = PBColumn.with { $0.name = "user_id"; $0.type = .float64; $0.float64Values = [1] }
        expectCode(3, contains: "entity key 'user_id' is float64") { _ = try c.call(Method.predict, wrongKey, as: PBPredictResponse.self) }

        var nullKey = predictRequest(users: [1, 2], amounts: [1, 1])
        nullKey.inputs[0].nullRows = [1]
        expectCode(3, contains: "'user_id' is null in row 1") { _ = try c.call(Method.predict, nullKey, as: PBPredictResponse.self) }

        var unknownField = predictRequest(users: [1], amounts: [1])
        unknownField.inputs.append(PBColumn.with { $0.name = "amnt"; $0.type = .float64; $0.float64Values = [1] })
        expectCode(3, contains: "'amnt' is not in the signature") { _ = try c.call(Method.predict, unknownField, as: PBPredictResponse.self) }

        var missingField = predictRequest(users: [1], amounts: [1])
        missingField.inputs.removeLast()
        expectCode(3, contains: "request field 'amount'") { _ = try c.call(Method.predict, missingField, as: PBPredictResponse.self) }

        let tooMany = predictRequest(users: Array(0..<101), amounts: Array(repeating: 1, count: 101))
        expectCode(8, contains: "limit is 100") { _ = try c.call(Method.predict, tooMany, as: PBPredictResponse.self) }

        // A body that is not a PredictRequest.
        let sent = try c.send(Method.predict, body: [0x0A, 0x40, 0x66])
        let frame = try c.receive()
        XCTAssertEqual(frame.id, sent)
        XCTAssertEqual(frame.code, 3, frame.message)
        XCTAssertTrue(frame.message.contains("PredictRequest"), frame.message)

        // The connection and the model still serve.
        XCTAssertEqual(try c.call(Method.predict, predictRequest(users: [1], amounts: [1]), as: PBPredictResponse.self).rows, 1)
    }

    func testInlineAndGeneralPathsAcceptTheSameRequests() throws {
        let c = try Connection(address: address)
        _ = try c.call(Method.push, pushRequest(ids: [1], count: 3), as: PBPushResponse.self)
        try register(c)
        // First call loads (general path), the rest answer inline; unknown
        // fields are accepted on both, KServe parameters refused on both
        // (Plinth gives them no meaning, and ignoring them would answer
        // another question than the one asked).
        var request = predictRequest(users: [1, 1], amounts: [0, 1])
        request.id = "same"
        var bytes: [UInt8] = try request.serializedBytes()
        bytes += [0xF8, 0x3E, 0x01]  // field 999, varint 1: a field from a newer client
        let raw = PBPredictRequest.self
        for _ in 0..<3 {
            let r = try c.call(Method.predict, try raw.init(serializedBytes: bytes), as: PBPredictResponse.self)
            XCTAssertEqual(r.outputs[0].float64Values, [8.5, 108.5])
            XCTAssertEqual(r.id, "same")
            XCTAssertEqual(r.predictionIds.count, 2)
        }
        var withParameters = request
        withParameters.parameters["trace"] = PBInferParameter.with { $0.boolParam = true }
        expectCode(3, contains: "parameters is not supported (got trace)") {
            _ = try c.call(Method.predict, withParameters, as: PBPredictResponse.self)
        }
        var withFeatures = predictRequest(users: [1], amounts: [2])
        withFeatures.returnFeatures = true
        let f = try c.call(Method.predict, withFeatures, as: PBPredictResponse.self)
        XCTAssertEqual(f.features.map(\.values.name), ["stats:count", "stats:score", "amount"])
        XCTAssertEqual(f.features[1].values.float32Values, [0.5])
    }

    func testAVersionThatCannotBeServedSaysWhy() throws {
        let c = try Connection(address: address)
        let blob = try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with { $0.data = linearModel(intercept: 0); $0.finish = true },
                              as: PBUploadArtifactResponse.self)
        _ = try c.call(Method.createModelVersion, PBCreateModelVersionRequest.with {
            $0.model = "short"; $0.artifactDigest = blob.artifact.digest
            $0.signature.featureReferences = ["stats:count"]
        }, as: PBModelVersionResponse.self)
        expectCode(9, contains: "takes 3 inputs but its signature gives 1") {
            _ = try c.call(Method.predict, PBPredictRequest.with {
                $0.modelName = "short:1"
                $0.inputs = [PBColumn.with { $0.name = "user_id"; $0.type = .int64; $0.int64Values = [1] }]
            }, as: PBPredictResponse.self)
        }
    }

    func testBatchPredictStreamsChunksInOrderAndReadsAsOf() throws {
        let c = try Connection(address: address)
        let t1: Int64 = 1_700_000_000_000_000, t2 = t1 + 60_000_000
        for (t, count) in [(t1, Int64(1)), (t2, Int64(2))] {
            var push = pushRequest(ids: [1, 2, 3, 4, 5], count: count, event: t)
            push.to = .onlineAndOffline
            _ = try c.call(Method.push, push, as: PBPushResponse.self)
        }
        try register(c)
        func batch(asOf: Int64) throws -> [PBPredictResponse] {
            var frames: [PBPredictResponse] = []
            try c.callStreaming(Method.batchPredict, PBBatchPredictRequest.with {
                $0.modelName = "fraud@production"
                $0.inputs = predictRequest(users: [1, 2, 3, 4, 5], amounts: [0, 0, 0, 0, 0]).inputs
                $0.chunkRows = 2
                $0.asOfUs = asOf
            }, as: PBPredictResponse.self) { frames.append($0) }
            return frames
        }
        let latest = try batch(asOf: 0)
        XCTAssertEqual(latest.map(\.firstRow), [0, 2, 4])
        XCTAssertEqual(latest.map(\.rows), [2, 2, 1])
        let scores = latest.flatMap { $0.outputs[0].float64Values }
        let latestExpected: [Double] = [1, 2, 3, 4, 5].map { 2.5 + 5 * $0 }
        XCTAssertEqual(scores, latestExpected)
        let past = try batch(asOf: t1 + 1).flatMap { $0.outputs[0].float64Values }
        let pastExpected: [Double] = [1, 2, 3, 4, 5].map { 1.5 + 5 * $0 }
        XCTAssertEqual(past, pastExpected)
        // Before any event: every feature takes its default.
        let before = try batch(asOf: t1 - 1).flatMap { $0.outputs[0].float64Values }
        XCTAssertEqual(before, Array(repeating: 7.5, count: 5))
    }

    func testKServeHealthAndMetadata() throws {
        let c = try Connection(address: address)
        XCTAssertTrue(try c.call(Method.serverLive, PBServerLiveRequest(), as: PBServerLiveResponse.self).live)
        XCTAssertTrue(try c.call(Method.serverReady, PBServerReadyRequest(), as: PBServerReadyResponse.self).ready)
        try register(c)
        let before = try c.call(Method.modelReady, PBModelReadyRequest.with { $0.name = "fraud" }, as: PBModelReadyResponse.self)
        XCTAssertFalse(before.ready)
        XCTAssertEqual(before.modelVersion, 1)
        let loaded = try c.call(Method.loadModel, PBModelReadyRequest.with { $0.name = "fraud" }, as: PBModelReadyResponse.self)
        XCTAssertTrue(loaded.ready)
        XCTAssertEqual(loaded.modelVersion, 1)
        XCTAssertTrue(try c.call(Method.modelReady, PBModelReadyRequest.with { $0.name = "fraud@production" }, as: PBModelReadyResponse.self).ready)
        expectCode(5, contains: "nosuch") { _ = try c.call(Method.modelReady, PBModelReadyRequest.with { $0.name = "nosuch" }, as: PBModelReadyResponse.self) }

        let meta = try c.call(Method.modelMetadata, PBModelMetadataRequest.with { $0.name = "fraud" }, as: PBModelMetadataResponse.self)
        XCTAssertEqual(meta.name, "fraud")
        XCTAssertEqual(meta.versions, ["1"])
        XCTAssertEqual(meta.platform, "plinth")
        XCTAssertEqual(meta.inputs.map(\.name), ["user_id", "amount"])
        XCTAssertEqual(meta.inputs.map(\.datatype), ["INT64", "FP64"])
        XCTAssertEqual(meta.outputs.map(\.name), ["score"])
        XCTAssertEqual(meta.features, ["stats:count", "stats:score", "amount"])
    }

    func testAliasMovesUnderContinuousLoadWithNoFailedRequest() throws {
        let setup = try Connection(address: address)
        _ = try setup.call(Method.push, pushRequest(ids: [1], count: 3), as: PBPushResponse.self)
        try register(setup, intercept: 0.5)
        let v2 = try register(setup, intercept: 1000.5, alias: nil)
        // Warm the first version so the load runs across the swap.
        _ = try setup.call(Method.predict, predictRequest(users: [1], amounts: [0]), as: PBPredictResponse.self)

        let stop = ManagedAtomicFlag()
        let results = ResultLog()
        let address = self.address
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let c = try Connection(address: address)
                    while !stop.isSet {
                        let r = try c.call(Method.predict, Self.predictRequest(users: [1], amounts: [0]), as: PBPredictResponse.self)
                        results.append(version: r.modelVersion, score: r.outputs[0].float64Values[0])
                    }
                } catch { results.fail("\(error)") }
            }
        }
        // Move the alias once every thread is answered, and keep the load on
        // until version 2 has answered as often: conditions, not sleeps.
        func waitFor(_ what: String, _ condition: () -> Bool) {
            let deadline = Date().addingTimeInterval(10)
            while !condition() && Date() < deadline { usleep(1_000) }
            XCTAssertTrue(condition(), "timed out waiting for \(what)")
        }
        waitFor("answers before the swap") { results.snapshot.count >= 20 }
        _ = try setup.call(Method.setModelAlias, PBSetModelAliasRequest.with {
            $0.model = "fraud"; $0.alias = "production"; $0.version = v2; $0.reason = "swap under load"
        }, as: PBAliasChangeResponse.self)
        waitFor("answers from version 2") { results.snapshot.filter { $0.0 == v2 }.count >= 20 }
        stop.set()
        group.wait()

        XCTAssertEqual(results.failures, [])
        let seen = results.snapshot
        XCTAssertGreaterThan(seen.count, 20)
        // Every answer is one version's answer, never a mix.
        for (version, score) in seen {
            XCTAssertEqual(score, version == 1 ? 8.5 : 1008.5, "version \(version) answered \(score)")
        }
        XCTAssertEqual(seen.first?.0, 1)
        XCTAssertEqual(seen.last?.0, v2)
        // The old version is no longer held.
        let counters = server.services.serving.counters
        XCTAssertEqual(counters.resident, 1)
        XCTAssertEqual(counters.swaps, 1)
    }

    /// A second server whose connections may queue only `streamWindowBytes`
    /// of streamed answers, with the definitions applied.
    func startSmallWindowServer(_ streamWindowBytes: Int) throws -> (PlinthServer, String, String) {
        var config = ServerConfig()
        config.dataDir = NSTemporaryDirectory() + "plinth-window-\(UUID().uuidString)"
        config.listen = "127.0.0.1:0"
        config.eventLoopThreads = 2
        config.streamWindowBytes = streamWindowBytes
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let small = try PlinthServer(config: config, logger: logger)
        let smallAddress = try small.start()[0]
        _ = try Connection(address: smallAddress).call(Method.applyDefinitions, PBApplyDefinitionsRequest.with { $0.yaml = definitionsYAML },
                                                        as: PBApplyDefinitionsResponse.self)
        return (small, smallAddress, config.dataDir)
    }

    func testASlowReaderGetsEveryChunkInOrderThroughASmallStreamWindow() throws {
        let (small, smallAddress, dir) = try startSmallWindowServer(512)
        defer { small.stop(); try? FileManager.default.removeItem(atPath: dir) }
        let c = try Connection(address: smallAddress)
        _ = try c.call(Method.push, pushRequest(ids: [1], count: 3), as: PBPushResponse.self)
        try register(c)
        let rows = 2_000
        var firstRows: [UInt64] = [], scores: [Double] = []
        // Each chunk (about 200 bytes) is most of the window, so the producer
        // waits on nearly every one while this reader dawdles.
        try c.callStreaming(Method.batchPredict, PBBatchPredictRequest.with {
            $0.modelName = "fraud@production"
            $0.inputs = predictRequest(users: Array(repeating: 1, count: rows), amounts: Array(repeating: 0, count: rows)).inputs
            $0.chunkRows = 4
        }, as: PBPredictResponse.self) { frame in
            firstRows.append(frame.firstRow)
            scores += frame.outputs[0].float64Values
            if firstRows.count % 100 == 0 { Thread.sleep(forTimeInterval: 0.02) }
        }
        XCTAssertEqual(firstRows, stride(from: 0, to: rows, by: 4).map(UInt64.init))
        XCTAssertEqual(scores, Array(repeating: 8.5, count: rows))
    }

    func testAClientThatLeavesMidStreamLeavesNoProducerWaiting() throws {
        let (small, smallAddress, dir) = try startSmallWindowServer(512)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let setup = try Connection(address: smallAddress)
        _ = try setup.call(Method.push, pushRequest(ids: [1], count: 3), as: PBPushResponse.self)
        try register(setup)
        do {
            let leaving = try Connection(address: smallAddress)
            let rows = 50_000
            _ = try leaving.send(Method.batchPredict, PBBatchPredictRequest.with {
                $0.modelName = "fraud@production"
                $0.inputs = predictRequest(users: Array(repeating: 1, count: rows), amounts: Array(repeating: 0, count: rows)).inputs
                $0.chunkRows = 1
            })
            _ = try leaving.receive()  // the stream has started; then the client goes
        }
        // The server still answers, and stops: no stream producer is left
        // waiting for room on the closed connection.
        XCTAssertEqual(try setup.call(Method.predict, predictRequest(users: [1], amounts: [0]), as: PBPredictResponse.self)
            .outputs[0].float64Values, [8.5])
        let stopped = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { small.stop(); stopped.signal() }
        XCTAssertEqual(stopped.wait(timeout: .now() + 20), .success, "the server did not stop after a client left mid-stream")
    }

    func testAnIdleConnectionDoesNotKeepAReplacedVersionInMemory() throws {
        let idle = try Connection(address: address)
        _ = try idle.call(Method.push, pushRequest(ids: [1], count: 3), as: PBPushResponse.self)
        try register(idle, intercept: 0.5)
        // The first Predict loads version 1 (off the event loop); the second
        // is answered inline and leaves it in the connection's memory.
        for _ in 0..<2 { _ = try idle.call(Method.predict, predictRequest(users: [1], amounts: [0]), as: PBPredictResponse.self) }
        weak let first = try server.services.serving.loaded(ModelReference(parsing: "fraud@production")).served
        XCTAssertNotNil(first)

        try register(idle, intercept: 1000.5)  // production -> version 2; `idle` sends no Predict again
        let other = try Connection(address: address)
        let deadline = Date().addingTimeInterval(10)
        var version: UInt64 = 0
        while version != 2 && Date() < deadline {
            version = try other.call(Method.predict, predictRequest(users: [1], amounts: [0]), as: PBPredictResponse.self).modelVersion
            if version != 2 { Thread.sleep(forTimeInterval: 0.01) }
        }
        XCTAssertEqual(version, 2)
        // Nothing but the idle connection could still hold version 1.
        let released = Date().addingTimeInterval(5)
        while first != nil && Date() < released { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertNil(first, "an idle connection kept the replaced version alive")
        // And that connection's next Predict gets the new version.
        XCTAssertEqual(try idle.call(Method.predict, predictRequest(users: [1], amounts: [0]), as: PBPredictResponse.self).modelVersion, 2)
    }
}

/// A stop flag shared by the load threads.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Every answer in the order received, and every failure.
final class ResultLog: @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [(UInt64, Double)] = []
    private var errors: [String] = []
    func append(version: UInt64, score: Double) { lock.withLock { answers.append((version, score)) } }
    func fail(_ message: String) { lock.withLock { errors.append(message) } }
    var snapshot: [(UInt64, Double)] { lock.withLock { answers } }
    var failures: [String] { lock.withLock { errors } }
}
