// plinthd: the Plinth daemon. Parses flags, loads the config file, serves
// until SIGTERM or SIGINT, then stops gracefully.
import ArgumentParser
import Dispatch
import Foundation
import Logging
import PlinthServer

struct Plinthd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plinthd",
        abstract: "The Plinth daemon: feature store and serving over a length-prefixed protobuf protocol.",
        version: plinthVersion)

    @Option(help: "Data directory (the LMDB environment lives here).")
    var dataDir: String?

    @Option(help: "TCP address to listen on, host:port (port 0 lets the OS choose).")
    var listen: String?

    @Option(name: .customLong("unix"), help: "Also listen on this Unix-domain socket path.")
    var unixSocket: String?

    @Option(name: .customLong("config"), help: "YAML config file (tokens, limits); flags override it.")
    var configFile: String?

    @Flag(help: "Allow a non-loopback address without tokens.")
    var insecure = false

    @Flag(help: "Do not sync to disk at each commit (faster; the last commits can be lost on power loss).")
    var noSync = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Write the bound addresses, one per line, to this file once listening (for scripts and tests).")
    var readyFile: String?

    func run() throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
        LoggingSystem.bootstrap { label in
            var handler = LogfmtHandler(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "plinthd")
        var config = ServerConfig()
        do {
            if let configFile { try config.load(file: configFile) }
        } catch {
            throw ValidationError("\(error)")
        }
        if let dataDir { config.dataDir = dataDir }
        if let listen { config.listen = listen }
        if let unixSocket { config.unixSocket = unixSocket }
        if insecure { config.insecure = true }
        if noSync { config.durable = false }

        let server: PlinthServer
        do {
            server = try PlinthServer(config: config, logger: logger)
            let addresses = try server.start()
            if let readyFile {
                try (addresses.joined(separator: "\n") + "\n").write(toFile: readyFile, atomically: true, encoding: .utf8)
            }
        } catch let error as ConfigError {
            throw ValidationError(error.message)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }

        // Signals are handled on a dispatch queue, not in a signal handler,
        // so stopping may take locks and wait.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let queue = DispatchQueue(label: "plinthd.signals")
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { server.stop() }
            source.resume()
            sources.append(source)
        }
        server.wait()
        withExtendedLifetime(sources) {}
    }
}

Plinthd.main()
