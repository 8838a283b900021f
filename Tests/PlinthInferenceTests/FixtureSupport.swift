// Helpers shared by the tests: reading the committed fixtures (models, input
// rows, and the original library's outputs written by
// scripts/gen-inference-fixtures.sh) and comparing Plinth's scores with them
// row by row through every evaluation path.

import Foundation
import Testing
@testable import PlinthInference

enum Fixture {
    static func url(_ name: String) throws -> URL {
        guard let base = Bundle.module.resourceURL else { throw FixtureError.missing(name) }
        let url = base.appendingPathComponent("Fixtures").appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else { throw FixtureError.missing(name) }
        return url
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url(name)))
    }

    static func path(_ name: String) throws -> String { try url(name).path }

    /// Input rows; an empty cell is NaN.
    static func rows(_ name: String) throws -> [[Float]] {
        let text = String(decoding: try bytes(name), as: UTF8.self)
        return text.split(separator: "\n").dropFirst().map { line in
            line.split(separator: ",", omittingEmptySubsequences: false).map { Float(String($0)) ?? .nan }
        }
    }

    /// Expected outputs: (margins, probabilities) per row.
    static func expected(_ name: String) throws -> [(margin: [Double], prob: [Double])] {
        let text = String(decoding: try bytes(name), as: UTF8.self)
        var lines = text.split(separator: "\n")
        let header = lines.removeFirst().split(separator: ",")
        let marginCount = header.filter { $0.hasPrefix("margin_") }.count
        return lines.map { line in
            let v = line.split(separator: ",").map { Double(String($0)) ?? .nan }
            return (Array(v[..<marginCount]), Array(v[marginCount...]))
        }
    }
}

enum FixtureError: Error { case missing(String) }

/// Scores `rows` with every path (single row, batch on one and two threads)
/// and returns the largest absolute differences from `expected`.
func compare(_ model: Model, rows: [[Float]], expected: [(margin: [Double], prob: [Double])],
             checkMargin: Bool = true) throws -> (margin: Double, prob: Double) {
    #expect(rows.count == expected.count)
    var worstMargin = 0.0, worstProb = 0.0
    let k = model.outputCount
    for (r, row) in rows.enumerated() {
        let m = try model.predict(row, kind: .margin)
        let p = try model.predict(row, kind: .probability)
        #expect(p.count == expected[r].prob.count, "row \(r): output count")
        for i in 0..<min(k, expected[r].prob.count) {
            if checkMargin { worstMargin = max(worstMargin, abs(m[i] - expected[r].margin[i])) }
            worstProb = max(worstProb, abs(p[i] - expected[r].prob[i]))
        }
    }
    for threads in [1, 2] {
        for kind in OutputKind.allCases {
            let out = try scoreBatch(model, rows, kind: kind, threads: threads)
            for r in 0..<rows.count {
                for i in 0..<k {
                    if kind == .margin {
                        if checkMargin { worstMargin = max(worstMargin, abs(out[r * k + i] - expected[r].margin[i])) }
                    } else {
                        worstProb = max(worstProb, abs(out[r * k + i] - expected[r].prob[i]))
                    }
                }
            }
        }
    }
    return (worstMargin, worstProb)
}

/// Scores `rows` with `predictBatch` into a new array, `outputCount` values a row.
func scoreBatch(_ model: Model, _ rows: [[Float]], kind: OutputKind, threads: Int) throws -> [Double] {
    let flat = rows.flatMap { $0 }
    var out = [Double](repeating: .nan, count: rows.count * model.outputCount)
    try flat.withUnsafeBufferPointer { f in
        try out.withUnsafeMutableBufferPointer { o in
            try model.predictBatch(rows: f, rowCount: rows.count, into: o, kind: kind, threads: threads)
        }
    }
    return out
}
