// plinth-bench: the load generator for plinthd's online path, in the
// spirit of redis-benchmark, with a Redis mode that drives redis-server
// through the same client code so the two can be compared in one run
// (Benchmarks/run.sh online does that; docs/benchmarks.md has the figures).
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct PlinthBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plinth-bench",
        abstract: "Load generator for plinthd's online reads, pushes and predictions, with a Redis mode for comparison.",
        discussion: "Traffic goes to 127.0.0.1 only. Every run is bounded by --duration or --requests and by --time-limit.",
        subcommands: [Load.self, Get.self, RedisLoad.self, RedisGet.self, Compare.self, Predict.self, Features.self, Infer.self])
}

/// The shape of the data set, shared by every command.
struct DataOptions: ParsableArguments {
    @Option(help: "Float32 features per entity (f0, f1, ...).")
    var features: Int = 16

    func validate() throws {
        guard (1...1024).contains(features) else { throw ValidationError("--features must be 1 to 1024") }
    }
}

struct LoadFlags: ParsableArguments {
    @Option(help: "Entities to write (ids 0..<N).")
    var entities: Int = 1_000_000

    @Option(help: "Rows per request.")
    var batch: Int = 10_000

    @Option(help: "Concurrent connections.")
    var connections: Int = 4

    @Option(help: "Batches in flight per connection.")
    var pipeline: Int = 2

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
        guard entities > 0, batch > 0, connections > 0, pipeline > 0 else {
            throw ValidationError("--entities, --batch, --connections and --pipeline must be positive")
        }
        guard connections <= 256 else { throw ValidationError("--connections is at most 256") }
    }

    func options(address: String, features: Int) -> LoadOptions {
        LoadOptions(address: address, entities: entities, features: features, batch: batch, connections: connections, pipeline: pipeline)
    }
}

struct ReadFlags: ParsableArguments {
    @Option(help: "Concurrent connections, one thread each.")
    var connections: Int = 1

    @Option(help: "Requests in flight per connection.")
    var pipeline: Int = 1

    @Option(help: "Entities per request (1: GET on Redis; more: MGET).")
    var entitiesPerRequest: Int = 1

    @Option(help: "Measured seconds (after the warm-up). Default 10 unless --requests is given.")
    var duration: Double?

    @Option(help: "Measured requests in all, instead of --duration.")
    var requests: Int?

    @Option(help: "Seconds of load before measuring.")
    var warmup: Double = 1

    @Option(help: "Keys are drawn uniformly from 0..<key-space.")
    var keySpace: Int = 1_000_000

    @Option(help: "Seed of the key sequence (the same seed asks every system for the same keys).")
    var seed: UInt64 = 42

    @Option(help: "Check every value of one answer in N.")
    var verifyEvery: Int = 1000

    @Option(help: "Hard limit on the whole run, in seconds.")
    var timeLimit: Double = 300

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
        guard connections > 0, connections <= 1024, pipeline > 0, pipeline <= 4096 else {
            throw ValidationError("--connections must be 1 to 1024 and --pipeline 1 to 4096")
        }
        guard entitiesPerRequest > 0, keySpace > 0, verifyEvery > 0, warmup >= 0, timeLimit > 0 else {
            throw ValidationError("--entities-per-request, --key-space and --verify-every must be positive, --warmup not negative")
        }
        if duration != nil && requests != nil { throw ValidationError("give --duration or --requests, not both") }
        if let duration, !(duration > 0) { throw ValidationError("--duration must be positive") }
        if let requests, requests <= 0 { throw ValidationError("--requests must be positive") }
    }

    var redisOperation: String { entitiesPerRequest == 1 ? "get" : "mget" }

    func options(address: String) -> DriverOptions {
        DriverOptions(address: address, connections: connections, pipeline: pipeline, entitiesPerRequest: entitiesPerRequest,
                      duration: requests == nil ? (duration ?? 10) : nil, requests: requests, warmup: warmup,
                      keySpace: keySpace, seed: seed, verifyEvery: verifyEvery, timeLimit: timeLimit)
    }
}

func progress(_ text: String) {
    FileHandle.standardError.write(Data("plinth-bench: \(text)\n".utf8))
}

func emit<T: Encodable>(_ summary: T, json: Bool, line: String) throws {
    if json {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(summary), as: UTF8.self))
    } else {
        print(line)
    }
}

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the bench view's definitions to plinthd and Push the rows, timing the pushes.")

    @Option(help: "plinthd address, 127.0.0.1:PORT.")
    var address = "127.0.0.1:\(PlinthProtocol.defaultPort)"

    @Option(help: "Where pushes write: online, offline or online_and_offline (the protocol's default).")
    var to = "online_and_offline"

    @OptionGroup var data: DataOptions
    @OptionGroup var flags: LoadFlags

    func run() throws {
        guard let target = PBPushTarget(name: to) else {
            throw ValidationError("--to must be one of \(PBPushTarget.names.joined(separator: ", ")), not '\(to)'")
        }
        _ = try Socket.loopbackPort(address)
        // Definitions through the project's own client: setup, not timed.
        let connection = try Connection(address: address, clientName: "plinth-bench")
        var apply = PBApplyDefinitionsRequest()
        apply.yaml = Dataset.definitionsYAML(features: data.features)
        let applied = try connection.call(Method.applyDefinitions, apply, as: PBApplyDefinitionsResponse.self)
        progress("definitions: project \(applied.project) version \(applied.version)\(applied.changed ? "" : " (unchanged)")")
        let summary = try Loader.run(PlinthPushCodec(features: data.features, target: target),
                                     flags.options(address: address, features: data.features), log: progress)
        try emit(summary, json: flags.json, line: summary.line)
    }
}

struct RedisLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis-load",
        abstract: "MSET the same packed rows into redis-server as bench:<id>, timing the batches.")

    @Option(help: "redis-server address, 127.0.0.1:PORT.")
    var address: String

    @OptionGroup var data: DataOptions
    @OptionGroup var flags: LoadFlags

    func run() throws {
        let summary = try Loader.run(RedisMSetCodec(features: data.features), flags.options(address: address, features: data.features),
                                     log: progress)
        try emit(summary, json: flags.json, line: summary.line)
    }
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GetOnlineFeatures of every feature for random entities, closed loop, pipelined.")

    @Option(help: "plinthd address, 127.0.0.1:PORT.")
    var address = "127.0.0.1:\(PlinthProtocol.defaultPort)"

    @Flag(help: "Ask for every feature column's event times instead of each view's once (compact_event_times off).")
    var fullEventTimes = false

    @OptionGroup var data: DataOptions
    @OptionGroup var flags: ReadFlags

    func run() throws {
        let options = flags.options(address: address)
        let codec = try PlinthReadCodec(features: data.features, compactEventTimes: !fullEventTimes)
        let summary = RunSummary(system: "plinth", operation: "get_online_features", options: options,
                                 try Driver.run(codec, options))
        try emit(summary, json: flags.json, line: summary.line)
    }
}

struct RedisGet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis-get",
        abstract: "GET (one entity) or MGET (several) of the packed rows from redis-server, with the same client and options as get.")

    @Option(help: "redis-server address, 127.0.0.1:PORT.")
    var address: String

    @OptionGroup var data: DataOptions
    @OptionGroup var flags: ReadFlags

    func run() throws {
        let options = flags.options(address: address)
        let summary = RunSummary(system: "redis", operation: flags.redisOperation, options: options,
                                 try Driver.run(RedisReadCodec(features: data.features), options))
        try emit(summary, json: flags.json, line: summary.line)
    }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "get against plinthd and redis-get against redis-server, in alternating rounds, with one summary each.",
        discussion: """
        The measured time (--duration, or --requests) is split into --rounds rounds per system; rounds alternate \
        between the systems, and which goes first alternates too, so a change in the machine's load during the run \
        falls on both. Each round starts with its own warm-up and its own connections; both systems get the same \
        keys in a round. The rounds' histograms are merged.
        """)

    @Option(help: "plinthd address, 127.0.0.1:PORT.")
    var plinth: String

    @Option(help: "redis-server address, 127.0.0.1:PORT.")
    var redis: String

    @Option(help: "Rounds per system.")
    var rounds: Int = 5

    @Option(help: """
        What the Plinth side does: get (GetOnlineFeatures of the bench view), predict (Inference/Predict) or features \
        (GetOnlineFeatures of --references for --key-column). The Redis side is a GET (or MGET) of the bench rows either way.
        """)
    var operation = "get"

    @Flag(help: "Ask for every feature column's event times instead of each view's once (compact_event_times off).")
    var fullEventTimes = false

    @OptionGroup var data: DataOptions
    @OptionGroup var flags: ReadFlags
    @OptionGroup var predict: PredictFlags

    struct Output: Encodable {
        let plinth: RunSummary
        let redis: RunSummary
    }

    func validate() throws {
        guard (1...100).contains(rounds) else { throw ValidationError("--rounds must be 1 to 100") }
        guard ["get", "predict", "features"].contains(operation) else { throw ValidationError("--operation must be get, predict or features") }
        if let requests = flags.requests, requests < rounds { throw ValidationError("--requests must be at least --rounds") }
    }

    func run() throws {
        let plinthRun: (DriverOptions) throws -> Measurement
        let pid = predict.serverPid
        func measured<C: ReadCodec & Sendable>(_ codec: C) -> (DriverOptions) throws -> Measurement {
            { options in
                var options = options
                options.serverPID = pid
                return try Driver.run(codec, options)
            }
        }
        if operation == "predict" {
            plinthRun = measured(try predict.codec())
        } else if operation == "features" {
            plinthRun = measured(try predict.featuresCodec())
        } else {
            let codec = try PlinthReadCodec(features: data.features, compactEventTimes: !fullEventTimes)
            plinthRun = { try Driver.run(codec, $0) }
        }
        let redisCodec = RedisReadCodec(features: data.features)
        var base = flags.options(address: "")
        if let duration = base.duration { base.duration = duration / Double(rounds) }
        var plinthTotal = Measurement(), redisTotal = Measurement()
        for round in 0..<rounds {
            var options = base
            options.seed = base.seed &+ UInt64(round)
            if let requests = base.requests { options.requests = requests / rounds + (round < requests % rounds ? 1 : 0) }
            for system in round % 2 == 0 ? ["plinth", "redis"] : ["redis", "plinth"] {
                if system == "plinth" {
                    options.address = plinth
                    plinthTotal.add(try plinthRun(options))
                } else {
                    options.address = redis
                    redisTotal.add(try Driver.run(redisCodec, options))
                }
            }
        }
        let output = Output(
            plinth: RunSummary(system: "plinth", operation: operation == "predict" ? "predict" : "get_online_features", options: base,
                               plinthTotal, rounds: rounds),
            redis: RunSummary(system: "redis", operation: flags.redisOperation, options: base, redisTotal, rounds: rounds))
        try emit(output, json: flags.json, line: output.plinth.line + "\n" + output.redis.line)
        if output.plinth.errorAnswers > 0 { throw ExitCode(3) }
    }
}

PlinthBench.main()
