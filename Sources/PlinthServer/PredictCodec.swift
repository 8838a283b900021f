// PredictCodec: plinth.v1.PredictRequest and PredictResponse by hand, for
// the inline Predict path. The generated code costs about 20,000
// instructions per one-row Predict (measured with callgrind: decoding
// builds every message and map, encoding sizes and then writes each nested
// message, and the bytes are copied once more into the frame); this writes
// the answer straight into the frame's buffer. Anything unusual — a body
// the hand parser does not accept — goes the generated way, so errors are
// worded once, there.
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
        var reader = ProtoReader(bytes: raw)
        var call = RawPredictCall()
        var inputs = 0
        func range(_ slice: UnsafeRawBufferPointer) -> Range<Int> {
            guard let start = slice.baseAddress, let base = raw.baseAddress else { return 0..<0 }
            let offset = base.distance(to: start)
            return offset..<(offset + slice.count)
        }
        do {
            while !reader.atEnd {
                let key = try reader.varint()
                switch (key >> 3, key & 7) {
                case (1, 2): call.modelName = range(try reader.lengthDelimited())
                case (2, 2): call.modelVersion = range(try reader.lengthDelimited())
                case (3, 2): call.id = range(try reader.lengthDelimited())
                case (4, 2):
                    if inputs == columns.count { columns.append(Column(name: "", type: .int64)) }
                    try OnlineRequestDecoder.column(reader.lengthDelimited(), into: &columns[inputs])
                    inputs += 1
                case (5, 0): call.returnFeatures = try reader.varint() != 0
                case (6, 0): call.margin = try reader.varint() != 0
                case (let field, let wire):
                    guard field != 0 else { return nil }
                    try reader.skip(wire: wire)  // parameters (7) and fields from newer clients
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
        _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { raw in
            var w = RawWriter(raw)
            w.string(1, served.name)
            if served.version != 0 { w.tag(2, 0); w.varint(served.version) }
            if !id.isEmpty { w.string(3, id) }
            if rows != 0 { w.tag(4, 0); w.varint(UInt64(rows)) }
            for (k, name) in served.outputNames.enumerated() {
                // Column { name = 1; type = 2 (FLOAT64); float64_values = 6, packed }
                let packed = rows * 8
                let nameBytes = name.utf8.count
                let length = 1 + RawWriter.varintSize(UInt64(nameBytes)) + nameBytes + 2
                    + (packed > 0 ? 1 + RawWriter.varintSize(UInt64(packed)) + packed : 0)
                w.tag(5, 2)
                w.varint(UInt64(length))
                w.string(1, name)
                w.tag(2, 0)
                w.varint(UInt64(PBValueType.float64.rawValue))
                if packed > 0 {
                    w.tag(6, 2)
                    w.varint(UInt64(packed))
                    for row in 0..<rows { w.word64(values[row * width + k].bitPattern.littleEndian) }
                }
            }
            for i in 0..<run.count {
                w.tag(6, 2)
                w.varint(UInt64(PredictionIDs.length))
                run.write(i, to: w.reserve(PredictionIDs.length))
            }
            if firstRow != 0 { w.tag(8, 0); w.varint(UInt64(firstRow)) }
            return w.count
        }
        // Only with return_features: the generated encoder is fine here.
        if let features {
            for column in featureColumns(served, features) {
                let bytes: [UInt8] = try column.serializedBytes()
                out.writeInteger(UInt8(7 << 3 | 2))
                var n = UInt64(bytes.count)
                while n >= 0x80 { out.writeInteger(UInt8(truncatingIfNeeded: n) | 0x80); n >>= 7 }
                out.writeInteger(UInt8(n))
                out.writeBytes(bytes)
            }
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
