// The CSV scoring engine behind `plinthctl score`: name and position
// matching, missing values, and errors that name the row and column.

import Foundation
import Testing
@testable import PlinthInference

@Suite struct CSVScorerTests {
    func xgbModel() throws -> Model { try ModelLoader.load(path: try Fixture.path("xgb_binary_100x6.json")) }

    @Test func scoresFixtureRowsLikeXGBoost() throws {
        let model = try xgbModel()
        let input = String(decoding: try Fixture.bytes("rows.csv"), as: UTF8.self)
        let output = try CSVScorer(model: model).score(csv: input)
        let lines = output.split(separator: "\n")
        #expect(lines.first == "score")
        let expected = try Fixture.expected("xgb_binary_100x6.expected.csv")
        #expect(lines.count == expected.count + 1)
        for (r, line) in lines.dropFirst().enumerated() {
            #expect(abs((Double(String(line)) ?? .nan) - expected[r].prob[0]) <= 1e-6, "row \(r + 1)")
        }
        let margins = try CSVScorer(model: model, kind: .margin, threads: 1).score(csv: input).split(separator: "\n")
        #expect(margins.first == "margin")
        #expect(Double(String(margins[1])) == expected[0].margin[0])
    }

    @Test func matchesColumnsByNameInAnyOrder() throws {
        let model = try xgbModel()
        let rows = try Fixture.rows("rows.csv").prefix(5)
        let names = (0..<32).map { "x\($0)" }
        let order = Array((0..<32).reversed())
        var csv = "extra," + order.map { names[$0] }.joined(separator: ",") + "\n"
        for row in rows {
            csv += "ignored," + order.map { row[$0].isNaN ? "NaN" : "\(row[$0])" }.joined(separator: ",") + "\n"
        }
        let out = try CSVScorer(model: model).score(csv: csv).split(separator: "\n").dropFirst()
        for (r, row) in rows.enumerated() {
            #expect(Double(String(out[out.startIndex + r])) == (try model.predict(row))[0])
        }
    }

    @Test func everyMissingColumnIsNamed() throws {
        let header = (0..<32).filter { $0 != 3 && $0 != 31 }.map { "x\($0)" }.joined(separator: ",")
        let csv = header + "\n" + Array(repeating: "1", count: 30).joined(separator: ",") + "\n"
        #expect(throws: ModelError.input(row: 0, column: nil, detail: "the header lacks 2 of the model's 32 features: x3, x31")) {
            try CSVScorer(model: try xgbModel()).score(csv: csv)
        }
    }

    @Test func aColumnTheModelNeedsTwiceIsRefused() throws {
        let header = (0..<32).map { "x\($0)" } + ["x5"]
        let csv = header.joined(separator: ",") + "\n" + Array(repeating: "1", count: 33).joined(separator: ",") + "\n"
        #expect(throws: ModelError.input(row: 0, column: "x5", detail: "the header has this column more than once")) {
            try CSVScorer(model: try xgbModel()).score(csv: csv)
        }
    }

    @Test func readsRFC4180Input() throws {
        // A BOM, CRLF, quoted header names and cells, a quoted comma in an
        // ignored column, a quoted line break, no final newline.
        let model = try xgbModel()
        let names = (0..<32).map { "\"x\($0)\"" }
        let values = (0..<32).map { "\"\(Float($0) / 10)\"" }
        let csv = "\u{FEFF}note," + names.joined(separator: ",") + "\r\n"
            + "\"a, b\"," + values.joined(separator: ",") + "\r\n"
            + "\"two\nlines\"," + values.joined(separator: ",")
        let row = (0..<32).map { Float($0) / 10 }
        let expected = "\(try model.predict(row)[0])"
        #expect(try CSVScorer(model: model).score(csv: csv) == "score\n\(expected)\n\(expected)\n")
    }

    @Test func wrongColumnCountNamesTheRow() throws {
        let header = (0..<32).map { "x\($0)" }.joined(separator: ",")
        let good = Array(repeating: "0.5", count: 32).joined(separator: ",")
        let csv = header + "\n" + good + "\n" + good + ",7\n"
        #expect(throws: ModelError.input(row: 2, column: nil, detail: "line 3: 33 fields, but the header has 32")) {
            try CSVScorer(model: try xgbModel()).score(csv: csv)
        }
    }

    @Test func unparsableNumberNamesRowAndColumn() throws {
        let header = (0..<32).map { "x\($0)" }.joined(separator: ",")
        var cells = Array(repeating: "0.5", count: 32)
        cells[7] = "abc"
        let csv = header + "\n" + Array(repeating: "1", count: 32).joined(separator: ",") + "\n" + cells.joined(separator: ",") + "\n"
        #expect(throws: ModelError.input(row: 2, column: "x7", detail: "'abc' is not a number")) {
            try CSVScorer(model: try xgbModel()).score(csv: csv)
        }
        #expect("\(ModelError.input(row: 2, column: "x7", detail: "'abc' is not a number"))" == "row 2, column 'x7': 'abc' is not a number")
    }

    @Test func emptyAndNaNCellsAreMissing() throws {
        let model = try xgbModel()
        let header = (0..<32).map { "x\($0)" }.joined(separator: ",")
        var a = Array(repeating: "0.5", count: 32)
        var b = a
        a[2] = ""
        b[2] = "NaN"
        let out = try CSVScorer(model: model).score(csv: [header, a.joined(separator: ","), b.joined(separator: ",")].joined(separator: "\n"))
        var row = [Float](repeating: 0.5, count: 32)
        row[2] = .nan
        let expected = "\(try model.predict(row)[0])"
        #expect(out == "score\n\(expected)\n\(expected)\n")
    }

    @Test func positionalMatchingWhenTheModelHasNoNames() throws {
        // A model without names: columns are taken by position and the count must match.
        let linear = try Model(kind: .linear(LinearModel(featureCount: 2, outputCount: 1, weights: [1, 2],
                                                         intercepts: [0.5], transform: .identity)),
                               featureNames: nil)
        #expect(try CSVScorer(model: linear).score(csv: "a,b\n1,2\n3,4\n") == "score\n5.5\n11.5\n")
        #expect(throws: ModelError.self) { try CSVScorer(model: linear).score(csv: "a,b,c\n1,2,3\n") }
    }

    @Test func scoresFilesInChunks() throws {
        let model = try xgbModel()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plinth-csv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.csv").path
        var scorer = CSVScorer(model: model)
        scorer.chunkRows = 7  // several chunks, the last one partial
        var reports = 0
        let n = try scorer.score(inputPath: try Fixture.path("rows.csv"), outputPath: out) { _, _, _ in reports += 1 }
        #expect(n == 300)
        #expect(reports == 43)
        let whole = try CSVScorer(model: model).score(csv: String(decoding: try Fixture.bytes("rows.csv"), as: UTF8.self))
        #expect(try String(contentsOfFile: out, encoding: .utf8) == whole)
    }
}
