// Runs the real plinthctl binary (built next to the test bundle) against a
// test server, for the CLI tests.
import Foundation
import PlinthClient

/// Runs plinthctl with `arguments` and `--address address`; returns
/// (exit code, stdout, stderr).
func runPlinthctl(_ arguments: [String], address: String) throws -> (Int32, String, String) {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plinthctl").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw PlinthError(code: 13, message: "plinthctl not found at \(binary): run `swift build` before `swift test`")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments + ["--address", address]
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // A plinthctl that never exits fails the test instead of stalling the suite.
    let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
    let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    watchdog.cancel()
    return (process.terminationStatus, stdout, stderr)
}
