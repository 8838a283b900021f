// OnlineResponseEncoder: writes a plinth.v1.GetOnlineFeaturesResponse
// straight from the packed rows in the memory map into the outbound
// buffer — no intermediate columns, no generated message structs. It is
// the hot path of every online read; EnvelopeTests-style tests check that
// the generated decoder reads exactly what the domain's Column path gives.
//
// Message lengths are written as 5-byte padded varints and filled in when
// the field is done, so nothing is encoded twice.
import NIOCore
import PlinthFeatures

enum OnlineResponseEncoder {
    static func encode(_ rows: borrowing RowLookup, into out: inout ByteBuffer) {
        let plan = rows.plan
        for o in plan.outputs.indices {
            let output = plan.outputs[o]
            let featureColumn = beginField(1, &out)          // features (FeatureColumn)
            let values = beginField(1, &out)                 // FeatureColumn.values (Column)
            writeString(1, output.name, &out)
            let (wireType, vectorLength) = output.feature.type.wire
            writeTag(2, 0, &out); writeVarint(UInt64(wireType.rawValue), &out)
            if vectorLength > 0 { writeTag(3, 0, &out); writeVarint(UInt64(vectorLength), &out) }

            switch output.feature.type {
            case .int64:
                let packed = beginField(4, &out)
                for row in 0..<rows.count {
                    if case .value(let p, let i, let layout) = rows.cell(o, row) {
                        writeVarint(UInt64(bitPattern: p.fixed(i, layout).loadUnaligned(as: Int64.self).littleEndian), &out)
                    } else { out.writeInteger(UInt8(0)) }
                }
                endField(packed, &out)
            case .float32, .float32Vector:
                let width = output.feature.type.fixedWidth
                let packed = beginField(5, &out)
                for row in 0..<rows.count {
                    if case .value(let p, let i, let layout) = rows.cell(o, row) {
                        out.writeBytes(p.fixed(i, layout))   // already little-endian float32s
                    } else { out.writeRepeatingByte(0, count: width) }
                }
                endField(packed, &out)
            case .float64:
                let packed = beginField(6, &out)
                for row in 0..<rows.count {
                    if case .value(let p, let i, let layout) = rows.cell(o, row) {
                        out.writeBytes(p.fixed(i, layout))
                    } else { out.writeRepeatingByte(0, count: 8) }
                }
                endField(packed, &out)
            case .bool:
                let packed = beginField(7, &out)
                for row in 0..<rows.count {
                    if case .value(let p, let i, let layout) = rows.cell(o, row) {
                        out.writeInteger(p.fixed(i, layout)[0] != 0 ? UInt8(1) : 0)
                    } else { out.writeInteger(UInt8(0)) }
                }
                endField(packed, &out)
            case .string, .bytes:
                let field = output.feature.type == .string ? 8 : 9
                for row in 0..<rows.count {
                    writeTag(field, 2, &out)
                    if case .value(let p, let i, let layout) = rows.cell(o, row), let bytes = p.variable(i, layout) {
                        writeVarint(UInt64(bytes.count), &out)
                        out.writeBytes(bytes)
                    } else { writeVarint(0, &out) }
                }
            }
            // null_rows: every row without a value.
            let nulls = beginField(10, &out)
            for row in 0..<rows.count {
                if case .missing = rows.cell(o, row) { writeVarint(UInt64(row), &out) }
            }
            endField(nulls, &out)
            endField(values, &out)

            let statuses = beginField(2, &out)
            for row in 0..<rows.count {
                switch rows.cell(o, row) {
                case .value: out.writeInteger(UInt8(FieldStatus.present.rawValue))
                case .missing(let status, _): out.writeInteger(status.rawValue)
                }
            }
            endField(statuses, &out)
            let times = beginField(3, &out)
            for row in 0..<rows.count {
                switch rows.cell(o, row) {
                case .value(let p, _, _): writeVarint(UInt64(bitPattern: p.eventTime), &out)
                case .missing(_, let eventTime): writeVarint(UInt64(bitPattern: eventTime), &out)
                }
            }
            endField(times, &out)
            endField(featureColumn, &out)
        }
    }

    @inline(__always)
    static func writeTag(_ field: Int, _ wire: Int, _ out: inout ByteBuffer) {
        writeVarint(UInt64(field << 3 | wire), &out)
    }

    @inline(__always)
    static func writeVarint(_ value: UInt64, _ out: inout ByteBuffer) {
        var v = value
        while v >= 0x80 {
            out.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.writeInteger(UInt8(v))
    }

    static func writeString(_ field: Int, _ text: String, _ out: inout ByteBuffer) {
        writeTag(field, 2, &out)
        writeVarint(UInt64(text.utf8.count), &out)
        out.writeString(text)
    }

    /// Writes a length-delimited field's tag and a 5-byte length placeholder;
    /// returns where its content starts.
    @inline(__always)
    static func beginField(_ field: Int, _ out: inout ByteBuffer) -> Int {
        writeTag(field, 2, &out)
        out.writeInteger(UInt32(0x8080_8080))
        out.writeInteger(UInt8(0))
        return out.writerIndex
    }

    @inline(__always)
    static func endField(_ start: Int, _ out: inout ByteBuffer) {
        var length = UInt32(out.writerIndex - start)
        for i in 0..<5 {
            out.setInteger(UInt8(truncatingIfNeeded: length & 0x7F) | (i < 4 ? 0x80 : 0), at: start - 5 + i)
            length >>= 7
        }
    }
}
