// plinthctl materialize / materialize-incremental: copy the latest offline
// rows in a time range into the online face, with a progress bar fed by the
// daemon's streamed progress frames.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct Materialize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the latest offline row per entity with start <= event time <= end to the online face.",
        discussion: """
        Times are ISO 8601 (no zone = UTC) or epoch seconds. An online value with a later (event time, \
        created time) is kept. Running a range again writes nothing; an interrupted run resumes where \
        it stopped when run again with the same range. Each view's watermark becomes --end.
        """)

    @Option(help: "Start of the range (inclusive).")
    var start: String

    @Option(help: "End of the range (inclusive).")
    var end: String

    @OptionGroup var selection: ViewSelection
    @OptionGroup var options: ConnectionOptions

    func run() throws {
        var request = PBMaterializeRequest()
        request.startUs = try time(start, "--start")
        request.endUs = try time(end, "--end")
        guard request.startUs <= request.endUs else { throw ValidationError("--start is after --end") }
        request.featureViews = selection.names
        try runMaterialize(request, options: options)
    }
}

struct MaterializeIncremental: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "materialize-incremental",
        abstract: "Materialise each view from its watermark (the end of its last run) to --end.",
        discussion: "On a view's first run the start is --end minus the view's TTL (the beginning of time without a TTL).")

    @Option(help: "End of the range (inclusive); ISO 8601 or epoch seconds.")
    var end: String

    @OptionGroup var selection: ViewSelection
    @OptionGroup var options: ConnectionOptions

    func run() throws {
        var request = PBMaterializeRequest()
        request.endUs = try time(end, "--end")
        request.incremental = true
        request.featureViews = selection.names
        try runMaterialize(request, options: options)
    }
}

/// The views a materialisation covers.
struct ViewSelection: ParsableArguments {
    @Option(parsing: .upToNextOption, help: "Feature views, several or comma-separated (default: every view).")
    var views: [String] = []

    var names: [String] { views.flatMap { $0.split(separator: ",").map(String.init) } }
}

private func time(_ text: String, _ flag: String) throws -> Int64 {
    guard let micros = parseTimestamp(text) else {
        throw ValidationError("\(flag) '\(text)' is not a time (ISO 8601 or epoch seconds)")
    }
    return micros
}

private func runMaterialize(_ request: PBMaterializeRequest, options: ConnectionOptions) throws {
    try reportingErrors {
        let connection = try options.connect()
        var progress = StderrProgress("materialize", quiet: options.json)
        var final = PBMaterializeResponse()
        try connection.callStreaming(Method.materialize, request, as: PBMaterializeResponse.self) { frame in
            if frame.done { final = frame; return }
            progress.update(Int(frame.rowsScanned), detail: "rows scanned (\(frame.views.first?.featureView ?? ""))")
        }
        progress.finish()
        func when(_ micros: Int64) -> String { micros == Int64.min ? "-inf" : isoTime(micros: micros) }
        if options.json {
            try printJSON(final.views.map { v -> [String: Any] in
                ["feature_view": v.featureView, "start": when(v.startUs), "end": when(v.endUs), "entities": v.entities,
                 "online_rows_written": v.onlineRowsWritten, "online_rows_stale": v.onlineRowsStale, "resumed": v.resumed]
            })
        } else {
            printTable(["VIEW", "START", "END", "ENTITIES", "WRITTEN", "KEPT NEWER", "RESUMED"], final.views.map { v in
                [v.featureView, when(v.startUs), when(v.endUs), String(v.entities), String(v.onlineRowsWritten),
                 String(v.onlineRowsStale), v.resumed ? "yes" : "no"]
            })
        }
    }
}
