// `plinthctl score`: scores a CSV file offline with a model file, no daemon
// needed. The work is PlinthInference's CSVScorer; this file only maps flags
// to it, draws the progress bar on stderr for large inputs and turns a
// ModelError into one readable line and a non-zero exit.

import ArgumentParser
import Foundation
import PlinthInference

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a CSV file with a model file (XGBoost, LightGBM or Plinth), offline.",
        discussion: """
        The input needs a header row. Columns are matched to the model's features by name when the \
        model has names, else by position; extra columns are ignored when matching by name. Empty \
        cells and NaN are missing values. The output has one column per model output: 'score' \
        (probability, class probabilities or regression value) or, with --margin, 'margin'.
        """)

    @Option(help: "The model file.")
    var model: String

    @Option(help: "The model format: auto, xgboost, lightgbm or plinth.")
    var format = "auto"

    @Option(help: "The input CSV file, with a header row.")
    var input: String

    @Option(help: "The output CSV file (overwritten).")
    var output: String

    @Flag(help: "Write raw margins instead of probabilities.")
    var margin = false

    @Option(help: "Threads to score with.")
    var threads = 2

    func validate() throws {
        guard ModelFormat(rawValue: format) != nil else {
            throw ValidationError("--format must be one of: \(ModelFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        switch Result(catching: { () throws(ModelError) in try execute() }) {
        case let .success((rows, loaded)):
            FileHandle.standardError.write(Data("scored \(rows) rows with \(loaded) -> \(output)\n".utf8))
        case let .failure(error):
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    private func execute() throws(ModelError) -> (Int, Model) {
        let loaded = try ModelLoader.load(path: model, format: ModelFormat(rawValue: format) ?? .auto)
        let scorer = CSVScorer(model: loaded, kind: margin ? .margin : .probability, threads: threads)
        let bar = ProgressBar(enabled: inputSize() >= 8 << 20)
        let rows = try scorer.score(inputPath: input, outputPath: output) { done, total, rows in
            bar.update(done: done, total: total, rows: rows)
        }
        bar.finish()
        return (rows, loaded)
    }

    private func inputSize() -> Int {
        (try? FileManager.default.attributesOfItem(atPath: input)[.size] as? Int) ?? 0
    }
}

/// A one-line progress bar on stderr, redrawn in place.
struct ProgressBar {
    let enabled: Bool

    func update(done: Int, total: Int, rows: Int) {
        guard enabled, total > 0 else { return }
        let fraction = min(1, Double(done) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(Int(fraction * 100))% \(rows) rows".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
