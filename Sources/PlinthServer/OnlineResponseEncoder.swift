// OnlineResponseEncoder: writes a plinth.v1.GetOnlineFeaturesResponse
// straight from the packed rows in the memory map into the outbound
// buffer — no intermediate columns, no generated message structs. It is
// the hot path of every online read; OnlineResponseEncoderTests check that
// the generated decoder reads exactly what the domain's Column path gives.
//
// Three passes: the lookup resolves every cell (value pointer, status) and
// row time in one call (RowLookup.resolve); then every message's exact
// length is computed from the cells; then everything is written through
// one raw pointer inside a single ByteBuffer call, lengths as minimal
// varints, nothing encoded twice, no placeholders to patch. (Per-byte
// ByteBuffer writes each paid a dynamic exclusivity check, ~300,000
// instructions per 16-feature answer; length placeholders and per-cell
// calls into PlinthFeatures were most of the rest.)
import NIOCore
import PlinthFeatures
import PlinthWire

enum OnlineResponseEncoder {
    /// The exact sizes of one output's messages.
    struct Sizes {
        /// Column.int64/float32/... values: the packed payload, or for
        /// strings and bytes the repeated records.
        var values = 0
        /// Column.null_rows payload (packed varints).
        var nulls = 0
        /// The Column message.
        var column = 0
        /// The FeatureColumn message.
        var featureColumn = 0
    }

    /// - Parameter templates: where a one-entity answer's template is kept
    ///   (a connection's plan cache); nil: always the general path.
    /// - Parameter compactTimes: the request's `compact_event_times`: each
    ///   view's event times are written once, in its first column, and its
    ///   other columns point there (`event_times_from`).
    static func encode(_ rows: borrowing RowLookup, templates: ConnectionPlanCache? = nil, compactTimes: Bool = false,
                       into out: inout ByteBuffer) {
        if rows.count == 1, let templates, encodeFromTemplate(rows, templates, compactTimes: compactTimes, into: &out) { return }
        if encodeFixed(rows, compactTimes: compactTimes, into: &out) { return }
        encodeResolved(rows, compactTimes: compactTimes, into: &out)
    }

    /// An output's `event_times_from`: 0 when it carries its own times,
    /// else the 1-based position of its view's first output.
    @inline(__always)
    static func timesFrom(_ output: ReadPlan.HotOutput, at position: Int, compact: Bool) -> Int {
        compact && output.firstOfView != position ? output.firstOfView + 1 : 0
    }

    /// The general path: every cell resolved, any type, any row.
    static func encodeResolved(_ rows: borrowing RowLookup, compactTimes: Bool = false, into out: inout ByteBuffer) {
        let plan = rows.plan
        let n = rows.count
        let views = plan.views.count
        plan.hotOutputs.withUnsafeBufferPointer { outputs in
            plan.namesUTF8.withUnsafeBytes { names in
                let m = outputs.count
                withUnsafeTemporaryAllocation(of: ResolvedCell.self, capacity: max(1, n * m)) { cells in
                  withUnsafeTemporaryAllocation(of: Int64.self, capacity: max(1, n * views)) { times in
                    withUnsafeTemporaryAllocation(of: EncodedVarint.self, capacity: max(1, n * views)) { encodedTimes in
                      withUnsafeTemporaryAllocation(of: Int.self, capacity: max(1, views)) { timeBytes in
                        withUnsafeTemporaryAllocation(of: Sizes.self, capacity: max(1, m)) { sizes in
                            rows.resolve(cells: cells, times: times)
                            for v in 0..<views {
                                var sum = 0
                                for r in 0..<n {
                                    let e = EncodedVarint(UInt64(bitPattern: times[v * n + r]))
                                    encodedTimes[v * n + r] = e
                                    sum += e.count
                                }
                                timeBytes[v] = sum
                            }
                            var total = 0
                            for o in 0..<m {
                                let size = measure(outputs[o], cells: UnsafeBufferPointer(rebasing: cells[(o * n)..<((o + 1) * n)]),
                                                   rows: n, timeBytes: timeBytes[outputs[o].view],
                                                   timesFrom: timesFrom(outputs[o], at: o, compact: compactTimes))
                                sizes[o] = size
                                total += 1 + varintSize(size.featureColumn) + size.featureColumn
                            }
                            out.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { raw in
                                var w = ProtoWriter(raw)
                                for o in 0..<m {
                                    let v = outputs[o].view
                                    write(outputs[o], sizes[o], names: names, rows: n,
                                          cells: UnsafeBufferPointer(rebasing: cells[(o * n)..<((o + 1) * n)]),
                                          times: UnsafeBufferPointer(rebasing: encodedTimes[(v * n)..<((v + 1) * n)]),
                                          timeBytes: timeBytes[v], timesFrom: timesFrom(outputs[o], at: o, compact: compactTimes), &w)
                                }
                                precondition(w.count == total, "the response encoder's sizes and writes disagree")
                                return total
                            }
                        }
                      }
                    }
                  }
                }
            }
        }
    }

    /// The fast path for one entity: when every value is a present
    /// fixed-width one, the answer is the plan's template with the values
    /// and times patched in. Returns false, writing nothing, otherwise.
    private static func encodeFromTemplate(_ rows: borrowing RowLookup, _ templates: ConnectionPlanCache,
                                           compactTimes: Bool, into out: inout ByteBuffer) -> Bool {
        let plan = rows.plan
        let views = plan.views.count
        return withUnsafeTemporaryAllocation(of: (UnsafeRawPointer, EncodedVarint).self, capacity: views) { found in
          withUnsafeTemporaryAllocation(of: EncodingRow.self, capacity: 1) { row in
            for v in 0..<views {
                rows.encodingRows(v, into: row)
                guard case .plain(let bytes, let time) = row[0] else { return false }
                found[v] = (bytes, EncodedVarint(UInt64(bitPattern: time)))
                guard found[v].1.count == found[0].1.count else { return false }
            }
            guard views > 0, let template = templates.template(for: plan, timeWidth: found[0].1.count, compactTimes: compactTimes) else { return false }
            template.write(plan, UnsafeBufferPointer(found), into: &out)
            return true
          }
        }
    }

    @inline(__always)
    static func varintSize(_ value: Int) -> Int { ProtoWriter.varintSize(UInt64(value)) }

    /// A length-delimited field of `length` bytes: tag, length, content.
    @inline(__always)
    static func field(_ length: Int) -> Int { 1 + varintSize(length) + length }

    static func measure(_ output: ReadPlan.HotOutput, cells: UnsafeBufferPointer<ResolvedCell>,
                        rows n: Int, timeBytes: Int, timesFrom: Int = 0) -> Sizes {
        var size = Sizes()
        switch output.type {
        case .int64:
            for cell in cells {
                size.values += cell.value.map { ProtoWriter.varintSize(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) } ?? 1
            }
        case .float32, .float64, .float32Vector, .bool:
            size.values = n * output.width
        case .string, .bytes:
            for cell in cells { size.values += field(cell.length) }
        }
        for r in 0..<n where cells[r].status != .present { size.nulls += varintSize(r) }
        return sized(output, values: size.values, nulls: size.nulls, rows: n, timeBytes: timeBytes, timesFrom: timesFrom)
    }

    /// An output's message sizes from its values' and null rows' payloads.
    /// With `timesFrom` nonzero the times are not written, the pointer is.
    @inline(__always)
    static func sized(_ output: ReadPlan.HotOutput, values: Int, nulls: Int, rows n: Int, timeBytes: Int,
                      timesFrom: Int = 0) -> Sizes {
        var size = Sizes()
        size.values = values
        size.nulls = nulls
        let nameLength = output.nameEnd - output.nameStart
        let (wireType, vectorLength) = output.type.wire
        var column = field(nameLength) + 1 + varintSize(wireType.rawValue)
        if vectorLength > 0 { column += 1 + varintSize(Int(vectorLength)) }
        column += output.isVariable ? values : (values > 0 ? field(values) : 0)
        if nulls > 0 { column += field(nulls) }
        size.column = column
        let times = timesFrom > 0 ? 1 + varintSize(timesFrom) : (timeBytes > 0 ? field(timeBytes) : 0)
        size.featureColumn = field(column) + (n > 0 ? field(n) : 0) + times
        return size
    }

    /// Writes an output's FeatureColumn and Column headers, name and type:
    /// everything before its values.
    @inline(__always)
    static func writeHeader(_ output: ReadPlan.HotOutput, _ size: Sizes, names: UnsafeRawBufferPointer, _ w: inout ProtoWriter) {
        w.field(GetOnlineFeaturesResponseField.features, length: size.featureColumn)
        w.field(FeatureColumnField.values, length: size.column)
        w.field(ColumnField.name, length: output.nameEnd - output.nameStart)
        w.bytes(UnsafeRawBufferPointer(rebasing: names[output.nameStart..<output.nameEnd]))
        let (wireType, vectorLength) = output.type.wire
        w.varintField(ColumnField.type, UInt64(wireType.rawValue))
        if vectorLength > 0 { w.varintField(ColumnField.vectorLength, UInt64(vectorLength)) }
    }

    /// The Column field of a fixed-width type's packed values.
    @inline(__always)
    static func packedField(_ type: FeatureType) -> Int {
        switch type {
        case .int64: ColumnField.int64Values
        case .float32, .float32Vector: ColumnField.float32Values
        case .float64: ColumnField.float64Values
        case .bool: ColumnField.boolValues
        case .string: ColumnField.stringValues
        case .bytes: ColumnField.bytesValues
        }
    }

    /// The general path's cheaper twin for answers whose outputs are all
    /// fixed-width (float32, float64, bool, vectors) and whose rows are each
    /// either plain (`RowLookup.encodingRow`) or missing: no cell is
    /// resolved. The statuses, null rows and event times are the same for
    /// every output of a view, so each view's are encoded once and copied;
    /// values are copied from the rows column by column. Returns false,
    /// writing nothing, otherwise.
    /// Zeros standing in for a missing row's fixed part in `encodeFixed`, so
    /// its gather loops need no branch per row.
    private static let zeroRowBytes = 1 << 16
    nonisolated(unsafe) private static let zeroRow: UnsafeRawPointer = {
        let zeros = UnsafeMutableRawPointer.allocate(byteCount: zeroRowBytes, alignment: 16)
        zeros.initializeMemory(as: UInt8.self, repeating: 0, count: zeroRowBytes)
        return UnsafeRawPointer(zeros)
    }()

    private static func encodeFixed(_ rows: borrowing RowLookup, compactTimes: Bool, into out: inout ByteBuffer) -> Bool {
        let plan = rows.plan
        let n = rows.count
        let views = plan.views.count
        return plan.hotOutputs.withUnsafeBufferPointer { outputs in
            for output in outputs where output.isVariable || output.type == .int64
                || output.offset + output.width > Self.zeroRowBytes { return false }
            // Per view: (status, time, null) encodings are at most 1 + 10 + 5 bytes a row.
            let stride = n * 16
            let zeroRow = Self.zeroRow
            return withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: max(1, n * views)) { bases in
              withUnsafeTemporaryAllocation(byteCount: max(1, stride * views), alignment: 8) { encoded in
                withUnsafeTemporaryAllocation(of: (times: Int, nulls: Int).self, capacity: max(1, views)) { perView in
                  withUnsafeTemporaryAllocation(of: EncodingRow.self, capacity: max(1, n)) { viewRows in
                    for v in 0..<views {
                        rows.encodingRows(v, into: viewRows)
                        // This view's statuses at 0..<n, times from n, null rows from 11 * n.
                        let area = encoded.baseAddress! + v * stride
                        var times = n, nulls = 11 * n
                        for r in 0..<n {
                            let time: Int64
                            switch viewRows[r] {
                            case .plain(let bytes, let t):
                                bases[v * n + r] = bytes
                                area.storeBytes(of: FieldStatus.present.rawValue, toByteOffset: r, as: UInt8.self)
                                time = t
                            case .missing(let status, let t):
                                bases[v * n + r] = zeroRow  // its values encode as zeros
                                area.storeBytes(of: status.rawValue, toByteOffset: r, as: UInt8.self)
                                time = t
                                ProtoWriter.varint(UInt64(r), at: area, &nulls)
                            case .mixed:
                                return false
                            }
                            ProtoWriter.varint(UInt64(bitPattern: time), at: area, &times)
                        }
                        perView[v] = (times - n, nulls - 11 * n)
                    }
                    var total = 0
                    for (o, output) in outputs.enumerated() {
                        let size = sized(output, values: n * output.width, nulls: perView[output.view].nulls, rows: n,
                                         timeBytes: perView[output.view].times, timesFrom: timesFrom(output, at: o, compact: compactTimes))
                        total += 1 + varintSize(size.featureColumn) + size.featureColumn
                    }
                    plan.namesUTF8.withUnsafeBytes { names in
                        _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { raw in
                            var w = ProtoWriter(raw)
                            for (o, output) in outputs.enumerated() {
                                let v = output.view, width = output.width, offset = output.offset
                                let (timeBytes, nulls) = perView[v]
                                let area = UnsafeRawPointer(encoded.baseAddress! + v * stride)
                                let from = timesFrom(output, at: o, compact: compactTimes)
                                let size = sized(output, values: n * width, nulls: nulls, rows: n, timeBytes: timeBytes, timesFrom: from)
                                writeHeader(output, size, names: names, &w)
                                if n > 0 { w.field(packedField(output.type), length: n * width) }
                                // Stored little-endian, as protobuf's fixed32 and fixed64 are.
                                let values = w.reserve(n * width)
                                let viewBases = UnsafeBufferPointer(rebasing: bases[(v * n)..<(v * n + n)])
                                // One loop per width, so the gather of a column is a
                                // load and a store per row (a missing row reads zeros).
                                switch width {
                                case 4:
                                    for r in 0..<n {
                                        (values + 4 * r).storeBytes(of: viewBases[r].loadUnaligned(fromByteOffset: offset, as: UInt32.self),
                                                                    as: UInt32.self)
                                    }
                                case 8:
                                    for r in 0..<n {
                                        (values + 8 * r).storeBytes(of: viewBases[r].loadUnaligned(fromByteOffset: offset, as: UInt64.self),
                                                                    as: UInt64.self)
                                    }
                                case 1:
                                    for r in 0..<n {
                                        let value: UInt8 = viewBases[r].load(fromByteOffset: offset, as: UInt8.self) != 0 ? 1 : 0
                                        (values + r).storeBytes(of: value, as: UInt8.self)
                                    }
                                default:
                                    for r in 0..<n { (values + r * width).copyMemory(from: viewBases[r] + offset, byteCount: width) }
                                }
                                if nulls > 0 {
                                    w.field(ColumnField.nullRows, length: nulls)
                                    w.bytes(UnsafeRawBufferPointer(start: area + 11 * n, count: nulls))
                                }
                                if n > 0 {
                                    w.field(FeatureColumnField.statuses, length: n)
                                    w.bytes(UnsafeRawBufferPointer(start: area, count: n))
                                }
                                if from > 0 {
                                    w.varintField(FeatureColumnField.eventTimesFrom, UInt64(from))
                                } else if timeBytes > 0 {
                                    w.field(FeatureColumnField.eventTimeUs, length: timeBytes)
                                    w.bytes(UnsafeRawBufferPointer(start: area + n, count: timeBytes))
                                }
                            }
                            precondition(w.count == total, "the response encoder's sizes and writes disagree")
                            return total
                        }
                    }
                    return true
                  }
                }
              }
            }
        }
    }

    static func write(_ output: ReadPlan.HotOutput, _ size: Sizes, names: UnsafeRawBufferPointer, rows n: Int,
                      cells: UnsafeBufferPointer<ResolvedCell>, times: UnsafeBufferPointer<EncodedVarint>,
                      timeBytes: Int, timesFrom: Int = 0, _ w: inout ProtoWriter) {
        writeHeader(output, size, names: names, &w)

        switch output.type {
        case .int64:
            if size.values > 0 { w.field(ColumnField.int64Values, length: size.values) }
            for cell in cells {
                if let p = cell.value { w.varint(UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))) } else { w.byte(0) }
            }
        case .float32:
            // Stored little-endian, as protobuf's fixed32 is.
            if size.values > 0 { w.field(ColumnField.float32Values, length: size.values) }
            for cell in cells { w.word32(cell.value.map { $0.loadUnaligned(as: UInt32.self) } ?? 0) }
        case .float64:
            if size.values > 0 { w.field(ColumnField.float64Values, length: size.values) }
            for cell in cells { w.word64(cell.value.map { $0.loadUnaligned(as: UInt64.self) } ?? 0) }
        case .float32Vector:
            let width = output.width
            if size.values > 0 { w.field(ColumnField.float32Values, length: size.values) }
            for cell in cells {
                if let p = cell.value { w.bytes(UnsafeRawBufferPointer(start: p, count: width)) } else { w.zeros(width) }
            }
        case .bool:
            if size.values > 0 { w.field(ColumnField.boolValues, length: size.values) }
            for cell in cells {
                if let p = cell.value { w.byte(p.load(as: UInt8.self) != 0 ? 1 : 0) } else { w.byte(0) }
            }
        case .string, .bytes:
            let tag = output.type == .string ? ColumnField.stringValues : ColumnField.bytesValues
            for cell in cells {
                w.field(tag, length: cell.length)
                if let p = cell.value { w.bytes(UnsafeRawBufferPointer(start: p, count: cell.length)) }
            }
        }
        if size.nulls > 0 {
            w.field(ColumnField.nullRows, length: size.nulls)
            for r in 0..<n where cells[r].status != .present { w.varint(UInt64(r)) }
        }
        if n > 0 {
            w.field(FeatureColumnField.statuses, length: n)
            for cell in cells { w.byte(cell.status.rawValue) }
        }
        if timesFrom > 0 {
            w.varintField(FeatureColumnField.eventTimesFrom, UInt64(timesFrom))
        } else if timeBytes > 0 {
            w.field(FeatureColumnField.eventTimeUs, length: timeBytes)
            for time in times { w.encoded(time) }
        }
    }
}

/// A one-entity answer of a plan whose outputs are all fixed-width
/// float32, float64, bool or vector features, every value present, each
/// row's event time a varint of `timeWidth` bytes: all its bytes but the
/// values and the times are the same from request to request, so they are
/// encoded once and copied.
final class ResponseTemplate {
    let plan: ReadPlan
    let timeWidth: Int
    /// Whether each view's time is written once (`compact_event_times`).
    let compactTimes: Bool
    private let bytes: [UInt8]
    /// Per output, where its value and its time go in `bytes`; a time at
    /// -1 is not written (the output points at its view's first).
    private let valueAt: [Int]
    private let timeAt: [Int]

    /// Nil when the plan has an output of another type.
    init?(plan: ReadPlan, timeWidth: Int, compactTimes: Bool = false) {
        let outputs = plan.hotOutputs
        guard timeWidth >= 1, timeWidth <= 10, !outputs.isEmpty,
              outputs.allSatisfy({ !$0.isVariable && $0.type != .int64 }) else { return nil }
        self.plan = plan
        self.timeWidth = timeWidth
        self.compactTimes = compactTimes
        // Encode an answer with zero values and times of the right width,
        // then note where each output's value and time are.
        let zeros = [UInt8](repeating: 0, count: outputs.map(\.width).max() ?? 0)
        let time: UInt64 = timeWidth > 1 ? UInt64(1) << (7 * UInt64(timeWidth - 1)) : 0
        let encodedTime = EncodedVarint(time)
        var buffer = ByteBuffer()
        var valueAt: [Int] = [], timeAt: [Int] = []
        zeros.withUnsafeBytes { zero in
            plan.namesUTF8.withUnsafeBytes { names in
                var sizes: [OnlineResponseEncoder.Sizes] = []
                var total = 0
                let cell = ResolvedCell(value: zero.baseAddress, length: 0, status: .present)
                for (o, output) in outputs.enumerated() {
                    let from = OnlineResponseEncoder.timesFrom(output, at: o, compact: compactTimes)
                    let size = withUnsafePointer(to: cell) {
                        OnlineResponseEncoder.measure(output, cells: UnsafeBufferPointer(start: $0, count: 1), rows: 1,
                                                      timeBytes: timeWidth, timesFrom: from)
                    }
                    sizes.append(size)
                    let start = total
                    total += 1 + OnlineResponseEncoder.varintSize(size.featureColumn) + size.featureColumn
                    // The time is the output's last bytes; the value ends
                    // where the column does, before statuses and times.
                    timeAt.append(from > 0 ? -1 : total - timeWidth)
                    let columnEnd = start + 1 + OnlineResponseEncoder.varintSize(size.featureColumn)
                        + 1 + OnlineResponseEncoder.varintSize(size.column) + size.column
                    valueAt.append(columnEnd - output.width)
                }
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { raw in
                    var w = ProtoWriter(raw)
                    for (o, output) in outputs.enumerated() {
                        withUnsafePointer(to: cell) { c in
                            withUnsafePointer(to: encodedTime) { t in
                                OnlineResponseEncoder.write(output, sizes[o], names: names, rows: 1,
                                                            cells: UnsafeBufferPointer(start: c, count: 1),
                                                            times: UnsafeBufferPointer(start: t, count: 1), timeBytes: timeWidth,
                                                            timesFrom: OnlineResponseEncoder.timesFrom(output, at: o, compact: compactTimes), &w)
                            }
                        }
                    }
                    precondition(w.count == total)
                    return total
                }
            }
        }
        bytes = Array(buffer.readableBytesView)
        for o in outputs.indices {
            precondition(valueAt[o] >= 0 && valueAt[o] + outputs[o].width <= bytes.count)
            precondition(timeAt[o] < 0 || (valueAt[o] + outputs[o].width <= timeAt[o] && timeAt[o] + timeWidth <= bytes.count))
        }
        self.valueAt = valueAt
        self.timeAt = timeAt
    }

    /// Writes the answer for one entity: `rows[v]` is view v's row bytes
    /// (from `RowLookup.encodingRow`) and event time, `timeWidth` bytes long.
    func write(_ plan: ReadPlan, _ rows: UnsafeBufferPointer<(UnsafeRawPointer, EncodedVarint)>,
               into out: inout ByteBuffer) {
        precondition(plan === self.plan)
        bytes.withUnsafeBytes { blob in
            plan.hotOutputs.withUnsafeBufferPointer { outputs in
                valueAt.withUnsafeBufferPointer { valueAt in
                    timeAt.withUnsafeBufferPointer { timeAt in
                        _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: blob.count) { raw in
                            let base = raw.baseAddress!
                            base.copyMemory(from: blob.baseAddress!, byteCount: blob.count)
                            for o in outputs.indices {
                                let output = outputs[o]
                                let (row, time) = rows[output.view]
                                precondition(time.count == timeWidth)
                                let value = row + output.offset
                                switch output.width {
                                case 1: (base + valueAt[o]).storeBytes(of: value.load(as: UInt8.self) != 0 ? 1 : 0, as: UInt8.self)
                                case 4: (base + valueAt[o]).storeBytes(of: value.loadUnaligned(as: UInt32.self), as: UInt32.self)
                                case 8: (base + valueAt[o]).storeBytes(of: value.loadUnaligned(as: UInt64.self), as: UInt64.self)
                                default: (base + valueAt[o]).copyMemory(from: value, byteCount: output.width)
                                }
                                if timeAt[o] < 0 {
                                    continue
                                } else if timeWidth == 8 {
                                    // Event times in microseconds since 1970: 8 varint bytes until 2541.
                                    base.storeBytes(of: time.bytes.0.littleEndian, toByteOffset: timeAt[o], as: UInt64.self)
                                } else {
                                    withUnsafeBytes(of: time.bytes.0.littleEndian) { lo in
                                        withUnsafeBytes(of: time.bytes.1.littleEndian) { hi in
                                            for i in 0..<timeWidth {
                                                base.storeBytes(of: i < 8 ? lo[i] : hi[i - 8], toByteOffset: timeAt[o] + i, as: UInt8.self)
                                            }
                                        }
                                    }
                                }
                            }
                            return blob.count
                        }
                    }
                }
            }
        }
    }
}
