// OnlineResponseEncoder: writes a plinth.v1.GetOnlineFeaturesResponse
// straight from the packed rows in the memory map into the outbound
// buffer — no intermediate columns, no generated message structs. It is
// the hot path of every online read; OnlineResponseEncoderTests check that
// the generated decoder reads exactly what the domain's Column path gives.
//
// It resolves every cell once (value pointer, status, time), bounds the
// size, then writes through one raw pointer inside a single ByteBuffer call:
// per-byte ByteBuffer writes each pay a dynamic exclusivity check on the
// buffer's storage (measured with callgrind: ~300,000 instructions per
// 16-feature answer, most of them in swift_beginAccess).
// Message lengths are varints padded to the width their output's size bound
// needs (usually 1 byte), filled in when the field is done, so nothing is
// encoded twice.
import NIOCore
import PlinthFeatures

enum OnlineResponseEncoder {
    /// One cell, resolved once: where its value's bytes are (nil when
    /// missing), how many, its status, and its row's event time as an
    /// encoded varint (the same for every feature of a row, so encoded once
    /// per row). Trivial, so the write loops read it without reference counting.
    struct ResolvedCell {
        var value: UnsafeRawPointer?
        var length: Int
        var status: UInt8
        var time: EncodedVarint
    }

    /// A varint's bytes, little-end first, in a register.
    struct EncodedVarint {
        var bytes: (UInt64, UInt16) = (0, 0)
        var count: Int = 0

        init() {}

        init(_ value: UInt64) {
            var v = value, lo: UInt64 = 0, hi: UInt16 = 0, n = 0
            repeat {
                let byte = UInt64(v & 0x7F) | (v >= 0x80 ? 0x80 : 0)
                if n < 8 { lo |= byte << (8 * UInt64(n)) } else { hi |= UInt16(byte) << (8 * UInt16(n - 8)) }
                v >>= 7
                n += 1
            } while v != 0
            bytes = (lo, hi)
            count = n
        }
    }

    static func encode(_ rows: borrowing RowLookup, into out: inout ByteBuffer) {
        let plan = rows.plan
        let n = rows.count
        let views = plan.views.count
        plan.hotOutputs.withUnsafeBufferPointer { outputs in
            plan.namesUTF8.withUnsafeBytes { names in
                withUnsafeTemporaryAllocation(of: ResolvedCell.self, capacity: max(1, n * outputs.count)) { cells in
                  withUnsafeTemporaryAllocation(of: Int.self, capacity: max(1, outputs.count)) { outputBounds in
                    // Resolve each (view, row) once, then each feature's cell in it.
                    var bound = 0
                    for o in outputs.indices { outputBounds.initializeElement(at: o, to: 64 + (outputs[o].nameEnd - outputs[o].nameStart) + n * 26) }
                    for v in 0..<views {
                        for row in 0..<n {
                            let state = rows.row(v, row)
                            let time: EncodedVarint
                            switch state {
                            case .missing(_, let t): time = EncodedVarint(UInt64(bitPattern: t))
                            case .found(let p, _): time = EncodedVarint(UInt64(bitPattern: p.eventTime))
                            }
                            for o in outputs.indices where outputs[o].view == v {
                                let output = outputs[o]
                                let cell: ResolvedCell
                                switch rows.cell(o, in: state) {
                                case .value(let p, let at, let base):
                                    if output.isVariable, let bytes = p.variable(at: at, base: base) {
                                        cell = ResolvedCell(value: bytes.baseAddress, length: bytes.count, status: FieldStatus.present.rawValue, time: time)
                                    } else {
                                        cell = ResolvedCell(value: p.bytes.baseAddress.map { $0 + at }, length: output.type.fixedWidth,
                                                            status: FieldStatus.present.rawValue, time: time)
                                    }
                                case .missing(let status, _):
                                    cell = ResolvedCell(value: nil, length: 0, status: status.rawValue, time: time)
                                }
                                outputBounds[o] += max(cell.length, output.type.fixedWidth)
                                cells.initializeElement(at: o * n + row, to: cell)
                            }
                        }
                    }
                    for o in outputs.indices { bound += outputBounds[o] }
                    out.reserveCapacity(minimumWritableBytes: bound)
                    out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { raw in
                        var w = RawWriter(raw)
                        write(outputs, names: names, rows: n, cells: UnsafeBufferPointer(cells),
                              bounds: UnsafeBufferPointer(outputBounds), &w)
                        return w.count
                    }
                  }
                }
            }
        }
    }

    private static func write(_ outputs: UnsafeBufferPointer<ReadPlan.HotOutput>, names: UnsafeRawBufferPointer, rows n: Int,
                              cells: UnsafeBufferPointer<ResolvedCell>, bounds: UnsafeBufferPointer<Int>, _ w: inout RawWriter) {
        for o in outputs.indices {
            let output = outputs[o]
            // Every length inside this output is at most its bound, so its
            // placeholders need only that many varint bytes (1 for a small
            // answer instead of 5).
            w.lengthWidth = RawWriter.varintSize(UInt64(bounds[o]))
            let mine = UnsafeBufferPointer(rebasing: cells[(o * n)..<((o + 1) * n)])
            let featureColumn = w.beginField(1)          // features (FeatureColumn)
            let values = w.beginField(1)                 // FeatureColumn.values (Column)
            w.tag(1, 2)                                  // Column.name
            w.varint(UInt64(output.nameEnd - output.nameStart))
            w.bytes(UnsafeRawBufferPointer(rebasing: names[output.nameStart..<output.nameEnd]))
            let (wireType, vectorLength) = output.type.wire
            w.tag(2, 0); w.varint(UInt64(wireType.rawValue))
            if vectorLength > 0 { w.tag(3, 0); w.varint(UInt64(vectorLength)) }

            switch output.type {
            case .int64:
                let packed = w.beginField(4)
                for cell in mine {
                    if let p = cell.value { w.varint(UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))) } else { w.byte(0) }
                }
                w.endField(packed)
            case .float32:
                let packed = w.beginField(5)
                // Stored little-endian, as protobuf's fixed32 is.
                for cell in mine { w.word32(cell.value.map { $0.loadUnaligned(as: UInt32.self) } ?? 0) }
                w.endField(packed)
            case .float64:
                let packed = w.beginField(6)
                for cell in mine { w.word64(cell.value.map { $0.loadUnaligned(as: UInt64.self) } ?? 0) }
                w.endField(packed)
            case .float32Vector:
                let width = output.type.fixedWidth
                let packed = w.beginField(5)
                for cell in mine {
                    if let p = cell.value { w.bytes(UnsafeRawBufferPointer(start: p, count: width)) } else { w.zeros(width) }
                }
                w.endField(packed)
            case .bool:
                let packed = w.beginField(7)
                for cell in mine {
                    if let p = cell.value { w.byte(p.load(as: UInt8.self) != 0 ? 1 : 0) } else { w.byte(0) }
                }
                w.endField(packed)
            case .string, .bytes:
                let field = output.type == .string ? 8 : 9
                for cell in mine {
                    w.tag(field, 2)
                    w.varint(UInt64(cell.length))
                    if let p = cell.value { w.bytes(UnsafeRawBufferPointer(start: p, count: cell.length)) }
                }
            }
            let nulls = w.beginField(10)                 // Column.null_rows
            for row in 0..<n where mine[row].value == nil { w.varint(UInt64(row)) }
            w.endField(nulls)
            w.endField(values)

            let statuses = w.beginField(2)
            for cell in mine { w.byte(cell.status) }
            w.endField(statuses)
            let times = w.beginField(3)
            for cell in mine { w.encoded(cell.time) }
            w.endField(times)
            w.endField(featureColumn)
        }
    }
}

/// Appends protobuf wire bytes through a raw pointer. The caller sizes the
/// buffer (see `sizeBound`); every write stays inside it or traps.
struct RawWriter {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private(set) var count = 0
    /// Bytes reserved for each length placeholder; at least the size of the
    /// largest length that will be filled in.
    var lengthWidth = 5

    static func varintSize(_ value: UInt64) -> Int {
        var n = 1, v = value
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    init(_ buffer: UnsafeMutableRawBufferPointer) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    @inline(__always) mutating func byte(_ b: UInt8) {
        precondition(count < capacity)
        base.storeBytes(of: b, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always) mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            byte(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        byte(UInt8(v))
    }

    @inline(__always) mutating func tag(_ field: Int, _ wire: Int) { varint(UInt64(field << 3 | wire)) }

    @inline(__always) mutating func bytes(_ source: UnsafeRawBufferPointer) {
        precondition(count + source.count <= capacity)
        if let src = source.baseAddress { (base + count).copyMemory(from: src, byteCount: source.count) }
        count += source.count
    }

    @inline(__always) mutating func word32(_ value: UInt32) {
        precondition(count + 4 <= capacity)
        base.storeBytes(of: value, toByteOffset: count, as: UInt32.self)
        count += 4
    }

    @inline(__always) mutating func word64(_ value: UInt64) {
        precondition(count + 8 <= capacity)
        base.storeBytes(of: value, toByteOffset: count, as: UInt64.self)
        count += 8
    }

    /// Writes a varint encoded ahead of time.
    @inline(__always) mutating func encoded(_ varint: OnlineResponseEncoder.EncodedVarint) {
        precondition(count + 10 <= capacity || count + varint.count <= capacity)
        if count + 10 <= capacity {
            // Store whole words and advance by the real length: cheaper than a loop.
            base.storeBytes(of: varint.bytes.0.littleEndian, toByteOffset: count, as: UInt64.self)
            base.storeBytes(of: varint.bytes.1.littleEndian, toByteOffset: count + 8, as: UInt16.self)
            count += varint.count
        } else {
            for i in 0..<varint.count {
                byte(i < 8 ? UInt8(truncatingIfNeeded: varint.bytes.0 >> (8 * UInt64(i))) : UInt8(truncatingIfNeeded: varint.bytes.1 >> (8 * UInt16(i - 8))))
            }
        }
    }

    /// Lets `fill` write `n` bytes in place.
    @inline(__always) mutating func reserve(_ n: Int, _ fill: (UnsafeMutableRawPointer) -> Void) {
        precondition(count + n <= capacity)
        fill(base + count)
        count += n
    }

    @inline(__always) mutating func zeros(_ n: Int) {
        precondition(count + n <= capacity)
        (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: n)
        count += n
    }

    mutating func string(_ field: Int, _ text: String) {
        tag(field, 2)
        var text = text
        text.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes(UnsafeRawBufferPointer(utf8))
        }
    }

    /// Writes a length-delimited field's tag and a `lengthWidth`-byte
    /// length placeholder; returns where its content starts. The length is
    /// filled in by `endField` as a varint padded to that width (valid
    /// protobuf: continuation bits with zero payload).
    @inline(__always) mutating func beginField(_ field: Int) -> Int {
        tag(field, 2)
        precondition(count + lengthWidth <= capacity)
        count += lengthWidth
        return count
    }

    @inline(__always) mutating func endField(_ start: Int) {
        var length = UInt64(count - start)
        let width = lengthWidth
        precondition(RawWriter.varintSize(length) <= width, "a length outgrew its placeholder")
        for i in 0..<width {
            base.storeBytes(of: UInt8(truncatingIfNeeded: length & 0x7F) | (i < width - 1 ? 0x80 : 0),
                            toByteOffset: start - width + i, as: UInt8.self)
            length >>= 7
        }
    }
}
