// OnlineRequestDecoder: parses a plinth.v1.GetOnlineFeaturesRequest by hand.
//
// The generated decoder builds one String per feature reference on every
// request (measured: ~14,000 instructions for 16 references, the largest
// cost of a one-entity read after NIO itself). This parser keeps the
// references as the bytes they arrived as — the run of reference and
// service records in the body, not even copied — which key the plan caches
// (the connection's last plan by memcmp, then the shared one); the strings
// are built only when a plan is not cached. Entity columns are
// decoded into domain Columns directly. It accepts everything protobuf
// allows: fields in any order, repeated scalars packed or not, unknown
// fields skipped.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthWire

struct OnlineRequest {
    /// The request body the ranges below point into.
    let body: ByteBuffer
    /// The records (tag, length, bytes) of the feature references and the
    /// service, in order, when they are one run in `body` (what every
    /// encoder writes): `keyStart..<keyEnd`. They name the requested
    /// features unambiguously, so they key the plan caches as they are.
    var keyStart = 0
    var keyEnd = 0
    /// The same records copied out, when other fields came between them.
    var scattered: [UInt8]?
    var fullFeatureNames = false
    /// `compact_event_times`: each view's event times once in the answer.
    var compactEventTimes = false
    var entities: [Column] = []

    /// Calls `body` with the references' and service's records.
    @inline(__always)
    func withKeyRecords<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        if let scattered { return try scattered.withUnsafeBytes(body) }
        return try self.body.withUnsafeReadableBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[keyStart..<keyEnd]))
        }
    }

    /// Whether `key` (a `planKey`) is this request's.
    @inline(__always)
    func hasPlanKey(_ key: [UInt8]) -> Bool {
        withKeyRecords { records in
            key.withUnsafeBytes { k in
                k.count == records.count + 1 && k[0] == (fullFeatureNames ? 1 : 0)
                    && (records.count == 0 || memcmp(k.baseAddress! + 1, records.baseAddress!, records.count) == 0)
            }
        }
    }

    /// Identifies the requested features: the naming flag, then the
    /// references' and service's records.
    var planKey: [UInt8] {
        withKeyRecords { records in
            var key: [UInt8] = []
            key.reserveCapacity(records.count + 1)
            key.append(fullFeatureNames ? 1 : 0)
            key.append(contentsOf: records)
            return key
        }
    }

    /// The references and the service (the last one given), validated;
    /// built only when a plan is not cached.
    func names() throws -> (features: [String], service: String) {
        try withKeyRecords { records in
            var reader = ProtoReader(records)
            var features: [String] = []
            var service = ""
            while !reader.atEnd {
                let isReference = try reader.key().field == GetOnlineFeaturesRequestField.features
                let bytes = try reader.lengthDelimited()
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    throw OnlineRequestDecoder.malformed(isReference ? "a feature reference is not valid UTF-8" : "feature_service is not valid UTF-8")
                }
                if isReference { features.append(text) } else { service = text }
            }
            return (features, service)
        }
    }

    /// The references as strings.
    func references() throws -> [String] { try names().features }

    /// The service named, or "".
    var service: String { (try? names().service) ?? "" }
}

/// One connection's last plan, found again by comparing the request's raw
/// reference bytes (no hashing, no lock) before the shared cache is asked.
/// Clients send the same features request after request.
///
/// Threading: used on its connection's event loop only.
final class ConnectionPlanCache {
    /// The entity columns of the connection's requests, parsed into the
    /// same storage each time (no arrays allocated per request).
    var entityColumns: [Column] = []
    private var key: [UInt8] = []
    private var plan: ReadPlan?
    /// The one-entity answer template of `plan`, once made; `noTemplate`
    /// when its outputs cannot have one.
    private var answerTemplate: ResponseTemplate?
    private var noTemplate: ReadPlan?

    /// The answer template of `plan` for times of `timeWidth` varint bytes,
    /// each view's written once or not (`compact_event_times`).
    func template(for plan: ReadPlan, timeWidth: Int, compactTimes: Bool) -> ResponseTemplate? {
        if let answerTemplate, answerTemplate.plan === plan, answerTemplate.timeWidth == timeWidth,
           answerTemplate.compactTimes == compactTimes { return answerTemplate }
        if noTemplate === plan { return nil }
        answerTemplate = ResponseTemplate(plan: plan, timeWidth: timeWidth, compactTimes: compactTimes)
        if answerTemplate == nil { noTemplate = plan }
        return answerTemplate
    }

    /// The key of the cached plan (empty when none), for the decoder.
    var knownKey: [UInt8] { key }

    /// Whether `plan` was checked against the current definitions during
    /// the connection's current socket read. Requests of one read all
    /// arrived before the check, so one check serves them all, and the
    /// definitions' lock and the snapshot's reference count (both shared
    /// by every event loop) are touched once per read, not per request.
    private var checked = false

    /// The connection's socket read is over.
    func endOfRead() { checked = false }

    func plan(for request: OnlineRequest, store: OnlineStore) throws -> ReadPlan {
        if let plan, request.hasPlanKey(key) {
            if checked { return plan }
            if store.isCurrent(plan) {
                checked = true
                return plan
            }
        }
        let key = request.planKey
        // The store's plan is shared by every connection; see privateCopy.
        let plan = try store.plan(encodedKey: key) {
            let names = try request.names()
            return (names.features, names.service, request.fullFeatureNames)
        }.privateCopy()
        self.key = key
        self.plan = plan
        // Made or found for the definitions current now.
        checked = true
        return plan
    }
}

enum OnlineRequestDecoder {
    typealias Field = GetOnlineFeaturesRequestField

    static func malformed(_ what: String) -> WireError {
        WireError(code: StatusCode.invalidArgument, message: "the request body is not a valid plinth.v1.GetOnlineFeaturesRequest: \(what)")
    }

    /// - Parameter known: a plan key (`planKey`) the caller expects: when
    ///   the body's references and service are that key's records, they are
    ///   stepped over in one comparison instead of parsed one by one.
    /// - Parameter columns: storage for the entity columns, reused from
    ///   request to request (a connection's `ConnectionPlanCache`); the
    ///   request's `entities` share it.
    static func decode(_ body: ByteBuffer, known: [UInt8] = [], reusing columns: inout [Column]) throws -> OnlineRequest {
        var request = OnlineRequest(body: body)
        var count = 0
        do {
            try body.withUnsafeReadableBytes { raw in
                var reader = ProtoReader(raw)
                let knownRecords = known.count - 1
                // Where the run of reference and service records starts and
                // ends; `split` when another field came between two of them.
                var runStart = -1, runEnd = -1, split = false
                while !reader.atEnd {
                    let recordStart = reader.position
                    switch try reader.key() {
                    case (Field.features, WireType.lengthDelimited), (Field.featureService, WireType.lengthDelimited):
                        // Validated only when a plan is built (`names`): a
                        // cached key was valid when it was cached.
                        if runStart < 0, knownRecords > 0, raw.count - recordStart >= knownRecords,
                           known.withUnsafeBytes({ memcmp($0.baseAddress! + 1, raw.baseAddress! + recordStart, knownRecords) }) == 0 {
                            // Whole records, so the run ends on a record boundary.
                            reader.position = recordStart + knownRecords
                            runStart = recordStart
                            runEnd = reader.position
                            continue
                        }
                        _ = try reader.lengthDelimitedRange()
                        if runStart < 0 { runStart = recordStart } else if recordStart != runEnd { split = true }
                        runEnd = reader.position
                    case (Field.entities, WireType.lengthDelimited):
                        if count == columns.count { columns.append(Column(name: "", type: .int64)) }
                        try column(reader.lengthDelimited(), into: &columns[count])
                        count += 1
                    case (Field.fullFeatureNames, WireType.varint):
                        request.fullFeatureNames = try reader.varint() != 0
                    case (Field.compactEventTimes, WireType.varint):
                        request.compactEventTimes = try reader.varint() != 0
                    case (_, let wire):
                        try reader.skip(wire: wire)
                    }
                }
                if runStart >= 0 { request.keyStart = runStart; request.keyEnd = runEnd }
                if split { request.scattered = try records(raw) }
            }
        } catch let error as ProtoDecodingError {
            throw malformed(error.reason)
        }
        if columns.count > count { columns.removeLast(columns.count - count) }
        request.entities = columns
        return request
    }

    static func decode(_ body: ByteBuffer, known: [UInt8] = []) throws -> OnlineRequest {
        var columns: [Column] = []
        return try decode(body, known: known, reusing: &columns)
    }

    /// The reference and service records of a body, in order.
    private static func records(_ raw: UnsafeRawBufferPointer) throws(ProtoDecodingError) -> [UInt8] {
        var reader = ProtoReader(raw)
        var out: [UInt8] = []
        while !reader.atEnd {
            let start = reader.position
            let (field, wire) = try reader.key()
            try reader.skip(wire: wire)
            if wire == WireType.lengthDelimited, field == Field.features || field == Field.featureService {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<reader.position]))
            }
        }
        return out
    }

    /// Whether `text` is exactly `bytes` (a memcmp, not a generic compare).
    static func same(_ text: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard text.utf8.count == bytes.count else { return false }
        guard let b = bytes.baseAddress, !bytes.isEmpty else { return true }
        return text.utf8.withContiguousStorageIfAvailable { a in
            a.baseAddress.map { memcmp($0, b, bytes.count) == 0 } ?? false
        } ?? text.utf8.elementsEqual(bytes)
    }

    static func utf8(_ bytes: UnsafeRawBufferPointer, what: String) throws -> String {
        // ASCII is valid UTF-8 and common; the general validator costs a
        // generic-metadata lookup per call.
        if !bytes.contains(where: { $0 >= 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw malformed("\(what) is not valid UTF-8")
        }
        return text
    }

    static func column(_ bytes: UnsafeRawBufferPointer) throws -> Column {
        var column = Column(name: "", type: .int64)
        try Self.column(bytes, into: &column)
        return column
    }

    /// Parses a plinth.v1.Column into `column`, reusing its arrays' storage
    /// (a connection that parses one request after another allocates once).
    static func column(_ bytes: UnsafeRawBufferPointer, into column: inout Column) throws {
        typealias Field = ColumnField
        var reader = ProtoReader(bytes)
        var typeNumber = 0
        var vectorLength: UInt32 = 0
        var named = false
        // Only the arrays in use: emptying an empty one still makes it
        // unique and releases the shared empty storage.
        if !column.int64s.isEmpty { column.int64s.removeAll(keepingCapacity: true) }
        if !column.float32s.isEmpty { column.float32s.removeAll(keepingCapacity: true) }
        if !column.float64s.isEmpty { column.float64s.removeAll(keepingCapacity: true) }
        if !column.bools.isEmpty { column.bools.removeAll(keepingCapacity: true) }
        if !column.strings.isEmpty { column.strings.removeAll(keepingCapacity: true) }
        if !column.bytes.isEmpty { column.bytes.removeAll(keepingCapacity: true) }
        if !column.nullRows.isEmpty { column.nullRows.removeAll(keepingCapacity: true) }
        do {
            while !reader.atEnd {
                switch try reader.key() {
                case (Field.name, WireType.lengthDelimited):
                    let name = try reader.lengthDelimited()
                    // The same name as the last request's: keep the String.
                    if !same(column.name, name) { column.name = try utf8(name, what: "column name") }
                    named = true
                case (Field.type, WireType.varint): typeNumber = Int(truncatingIfNeeded: try reader.varint())
                case (Field.vectorLength, WireType.varint): vectorLength = UInt32(truncatingIfNeeded: try reader.varint())
                case (Field.int64Values, WireType.lengthDelimited):
                    // Packed keys, the usual form: a plain loop (the closure form
                    // below cost about 60 instructions a key).
                    var inner = ProtoReader(try reader.lengthDelimited())
                    while !inner.atEnd { column.int64s.append(Int64(bitPattern: try inner.varint())) }
                case (Field.int64Values, let wire):
                    try reader.repeated(wire: wire, element: WireType.varint) { column.int64s.append(Int64(bitPattern: try $0.varint())) }
                case (Field.float32Values, let wire):
                    try reader.repeated(wire: wire, element: WireType.fixed32) { column.float32s.append(Float(bitPattern: try $0.fixed32())) }
                case (Field.float64Values, let wire):
                    try reader.repeated(wire: wire, element: WireType.fixed64) { column.float64s.append(Double(bitPattern: try $0.fixed64())) }
                case (Field.boolValues, let wire):
                    try reader.repeated(wire: wire, element: WireType.varint) { column.bools.append(try $0.varint() != 0) }
                case (Field.stringValues, WireType.lengthDelimited):
                    column.strings.append(try utf8(reader.lengthDelimited(), what: "a string value"))
                case (Field.bytesValues, WireType.lengthDelimited):
                    column.bytes.append(Data(try reader.lengthDelimited()))
                case (Field.nullRows, let wire):
                    try reader.repeated(wire: wire, element: WireType.varint) { column.nullRows.append(UInt32(truncatingIfNeeded: try $0.varint())) }
                case (_, let wire):
                    try reader.skip(wire: wire)
                }
            }
        } catch let error as ProtoDecodingError {
            throw malformed(error.reason)
        }
        if !named { column.name = "" }
        let wireType = PBValueType(rawValue: typeNumber) ?? .UNRECOGNIZED(typeNumber)
        column.type = try FeatureType(wire: wireType, vectorLength: vectorLength, what: "column '\(column.name)'")
    }
}
