// Services+Inference: the Inference service's methods mapped onto
// PlinthServing. A Predict for a loaded model runs on the connection's
// event loop (lookup + model: microseconds); the first request for a
// version, and every BatchPredict, runs on a worker thread so a load or a
// large batch never stalls the other connections of that loop.
import Dispatch
import Foundation
import NIOCore
import PlinthFeatures
import PlinthInference
import PlinthServing
import PlinthStorage
import PlinthWire
import SwiftProtobuf

extension Services {
    static let inferenceMethods: [String: MethodHandler] = [
        Method.predict: MethodHandler(inline: { s, body, context, out in
                                          try s.predictInline(body, scratch: context.predicts, held: context.held, &out)
                                      },
                                      otherwise: { s, body, respond in s.predict(body, respond) }),
        Method.batchPredict: MethodHandler { s, body, respond in s.batchPredict(body, respond) },
        Method.serverLive: MethodHandler { _, _, respond in
            respond.succeed(PBServerLiveResponse.with { $0.live = true })
        },
        Method.serverReady: MethodHandler { _, _, respond in
            // Storage is open and the definitions loaded before the listener
            // starts, so a server that answers can serve.
            respond.succeed(PBServerReadyResponse.with { $0.ready = true })
        },
        Method.modelReady: MethodHandler { s, body, respond in
            s.now(respond) {
                let r = try decode(PBModelReadyRequest.self, body)
                let reference = try ModelReference(parsing: r.name, version: r.version)
                let (version, served) = try s.serving.loaded(reference)
                return PBModelReadyResponse.with {
                    $0.modelName = reference.name
                    $0.modelVersion = version
                    $0.ready = served != nil
                }
            }
        },
        Method.loadModel: MethodHandler { s, body, respond in
            s.offLoop(respond) {
                let r = try decode(PBModelReadyRequest.self, body)
                let served = try s.serving.load(try ModelReference(parsing: r.name, version: r.version))
                return PBModelReadyResponse.with {
                    $0.ready = true
                    $0.modelName = served.name
                    $0.modelVersion = served.version
                }
            }
        },
        Method.modelMetadata: MethodHandler { s, body, respond in
            s.offLoop(respond) {
                let r = try decode(PBModelMetadataRequest.self, body)
                let reference = try ModelReference(parsing: r.name, version: r.version)
                let served = try s.serving.load(reference)
                return try s.metadata(served)
            }
        },
    ]

    // MARK: Predict

    /// A loaded model's Predict of a few rows, answered on the event loop
    /// straight into the frame. `AnswerLater` sends anything else — a load,
    /// or a batch big enough to hold up the loop's other connections — to
    /// `predict`.
    func predictInline(_ body: ByteBuffer, scratch: PredictScratch = PredictScratch(), held: HeldRead? = nil,
                       _ out: inout ByteBuffer) throws {
        try body.withUnsafeReadableBytes { raw in
            guard let call = RawPredictCall.parse(raw, columns: &scratch.columns),
                  (scratch.columns.first?.count ?? 0) <= Self.inlinePredictRows else { throw AnswerLater() }
            let name = UnsafeRawBufferPointer(rebasing: raw[call.modelName])
            let version = UnsafeRawBufferPointer(rebasing: raw[call.modelVersion])
            // Read before the lookup, so a swap during it is seen next time.
            let generation = serving.generation
            let served: ServedModel
            if let known = scratch.served(name: name, version: version, generation: generation, store: store) {
                served = known
            } else {
                let lookup = try serving.lookup(try OnlineRequestDecoder.utf8(name, what: "model_name"),
                                                version: try OnlineRequestDecoder.utf8(version, what: "model_version"))
                guard case .ready(let ready) = lookup else { throw AnswerLater() }
                scratch.remember(name: name, version: version, generation: generation, ready)
                served = ready
            }
            let id = call.id.isEmpty ? "" : try OnlineRequestDecoder.utf8(UnsafeRawBufferPointer(rebasing: raw[call.id]), what: "id")
            try answer(PredictCall(modelName: "", modelVersion: "", id: id, inputs: scratch.columns,
                                   returnFeatures: call.returnFeatures, margin: call.margin),
                       served, threads: 1, held: held, into: &out)
        }
    }

    /// Rows a Predict may have to be answered on the event loop.
    static let inlinePredictRows = 64

    /// Predict the general way: the generated decoder (whose errors name
    /// what is malformed), and a load on a worker when the version is not
    /// in memory.
    func predict(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBPredictRequest.self, body)
            // KServe's free-form parameters have no meaning here; ignoring
            // them would answer a different question than the one asked.
            guard request.parameters.isEmpty else {
                throw WireError(code: StatusCode.invalidArgument,
                                message: "PredictRequest.parameters is not supported (got \(request.parameters.keys.sorted().joined(separator: ", "))); use the margin and return_features fields")
            }
            let call = PredictCall(modelName: request.modelName, modelVersion: request.modelVersion, id: request.id,
                                   inputs: try request.inputs.map { try Column(wire: $0) },
                                   returnFeatures: request.returnFeatures, margin: request.margin)
            let reference = try ModelReference(parsing: call.modelName, version: call.modelVersion)
            servingQueue.async {
                do {
                    let served = try self.serving.load(reference)
                    var out = responseAllocator.buffer(capacity: 512)
                    try self.answer(call, served, threads: System.coreCount, into: &out)
                    respond.succeed(encoded: out)
                } catch { respond.fail(error) }
            }
        } catch { respond.fail(error) }
    }

    private func answer(_ call: PredictCall, _ served: ServedModel, threads: Int, held: HeldRead? = nil,
                        into out: inout ByteBuffer) throws {
        let inputs = try served.inputs(call.inputs, maxRows: config.predictMaxRows)
        if threads == 1 && !call.returnFeatures && inputs.rows <= Self.inlinePredictRows {
            try predictor.predictInPlace(served, inputs, margin: call.margin, held: held) { values in
                try PredictResponseWriter.write(served, rows: inputs.rows, values: values, features: nil, id: call.id,
                                                firstRow: 0, ids: predictionIDs, into: &out)
            }
            return
        }
        let output = try predictor.predict(served, inputs, margin: call.margin, returnFeatures: call.returnFeatures,
                                           threads: threads, held: held)
        try PredictResponseWriter.write(served, output, id: call.id, firstRow: 0, ids: predictionIDs, into: &out)
    }

    // MARK: BatchPredict

    func batchPredict(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBBatchPredictRequest.self, body)
            let reference = try ModelReference(parsing: request.modelName, version: request.modelVersion)
            // A chunk is one online lookup, so it stays within max_rows.
            let chunkRows = request.chunkRows == 0 ? 4096 : min(Int(request.chunkRows), config.maxRows)
            guard request.asOfUs >= 0 else {
                throw WireError(code: StatusCode.invalidArgument, message: "as_of_us is negative; give microseconds since the epoch, or 0 for the latest online values")
            }
            servingQueue.async {
                do {
                    // One version for the whole batch, even if an alias moves meanwhile.
                    let served = try self.serving.load(reference)
                    let columns = try request.inputs.map { try Column(wire: $0) }
                    let inputs = try served.inputs(columns, maxRows: self.offline.maxSpineRows)
                    let threads = max(1, System.coreCount)
                    var first = 0
                    repeat {
                        let range = first..<min(inputs.rows, first + chunkRows)
                        let chunk = range.count == inputs.rows ? inputs : inputs.slice(range)
                        let output = request.asOfUs > 0
                            ? try self.predictor.predict(served, chunk, asOf: request.asOfUs, margin: request.margin,
                                                         returnFeatures: request.returnFeatures, threads: threads)
                            : try self.predictor.predict(served, chunk, margin: request.margin,
                                                         returnFeatures: request.returnFeatures, threads: threads)
                        var frame = responseAllocator.buffer(capacity: 64 + range.count * 40)
                        try PredictResponseWriter.write(served, output, id: request.id, firstRow: first,
                                                        ids: self.predictionIDs, into: &frame)
                        first = range.upperBound
                        if first < inputs.rows { respond.stream(encoded: frame) } else { respond.succeed(encoded: frame) }
                    } while first < inputs.rows && !respond.isCancelled
                } catch { respond.fail(error) }
            }
        } catch { respond.fail(error) }
    }

    // MARK: Metadata

    private func metadata(_ served: ServedModel) throws -> PBModelMetadataResponse {
        var out = PBModelMetadataResponse()
        out.name = served.name
        out.versions = try registry.versions(model: served.name).map { String($0.version) }
        out.resolvedVersion = served.version
        out.platform = served.platform
        out.inputs = served.callerInputs.map { input in
            PBTensorMetadata.with {
                $0.name = input.name
                $0.datatype = input.type.kserveDatatype
                $0.shape = [-1]
            }
        }
        out.outputs = served.outputNames.map { name in
            PBTensorMetadata.with {
                $0.name = name
                $0.datatype = "FP64"
                $0.shape = [-1]
            }
        }
        out.features = served.signatureInputs
        return out
    }

    /// Runs `work` on a worker thread (it may load a model) and answers.
    func offLoop<M: SwiftProtobuf.Message>(_ respond: Responder, _ work: @escaping @Sendable () throws -> M) {
        servingQueue.async {
            do { respond.succeed(try work()) } catch { respond.fail(error) }
        }
    }
}

/// Where model loads and batches run. Its own queue rather than a global
/// one: GCD sizes the global pool to the cores, so blocked work elsewhere
/// could otherwise hold a load back for seconds.
let servingQueue = DispatchQueue(label: "plinth.serving", qos: .userInitiated, attributes: .concurrent)

extension FeatureType {
    /// The KServe V2 datatype name.
    var kserveDatatype: String {
        switch self {
        case .int64: "INT64"
        case .float32: "FP32"
        case .float64: "FP64"
        case .bool: "BOOL"
        case .string, .bytes: "BYTES"
        case .float32Vector: "FP32"
        }
    }
}
