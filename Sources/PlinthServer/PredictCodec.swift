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

    /// Parses a PredictRequest body; nil when it is anything but plainly
    /// valid (the caller then uses the generated decoder for the error).
    static func parse(_ body: ByteBuffer) -> PredictCall? {
        body.withUnsafeReadableBytes { raw -> PredictCall? in
            var reader = ProtoReader(bytes: raw)
            var call = PredictCall()
            do {
                while !reader.atEnd {
                    let key = try reader.varint()
                    switch (key >> 3, key & 7) {
                    case (1, 2): call.modelName = try OnlineRequestDecoder.utf8(reader.lengthDelimited(), what: "model_name")
                    case (2, 2): call.modelVersion = try OnlineRequestDecoder.utf8(reader.lengthDelimited(), what: "model_version")
                    case (3, 2): call.id = try OnlineRequestDecoder.utf8(reader.lengthDelimited(), what: "id")
                    case (4, 2): call.inputs.append(try OnlineRequestDecoder.column(reader.lengthDelimited()))
                    case (5, 0): call.returnFeatures = try reader.varint() != 0
                    case (6, 0): call.margin = try reader.varint() != 0
                    case (let field, let wire):
                        guard field != 0 else { return nil }
                        try reader.skip(wire: wire)  // parameters (7) and fields from newer clients
                    }
                }
            } catch { return nil }
            return call
        }
    }
}

enum PredictResponseWriter {
    /// Writes a PredictResponse for `output` into `out`.
    static func write(_ served: ServedModel, _ output: PredictOutput, id: String, firstRow: Int,
                      ids: PredictionIDs, into out: inout ByteBuffer) throws {
        string(1, served.name, &out)
        if served.version != 0 { tag(2, 0, &out); varint(served.version, &out) }
        if !id.isEmpty { string(3, id, &out) }
        if output.rows != 0 { tag(4, 0, &out); varint(UInt64(output.rows), &out) }
        let width = served.outputNames.count
        for (k, name) in served.outputNames.enumerated() {
            // Column { name = 1; type = 2 (FLOAT64 = 3); float64_values = 6 (packed) }
            let nameBytes = name.utf8.count
            let packed = output.rows * 8
            var length = 1 + varintSize(UInt64(nameBytes)) + nameBytes + 2
            if packed > 0 { length += 1 + varintSize(UInt64(packed)) + packed }
            tag(5, 2, &out)
            varint(UInt64(length), &out)
            string(1, name, &out)
            tag(2, 0, &out)
            varint(UInt64(PBValueType.float64.rawValue), &out)
            if packed > 0 {
                tag(6, 2, &out)
                varint(UInt64(packed), &out)
                output.values.withUnsafeBufferPointer { values in
                    out.writeWithUnsafeMutableBytes(minimumWritableBytes: packed) { raw in
                        for row in 0..<output.rows {
                            raw.storeBytes(of: values[row * width + k].bitPattern.littleEndian, toByteOffset: row * 8, as: UInt64.self)
                        }
                        return packed
                    }
                }
            }
        }
        let run = ids.reserve(output.rows)
        for i in 0..<run.count {
            tag(6, 2, &out)
            varint(UInt64(PredictionIDs.length), &out)
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: PredictionIDs.length) { raw in
                run.write(i, to: raw.baseAddress!)
                return PredictionIDs.length
            }
        }
        if let features = output.features {
            for column in featureColumns(served, features) {
                let bytes: [UInt8] = try column.serializedBytes()
                tag(7, 2, &out)
                varint(UInt64(bytes.count), &out)
                out.writeBytes(bytes)
            }
        }
        if firstRow != 0 { tag(8, 0, &out); varint(UInt64(firstRow), &out) }
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

    @inline(__always)
    private static func tag(_ field: UInt64, _ wire: UInt64, _ out: inout ByteBuffer) { varint(field << 3 | wire, &out) }

    @inline(__always)
    private static func varint(_ value: UInt64, _ out: inout ByteBuffer) {
        var v = value
        while v >= 0x80 {
            out.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.writeInteger(UInt8(v))
    }

    private static func varintSize(_ value: UInt64) -> Int {
        var n = 1, v = value
        while v >= 0x80 { n += 1; v >>= 7 }
        return n
    }

    private static func string(_ field: UInt64, _ text: String, _ out: inout ByteBuffer) {
        tag(field, 2, &out)
        varint(UInt64(text.utf8.count), &out)
        out.writeString(text)
    }
}
