// Codecs: the two wire protocols plinth-bench reads with. Each turns a
// batch of entity keys into one request's bytes and finds the end of one
// answer in received bytes; the driver (Driver.swift) does the rest, the
// same way for both. Requests are encoded by hand into a reused buffer on
// both sides, so neither pays for an encoder the other does not have.
import PlinthWire
import SwiftProtobuf

/// Where one answer ends, and which request it answers.
struct Answer {
    let length: Int
    /// The request id the answer carries; nil for a protocol whose answers
    /// come back in request order (RESP).
    let id: UInt64?
    /// For a codec that counts error answers instead of stopping the run:
    /// what the error answer said (nil for a good answer).
    var error: String? = nil
}

/// One protocol's online read, as the driver needs it.
protocol ReadCodec {
    /// What the results call this system ("plinth", "redis").
    var system: String { get }
    /// Prepares a new connection (handshake), before any timing.
    func open(_ socket: Socket) throws
    /// Appends the request for `keys`, tagged `id`, to `out`.
    func appendRequest(id: UInt64, keys: UnsafeBufferPointer<Int64>, to out: inout [UInt8])
    /// Finds one whole answer at the start of `bytes`; nil when more bytes are needed.
    /// Throws on an error answer.
    func parseAnswer(_ bytes: UnsafeRawBufferPointer) throws -> Answer?
    /// Checks every value of an answer (as parseAnswer delimited it) against the dataset.
    func verify(_ answer: UnsafeRawBufferPointer, keys: UnsafeBufferPointer<Int64>) throws
}

// MARK: Protobuf by hand (PlinthWire's ProtoReader and ProtoWriter)

/// Frames a protobuf message as a Plinth Request (4-byte big-endian length).
func plinthFrame(id: UInt64, method: String, body: [UInt8]) throws -> [UInt8] {
    var envelope = PBRequest()
    envelope.id = id
    envelope.method = method
    envelope.body = .init(body)
    let payload: [UInt8] = try envelope.serializedBytes()
    let n = UInt32(payload.count)
    return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload
}

/// Splits one Plinth Response frame at the start of `bytes`: nil when it is
/// not all there yet; throws when its status is not OK.
func parsePlinthFrame(_ bytes: UnsafeRawBufferPointer) throws -> (length: Int, id: UInt64, body: Range<Int>)? {
    guard let frame = try splitPlinthFrame(bytes) else { return nil }
    if frame.code != 0 { throw BenchError("plinthd answered request \(frame.id) with status \(frame.code): \(frame.message)") }
    return (frame.length, frame.id, frame.body)
}

/// One Response frame's parts, its status included.
struct PlinthFrame {
    let length: Int
    let id: UInt64
    let code: UInt64
    let message: String
    let body: Range<Int>
}

/// Splits one Plinth Response frame at the start of `bytes`: nil when it is
/// not all there yet; throws only when the frame is malformed.
func splitPlinthFrame(_ bytes: UnsafeRawBufferPointer) throws -> PlinthFrame? {
    guard bytes.count >= 4 else { return nil }
    let length = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
    guard bytes.count >= 4 + length else { return nil }
    var reader = ProtoReader(UnsafeRawBufferPointer(rebasing: bytes[4..<(4 + length)]))
    var id: UInt64 = 0, code: UInt64 = 0
    var message = ""
    var body = 0..<0
    do {
        while !reader.atEnd {
            switch try reader.key() {
            case (ResponseField.id, WireType.varint): id = try reader.varint()
            case (ResponseField.body, WireType.lengthDelimited):
                let range = try reader.lengthDelimitedRange()
                body = (4 + range.lowerBound)..<(4 + range.upperBound)
            case (ResponseField.status, WireType.lengthDelimited):
                let status = try PBStatus(serializedBytes: Array(try reader.lengthDelimited()))
                code = UInt64(status.code.rawValue)
                message = status.message
            case (_, let wire): try reader.skip(wire: wire)
            }
        }
    } catch let error as ProtoDecodingError {
        throw BenchError("plinthd sent a malformed Response frame: \(error.reason)")
    }
    return PlinthFrame(length: 4 + length, id: id, code: code, message: message, body: body)
}

/// Sends a Hello on a new connection and consumes its answer.
func plinthHello(_ socket: Socket) throws {
    var hello = PBHelloRequest()
    hello.protocolVersion = PlinthProtocol.version
    hello.clientName = "plinth-bench"
    try socket.send(plinthFrame(id: 1, method: Method.hello, body: hello.serializedBytes()))
    while try parsePlinthFrame(socket.unread) == nil { try socket.receiveMore() }
    guard let (length, _, _) = try parsePlinthFrame(socket.unread) else { return }
    socket.consume(length)
}

// MARK: Plinth

/// The hand encoder of the Plinth read codecs: a framed Request whose body
/// is some fields that are the same in every request, then one Column of
/// int64 keys (name, type, packed values).
struct KeyColumnRequestEncoder: Sendable {
    private let method: [UInt8]
    /// The body's fixed fields, encoded.
    private let fixedFields: [UInt8]
    /// The key column's field number in the body.
    private let columnField: Int
    private let keyColumn: [UInt8]

    init(method: String, fixedFields: [UInt8], columnField: Int, keyColumn: String) {
        self.method = Array(method.utf8)
        self.fixedFields = fixedFields
        self.columnField = columnField
        self.keyColumn = Array(keyColumn.utf8)
    }

    func append(id: UInt64, keys: UnsafeBufferPointer<Int64>, to out: inout [UInt8]) {
        var packed = 0
        for k in keys { packed += ProtoWriter.varintSize(UInt64(bitPattern: k)) }
        // Column { name; type = INT64; int64_values (packed) }
        let column = ProtoWriter.fieldSize(ColumnField.name, length: keyColumn.count) + 2
            + ProtoWriter.fieldSize(ColumnField.int64Values, length: packed)
        let body = fixedFields.count + ProtoWriter.fieldSize(columnField, length: column)
        // Request { id; method; body }
        let envelope = 1 + ProtoWriter.varintSize(id) + ProtoWriter.fieldSize(RequestField.method, length: method.count)
            + ProtoWriter.fieldSize(RequestField.body, length: body)
        ProtoWriter.append(to: &out, bound: 4 + envelope) { w in
            w.word32(UInt32(envelope).bigEndian)
            w.varintField(RequestField.id, id)
            method.withUnsafeBytes { w.bytesField(RequestField.method, $0) }
            w.field(RequestField.body, length: body)
            fixedFields.withUnsafeBytes { w.bytes($0) }
            w.field(columnField, length: column)
            keyColumn.withUnsafeBytes { w.bytesField(ColumnField.name, $0) }
            w.varintField(ColumnField.type, UInt64(PBValueType.int64.rawValue))
            w.field(ColumnField.int64Values, length: packed)
            for k in keys { w.varint(UInt64(bitPattern: k)) }
        }
    }
}

/// A Plinth codec whose requests are fixed fields and one column of keys.
protocol KeyColumnCodec: ReadCodec {
    var encoder: KeyColumnRequestEncoder { get }
}

extension KeyColumnCodec {
    var system: String { "plinth" }

    func open(_ socket: Socket) throws { try plinthHello(socket) }

    func appendRequest(id: UInt64, keys: UnsafeBufferPointer<Int64>, to out: inout [UInt8]) {
        encoder.append(id: id, keys: keys, to: &out)
    }
}

/// GetOnlineFeatures for the bench view's features and one int64 join key column.
struct PlinthReadCodec: KeyColumnCodec {
    let features: Int
    /// GetOnlineFeaturesRequest { features = 1 and compact_event_times = 5 (the same in
    /// every request); entities = 3 }
    let encoder: KeyColumnRequestEncoder

    /// Whether requests set compact_event_times (one time per row, as
    /// the Redis rows hold it).
    let compactEventTimes: Bool

    init(features: Int, compactEventTimes: Bool = true) throws {
        self.features = features
        self.compactEventTimes = compactEventTimes
        var fixed = PBGetOnlineFeaturesRequest()
        fixed.features = Dataset.references(features: features)
        fixed.compactEventTimes = compactEventTimes
        encoder = KeyColumnRequestEncoder(method: Method.getOnlineFeatures, fixedFields: try fixed.serializedBytes(),
                                          columnField: GetOnlineFeaturesRequestField.entities, keyColumn: Dataset.entity)
        try selfCheck()
    }

    func parseAnswer(_ bytes: UnsafeRawBufferPointer) throws -> Answer? {
        guard let (length, id, _) = try parsePlinthFrame(bytes) else { return nil }
        return Answer(length: length, id: id)
    }

    func verify(_ answer: UnsafeRawBufferPointer, keys: UnsafeBufferPointer<Int64>) throws {
        guard let (_, id, body) = try parsePlinthFrame(answer) else { throw BenchError("verify: incomplete frame") }
        let response = try PBGetOnlineFeaturesResponse(serializedBytes: Array(answer[body]))
        guard response.features.count == features else {
            throw BenchError("request \(id): \(response.features.count) feature columns, asked for \(features)")
        }
        for (j, column) in response.features.enumerated() {
            guard column.statuses.count == keys.count, column.values.float32Values.count == keys.count else {
                throw BenchError("request \(id): feature \(j) has \(column.statuses.count) rows for \(keys.count) keys")
            }
            // One view: its first column carries the times, the rest point there.
            guard j == 0 || !compactEventTimes ? column.eventTimeUs.count == keys.count && column.eventTimesFrom == 0
                                               : column.eventTimeUs.isEmpty && column.eventTimesFrom == 1 else {
                throw BenchError("request \(id): feature \(j) has \(column.eventTimeUs.count) event times and event_times_from \(column.eventTimesFrom) (compact_event_times \(compactEventTimes))")
            }
            for (r, key) in keys.enumerated() {
                guard column.statuses[r] == .present else {
                    throw BenchError("request \(id): entity \(key) feature f\(j) is \(column.statuses[r]) (was the data loaded?)")
                }
                guard column.values.float32Values[r] == Dataset.value(key, j) else {
                    throw BenchError("request \(id): entity \(key) f\(j) = \(column.values.float32Values[r]), expected \(Dataset.value(key, j))")
                }
            }
        }
    }

    /// Decodes a hand-encoded request with the generated code, so an
    /// encoding mistake stops the run instead of skewing it.
    private func selfCheck() throws {
        let keys: [Int64] = [0, 1, 127, 128, 999_999, 1 << 40]
        var bytes: [UInt8] = []
        keys.withUnsafeBufferPointer { appendRequest(id: 300, keys: $0, to: &bytes) }
        let envelope = try PBRequest(serializedBytes: Array(bytes[4...]))
        let request = try PBGetOnlineFeaturesRequest(serializedBytes: envelope.body)
        guard bytes.count - 4 == Int(UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])),
              envelope.id == 300, envelope.method == Method.getOnlineFeatures,
              request.features == Dataset.references(features: features), request.compactEventTimes == compactEventTimes,
              request.entities.count == 1,
              request.entities[0].name == Dataset.entity, request.entities[0].type == .int64,
              request.entities[0].int64Values == keys
        else { throw BenchError("internal: the hand-encoded GetOnlineFeatures request does not decode as intended") }
    }
}

// MARK: Redis

/// GET (one key) or MGET (several) of `bench:<id>` over RESP2.
struct RedisReadCodec: ReadCodec {
    let features: Int
    let rowSize: Int
    var system: String { "redis" }
    static let keyPrefix = Array("bench:".utf8)

    init(features: Int) {
        self.features = features
        rowSize = Dataset.packedRowSize(features: features)
    }

    func open(_ socket: Socket) throws {
        try socket.send(Array("*1\r\n$4\r\nPING\r\n".utf8))
        while socket.unread.count < 7 { try socket.receiveMore() }
        guard Array(socket.unread[0..<7]) == Array("+PONG\r\n".utf8) else { throw BenchError("redis did not answer PING") }
        socket.consume(7)
    }

    func appendRequest(id: UInt64, keys: UnsafeBufferPointer<Int64>, to out: inout [UInt8]) {
        if keys.count == 1 {
            out.append(contentsOf: [0x2A, 0x32, 0x0D, 0x0A, 0x24, 0x33, 0x0D, 0x0A, 0x47, 0x45, 0x54, 0x0D, 0x0A]) // *2 $3 GET
        } else {
            out.append(UInt8(ascii: "*"))
            appendDecimal(keys.count + 1, to: &out)
            out.append(contentsOf: [0x0D, 0x0A, 0x24, 0x34, 0x0D, 0x0A, 0x4D, 0x47, 0x45, 0x54, 0x0D, 0x0A]) // $4 MGET
        }
        for k in keys { Self.appendKey(k, to: &out) }
    }

    /// Appends `$<n>\r\nbench:<id>\r\n`.
    static func appendKey(_ key: Int64, to out: inout [UInt8]) {
        var digits = 1, v = key
        while v >= 10 { v /= 10; digits += 1 }
        out.append(UInt8(ascii: "$"))
        appendDecimal(keyPrefix.count + digits, to: &out)
        out.append(0x0D); out.append(0x0A)
        out.append(contentsOf: keyPrefix)
        appendDecimal(Int(key), to: &out)
        out.append(0x0D); out.append(0x0A)
    }

    func parseAnswer(_ bytes: UnsafeRawBufferPointer) throws -> Answer? {
        var offset = 0
        guard let first = bytes.first else { return nil }
        if first == UInt8(ascii: "*") {
            offset = 1
            guard let count = readLine(bytes, &offset) else { return nil }
            for _ in 0..<count { guard try bulk(bytes, &offset) else { return nil } }
        } else {
            guard try bulk(bytes, &offset) else { return nil }
        }
        return Answer(length: offset, id: nil)
    }

    func verify(_ answer: UnsafeRawBufferPointer, keys: UnsafeBufferPointer<Int64>) throws {
        var offset = 0
        if answer.first == UInt8(ascii: "*") {
            offset = 1
            guard readLine(answer, &offset) == keys.count else { throw BenchError("MGET answered a different number of keys") }
        }
        for key in keys {
            offset += 1
            _ = readLine(answer, &offset)
            for j in 0..<features {
                let at = offset + Dataset.packedOffset(j, features: features)
                let got = Float(bitPattern: UInt32(littleEndian: answer.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                guard got == Dataset.value(key, j) else {
                    throw BenchError("redis: bench:\(key) f\(j) = \(got), expected \(Dataset.value(key, j))")
                }
            }
            offset += rowSize + 2
        }
    }

    /// Reads a bulk string of one packed row; false when incomplete.
    private func bulk(_ bytes: UnsafeRawBufferPointer, _ offset: inout Int) throws -> Bool {
        guard offset < bytes.count else { return false }
        let kind = bytes[offset]
        if kind == UInt8(ascii: "-") {
            var end = offset
            while end < bytes.count && bytes[end] != 0x0D { end += 1 }
            throw BenchError("redis answered an error: \(String(decoding: bytes[(offset + 1)..<end], as: UTF8.self))")
        }
        guard kind == UInt8(ascii: "$") else { throw BenchError("redis sent '\(Character(Unicode.Scalar(kind)))' where a bulk string belongs") }
        offset += 1
        guard let length = readLine(bytes, &offset) else { return false }
        guard length == rowSize else {
            throw BenchError(length < 0 ? "a key is missing from redis (was the data loaded?)" : "redis returned \(length) bytes for a \(rowSize)-byte row")
        }
        guard offset + length + 2 <= bytes.count else { return false }
        offset += length + 2
        return true
    }

    /// Reads a decimal number ending in CRLF; nil when incomplete.
    private func readLine(_ bytes: UnsafeRawBufferPointer, _ offset: inout Int) -> Int? {
        var value = 0, negative = false, i = offset
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x0D {
                guard i + 1 < bytes.count else { return nil }
                offset = i + 2
                return negative ? -value : value
            }
            if b == UInt8(ascii: "-") { negative = true } else { value = value * 10 + Int(b &- 0x30) }
            i += 1
        }
        return nil
    }
}

@inline(__always)
func appendDecimal(_ value: Int, to out: inout [UInt8]) {
    if value >= 10 { appendDecimal(value / 10, to: &out) }
    out.append(UInt8(0x30 + value % 10))
}
