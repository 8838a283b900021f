// LogfmtHandler: structured logs as one logfmt line per event on stderr
// (ts=… level=… msg="…" key=value), which both people and log shippers read.
public import Logging
import Foundation

public struct LogfmtHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "ts=\(Date().formatted(Self.timestamp))"
        line += " level=\(event.level) logger=\(label) msg=\(Self.quote(event.message.description))"
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() {
            line += " \(key)=\(Self.quote(merged[key]!.description))"
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    private static let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func quote(_ value: String) -> String {
        if !value.isEmpty, value.allSatisfy({ !$0.isWhitespace && $0 != "\"" && $0 != "=" }) { return value }
        return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }
}
