// plinthctl historical: point-in-time-correct training data. Reads a spine
// (entity frame) from CSV, asks GetHistoricalFeatures, and writes the joined
// frame to CSV as its chunks arrive.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct Historical: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join a spine of (entity, time) rows with features as of each row's time.",
        discussion: """
        The spine CSV has one column per join key of the views asked for, an event_timestamp column \
        (ISO 8601 or epoch seconds; a time without a zone is UTC, but a file may not mix times with \
        and without zones), and any other columns, which are copied to the output. For each row and \
        view the value comes from the row with the greatest event time not after the row's time and \
        within the view's TTL, ties going to the latest created time; otherwise the cell is empty. \
        The result is recorded as a dataset, whose id is printed.
        """)

    @Option(help: "The spine CSV file ('-' for standard input).")
    var entities: String

    @Option(parsing: .upToNextOption, help: "Feature references view:feature (several, or comma-separated).")
    var features: [String] = []

    @Option(help: "A feature service instead of --features.")
    var service: String?

    @Option(help: "Where to write the joined CSV ('-' for standard output).")
    var output: String

    @Flag(help: "Name feature columns view__feature.")
    var fullFeatureNames = false

    @Option(help: "The spine's timestamp column.")
    var timestampColumn = "event_timestamp"

    @OptionGroup var options: ConnectionOptions

    func run() throws {
        let references = features.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            .filter { !$0.isEmpty }
        guard references.isEmpty != (service == nil) else {
            throw ValidationError("give --features or --service (one of them)")
        }
        let text = try readInput(entities)
        try reportingErrors {
            let connection = try options.connect()
            let definitions = try KnownDefinitions(connection)
            // The join keys of the views asked for type the spine's key columns.
            var keyTypes: [String: PBValueType] = [:]
            let refs = try service.map { name -> [String] in
                guard let refs = definitions.services[name] else {
                    throw PlinthError(code: 5, message: "unknown feature service '\(name)'")
                }
                return refs
            } ?? references
            for ref in refs {
                guard let view = definitions.views[String(ref.prefix { $0 != ":" })] else { continue }
                for key in view.joinKeys { keyTypes[key.name] = key.type }
            }
            var request = try Self.spineRequest(text, file: entities, timestampColumn: timestampColumn, keyTypes: keyTypes)
            request.request.features = references
            request.request.featureService = service ?? ""
            request.request.fullFeatureNames = fullFeatureNames

            let out = try OutputFile(output)
            var progress = StderrProgress("historical", total: request.request.eventTimeUs.count, quiet: options.json)
            var dataset = PBDataset()
            var rows = 0
            try connection.callStreaming(Method.getHistoricalFeatures, request.request, as: PBGetHistoricalFeaturesResponse.self) { frame in
                // The frame's columns: the keys sent, then the features.
                let features = Array(frame.columns.dropFirst(request.request.spine.count))
                if frame.hasDataset {
                    dataset = frame.dataset
                    // Header: the spine's columns in their order (the
                    // timestamp where it was), then the features.
                    var names = request.passThrough.map(\.name)
                    names.insert(timestampColumn, at: min(request.timestampIndex, names.count))
                    try out.write((names + features.map(\.name)).map(csvQuote).joined(separator: ",") + "\n")
                }
                var chunk = ""
                let nulls = features.map { Set($0.nullRows) }
                for row in 0..<frame.eventTimeUs.count {
                    let spineRow = Int(frame.offset) + row
                    var cells = request.passThrough.map { csvQuote(cellText($0, row: spineRow)) }
                    cells.insert(isoTime(micros: frame.eventTimeUs[row]), at: min(request.timestampIndex, cells.count))
                    cells += features.indices.map { i in
                        nulls[i].contains(UInt32(row)) ? "" : csvQuote(cellText(features[i], row: row))
                    }
                    chunk += cells.joined(separator: ",") + "\n"
                }
                try out.write(chunk)
                rows += frame.eventTimeUs.count
                progress.update(rows)
            }
            progress.update(rows, force: true)
            progress.finish()
            try out.close()
            if options.json {
                try printJSON(["rows": rows, "dataset": dataset.id, "digest": dataset.digest, "output": output])
            } else {
                FileHandle.standardError.write(Data("wrote \(rows) rows to \(output); dataset \(dataset.id) (sha256 \(dataset.digest))\n".utf8))
            }
        }
    }

    /// Parses the spine CSV into a request: typed key columns, string
    /// pass-through columns, event times. Refuses missing keys, missing or
    /// unparsable times, and a mix of zoned and zone-less times.
    static func spineRequest(_ text: String, file: String, timestampColumn: String, keyTypes: [String: PBValueType]) throws
        -> (request: PBGetHistoricalFeaturesRequest, timestampIndex: Int, passThrough: [PBColumn]) {
        var reader = CSVFile(text: text, name: file)
        guard let (_, header) = try reader.next() else { throw PlinthError(code: 3, message: "\(file) is empty") }
        let names = header.map { $0.trimmingCharacters(in: .whitespaces) }
        guard let timeIndex = names.firstIndex(of: timestampColumn) else {
            throw PlinthError(code: 3, message: "\(file) has no \(timestampColumn) column (columns: \(names.joined(separator: ", ")))")
        }
        for key in keyTypes.keys.sorted() where !names.contains(key) {
            throw PlinthError(code: 3, message: "\(file) has no column '\(key)', a join key of the features asked for")
        }
        var spine = PBGetHistoricalFeaturesRequest()
        var columns: [PBColumn] = names.enumerated().filter { $0.offset != timeIndex }.map { _, name in
            var column = PBColumn()
            column.name = name
            column.type = keyTypes[name] ?? .string
            return column
        }
        var zoned: (line: Int, text: String)? = nil
        var naive: (line: Int, text: String)? = nil
        var row = 0
        while let (line, fields) = try reader.next() {
            let stamp = fields[timeIndex].trimmingCharacters(in: .whitespaces)
            guard !stamp.isEmpty else {
                throw PlinthError(code: 3, message: "\(file) line \(line): \(timestampColumn) is empty; every spine row needs a time")
            }
            guard let micros = parseTimestamp(stamp) else {
                throw PlinthError(code: 3, message: "\(file) line \(line): '\(stamp)' in \(timestampColumn) is not a timestamp")
            }
            if hasZone(stamp) { zoned = zoned ?? (line, stamp) } else { naive = naive ?? (line, stamp) }
            if let zoned, let naive {
                throw PlinthError(code: 3, message: "\(file) mixes times with and without a zone: line \(zoned.line) has '\(zoned.text)', line \(naive.line) has '\(naive.text)'; give every time a zone (or none, meaning UTC)")
            }
            spine.eventTimeUs.append(micros)
            var c = 0
            for (i, field) in fields.enumerated() where i != timeIndex {
                if keyTypes[names[i]] != nil && field.trimmingCharacters(in: .whitespaces).isEmpty {
                    throw PlinthError(code: 3, message: "\(file) line \(line): join key '\(names[i])' is empty; every spine row needs its keys")
                }
                do { try appendCell(field, to: &columns[c], row: row) } catch let error as PlinthError {
                    throw PlinthError(code: error.code, message: "\(file) line \(line): \(error.message)")
                }
                c += 1
            }
            row += 1
        }
        // Only the join keys travel: the join needs nothing else, and the
        // dataset digest then covers exactly what the result depends on
        // (the Python client does the same). The other columns are written
        // back from here.
        spine.spine = columns.filter { keyTypes[$0.name] != nil }
        return (spine, timeIndex, columns)
    }
}

/// Whether a timestamp text names its zone; epoch seconds count as UTC.
func hasZone(_ text: String) -> Bool {
    if Double(text) != nil { return true }
    return text.hasSuffix("Z") || text.hasSuffix("z") || text.range(of: #"[+-]\d\d:?\d\d$"#, options: .regularExpression) != nil
}

/// A file written as text, or standard output for "-".
final class OutputFile {
    private let handle: FileHandle
    private let isStandardOutput: Bool

    init(_ path: String) throws {
        if path == "-" {
            handle = FileHandle.standardOutput
            isStandardOutput = true
            return
        }
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw PlinthError(code: 3, message: "cannot write \(path)")
        }
        self.handle = handle
        isStandardOutput = false
    }

    func write(_ text: String) throws { try handle.write(contentsOf: Data(text.utf8)) }

    func close() throws { if !isStandardOutput { try handle.close() } }
}

/// A CSV cell, quoted when it holds a comma, quote or line break.
func csvQuote(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// The text of row `row` of `column` (not null), as plinthctl push reads it back.
func cellText(_ column: PBColumn, row: Int) -> String {
    switch column.type {
    case .int64: return String(column.int64Values[row])
    case .float32: return String(column.float32Values[row])
    case .float64: return String(column.float64Values[row])
    case .bool: return column.boolValues[row] ? "true" : "false"
    case .string: return column.stringValues[row]
    case .bytes: return column.bytesValues[row].base64EncodedString()
    case .float32Vector:
        let n = Int(column.vectorLength)
        return "[" + column.float32Values[(row * n)..<((row + 1) * n)].map { String($0) }.joined(separator: ",") + "]"
    default: return ""
    }
}
