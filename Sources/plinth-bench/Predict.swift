// Predict: the serving side of plinth-bench. `predict` drives Inference/
// Predict the way `get` drives GetOnlineFeatures (same driver, same socket
// code, requests encoded by hand into a reused buffer): one entity key per
// request, the server looks up the model's features and scores them.
// `infer` times the same model in process (PlinthInference, no network),
// the "own inference time" that issue 5's latency target adds to a Redis
// GET. Benchmarks/serving/run.sh runs both next to its peers.
import ArgumentParser
import Foundation
import PlinthInference
import PlinthWire
import SwiftProtobuf

/// The score the model should give each entity, by entity id: float64 values
/// from a file (the data generator writes XGBoost's own predictions), so
/// every checked answer is compared with the original library's.
struct ExpectedScores: Sendable {
    let scores: [Double]
    let tolerance: Double

    init(path: String, tolerance: Double) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count % 8 == 0, !data.isEmpty else { throw BenchError("\(path): not a file of float64 values") }
        scores = data.withUnsafeBytes { raw in
            (0..<(data.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
        self.tolerance = tolerance
    }
}

/// PredictRequest { model_name = 1 (the same in every request); inputs = 4:
/// [Column of the key, INT64, one key per row] }.
struct PlinthPredictCodec: KeyColumnCodec {
    let expected: ExpectedScores?
    let encoder: KeyColumnRequestEncoder

    init(model: String, keyColumn: String, expected: ExpectedScores?) throws {
        self.expected = expected
        var fixed = PBPredictRequest()
        fixed.modelName = model
        encoder = KeyColumnRequestEncoder(method: Method.predict, fixedFields: try fixed.serializedBytes(),
                                          columnField: PredictRequestField.inputs, keyColumn: keyColumn)
        try selfCheck(model: model, keyColumn: keyColumn)
    }

    func parseAnswer(_ bytes: UnsafeRawBufferPointer) throws -> Answer? { try countedErrorAnswer(bytes, method: Method.predict) }

    func verify(_ answer: UnsafeRawBufferPointer, keys: UnsafeBufferPointer<Int64>) throws {
        guard let (_, id, body) = try parsePlinthFrame(answer) else { throw BenchError("verify: incomplete frame") }
        let response = try PBPredictResponse(serializedBytes: Array(answer[body]))
        guard response.rows == UInt32(keys.count), response.predictionIds.count == keys.count,
              let score = response.outputs.first, score.float64Values.count == keys.count
        else {
            throw BenchError("request \(id): Predict answered \(response.rows) rows, \(response.predictionIds.count) prediction ids and "
                             + "\(response.outputs.first?.float64Values.count ?? 0) scores for \(keys.count) keys")
        }
        for (r, key) in keys.enumerated() {
            let got = score.float64Values[r]
            guard got.isFinite else { throw BenchError("request \(id): entity \(key) scored \(got)") }
            if let expected, Int(key) < expected.scores.count, abs(got - expected.scores[Int(key)]) > expected.tolerance {
                throw BenchError("request \(id): entity \(key) scored \(got), XGBoost gives \(expected.scores[Int(key)])")
            }
        }
    }

    /// Decodes a hand-encoded request with the generated code.
    private func selfCheck(model: String, keyColumn: String) throws {
        let keys: [Int64] = [0, 127, 128, 99_999, 1 << 40]
        var bytes: [UInt8] = []
        keys.withUnsafeBufferPointer { appendRequest(id: 300, keys: $0, to: &bytes) }
        let envelope = try PBRequest(serializedBytes: Array(bytes[4...]))
        let request = try PBPredictRequest(serializedBytes: envelope.body)
        guard bytes.count - 4 == Int(UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])),
              envelope.id == 300, envelope.method == Method.predict, request.modelName == model, request.inputs.count == 1,
              request.inputs[0].name == keyColumn, request.inputs[0].type == .int64, request.inputs[0].int64Values == keys
        else { throw BenchError("internal: the hand-encoded PredictRequest does not decode as intended") }
    }
}

/// Splits one Response frame; an error status becomes an Answer with its
/// text, which the driver counts instead of stopping the run.
func countedErrorAnswer(_ bytes: UnsafeRawBufferPointer, method: String) throws -> Answer? {
    guard let frame = try splitPlinthFrame(bytes) else { return nil }
    guard frame.code == 0 else {
        let name = PBStatus.Code(rawValue: Int(frame.code)).map { "\($0)" } ?? "\(frame.code)"
        return Answer(length: frame.length, id: frame.id, error: "\(method) status \(name): \(frame.message)")
    }
    return Answer(length: frame.length, id: frame.id)
}

/// GetOnlineFeatures of a list of references for one key column: the read
/// inside a Predict, without the model, so the two can be told apart.
struct PlinthFeaturesCodec: KeyColumnCodec {
    let references: [String]
    let encoder: KeyColumnRequestEncoder

    init(references: [String], keyColumn: String) throws {
        self.references = references
        var fixed = PBGetOnlineFeaturesRequest()
        fixed.features = references
        fixed.fullFeatureNames = true  // two views may name features alike
        encoder = KeyColumnRequestEncoder(method: Method.getOnlineFeatures, fixedFields: try fixed.serializedBytes(),
                                          columnField: GetOnlineFeaturesRequestField.entities, keyColumn: keyColumn)
    }

    func parseAnswer(_ bytes: UnsafeRawBufferPointer) throws -> Answer? { try countedErrorAnswer(bytes, method: Method.getOnlineFeatures) }

    func verify(_ answer: UnsafeRawBufferPointer, keys: UnsafeBufferPointer<Int64>) throws {
        guard let (_, id, body) = try parsePlinthFrame(answer) else { throw BenchError("verify: incomplete frame") }
        let response = try PBGetOnlineFeaturesResponse(serializedBytes: Array(answer[body]))
        guard response.features.count == references.count else {
            throw BenchError("request \(id): \(response.features.count) feature columns for \(references.count) references")
        }
        for (j, column) in response.features.enumerated() where column.statuses != Array(repeating: .present, count: keys.count) {
            throw BenchError("request \(id): \(references[j]) is \(column.statuses) for keys \(Array(keys)) (was the data loaded?)")
        }
    }
}

/// What `predict` and `compare --operation predict|features` need beyond the read flags.
struct PredictFlags: ParsableArguments {
    @Option(help: "The model, as name@alias, name/version (or name:version), or name for name@production.")
    var model = "fraud@production"

    @Option(help: "The entity key column sent as the request's input.")
    var keyColumn = "user_id"

    @Option(help: "File of float64 scores by entity id (the original library's): checked answers must match.")
    var expected: String?

    @Option(help: "Largest difference from --expected accepted.")
    var tolerance = 1e-5

    @Option(help: "The server's pid: the CPU time of server and client over the measured seconds is reported.")
    var serverPid: Int32?

    @Option(help: "For features and compare --operation features: the references to read, comma-separated (view:feature,...).")
    var references: String?

    func codec() throws -> PlinthPredictCodec {
        try PlinthPredictCodec(model: model, keyColumn: keyColumn,
                               expected: expected.map { try ExpectedScores(path: $0, tolerance: tolerance) })
    }

    func featuresCodec() throws -> PlinthFeaturesCodec {
        guard let references, !references.isEmpty else { throw ValidationError("--operation features needs --references") }
        return try PlinthFeaturesCodec(references: references.split(separator: ",").map(String.init), keyColumn: keyColumn)
    }
}

/// One closed-loop run of a Plinth codec, printed; exit status 3 when some answers were errors.
func measure<C: ReadCodec & Sendable>(_ codec: C, operation: String, address: String, flags: ReadFlags, serverPID: Int32?) throws {
    var options = flags.options(address: address)
    options.serverPID = serverPID
    let summary = RunSummary(system: "plinth", operation: operation, options: options, try Driver.run(codec, options))
    try emit(summary, json: flags.json, line: summary.line)
    if summary.errorAnswers > 0 { throw ExitCode(3) }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inference/Predict for one random entity per request (features looked up by the server), closed loop.")

    @Option(help: "plinthd address, 127.0.0.1:PORT.")
    var address = "127.0.0.1:\(PlinthProtocol.defaultPort)"

    @OptionGroup var predict: PredictFlags
    @OptionGroup var flags: ReadFlags

    func run() throws {
        try measure(predict.codec(), operation: "predict", address: address, flags: flags, serverPID: predict.serverPid)
    }
}

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GetOnlineFeatures of --references for one random entity per request: the read inside a Predict, alone.")

    @Option(help: "plinthd address, 127.0.0.1:PORT.")
    var address = "127.0.0.1:\(PlinthProtocol.defaultPort)"

    @OptionGroup var predict: PredictFlags
    @OptionGroup var flags: ReadFlags

    func run() throws {
        try measure(predict.featuresCodec(), operation: "get_online_features", address: address, flags: flags,
                    serverPID: predict.serverPid)
    }
}

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "In-process single-row inference time of a model file (PlinthInference, no network): p50, p99, mean.",
        discussion: "Each call is timed alone with CLOCK_MONOTONIC and the timer's own cost subtracted, as Benchmarks/inference does.")

    @Option(help: "Model file (XGBoost JSON or UBJSON, LightGBM text, Plinth JSON).")
    var model: String

    @Option(help: "Rows to score: a file of float32 values, row-major. Default: random rows.")
    var rows: String?

    @Option(help: "Timed calls.")
    var samples = 20_000

    @Option(help: "Seed of the random rows.")
    var seed: UInt64 = 42

    @Flag(help: "Print the summary as JSON.")
    var json = false

    struct Summary: Encodable {
        let model: String
        let features: Int
        let rows: Int
        let samples: Int
        let p50Nanos: Double
        let p99Nanos: Double
        let meanNanos: Double
        let timerNanos: Double
    }

    func run() throws {
        guard samples > 0 else { throw ValidationError("--samples must be positive") }
        let loaded = try ModelLoader.load(path: model)
        let width = loaded.featureCount
        let data = try rows.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let values: [Float] = data.map { d in d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } } ?? randomRows(width: width)
        let count = values.count / width
        guard count > 0 else { throw ValidationError("--rows holds fewer than \(width) values") }
        var output = [Double](repeating: 0, count: loaded.outputCount)
        var clock = [Double](), times = [Double]()
        clock.reserveCapacity(samples); times.reserveCapacity(samples)
        var sink = 0.0
        var meanNanos = 0.0
        try values.withUnsafeBufferPointer { all in
            try output.withUnsafeMutableBufferPointer { out in
                func row(_ i: Int) -> UnsafeBufferPointer<Float> {
                    let r = i % count
                    return UnsafeBufferPointer(rebasing: all[(r * width)..<((r + 1) * width)])
                }
                for i in 0..<2_000 { try loaded.predict(row: row(i), into: out) }
                for _ in 0..<samples {
                    let t0 = nowNanos()
                    clock.append(Double(nowNanos() - t0))
                }
                for i in 0..<samples {
                    let t0 = nowNanos()
                    try loaded.predict(row: row(i), into: out)
                    times.append(Double(nowNanos() - t0))
                    sink += out[0]
                }
                let loops = max(samples, 100_000)
                let t0 = nowNanos()
                for i in 0..<loops {
                    try loaded.predict(row: row(i), into: out)
                    sink += out[0]
                }
                meanNanos = Double(nowNanos() - t0) / Double(loops)
            }
        }
        clock.sort()
        let timer = clock[clock.count / 2]
        times = times.map { max(0, $0 - timer) }.sorted()
        func at(_ p: Double) -> Double { times[min(times.count - 1, Int(Double(times.count) * p))] }
        let summary = Summary(model: model, features: width, rows: count, samples: samples,
                              p50Nanos: at(0.5), p99Nanos: at(0.99), meanNanos: meanNanos, timerNanos: timer)
        try emit(summary, json: json, line: String(format: "in-process inference of %@ (%d features): p50 %.0f ns, p99 %.0f ns, mean %.0f ns over %d calls",
                                                   model, width, summary.p50Nanos, summary.p99Nanos, meanNanos, samples))
        if sink.isNaN { progress("(NaN among the scores)") }
    }

    /// Normal-looking random rows (sum of uniforms), 1,000 of them.
    private func randomRows(width: Int) -> [Float] {
        var keys = KeyGenerator(seed: seed, keySpace: 1 << 20)
        return (0..<(1_000 * width)).map { _ in
            Float((0..<4).reduce(0) { s, _ in s + Double(keys.next()) / Double(1 << 20) } - 2) * 1.7
        }
    }
}
