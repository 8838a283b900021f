// Progress: a one-line progress bar on standard error for long commands
// (push, historical, materialize). It redraws at most a few times a second
// and only when standard error is a terminal or PLINTH_PROGRESS=1, so logs
// and pipes are not filled with carriage returns.
import Foundation

struct StderrProgress {
    let label: String
    /// The amount at 100%; nil when unknown (a counter is shown instead).
    var total: Int?
    private let enabled: Bool
    private var lastDraw = Date.distantPast
    private var drawn = false

    init(_ label: String, total: Int? = nil, quiet: Bool = false) {
        self.label = label
        self.total = total
        let forced = ProcessInfo.processInfo.environment["PLINTH_PROGRESS"] == "1"
        enabled = !quiet && (forced || isatty(STDERR_FILENO) == 1)
    }

    /// Shows `done` (and `detail`); throttled unless `force`.
    mutating func update(_ done: Int, detail: String = "", force: Bool = false) {
        guard enabled else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) >= 0.2 else { return }
        lastDraw = now
        var line = "\r\(label) "
        if let total, total > 0 {
            let fraction = min(1, Double(done) / Double(total))
            let width = 30
            let filled = Int(fraction * Double(width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            line += "\(Int(fraction * 100))% \(done)/\(total)"
        } else {
            line += "\(done)"
        }
        if !detail.isEmpty { line += " " + detail }
        FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
        drawn = true
    }

    /// Ends the bar's line (if one was drawn).
    mutating func finish() {
        guard drawn else { return }
        FileHandle.standardError.write(Data("\n".utf8))
        drawn = false
    }
}
