// Property tests for every hand-written codec against the generated code:
// random messages encoded by the generated encoder must decode by hand to
// the same message, and the hand encoders must write exactly the bytes the
// generated encoder writes for the same message (the envelope's body length
// excepted: it is padded to five bytes on purpose, so it is compared as a
// message). Seeds are fixed, so a failure repeats.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthInference
import PlinthRegistry
import PlinthServing
import PlinthStorage
import PlinthWire
import SwiftProtobuf
import XCTest
@testable import PlinthServer

/// SplitMix64: small, fast, and the same sequence on every machine.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random protobuf values with the awkward cases overrepresented.
struct RandomValues {
    var rng: SeededGenerator

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func bool() -> Bool { Bool.random(using: &rng) }
    mutating func int64() -> Int64 {
        [0, 1, -1, .max, .min, 127, 128, -129, Int64.random(in: .min ... .max, using: &rng)][int(0...8)]
    }
    mutating func uint64() -> UInt64 { [0, 1, 127, 128, 16_383, 16_384, .max, UInt64.random(in: 0 ... .max, using: &rng)][int(0...7)] }
    mutating func double() -> Double { [0, -0.0, 1.5, -1e300, .pi, .infinity, Double.random(in: -1e6...1e6, using: &rng)][int(0...6)] }
    mutating func float() -> Float { [0, -0.0, 2.5, .greatestFiniteMagnitude, Float.random(in: -1e3...1e3, using: &rng)][int(0...4)] }
    mutating func string(max: Int = 12) -> String {
        let alphabet = Array("abcxyz:_09 éü€😀")
        return String((0..<int(0...max)).map { _ in alphabet[int(0...(alphabet.count - 1))] })
    }
    mutating func bytes(max: Int = 12) -> [UInt8] { (0..<int(0...max)).map { _ in UInt8(int(0...255)) } }

    /// A Column of a random type with `rows` values (vectors: rows * length).
    mutating func column(rows: Int) -> PBColumn {
        var c = PBColumn()
        c.name = bool() ? string() : ""
        switch int(0...6) {
        case 0: c.type = .int64; c.int64Values = (0..<rows).map { _ in int64() }
        case 1: c.type = .float32; c.float32Values = (0..<rows).map { _ in float() }
        case 2: c.type = .float64; c.float64Values = (0..<rows).map { _ in double() }
        case 3: c.type = .bool; c.boolValues = (0..<rows).map { _ in bool() }
        case 4: c.type = .string; c.stringValues = (0..<rows).map { _ in string() }
        case 5: c.type = .bytes; c.bytesValues = (0..<rows).map { _ in Data(bytes()) }
        default:
            let n = int(1...4)
            c.type = .float32Vector; c.vectorLength = UInt32(n); c.float32Values = (0..<(rows * n)).map { _ in float() }
        }
        if rows > 0, bool() { c.nullRows = (0..<int(1...rows)).map { _ in UInt32(int(0...(rows - 1))) } }
        return c
    }

    /// Bytes of fields no Plinth message has (numbers 900+): a newer
    /// client's, which every decoder must step over.
    mutating func unknownFields() -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<int(0...3) {
            let field = UInt64(900 + int(0...50))
            switch int(0...3) {
            case 0: out += varint(field << 3 | 0) + varint(uint64())
            case 1: out += varint(field << 3 | 1) + Array(repeating: 7, count: 8)
            case 2: let b = bytes(); out += varint(field << 3 | 2) + varint(UInt64(b.count)) + b
            default: out += varint(field << 3 | 5) + [1, 2, 3, 4]
            }
        }
        return out
    }

    func varint(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = [], v = value
        while v >= 0x80 { out.append(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }
        out.append(UInt8(v))
        return out
    }
}

/// A domain Column as the generated message would carry it.
func assertSame(_ got: Column, _ want: PBColumn, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let expected = try Column(wire: want)
    XCTAssertEqual(got.name, expected.name, what, file: file, line: line)
    XCTAssertEqual(got.type, expected.type, what, file: file, line: line)
    XCTAssertEqual(got.int64s, expected.int64s, what, file: file, line: line)
    XCTAssertEqual(got.float32s.map(\.bitPattern), expected.float32s.map(\.bitPattern), what, file: file, line: line)
    XCTAssertEqual(got.float64s.map(\.bitPattern), expected.float64s.map(\.bitPattern), what, file: file, line: line)
    XCTAssertEqual(got.bools, expected.bools, what, file: file, line: line)
    XCTAssertEqual(got.strings, expected.strings, what, file: file, line: line)
    XCTAssertEqual(got.bytes, expected.bytes, what, file: file, line: line)
    XCTAssertEqual(got.nullRows, expected.nullRows, what, file: file, line: line)
}

final class HandCodecPropertyTests: XCTestCase {
    func testEnvelopeDecoderReadsWhatTheGeneratedEncoderWrites() throws {
        var r = RandomValues(rng: SeededGenerator(seed: 1))
        for i in 0..<500 {
            var request = PBRequest()
            request.id = r.uint64()
            request.method = r.string(max: 40)
            request.body = Data(r.bytes(max: 300))
            var bytes: [UInt8] = try request.serializedBytes()
            bytes += r.unknownFields()
            let raw = try Envelope.decodeRawRequest(ByteBuffer(bytes: bytes))
            let generated = try PBRequest(serializedBytes: bytes)
            XCTAssertEqual(raw.id, generated.id, "case \(i)")
            XCTAssertEqual(raw.methodName, generated.method, "case \(i)")
            XCTAssertEqual(Array(raw.body.readableBytesView), Array(generated.body), "case \(i)")
            // A truncated frame is refused, never read past its end.
            if bytes.count > 1 {
                let cut = Array(bytes.prefix(r.int(1...(bytes.count - 1))))
                if (try? PBRequest(serializedBytes: cut)) == nil {
                    XCTAssertThrowsError(try Envelope.decodeRawRequest(ByteBuffer(bytes: cut)), "case \(i) cut")
                }
            }
        }
    }

    func testEnvelopeEncoderWritesTheGeneratedMessage() throws {
        var r = RandomValues(rng: SeededGenerator(seed: 2))
        for i in 0..<500 {
            var want = PBResponse()
            want.id = r.uint64()
            // An all-default status is no status: the server writes none.
            let code = r.bool() ? r.int(0...16) : 0, message = r.bool() ? r.string(max: 30) : ""
            if code != 0 || !message.isEmpty {
                want.status.code = PBStatus.Code(rawValue: code) ?? .unknown
                want.status.message = message
            }
            // Now and then a body whose length needs a three-byte varint.
            want.body = i % 25 == 0 ? Data(repeating: UInt8(i % 256), count: r.int(16_384...70_000)) : Data(r.bytes(max: 300))
            want.more = r.bool()
            var out = ByteBuffer()
            Envelope.writeResponse(id: want.id, code: Int(want.status.code.rawValue), message: want.status.message,
                                   more: want.more, into: &out) { $0.writeBytes(want.body) }
            let length = try XCTUnwrap(out.readInteger(as: UInt32.self))
            XCTAssertEqual(Int(length), out.readableBytes)
            let hand = Array(out.readableBytesView)
            XCTAssertEqual(try PBResponse(serializedBytes: hand), want, "case \(i)")
            // Byte for byte but for the body's length, padded to five bytes.
            let generated: [UInt8] = try want.serializedBytes()
            let padding = want.body.isEmpty ? 0 : 5 - ProtoWriter.varintSize(UInt64(want.body.count))
            XCTAssertEqual(hand.count, generated.count + padding, "case \(i)")
            if padding == 0 { XCTAssertEqual(hand, generated, "case \(i)") }
        }
    }

    func testOnlineRequestDecoderReadsWhatTheGeneratedEncoderWrites() throws {
        var r = RandomValues(rng: SeededGenerator(seed: 3))
        var storage: [Column] = []
        for i in 0..<500 {
            var request = PBGetOnlineFeaturesRequest()
            request.features = (0..<r.int(0...5)).map { _ in r.string() }
            if r.bool() { request.featureService = r.string() }
            let rows = r.int(0...6)
            request.entities = (0..<r.int(0...3)).map { _ in r.column(rows: rows) }
            request.fullFeatureNames = r.bool()
            request.compactEventTimes = r.bool()
            var bytes: [UInt8] = try request.serializedBytes()
            bytes += r.unknownFields()
            let body = ByteBuffer(bytes: bytes)
            let decoded = try OnlineRequestDecoder.decode(body, reusing: &storage)
            XCTAssertEqual(try decoded.references(), request.features, "case \(i)")
            XCTAssertEqual(decoded.service, request.featureService, "case \(i)")
            XCTAssertEqual(decoded.fullFeatureNames, request.fullFeatureNames, "case \(i)")
            XCTAssertEqual(decoded.compactEventTimes, request.compactEventTimes, "case \(i)")
            XCTAssertEqual(decoded.entities.count, request.entities.count, "case \(i)")
            for (got, want) in zip(decoded.entities, request.entities) { try assertSame(got, want, "case \(i)") }
        }
    }

    func testPredictDecoderReadsWhatTheGeneratedEncoderWrites() throws {
        var r = RandomValues(rng: SeededGenerator(seed: 4))
        var columns: [Column] = []
        for i in 0..<500 {
            var request = PBPredictRequest()
            request.modelName = r.string()
            if r.bool() { request.modelVersion = String(r.int(0...40)) }
            if r.bool() { request.id = r.string() }
            let rows = r.int(0...5)
            request.inputs = (0..<r.int(0...3)).map { _ in r.column(rows: rows) }
            request.returnFeatures = r.bool()
            request.margin = r.bool()
            let withParameters = r.int(0...4) == 0
            if withParameters { request.parameters["p"] = PBInferParameter.with { $0.int64Param = 3 } }
            var bytes: [UInt8] = try request.serializedBytes()
            bytes += r.unknownFields()
            let call = bytes.withUnsafeBytes { RawPredictCall.parse($0, columns: &columns) }
            guard !withParameters else {
                XCTAssertNil(call, "case \(i): parameters go to the general path, which refuses them")
                continue
            }
            let parsed = try XCTUnwrap(call, "case \(i)")
            func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
            XCTAssertEqual(text(parsed.modelName), request.modelName, "case \(i)")
            XCTAssertEqual(text(parsed.modelVersion), request.modelVersion, "case \(i)")
            XCTAssertEqual(text(parsed.id), request.id, "case \(i)")
            XCTAssertEqual(parsed.returnFeatures, request.returnFeatures, "case \(i)")
            XCTAssertEqual(parsed.margin, request.margin, "case \(i)")
            XCTAssertEqual(columns.count, request.inputs.count, "case \(i)")
            for (got, want) in zip(columns, request.inputs) { try assertSame(got, want, "case \(i)") }
        }
    }

    func testPredictResponseWriterWritesTheGeneratedBytes() throws {
        let path = NSTemporaryDirectory() + "plinth-codec-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let env = try Environment(path: path)
        defer { env.close() }
        let store = try OnlineStore(environment: env, catalog: try Catalog(environment: env))
        var r = RandomValues(rng: SeededGenerator(seed: 5))
        let ids = PredictionIDs()
        for i in 0..<200 {
            let classes = r.int(0...3)
            let model = try ModelLoader.load(data: Array("""
            {"plinth_model": "linear", "format_version": 1, "n_features": 2,
             "coefficients": [\((0..<max(1, classes)).map { _ in "[1, 2]" }.joined(separator: ", "))],
             "intercepts": [\((0..<max(1, classes)).map { _ in "0" }.joined(separator: ", "))],
             "output": "identity"}
            """.utf8))
            var signature = Signature(requestFields: [SignatureField(name: "a", type: "float64"), SignatureField(name: "b", type: "float64")])
            if classes > 1, r.bool() { signature.outputs = (0..<classes).map { SignatureField(name: "out_\($0)", type: "float64") } }
            let served = try ServedModel(name: r.bool() ? "m" : "a-longer-model-name", version: UInt64(r.int(0...300)),
                                         format: "plinth", model: model, signature: signature, store: store)
            let rows = r.int(0...20)
            let width = served.outputNames.count
            let values = (0..<(rows * width)).map { _ in r.double() }
            let id = r.bool() ? r.string() : ""
            let firstRow = r.bool() ? r.int(0...100_000) : 0
            var out = ByteBuffer()
            try values.withUnsafeBufferPointer {
                try PredictResponseWriter.write(served, rows: rows, values: $0, features: nil, id: id, firstRow: firstRow,
                                                ids: ids, into: &out)
            }
            let hand = Array(out.readableBytesView)
            let decoded = try PBPredictResponse(serializedBytes: hand)
            var want = PBPredictResponse()
            want.modelName = served.name
            want.modelVersion = served.version
            want.id = id
            want.rows = UInt32(rows)
            want.outputs = served.outputNames.enumerated().map { k, name in
                PBColumn.with {
                    $0.name = name
                    $0.type = .float64
                    $0.float64Values = (0..<rows).map { values[$0 * width + k] }
                }
            }
            want.predictionIds = decoded.predictionIds  // fresh ids: their format is checked below
            want.firstRow = UInt64(firstRow)
            XCTAssertEqual(decoded.outputs.map { $0.float64Values.map(\.bitPattern) }, want.outputs.map { $0.float64Values.map(\.bitPattern) })
            XCTAssertEqual(decoded.predictionIds.count, rows, "case \(i)")
            XCTAssertTrue(decoded.predictionIds.allSatisfy { $0.utf8.count == PredictionIDs.length })
            XCTAssertEqual(hand, try want.serializedBytes() as [UInt8], "case \(i)")
        }
    }

    func testOnlineResponseEncoderWritesTheGeneratedBytes() throws {
        try withTestStore("""
        project: prop
        entities:
          - {name: user, join_key: user_id, type: int64}
        feature_views:
          - name: everything
            entities: [user]
            ttl: 1h
            features:
              - {name: i, type: int64}
              - {name: f, type: float32}
              - {name: d, type: float64}
              - {name: b, type: bool}
              - {name: s, type: string}
              - {name: y, type: bytes}
              - {name: v, type: "float32[2]"}
          - name: other
            entities: [user]
            features:
              - {name: g, type: float64}
        """) { store in
            var r = RandomValues(rng: SeededGenerator(seed: 6))
            let now = currentMicros()
            let users = 40
            var columns: [Column] = []
            func col(_ name: String, _ type: FeatureType, _ fill: (inout Column) -> Void) {
                var c = Column(name: name, type: type)
                fill(&c)
                if r.bool() { c.nullRows = Set((0..<r.int(1...10)).map { _ in UInt32(r.int(0...(users - 1))) }).sorted() }
                columns.append(c)
            }
            var ids = Column(name: "user_id", type: .int64); ids.int64s = (0..<users).map(Int64.init)
            columns.append(ids)
            col("i", .int64) { c in c.int64s = (0..<users).map { _ in r.int64() } }
            col("f", .float32) { c in c.float32s = (0..<users).map { _ in r.float() } }
            col("d", .float64) { c in c.float64s = (0..<users).map { _ in r.double() } }
            col("b", .bool) { c in c.bools = (0..<users).map { _ in r.bool() } }
            col("s", .string) { c in c.strings = (0..<users).map { _ in r.string() } }
            col("y", .bytes) { c in c.bytes = (0..<users).map { _ in Data(r.bytes()) } }
            col("v", .float32Vector(length: 2)) { c in c.float32s = (0..<(2 * users)).map { _ in r.float() } }
            // Times from the epoch to now; some outside the one-hour TTL.
            let times = (0..<users).map { _ in [now, now - 1, 0, 1 << 40, now - 7_200_000_000][r.int(0...4)] }
            _ = try store.push(view: "everything", columns: columns, eventTimes: times)
            var g = Column(name: "g", type: .float64); g.float64s = (0..<users).map { _ in r.double() }
            _ = try store.push(view: "other", columns: [ids, g], eventTimes: (0..<users).map { _ in Int64(r.int(0...1_000_000)) })

            let all = ["everything:i", "everything:f", "everything:d", "everything:b", "everything:s", "everything:y",
                       "everything:v", "other:g"]
            let plans = ConnectionPlanCache()
            for i in 0..<150 {
                let refs = (0..<r.int(1...6)).map { _ in all[r.int(0...(all.count - 1))] }
                guard Set(refs).count == refs.count else { continue }
                let full = r.bool(), compact = r.bool()
                var keys = Column(name: "user_id", type: .int64)
                keys.int64s = (0..<r.int(1...(i % 10 == 0 ? 300 : 5))).map { _ in Int64(r.int(-2...(users + 2))) }
                let expected = try store.read(features: refs, service: nil, entities: [keys], fullFeatureNames: full, now: now)
                let plan = try store.plan(features: refs, service: nil, fullFeatureNames: full)
                let hand = try store.lookup(plan, entities: [keys], now: now) { rows in
                    var out = ByteBuffer()
                    OnlineResponseEncoder.encode(rows, templates: plans, compactTimes: compact, into: &out)
                    return Array(out.readableBytesView)
                }
                // The generated message for the same answer.
                var want = PBGetOnlineFeaturesResponse()
                var firstOfView: [String: Int] = [:]
                for (o, result) in expected.enumerated() {
                    var column = PBFeatureColumn()
                    column.values = result.values.wire
                    column.statuses = result.statuses.map { PBFieldStatus(rawValue: Int($0.rawValue)) ?? .invalid }
                    let view = String(refs[o].split(separator: ":")[0])
                    if compact, let first = firstOfView[view] {
                        column.eventTimesFrom = UInt32(first + 1)
                    } else {
                        column.eventTimeUs = result.eventTimes
                        firstOfView[view] = firstOfView[view] ?? o
                    }
                    want.features.append(column)
                }
                XCTAssertEqual(hand, try want.serializedBytes() as [UInt8], "case \(i): \(refs), full \(full), compact \(compact)")
            }
        }
    }
}
