// The method table is the one list of methods: it must say what the
// `service` blocks in Proto/ say (paths, request and response types,
// streaming), and docs/protocol.md's method list must say what it says
// (scopes included). The Python client's paths are checked against the same
// proto services in Clients/python/tests/test_methods.py.
import Foundation
import PlinthWire
import XCTest

final class MethodTableTests: XCTestCase {
    func testTableMatchesTheProtoServices() throws {
        let rpcs = try ProtoSource.load().rpcs
        XCTAssertFalse(rpcs.isEmpty)
        let fromProto = Dictionary(uniqueKeysWithValues: rpcs.map { ("/plinth.v1.\($0.service)/\($0.name)", $0) })
        XCTAssertEqual(Set(fromProto.keys), Set(MethodTable.all.map(\.path)),
                       "Proto/ and PlinthWire/Methods.swift list different methods")
        XCTAssertEqual(MethodTable.all.count, Set(MethodTable.all.map(\.path)).count, "a path is listed twice")
        for method in MethodTable.all {
            guard let rpc = fromProto[method.path] else { continue }
            XCTAssertEqual(method.request, rpc.request, method.path)
            XCTAssertEqual(method.response, rpc.response, method.path)
            XCTAssertEqual(method.streaming == .serverStreaming, rpc.streaming, method.path)
            XCTAssertEqual(method.service, rpc.service)
            XCTAssertEqual(method.name, rpc.name)
        }
    }

    func testDocsListEveryMethodAsTheTableDoes() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/protocol.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        // | `/plinth.v1.S/M` | scope | `Req` → [stream of ]`Resp` | notes |
        var rows: [String: (scope: String, request: String, response: String, streaming: Bool)] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `/plinth.v1.") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3 else { continue }
            let path = cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            let types = cells[2].components(separatedBy: "→").map { $0.trimmingCharacters(in: .whitespaces) }
            guard types.count == 2 else { XCTFail("docs/protocol.md: cannot read '\(cells[2])' for \(path)"); continue }
            let streaming = types[1].hasPrefix("stream of ")
            let response = (streaming ? String(types[1].dropFirst("stream of ".count)) : types[1])
            XCTAssertNil(rows[path], "docs/protocol.md lists \(path) twice")
            rows[path] = (cells[1], types[0].trimmingCharacters(in: CharacterSet(charactersIn: "`")),
                          response.trimmingCharacters(in: CharacterSet(charactersIn: "`")), streaming)
        }
        XCTAssertEqual(Set(rows.keys), Set(MethodTable.all.map(\.path)), "docs/protocol.md's method list and the method table differ")
        for method in MethodTable.all {
            guard let row = rows[method.path] else { continue }
            XCTAssertEqual(row.scope, method.scope.rawValue, "scope of \(method.path)")
            XCTAssertEqual(row.request, method.request, method.path)
            XCTAssertEqual(row.response, method.response, method.path)
            XCTAssertEqual(row.streaming, method.streaming == .serverStreaming, method.path)
        }
    }

    func testNamedPathsAreInTheTable() {
        let named = [Method.hello, Method.health, Method.serverInfo, Method.applyDefinitions, Method.listDefinitions, Method.push,
                     Method.getOnlineFeatures, Method.getHistoricalFeatures, Method.getDataset, Method.materialize,
                     Method.skewCheck, Method.createExperiment, Method.getExperiment, Method.listExperiments,
                     Method.renameExperiment, Method.deleteExperiment, Method.restoreExperiment, Method.startRun,
                     Method.endRun, Method.getRun, Method.deleteRun, Method.restoreRun, Method.logBatch,
                     Method.getMetricHistory, Method.searchRuns, Method.uploadArtifact, Method.downloadArtifact,
                     Method.listArtifacts, Method.createRegisteredModel, Method.updateRegisteredModel,
                     Method.getRegisteredModel, Method.listRegisteredModels, Method.createModelVersion,
                     Method.getModelVersion, Method.listModelVersions, Method.setModelAlias, Method.deleteModelAlias,
                     Method.setModelPolicy, Method.checkModelPolicy, Method.getModelLineage, Method.getAliasAudit,
                     Method.predict, Method.batchPredict, Method.serverLive, Method.serverReady, Method.modelReady,
                     Method.modelMetadata, Method.loadModel]
        XCTAssertEqual(Set(named), Set(MethodTable.all.map(\.path)))
        for path in named { XCTAssertEqual(MethodTable.descriptor(path)?.path, path) }
    }

    func testOnlyTheDocumentedMethodsAreOpenBeforeHello() {
        XCTAssertEqual(Set(MethodTable.all.filter(\.openBeforeHello).map(\.path)),
                       [Method.hello, Method.health, Method.serverLive, Method.serverReady])
    }
}
