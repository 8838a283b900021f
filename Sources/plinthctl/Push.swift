// plinthctl push: writes rows from a CSV file to a feature view, in batches.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct Push: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push rows from a CSV file to a feature view.",
        discussion: """
        The header names the view's join keys, its features and an event_timestamp column \
        (ISO 8601, no zone = UTC, or epoch seconds); created_timestamp is optional. \
        Empty cells are null (except for strings); vectors are written "[1,2,3]".
        """)

    @Argument(help: "The feature view.")
    var view: String

    @Option(help: "The CSV file ('-' for standard input).")
    var csv: String

    @Option(help: "Where to write: online, offline or online_and_offline.")
    var to: String = "online_and_offline"

    @Option(help: "Rows per request.")
    var batchSize: Int = 10_000

    @OptionGroup var options: ConnectionOptions

    func run() throws {
        guard let target = PBPushTarget(name: to) else {
            throw ValidationError("--to must be one of \(PBPushTarget.names.joined(separator: ", ")), not '\(to)'")
        }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        let text = try readInput(csv)
        try reportingErrors {
            let connection = try options.connect()
            let definitions = try KnownDefinitions(connection)
            let view = try definitions.view(self.view)
            var reader = CSVFile(text: text, name: csv)
            guard let (_, header) = try reader.next() else { throw PlinthError(code: 3, message: "\(csv) is empty") }
            let columns = header.map { $0.trimmingCharacters(in: .whitespaces) }
            var templates: [PBColumn?] = []
            var eventIndex: Int?
            var createdIndex: Int?
            for (i, name) in columns.enumerated() {
                if name == "event_timestamp" { eventIndex = i; templates.append(nil); continue }
                if name == "created_timestamp" { createdIndex = i; templates.append(nil); continue }
                var column = PBColumn()
                column.name = name
                if let key = view.joinKeys.first(where: { $0.name == name }) {
                    column.type = key.type
                } else if let feature = view.features.first(where: { $0.name == name }) {
                    column.type = feature.type
                    column.vectorLength = feature.vectorLength
                } else {
                    throw PlinthError(code: 3, message: "column '\(name)' is neither a join key nor a feature of '\(view.name)'")
                }
                templates.append(column)
            }
            guard let eventIndex else { throw PlinthError(code: 3, message: "\(csv) has no event_timestamp column") }
            var total = PBPushResponse()
            // Records, not lines, are counted; a line count is close enough
            // for a bar (quoted line breaks are rare in feature data).
            let lines = text.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            var progress = StderrProgress("push \(view.name)", total: max(lines - 1, 1), quiet: options.json)
            var batch = PBPushRequest()
            func resetBatch() {
                batch = PBPushRequest()
                batch.featureView = view.name
                batch.to = target
                batch.columns = templates.compactMap { $0 }
            }
            func flush() throws {
                guard !batch.eventTimeUs.isEmpty else { return }
                let result = try connection.call(Method.push, batch, as: PBPushResponse.self)
                total.rows += result.rows
                total.onlineRowsWritten += result.onlineRowsWritten
                total.onlineRowsStale += result.onlineRowsStale
                total.offlineRowsWritten += result.offlineRowsWritten
                progress.update(Int(total.rows), detail: "rows")
                resetBatch()
            }
            resetBatch()
            while let (line, fields) = try reader.next() {
                let row = batch.eventTimeUs.count
                guard let event = parseTimestamp(fields[eventIndex]) else {
                    throw PlinthError(code: 3, message: "\(csv) line \(line), column event_timestamp: '\(fields[eventIndex])' is not a timestamp")
                }
                batch.eventTimeUs.append(event)
                if let createdIndex {
                    guard let created = parseTimestamp(fields[createdIndex]) else {
                        throw PlinthError(code: 3, message: "\(csv) line \(line), column created_timestamp: '\(fields[createdIndex])' is not a timestamp")
                    }
                    batch.createdTimeUs.append(created)
                }
                var c = 0
                for (i, template) in templates.enumerated() where template != nil {
                    do { try appendCell(fields[i], to: &batch.columns[c], row: row) } catch let error as PlinthError {
                        throw PlinthError(code: error.code, message: "\(csv) line \(line): \(error.message)")
                    }
                    c += 1
                }
                if batch.eventTimeUs.count >= batchSize { try flush() }
            }
            try flush()
            progress.total = Int(total.rows)
            progress.update(Int(total.rows), detail: "rows", force: true)
            progress.finish()
            if options.json {
                try printJSON(["rows": total.rows, "online_rows_written": total.onlineRowsWritten,
                               "online_rows_stale": total.onlineRowsStale, "offline_rows_written": total.offlineRowsWritten])
            } else {
                print("pushed \(total.rows) rows to \(view.name): \(total.onlineRowsWritten) online (\(total.onlineRowsStale) older than the stored value, kept out), \(total.offlineRowsWritten) offline")
            }
        }
    }
}
