// Tests that need the plinthd executable: kill -9 durability, graceful
// SIGTERM, the Unix socket, and refusal of unsafe flags.
import Foundation
import PlinthClient
import PlinthWire
import XCTest

/// A plinthd child process with its own data directory and port.
final class DaemonProcess {
    static var binary: String {
        // The test bundle runs from the build directory that also holds plinthd.
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return dir.appendingPathComponent("plinthd").path
    }

    let process = Process()
    let dataDir: String
    var address = ""

    init(dataDir: String, extra: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw PlinthError(code: 13, message: "plinthd not found at \(Self.binary): run `swift build` before `swift test`")
        }
        self.dataDir = dataDir
        let ready = NSTemporaryDirectory() + "plinth-ready-\(UUID().uuidString)"
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["--data-dir", dataDir, "--listen", "127.0.0.1:0", "--ready-file", ready, "--log-level", "warning"] + extra
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: ready, encoding: .utf8), text.hasSuffix("\n") {
                address = text.split(separator: "\n")[0].description
                try? FileManager.default.removeItem(atPath: ready)
                return
            }
            if !process.isRunning { throw PlinthError(code: 14, message: "plinthd exited with \(process.terminationStatus)") }
            usleep(20_000)
        }
        process.terminate()
        throw PlinthError(code: 14, message: "plinthd did not start within 20 s")
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        return process.terminationStatus
    }
}

final class DaemonProcessTests: XCTestCase {
    var dataDir = ""
    override func setUp() { dataDir = NSTemporaryDirectory() + "plinth-daemon-\(UUID().uuidString)" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dataDir) }

    func testEveryAcknowledgedPushSurvivesKill9() throws {
        let daemon = try DaemonProcess(dataDir: dataDir)
        let c = try Connection(address: daemon.address)
        try apply(c)
        // Several connections push concurrently (so commits are grouped);
        // every push that got an answer must be there after kill -9.
        let acknowledged = Counter()
        let workers = 4, batches = 25, rows = 40
        let address = daemon.address
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            guard let conn = try? Connection(address: address) else { return }
            for b in 0..<batches {
                let base = Int64(w * 100_000 + b * rows)
                if (try? conn.call(Method.push, pushRequest(ids: Array(base..<(base + Int64(rows))), count: base), as: PBPushResponse.self)) != nil {
                    acknowledged.add()
                }
            }
        }
        XCTAssertEqual(acknowledged.value, workers * batches)
        daemon.kill9()

        let restarted = try DaemonProcess(dataDir: dataDir)
        defer { _ = restarted.terminate() }
        let r = try Connection(address: restarted.address)
        for w in 0..<workers {
            let ids = (0..<(batches * rows)).map { Int64(w * 100_000 + $0) }
            let result = try r.call(Method.getOnlineFeatures, getRequest(ids: ids), as: PBGetOnlineFeaturesResponse.self)
            XCTAssertEqual(result.features[0].statuses.filter { $0 == .present }.count, ids.count, "worker \(w)")
            XCTAssertEqual(result.features[0].values.int64Values, ids.map { $0 - $0 % Int64(rows) })
        }
    }

    func testEveryAcknowledgedRelaxedTrackingWriteSurvivesKill9() throws {
        // Tracking writes are relaxed by default: acknowledged after the
        // commit, before the sync. kill -9 must lose none of them; a sync
        // interval no test waits for makes sure none was synced meanwhile.
        let config = dataDir + ".yaml"
        try "tracking_sync_interval_ms: 3600000\n".write(toFile: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let daemon = try DaemonProcess(dataDir: dataDir, extra: ["--config", config])
        let c = try Connection(address: daemon.address)
        let e = try c.call(Method.createExperiment, PBCreateExperimentRequest.with { $0.name = "kill9" }, as: PBExperimentResponse.self)
        let workers = 4, batches = 25
        var runs: [String] = []
        for w in 0..<workers {
            runs.append(try c.call(Method.startRun, PBStartRunRequest.with { $0.experimentID = e.experiment.experimentID; $0.name = "w\(w)" },
                                   as: PBRunResponse.self).run.runID)
        }
        let acknowledged = Counter()
        let address = daemon.address
        let runIDs = runs
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            guard let conn = try? Connection(address: address) else { return }
            for b in 0..<batches {
                let request = PBLogBatchRequest.with {
                    $0.runID = runIDs[w]
                    $0.metrics = [PBMetricSeries.with { $0.key = "loss"; $0.values = [Double(b)]; $0.steps = [Int64(b)]; $0.timestampsMs = [1] }]
                    $0.params = [PBParam.with { $0.key = "p\(b)"; $0.value = "v" }]
                }
                if (try? conn.call(Method.logBatch, request, as: PBLogBatchResponse.self)) != nil { acknowledged.add() }
            }
        }
        XCTAssertEqual(acknowledged.value, workers * batches)
        _ = try c.call(Method.endRun, PBEndRunRequest.with { $0.runID = runs[0]; $0.status = .finished }, as: PBRunResponse.self)
        daemon.kill9()

        let restarted = try DaemonProcess(dataDir: dataDir)
        defer { _ = restarted.terminate() }
        let r = try Connection(address: restarted.address)
        for w in 0..<workers {
            let history = try r.call(Method.getMetricHistory, PBGetMetricHistoryRequest.with { $0.runID = runs[w]; $0.key = "loss" },
                                     as: PBGetMetricHistoryResponse.self)
            XCTAssertEqual(history.steps, (0..<Int64(batches)).map { $0 }, "worker \(w)")
            let run = try r.call(Method.getRun, PBRunIdRequest.with { $0.runID = runs[w] }, as: PBRunResponse.self).run
            XCTAssertEqual(run.params.count, batches)
            XCTAssertEqual(run.status, w == 0 ? .finished : .running)
        }
    }

    func testSigtermStopsCleanlyAndKeepsData() throws {
        let daemon = try DaemonProcess(dataDir: dataDir)
        let c = try Connection(address: daemon.address)
        try apply(c)
        _ = try c.call(Method.push, pushRequest(ids: [5], count: 55), as: PBPushResponse.self)
        XCTAssertEqual(daemon.terminate(), 0)
        let again = try DaemonProcess(dataDir: dataDir)
        defer { _ = again.terminate() }
        let r = try Connection(address: again.address)
        let result = try r.call(Method.getOnlineFeatures, getRequest(ids: [5]), as: PBGetOnlineFeaturesResponse.self)
        XCTAssertEqual(result.features[0].values.int64Values, [55])
    }

    func testUnixSocketAndRefusalOfAPublicAddressWithoutTokens() throws {
        let socket = NSTemporaryDirectory() + "plinth-\(UUID().uuidString.prefix(8)).sock"
        let daemon = try DaemonProcess(dataDir: dataDir, extra: ["--unix", socket])
        let c = try Connection(address: "unix:\(socket)")
        XCTAssertNoThrow(try c.call(Method.health, PBHealthRequest(), as: PBHealthResponse.self))
        _ = daemon.terminate()
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "the socket file is removed on stop")

        let refused = Process()
        refused.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        refused.arguments = ["--data-dir", dataDir, "--listen", "0.0.0.0:0"]
        let stderr = Pipe()
        refused.standardError = stderr
        try refused.run()
        refused.waitUntilExit()
        XCTAssertNotEqual(refused.terminationStatus, 0)
        let text = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(text.contains("--insecure"), text)
    }
}
