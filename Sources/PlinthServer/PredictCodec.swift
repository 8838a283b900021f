// PredictCodec: plinth.v1.PredictRequest and PredictResponse by hand, for
// the inline Predict path. The generated code costs about 20,000
// instructions per one-row Predict (measured with callgrind: decoding
// builds every message and map, encoding sizes and then writes each nested
// message, and the bytes are copied once more into the frame); this writes
// the answer straight into the frame's buffer. Anything unusual — a body
// the hand parser does not accept, or one with `parameters` — goes the
// generated way, so errors are worded once, there.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthServing
import PlinthWire
import SwiftProtobuf

struct PredictCall {
    var modelName = ""
    var modelVersion = ""
    var id = ""
    var inputs: [Column] = []
    var returnFeatures = false
    var margin = false
}

/// A PredictRequest body parsed in place for the inline path: the names
/// stay byte ranges of the body (compared with the connection's last model,
/// not made into Strings), and the input columns go into the connection's
/// reused storage (`PredictScratch.columns`).
struct RawPredictCall {
    var modelName: Range<Int> = 0..<0
    var modelVersion: Range<Int> = 0..<0
    var id: Range<Int> = 0..<0
    var returnFeatures = false
    var margin = false

    /// Parses `raw`; nil when it is anything but plainly valid (the caller
    /// then uses the generated decoder for the error). On success `columns`
    /// holds exactly the request's inputs.
    static func parse(_ raw: UnsafeRawBufferPointer, columns: inout [Column]) -> RawPredictCall? {
        typealias Field = PredictRequestField
        var reader = ProtoReader(raw)
        var call = RawPredictCall()
        var inputs = 0
        do {
            while !reader.atEnd {
                switch try reader.key() {
                case (Field.modelName, WireType.lengthDelimited): call.modelName = try reader.lengthDelimitedRange()
                case (Field.modelVersion, WireType.lengthDelimited): call.modelVersion = try reader.lengthDelimitedRange()
                case (Field.id, WireType.lengthDelimited): call.id = try reader.lengthDelimitedRange()
                case (Field.inputs, WireType.lengthDelimited):
                    if inputs == columns.count { columns.append(Column(name: "", type: .int64)) }
                    try OnlineRequestDecoder.column(reader.lengthDelimited(), into: &columns[inputs])
                    inputs += 1
                case (Field.returnFeatures, WireType.varint): call.returnFeatures = try reader.varint() != 0
                case (Field.margin, WireType.varint): call.margin = try reader.varint() != 0
                case (Field.parameters, _):
                    // Not supported: the general path refuses it by name.
                    return nil
                case (_, let wire):
                    try reader.skip(wire: wire)  // fields from newer clients
                }
            }
        } catch { return nil }
        if columns.count > inputs { columns.removeLast(columns.count - inputs) }
        return call
    }
}

/// One connection's memory of its Predicts: the model its last request
/// named (raw bytes) and what that resolved to, and the storage of the
/// input columns, reused from request to request.
final class PredictScratch {
    var columns: [Column] = []
    private var name: [UInt8] = []
    private var version: [UInt8] = []
    /// Weak: an idle connection must not keep a version the repository
    /// has let go of (an alias moved away from it) in memory.
    private weak var served: ServedModel?
    private var generation: UInt64 = 0

    /// The model the last request with these name and version bytes got,
    /// if nothing the repository holds has changed since (`generation`,
    /// read before that lookup) and it is compiled against the current
    /// definitions.
    func served(name: UnsafeRawBufferPointer, version: UnsafeRawBufferPointer, generation: UInt64,
                store: OnlineStore) -> ServedModel? {
        guard let served, generation == self.generation, Self.same(name, self.name), Self.same(version, self.version),
              served.isCurrent(store) else { return nil }
        return served
    }

    func remember(name: UnsafeRawBufferPointer, version: UnsafeRawBufferPointer, generation: UInt64, _ served: ServedModel) {
        self.name = Array(name)
        self.version = Array(version)
        self.generation = generation
        self.served = served
    }

    private static func same(_ bytes: UnsafeRawBufferPointer, _ known: [UInt8]) -> Bool {
        guard bytes.count == known.count else { return false }
        return known.withUnsafeBytes { k in
            guard let a = bytes.baseAddress, let b = k.baseAddress, !known.isEmpty else { return true }
            return memcmp(a, b, known.count) == 0
        }
    }
}

enum PredictResponseWriter {
    /// Writes a PredictResponse for `output` into `out`.
    static func write(_ served: ServedModel, _ output: PredictOutput, id: String, firstRow: Int,
                      ids: PredictionIDs, into out: inout ByteBuffer) throws {
        try output.values.withUnsafeBufferPointer { values in
            try write(served, rows: output.rows, values: values, features: output.features, id: id, firstRow: firstRow,
                      ids: ids, into: &out)
        }
    }

    /// Writes a PredictResponse for `rows` rows of outputs (`values`, row-major) into `out`.
    static func write(_ served: ServedModel, rows: Int, values: UnsafeBufferPointer<Double>, features: [FeatureResult]?,
                      id: String, firstRow: Int, ids: PredictionIDs, into out: inout ByteBuffer) throws {
        let width = served.outputNames.count
        let names = served.outputNames.reduce(0) { $0 + $1.utf8.count }
        // An upper bound: every varint at its widest.
        let bound = 3 * 11 + served.name.utf8.count + id.utf8.count + 2 * 11
            + width * (2 * 11 + 5 + 3) + names + rows * 8 * width + rows * (2 + PredictionIDs.length)
        let run = ids.reserve(rows)
        typealias Field = PredictResponseField
        ProtoWriter.append(to: &out, bound: bound) { w in
            if !served.name.isEmpty { w.string(Field.modelName, served.name) }
            if served.version != 0 { w.varintField(Field.modelVersion, served.version) }
            if !id.isEmpty { w.string(Field.id, id) }
            if rows != 0 { w.varintField(Field.rows, UInt64(rows)) }
            for (k, name) in served.outputNames.enumerated() {
                // Column { name; type = FLOAT64; float64_values, packed }
                let packed = rows * 8
                let nameBytes = name.utf8.count
                let length = (nameBytes > 0 ? ProtoWriter.fieldSize(ColumnField.name, length: nameBytes) : 0) + 2
                    + (packed > 0 ? ProtoWriter.fieldSize(ColumnField.float64Values, length: packed) : 0)
                w.field(Field.outputs, length: length)
                if nameBytes > 0 { w.string(ColumnField.name, name) }
                w.varintField(ColumnField.type, UInt64(PBValueType.float64.rawValue))
                if packed > 0 {
                    w.field(ColumnField.float64Values, length: packed)
                    for row in 0..<rows { w.word64(values[row * width + k].bitPattern.littleEndian) }
                }
            }
            for i in 0..<run.count {
                w.field(Field.predictionIds, length: PredictionIDs.length)
                run.write(i, to: w.reserve(PredictionIDs.length))
            }
        }
        // Only with return_features: the generated encoder is fine here.
        if let features {
            for column in featureColumns(served, features) {
                let bytes: [UInt8] = try column.serializedBytes()
                bytes.withUnsafeBytes { raw in
                    ProtoWriter.append(to: &out, bound: ProtoWriter.fieldSize(Field.features, length: raw.count)) { w in
                        w.bytesField(Field.features, raw)
                    }
                }
            }
        }
        if firstRow != 0 {
            ProtoWriter.append(to: &out, bound: 1 + 10) { w in w.varintField(Field.firstRow, UInt64(firstRow)) }
        }
    }

    /// The inputs used, named as the signature names them.
    static func featureColumns(_ served: ServedModel, _ features: [FeatureResult]) -> [PBFeatureColumn] {
        zip(served.signatureInputs, features).map { name, result in
            var column = PBFeatureColumn()
            column.values = result.values.wire
            column.values.name = name
            column.statuses = result.statuses.map { PBFieldStatus(rawValue: Int($0.rawValue)) ?? .invalid }
            column.eventTimeUs = result.eventTimes
            return column
        }
    }
}
