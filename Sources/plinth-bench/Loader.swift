// Loader: the write side of the benchmark — Push to plinthd and MSET to
// Redis of the same rows in the same batches, over the same client code.
// Every batch is encoded before the clock starts, so the figure is the
// server's ingest rate, not the speed of this tool's encoder (which would
// otherwise compete with the server for the same two cores).
import Foundation
import Histogram
import PlinthWire
import SwiftProtobuf

struct LoadOptions: Sendable {
    var address: String
    var entities: Int
    var features: Int
    var batch: Int
    var connections: Int
    var pipeline: Int
}

/// One protocol's batched write.
protocol LoadCodec: Sendable {
    var system: String { get }
    var operation: String { get }
    func open(_ socket: Socket) throws
    /// The whole request for rows `ids`, ready to send.
    func encodeBatch(index: Int, ids: Range<Int64>, eventTime: Int64) throws -> [UInt8]
    /// One whole answer at the start of `bytes`, or nil; throws on an error answer.
    func parseAnswer(_ bytes: UnsafeRawBufferPointer) throws -> Int?
}

struct PlinthPushCodec: LoadCodec {
    let features: Int
    let target: PBPushTarget
    var system: String { "plinth" }
    var operation: String { "push" }

    func open(_ socket: Socket) throws { try PlinthReadCodec(features: features).open(socket) }

    func encodeBatch(index: Int, ids: Range<Int64>, eventTime: Int64) throws -> [UInt8] {
        var request = PBPushRequest()
        request.featureView = Dataset.view
        request.to = target
        var key = PBColumn()
        key.name = Dataset.entity
        key.type = .int64
        key.int64Values = Array(ids)
        request.columns.append(key)
        for j in 0..<features {
            var column = PBColumn()
            column.name = Dataset.featureName(j)
            column.type = .float32
            column.float32Values = ids.map { Dataset.value($0, j) }
            request.columns.append(column)
        }
        request.eventTimeUs = Array(repeating: eventTime, count: ids.count)
        return try plinthFrame(id: UInt64(index + 1), method: Method.push, body: request.serializedBytes())
    }

    func parseAnswer(_ bytes: UnsafeRawBufferPointer) throws -> Int? {
        guard let (length, id, body) = try parsePlinthFrame(bytes) else { return nil }
        let response = try PBPushResponse(serializedBytes: Array(bytes[body]))
        guard response.onlineRowsWritten + response.onlineRowsStale == response.rows || target == .offline else {
            throw BenchError("push \(id): \(response.rows) rows but \(response.onlineRowsWritten) written online")
        }
        return length
    }
}

struct RedisMSetCodec: LoadCodec {
    let features: Int
    var system: String { "redis" }
    var operation: String { "mset" }

    func open(_ socket: Socket) throws { try RedisReadCodec(features: features).open(socket) }

    func encodeBatch(index: Int, ids: Range<Int64>, eventTime: Int64) throws -> [UInt8] {
        let rowSize = Dataset.packedRowSize(features: features)
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * (rowSize + 40) + 32)
        out.append(UInt8(ascii: "*"))
        appendDecimal(2 * ids.count + 1, to: &out)
        out.append(contentsOf: Array("\r\n$4\r\nMSET\r\n".utf8))
        for id in ids {
            RedisReadCodec.appendKey(id, to: &out)
            out.append(UInt8(ascii: "$"))
            appendDecimal(rowSize, to: &out)
            out.append(0x0D); out.append(0x0A)
            Dataset.appendPackedRow(id: id, features: features, eventTime: eventTime, to: &out)
            out.append(0x0D); out.append(0x0A)
        }
        return out
    }

    func parseAnswer(_ bytes: UnsafeRawBufferPointer) throws -> Int? {
        guard let cr = bytes.firstIndex(of: 0x0D), cr + 1 < bytes.count else { return nil }
        let line = String(decoding: bytes[0..<cr], as: UTF8.self)
        guard line == "+OK" else { throw BenchError("redis answered MSET with \(line)") }
        return cr + 2
    }
}

/// What a load measured.
struct LoadSummary: Codable {
    var system: String
    var operation: String
    var rows: Int
    var features: Int
    var batch: Int
    var connections: Int
    var pipeline: Int
    var seconds: Double
    var rowsPerSecond: Double
    var featureValuesPerSecond: Double
    var batchLatencyMillis: [String: Double]

    var line: String {
        "\(system) \(operation): \(rows) rows x \(features) float32 in batches of \(batch), \(connections) conn x \(pipeline) in flight: "
            + "\(Int(rowsPerSecond)) rows/s (\(Int(featureValuesPerSecond)) feature values/s) in \(String(format: "%.2f", seconds)) s; "
            + "batch ack ms p50 \(batchLatencyMillis["p50"] ?? 0) p99 \(batchLatencyMillis["p99"] ?? 0)"
    }
}

enum Loader {
    static func run(_ codec: some LoadCodec, _ options: LoadOptions, log: (String) -> Void) throws -> LoadSummary {
        let eventTime = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let batches = (options.entities + options.batch - 1) / options.batch
        log("encoding \(batches) batches of \(options.batch) rows")
        var encoded: [[UInt8]] = []
        encoded.reserveCapacity(batches)
        for b in 0..<batches {
            let first = Int64(b * options.batch)
            let ids = first..<min(first + Int64(options.batch), Int64(options.entities))
            encoded.append(try codec.encodeBatch(index: b, ids: ids, eventTime: eventTime))
        }
        var sockets: [Handoff<Socket>] = []
        for _ in 0..<options.connections {
            let socket = try Socket(address: options.address)
            try codec.open(socket)
            sockets.append(Handoff(socket))
        }
        log("sending \(options.entities) rows over \(options.connections) connections")
        let work = encoded, connected = sockets
        let next = Handoff(0)
        let nextLock = NSLock()
        let box = ResultBox<(Histogram<UInt64>, String?)>()
        let start = nowNanos()
        onThreads(options.connections) { index in
            var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)
            let socket = connected[index].value
            var sentAt: [UInt64] = []
            do {
                var exhausted = false
                while true {
                    while !exhausted && sentAt.count < options.pipeline {
                        nextLock.lock()
                        let b = next.value
                        next.value += 1
                        nextLock.unlock()
                        guard b < work.count else { exhausted = true; break }
                        sentAt.append(nowNanos())
                        try socket.send(work[b])
                    }
                    if sentAt.isEmpty { break }
                    var length: Int? = nil
                    while true {
                        length = try codec.parseAnswer(socket.unread)
                        if length != nil { break }
                        try socket.receiveMore()
                    }
                    // Batches of one connection are acknowledged in order
                    // (each waits for its own commit), so the oldest is answered.
                    histogram.record(nowNanos() - sentAt.removeFirst())
                    socket.consume(length!)
                }
                box.append((histogram, nil))
            } catch {
                box.append((histogram, "connection \(index): \(error)"))
            }
        }
        let seconds = Double(nowNanos() - start) / 1e9
        let results = box.all
        if let error = results.compactMap(\.1).first { throw BenchError(error) }
        var histogram = results[0].0
        for r in results.dropFirst() { histogram.add(r.0) }
        func ms(_ ns: UInt64) -> Double { (Double(ns) / 10_000).rounded() / 100 }
        return LoadSummary(system: codec.system, operation: codec.operation, rows: options.entities, features: options.features,
                           batch: options.batch, connections: options.connections, pipeline: options.pipeline, seconds: seconds,
                           rowsPerSecond: Double(options.entities) / seconds,
                           featureValuesPerSecond: Double(options.entities * options.features) / seconds,
                           batchLatencyMillis: ["p50": ms(histogram.valueAtPercentile(50)), "p99": ms(histogram.valueAtPercentile(99)),
                                                "max": ms(histogram.max)])
    }
}
