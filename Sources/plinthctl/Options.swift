// Options: the flags every plinthctl command shares, the connection they
// open, and the output helpers (human tables or JSON).
import ArgumentParser
import Foundation
import PlinthClient

struct ConnectionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Daemon address, host:port or unix:/path.", discussion: "Default: $PLINTH_ADDRESS or 127.0.0.1:7433."))
    var address: String?

    @Option(help: "Token for a daemon with tokens (default: $PLINTH_TOKEN).")
    var token: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func connect() throws -> Connection {
        let env = ProcessInfo.processInfo.environment
        let address = self.address ?? env["PLINTH_ADDRESS"] ?? "127.0.0.1:7433"
        let token = self.token ?? env["PLINTH_TOKEN"]
        return try Connection(address: address, token: token, clientName: "plinthctl/\(plinthctlVersion)")
    }
}

let plinthctlVersion = "0.1.0"

/// Prints a table with a header row, columns padded to their widest cell.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }
    print(line(header))
    print(line(widths.map { String(repeating: "-", count: $0) }))
    for row in rows { print(line(row)) }
}

func printJSON(_ value: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

/// Runs a command body, turning client errors into a clean message and exit code.
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let error as PlinthError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(error.code == 14 ? 69 : 1)
    }
}

/// The text of `path`, or of standard input when `path` is "-".
func readInput(_ path: String) throws -> String {
    if path == "-" { return String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) }
    do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
        throw ValidationError("cannot read \(path): \(error.localizedDescription)")
    }
}

func isoTime(micros: Int64) -> String {
    let date = Date(timeIntervalSince1970: Double(micros) / 1_000_000)
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: date)
}

/// Parses a timestamp: ISO 8601 (with or without zone, 'T' or space; no
/// zone means UTC) or a number of seconds since the epoch.
func parseTimestamp(_ text: String) -> Int64? {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if let seconds = Double(trimmed), seconds.isFinite { return Int64((seconds * 1_000_000).rounded()) }
    var iso = trimmed.replacingOccurrences(of: " ", with: "T")
    if iso.count == 10 { iso += "T00:00:00" }
    let hasZone = iso.hasSuffix("Z") || iso.range(of: #"[+-]\d\d:?\d\d$"#, options: .regularExpression) != nil
    if !hasZone { iso += "Z" }
    for fractional in [true, false] {
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: fractional)
        if let date = try? style.parse(iso) { return Int64((date.timeIntervalSince1970 * 1_000_000).rounded()) }
    }
    return nil
}
