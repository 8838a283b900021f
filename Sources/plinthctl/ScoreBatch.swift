// plinthctl score-batch: scores a CSV file of entity rows with a registered
// model through the daemon's streamed BatchPredict, latest online features or
// point in time (--as-of) from the offline face. The rows go in requests of a
// bounded size, so a large file never makes one large frame, and the answer
// is written as it streams back, in input order.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct ScoreBatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score-batch",
        abstract: "Score a CSV file of entity rows with a registered model.",
        discussion: """
        The input's header names the model's inputs: the join keys of its feature views and its \
        request fields (see `plinthctl models` for its signature). Each column is typed from the \
        model's metadata; an empty cell is a missing value (join keys may not be empty). The output \
        has the input columns, then prediction_id, model_version and one column per model output \
        ('score', or 'class_0'... for a multiclass model); with --features, each feature the model \
        used and its status (NAME__status). --as-of reads the features as of that time from the \
        offline face, point-in-time correct; without it, the latest online values.
        """)

    @Option(help: "The model: NAME@ALIAS, NAME/VERSION (or NAME:VERSION), or NAME for NAME@production.")
    var model: String

    @Option(help: "The input CSV file, with a header row ('-' for standard input).")
    var entities: String

    @Option(help: "The output CSV file ('-' for standard output).")
    var output: String

    @Option(help: "Read features as of this time (RFC 3339, or epoch seconds) from the offline face.")
    var asOf: String?

    @Option(help: "Rows per streamed response.")
    var chunkRows = 4096

    @Option(help: "Rows per BatchPredict request.")
    var requestRows = 50_000

    @Flag(name: .customLong("features"), help: "Also write the features the model used, with their statuses.")
    var returnFeatures = false

    @Flag(help: "Raw margins (log-odds) instead of probabilities.")
    var margin = false

    @OptionGroup var options: ConnectionOptions

    func validate() throws {
        guard chunkRows >= 1 else { throw ValidationError("--chunk-rows must be at least 1") }
        guard requestRows >= 1 else { throw ValidationError("--request-rows must be at least 1") }
        _ = try versionFields(model)  // the daemon's parser: a bad reference fails before reading the file
        if let asOf, parseTimestamp(asOf) == nil {
            throw ValidationError("--as-of '\(asOf)' is not a time (RFC 3339, e.g. 2026-11-30T10:00:00Z, or epoch seconds)")
        }
    }

    func run() throws {
        let text = try readInput(entities)
        try reportingErrors {
            let connection = try options.connect()
            let inputs = try ModelInputs(connection, model: model)
            var reader = CSVFile(text: text, name: entities)
            guard let (_, header) = try reader.next() else { throw PlinthError(code: 3, message: "\(entities) is empty") }
            let names = header.map { $0.trimmingCharacters(in: .whitespaces) }
            if let twice = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
                throw PlinthError(code: 3, message: "\(entities) has the column '\(twice)' twice")
            }
            let templates: [PBColumn] = try names.map { name in
                var column = PBColumn()
                column.name = name
                column.type = try inputs.type(of: name)
                return column
            }
            let out = try OutputFile(output)
            let lines = text.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            var progress = StderrProgress("score-batch", total: max(lines - 1, 1), quiet: options.json)
            // Past half the frame limit of CSV text, a request is sent even
            // before requestRows rows (wide rows).
            let byteBudget = Int(connection.hello.maxFrameBytes == 0 ? UInt32(PlinthProtocol.defaultMaxFrameBytes) : connection.hello.maxFrameBytes) / 2
            var writer = PredictionWriter(out: out, inputNames: names)
            var batch = templates
            var raw: [[String]] = []
            var bytes = 0

            func flush() throws {
                guard !raw.isEmpty else { return }
                var request = PBBatchPredictRequest()
                request.modelName = model
                request.inputs = batch
                request.returnFeatures = returnFeatures
                request.margin = margin
                request.asOfUs = asOf.flatMap(parseTimestamp) ?? 0
                request.chunkRows = UInt32(min(chunkRows, Int(UInt32.max)))
                var done = 0
                try connection.callStreaming(Method.batchPredict, request, as: PBPredictResponse.self) { frame in
                    guard frame.firstRow == UInt64(done) else {
                        throw PlinthError(code: 13, message: "the server sent rows from \(frame.firstRow) after \(done): out of order")
                    }
                    try writer.write(frame, inputs: raw, from: done)
                    done += frame.predictionIds.count
                    progress.update(writer.rows)
                }
                guard done == raw.count else {
                    throw PlinthError(code: 13, message: "the server answered \(done) of \(raw.count) rows")
                }
                batch = templates
                raw.removeAll(keepingCapacity: true)
                bytes = 0
            }

            var dataRow = 0
            while let (line, fields) = try reader.next() {
                dataRow += 1
                for (i, field) in fields.enumerated() {
                    if inputs.joinKeys.contains(names[i]) && field.trimmingCharacters(in: .whitespaces).isEmpty {
                        throw PlinthError(code: 3, message: "\(entities) row \(dataRow) (line \(line)), column '\(names[i])': a join key may not be empty")
                    }
                    do { try appendCell(field, to: &batch[i], row: raw.count) } catch let error as PlinthError {
                        throw PlinthError(code: 3, message: "\(entities) row \(dataRow) (line \(line)), column '\(names[i])': \(error.message)")
                    }
                    bytes += field.utf8.count + 2
                }
                raw.append(fields)
                if raw.count >= requestRows || bytes >= byteBudget { try flush() }
            }
            try flush()
            try writer.finish(outputs: inputs.metadata.outputs.map(\.name))
            progress.total = writer.rows
            progress.update(writer.rows, force: true)
            progress.finish()
            try out.close()
            if options.json {
                try printJSON(["rows": writer.rows, "model": writer.modelName.isEmpty ? inputs.metadata.name : writer.modelName,
                               "versions": writer.versions.sorted().map { Int($0) }, "output": output])
            } else {
                let versions = writer.versions.sorted().map { "v\($0)" }.joined(separator: ", ")
                FileHandle.standardError.write(Data("scored \(writer.rows) rows with \(inputs.metadata.name) \(versions) -> \(output)\n".utf8))
            }
        }
    }
}

/// Writes streamed PredictResponse chunks as CSV: the input row's cells as
/// they were read, prediction_id, model_version, the outputs, then each
/// feature and its status. The header comes with the first chunk (whose
/// output and feature names it uses).
struct PredictionWriter {
    let out: OutputFile
    let inputNames: [String]
    private(set) var rows = 0
    private(set) var modelName = ""
    private(set) var versions: Set<UInt64> = []
    private var headerWritten = false

    init(out: OutputFile, inputNames: [String]) {
        self.out = out
        self.inputNames = inputNames
    }

    mutating func write(_ frame: PBPredictResponse, inputs: [[String]], from start: Int) throws {
        if !headerWritten {
            var header = inputNames + ["prediction_id", "model_version"] + frame.outputs.map(\.name)
            // A request field's value is its input column: only its status is added.
            for feature in frame.features {
                header += (inputNames.contains(feature.values.name) ? [] : [feature.values.name]) + [feature.values.name + "__status"]
            }
            try out.write(header.map(csvQuote).joined(separator: ",") + "\n")
            headerWritten = true
        }
        modelName = frame.modelName
        versions.insert(frame.modelVersion)
        let outputNulls = frame.outputs.map { Set($0.nullRows) }
        let featureNulls = frame.features.map { Set($0.values.nullRows) }
        var chunk = ""
        for row in 0..<frame.predictionIds.count {
            guard start + row < inputs.count else {
                throw PlinthError(code: 13, message: "the server sent more rows than were sent")
            }
            var cells = inputs[start + row].map(csvQuote)
            cells += [frame.predictionIds[row], String(frame.modelVersion)]
            for (i, column) in frame.outputs.enumerated() {
                let null = outputNulls[i].contains(UInt32(row)) || row >= column.float64Values.count
                cells.append(null ? "" : String(column.float64Values[row]))
            }
            for (i, feature) in frame.features.enumerated() {
                let status = feature.statuses.indices.contains(row) ? feature.statuses[row] : .invalid
                if !inputNames.contains(feature.values.name) {
                    cells.append(featureNulls[i].contains(UInt32(row)) ? "" : csvQuote(cellText(feature.values, row: row)))
                }
                cells.append(statusName(status))
            }
            chunk += cells.joined(separator: ",") + "\n"
        }
        try out.write(chunk)
        rows += frame.predictionIds.count
    }

    /// Writes the header when no row came back (an input with no data rows).
    mutating func finish(outputs: [String]) throws {
        guard !headerWritten else { return }
        try out.write((inputNames + ["prediction_id", "model_version"] + outputs).map(csvQuote).joined(separator: ",") + "\n")
        headerWritten = true
    }
}
