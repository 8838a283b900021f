// Offline scoring of a CSV file: the engine behind `plinthctl score`. The
// input is memory-mapped and read in chunks of rows; each chunk is parsed
// into one float buffer, scored with the batch kernels (on as many threads
// as asked) and appended to the output, so memory stays flat however large
// the file. Columns are matched to the model's features by name when the
// model has names, else by position. Empty cells and NaN are missing values;
// anything else that is not a number is an error naming the row and column.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scores CSV files with a model.
public struct CSVScorer: Sendable {
    public let model: Model
    public let kind: OutputKind
    public let threads: Int
    /// Rows parsed and scored at a time.
    public var chunkRows = 8192

    public init(model: Model, kind: OutputKind = .probability, threads: Int = 2) {
        self.model = model
        self.kind = kind
        self.threads = max(1, threads)
    }

    /// Progress report: bytes of input consumed, total bytes, rows scored so far.
    public typealias Progress = (_ bytesDone: Int, _ bytesTotal: Int, _ rows: Int) -> Void

    /// Scores `inputPath` into `outputPath` (overwritten).
    ///
    /// The input must start with a header row. Row numbers in errors count
    /// data rows from 1 (the header is row 0).
    /// - Returns: the number of rows scored.
    @discardableResult
    public func score(inputPath: String, outputPath: String, progress: Progress? = nil) throws(ModelError) -> Int {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: inputPath), options: .alwaysMapped)
        } catch {
            throw .io(path: inputPath, detail: "cannot read: \(error.localizedDescription)")
        }
        guard FileManager.default.createFile(atPath: outputPath, contents: nil),
              let out = FileHandle(forWritingAtPath: outputPath) else {
            throw .io(path: outputPath, detail: "cannot create the output file")
        }
        defer { try? out.close() }
        let result: Result<Int, ModelError> = data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            return Result { () throws(ModelError) -> Int in
                try score(bytes: bytes, write: { chunk throws(ModelError) in
                    do { try out.write(contentsOf: chunk) } catch {
                        throw .io(path: outputPath, detail: "cannot write: \(error.localizedDescription)")
                    }
                }, progress: progress)
            }
        }
        return try result.get()
    }

    /// Scores CSV text held in memory; returns the output CSV text.
    public func score(csv: String) throws(ModelError) -> String {
        var output = [UInt8]()
        let bytes = Array(csv.utf8)
        let result: Result<Int, ModelError> = bytes.withUnsafeBufferPointer { buf in
            Result { () throws(ModelError) -> Int in
                try score(bytes: buf, write: { output.append(contentsOf: $0) }, progress: nil)
            }
        }
        _ = try result.get()
        return String(decoding: output, as: UTF8.self)
    }

    func score(bytes: UnsafeBufferPointer<UInt8>, write: (Data) throws(ModelError) -> Void,
               progress: Progress?) throws(ModelError) -> Int {
        var reader = LineReader(bytes: bytes)
        guard let headerLine = reader.next() else { throw .input(row: 0, column: nil, detail: "the input is empty; a header row is required") }
        let header = splitCells(headerLine, bytes).map { cellString($0, bytes) }
        let columnCount = header.count
        // source[j]: the input column that feeds model feature j.
        var source = [Int](repeating: 0, count: model.featureCount)
        if let names = model.featureNames {
            var index = [String: Int]()
            for (i, name) in header.enumerated() where index[name] == nil { index[name] = i }
            for (j, name) in names.enumerated() {
                guard let i = index[name] else {
                    throw .input(row: 0, column: name, detail: "the model's feature '\(name)' has no column in the header")
                }
                source[j] = i
            }
        } else {
            guard columnCount == model.featureCount else {
                throw .input(row: 0, column: nil,
                             detail: "the header has \(columnCount) columns but the model takes \(model.featureCount) features by position")
            }
            source = Array(0..<model.featureCount)
        }

        let k = model.outputCount
        let label = kind == .margin ? "margin" : "score"
        let outHeader = k == 1 ? label : (0..<k).map { "\(label)_\($0)" }.joined(separator: ",")
        try write(Data((outHeader + "\n").utf8))

        var rowsDone = 0
        var features = [Float](repeating: 0, count: chunkRows * model.featureCount)
        var outputs = [Double](repeating: 0, count: chunkRows * k)
        var cells = [Range<Int>]()
        while true {
            var n = 0
            while n < chunkRows, let line = reader.next() {
                if line.isEmpty { continue }  // blank lines (e.g. a trailing newline)
                let row = rowsDone + n + 1
                cells.removeAll(keepingCapacity: true)
                splitCells(line, bytes, into: &cells)
                guard cells.count == columnCount else {
                    throw .input(row: row, column: nil, detail: "\(cells.count) columns, but the header has \(columnCount)")
                }
                let base = n * model.featureCount
                for j in 0..<model.featureCount {
                    let c = source[j]
                    guard let v = parseCell(cells[c], bytes) else {
                        throw .input(row: row, column: header[c],
                                     detail: "'\(cellString(cells[c], bytes))' is not a number")
                    }
                    features[base + j] = v
                }
                n += 1
            }
            if n == 0 { break }
            let result: Result<Void, ModelError> = features.withUnsafeBufferPointer { f in
                outputs.withUnsafeMutableBufferPointer { o in
                    Result { () throws(ModelError) in
                        try model.predictBatch(rows: UnsafeBufferPointer(rebasing: f[0..<(n * model.featureCount)]),
                                               rowCount: n, into: o, kind: kind, threads: threads)
                    }
                }
            }
            try result.get()
            var text = ""
            text.reserveCapacity(n * k * 20)
            for r in 0..<n {
                for i in 0..<k {
                    if i > 0 { text += "," }
                    text += "\(outputs[r * k + i])"
                }
                text += "\n"
            }
            try write(Data(text.utf8))
            rowsDone += n
            progress?(reader.position, bytes.count, rowsDone)
        }
        return rowsDone
    }

    private func splitCells(_ line: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        var cells = [Range<Int>]()
        splitCells(line, bytes, into: &cells)
        return cells
    }

    /// Splits a line at commas; a cell in double quotes may contain commas.
    private func splitCells(_ line: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>, into cells: inout [Range<Int>]) {
        var start = line.lowerBound
        var i = line.lowerBound
        var quoted = false
        while i < line.upperBound {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { quoted.toggle() } else if c == UInt8(ascii: ","), !quoted {
                cells.append(start..<i)
                start = i + 1
            }
            i += 1
        }
        cells.append(start..<line.upperBound)
    }

    private func trimmed(_ cell: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        var lo = cell.lowerBound, hi = cell.upperBound
        while lo < hi, bytes[lo] == 0x20 || bytes[lo] == 0x09 || bytes[lo] == UInt8(ascii: "\"") { lo += 1 }
        while hi > lo, bytes[hi - 1] == 0x20 || bytes[hi - 1] == 0x09 || bytes[hi - 1] == UInt8(ascii: "\"") { hi -= 1 }
        return lo..<hi
    }

    private func cellString(_ cell: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[trimmed(cell, bytes)]), as: UTF8.self)
    }

    /// Parses a cell as float32 (correctly rounded, as XGBoost's float cast
    /// of a parsed value); empty and NaN cells are missing (NaN).
    private func parseCell(_ cell: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>) -> Float? {
        let r = trimmed(cell, bytes)
        let length = r.count
        if length == 0 { return .nan }
        guard length < 64 else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { tmp -> Float? in
            guard let base = tmp.baseAddress else { return nil }
            for i in 0..<length { tmp[i] = CChar(bitPattern: bytes[r.lowerBound + i]) }
            tmp[length] = 0
            var end: UnsafeMutablePointer<CChar>?
            let v = strtof(base, &end)
            guard let end, end - base == length else { return nil }
            return v
        }
    }
}

/// Yields the byte ranges of lines (without their \n or \r\n).
struct LineReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    mutating func next() -> Range<Int>? {
        guard position < bytes.count else { return nil }
        let start = position
        var i = start
        while i < bytes.count, bytes[i] != 0x0A { i += 1 }
        position = i + 1
        var end = i
        if end > start, bytes[end - 1] == 0x0D { end -= 1 }
        return start..<end
    }
}
