// End to end: a LightGBM model trained on pandas category columns
// (Tests/PlinthInferenceTests/Fixtures/lgbk_pandas.txt) registered as
// lightgbm-text and asked over the wire with the original categories, store
// ids as int64 and city names as strings (unknown ones and nulls among
// them): every margin is LightGBM's own, bit for bit.
import Foundation
import Logging
import PlinthClient
import PlinthWire
import XCTest
@testable import PlinthServer

final class CategoryPredictEndToEndTests: XCTestCase {
    var server: PlinthServer!
    var address = ""
    var dataDir = ""

    override func setUpWithError() throws {
        dataDir = NSTemporaryDirectory() + "plinth-category-\(UUID().uuidString)"
        var config = ServerConfig()
        config.dataDir = dataDir
        config.listen = "127.0.0.1:0"
        config.eventLoopThreads = 1
        config.predictMaxRows = 1000
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        server = try PlinthServer(config: config, logger: logger)
        address = try server.start()[0]
    }

    override func tearDown() {
        server.stop()
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("PlinthInferenceTests/Fixtures")

    func testStringAndNumberCategoriesInARequestScoreAsLightGBM() throws {
        let model = try Data(contentsOf: Self.fixtures.appendingPathComponent("lgbk_pandas.txt"))
        let rowsText = try String(contentsOf: Self.fixtures.appendingPathComponent("lgbk_pandas_rows.csv"), encoding: .utf8)
        let expectedText = try String(contentsOf: Self.fixtures.appendingPathComponent("lgbk_pandas.expected.csv"), encoding: .utf8)
        let expected = expectedText.split(separator: "\n").dropFirst().map { Double($0.split(separator: ",")[0]) }
        // Rows without quoted cells (a plain split reads them): a, store, b, c, city.
        var a = PBColumn.with { $0.name = "a"; $0.type = .float64 }
        var b = PBColumn.with { $0.name = "b"; $0.type = .float64 }
        var cc = PBColumn.with { $0.name = "c"; $0.type = .float64 }
        var store = PBColumn.with { $0.name = "store"; $0.type = .int64 }
        var city = PBColumn.with { $0.name = "city"; $0.type = .string }
        var want: [Double] = []
        for (i, line) in rowsText.split(separator: "\n").dropFirst().enumerated() where !line.contains("\"") {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let row = UInt32(want.count)
            for (column, cell) in [(0, cells[0]), (2, cells[2]), (3, cells[3])] {
                let value = Double(cell) ?? 0
                switch column {
                case 0: a.float64Values.append(value); if cell.isEmpty { a.nullRows.append(row) }
                case 2: b.float64Values.append(value); if cell.isEmpty { b.nullRows.append(row) }
                default: cc.float64Values.append(value); if cell.isEmpty { cc.nullRows.append(row) }
                }
            }
            store.int64Values.append(Int64(cells[1]) ?? 0)
            if cells[1].isEmpty { store.nullRows.append(row) }
            city.stringValues.append(cells[4])
            if cells[4].isEmpty { city.nullRows.append(row) }
            want.append(try XCTUnwrap(expected[i]))
        }
        XCTAssertGreaterThan(want.count, 250)
        XCTAssertTrue(city.stringValues.contains("zz") && store.int64Values.contains(999), "unknown categories are asked")

        let c = try Connection(address: address)
        let blob = try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with { $0.data = model; $0.finish = true },
                              as: PBUploadArtifactResponse.self)
        _ = try c.call(Method.createModelVersion, PBCreateModelVersionRequest.with {
            $0.model = "stores"
            $0.artifactDigest = blob.artifact.digest
            $0.artifactFormat = "lightgbm-text"
            $0.signature.requestFields = [("a", "float64"), ("store", "int64"), ("b", "float64"), ("c", "float64"),
                                          ("city", "string")].map { field in
                PBSignatureField.with { $0.name = field.0; $0.type = field.1 }
            }
        }, as: PBModelVersionResponse.self)
        let r = try c.call(Method.predict, PBPredictRequest.with {
            $0.modelName = "stores:1"
            $0.margin = true
            $0.inputs = [a, store, b, cc, city]
        }, as: PBPredictResponse.self)
        XCTAssertEqual(r.outputs[0].float64Values, want)
        // One row, answered on the event loop: the same as in the batch.
        let one = try c.call(Method.predict, PBPredictRequest.with {
            $0.modelName = "stores:1"
            $0.margin = true
            $0.inputs = [a, store, b, cc, city].map { column in
                var first = column
                first.float64Values = Array(column.float64Values.prefix(1))
                first.int64Values = Array(column.int64Values.prefix(1))
                first.stringValues = Array(column.stringValues.prefix(1))
                first.nullRows = column.nullRows.filter { $0 == 0 }
                return first
            }
        }, as: PBPredictResponse.self)
        XCTAssertEqual(one.outputs[0].float64Values, [want[0]])
    }
}
