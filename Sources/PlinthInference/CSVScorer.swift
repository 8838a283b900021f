// Offline scoring of a CSV file: the engine behind `plinthctl score`. The
// input is memory-mapped and read in chunks of rows; each chunk is parsed
// into one float buffer, scored with the batch kernels (on as many threads
// as asked) and appended to the output, so memory stays flat however large
// the file. Records are read by CSVCursor (RFC 4180, see CSVReader.swift)
// straight from the mapped bytes. Columns are matched to the model's
// features by name when the model has names, else by position (see
// `columnSources`). Empty cells and NaN are missing values; anything else
// that is not a number is an error naming the row and column. A feature
// with a category map (a LightGBM model trained on pandas `category`
// columns) takes the original category, string or number, and is encoded
// through the map; a value that is not one of its categories is missing,
// as pandas makes it.

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
        var reader = CSVCursor(bytes: bytes)
        var cells = [CSVField]()
        /// A CSV error, as the row (data rows count from 1) it stopped at.
        func next(row: Int) throws(ModelError) -> Bool {
            do throws(CSVError) {
                return try reader.next(in: bytes, fields: &cells) != nil
            } catch {
                throw .input(row: row, column: nil, detail: error.description)
            }
        }
        guard try next(row: 0) else { throw .input(row: 0, column: nil, detail: "the input is empty; a header row is required") }
        let header = cells.map { cellString($0, bytes) }
        let source = try columnSources(header: header)

        let k = model.outputCount
        let label = kind == .margin ? "margin" : "score"
        let outHeader = k == 1 ? label : (0..<k).map { "\(label)_\($0)" }.joined(separator: ",")
        try write(Data((outHeader + "\n").utf8))

        // Per feature, its category map if it has one (most models: none,
        // and the per-cell test below is skipped as a whole).
        let maps = (0..<model.featureCount).map { model.categoryMaps[$0] }
        let hasMaps = !model.categoryMaps.isEmpty
        var rowsDone = 0
        var features = [Float](repeating: 0, count: chunkRows * model.featureCount)
        var outputs = [Double](repeating: 0, count: chunkRows * k)
        while true {
            var n = 0
            while n < chunkRows {
                let row = rowsDone + n + 1
                guard try next(row: row) else { break }
                let base = n * model.featureCount
                for j in 0..<model.featureCount {
                    let c = source[j]
                    if hasMaps, let map = maps[j] {
                        features[base + j] = encode(cells[c], bytes, map)
                        continue
                    }
                    guard let v = parseCell(cells[c].range, bytes) else {
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

    /// The input column that feeds each model feature. A model with
    /// feature names takes its columns by name, in any order, other columns
    /// ignored; every name missing from the header is listed. A model
    /// without names (`Model.featureNames` nil: XGBoost without
    /// feature_names, LightGBM's generated Column_N) takes them by
    /// position, as XGBoost and LightGBM do, and the counts must agree.
    func columnSources(header: [String]) throws(ModelError) -> [Int] {
        guard let names = model.featureNames else {
            guard header.count == model.featureCount else {
                throw .input(row: 0, column: nil,
                             detail: "the header has \(header.count) columns but the model, which has no feature names, takes \(model.featureCount) by position")
            }
            return Array(0..<model.featureCount)
        }
        var index = [String: Int]()
        var twice = Set<String>()
        for (i, name) in header.enumerated() where index.updateValue(i, forKey: name) != nil { twice.insert(name) }
        let missing = names.filter { index[$0] == nil }
        guard missing.isEmpty else {
            let shown = missing.prefix(20).joined(separator: ", ") + (missing.count > 20 ? ", ... (\(missing.count) in all)" : "")
            throw .input(row: 0, column: nil,
                         detail: "the header lacks \(missing.count) of the model's \(names.count) features: \(shown)")
        }
        if let name = names.first(where: twice.contains) {
            throw .input(row: 0, column: name, detail: "the header has this column more than once")
        }
        return names.compactMap { index[$0] }
    }

    private func trimmed(_ cell: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        var lo = cell.lowerBound, hi = cell.upperBound
        while lo < hi, bytes[lo] == 0x20 || bytes[lo] == 0x09 { lo += 1 }
        while hi > lo, bytes[hi - 1] == 0x20 || bytes[hi - 1] == 0x09 { hi -= 1 }
        return lo..<hi
    }

    /// The code of a cell of a mapped feature: an empty cell is missing; a
    /// string category must match the cell exactly (UTF-8, blanks kept, as
    /// pandas compares categories); a number category is parsed from the
    /// cell without its surrounding blanks.
    private func encode(_ cell: CSVField, _ bytes: UnsafeBufferPointer<UInt8>, _ map: CategoryMap) -> Float {
        switch map.values {
        case .strings:
            if cell.range.isEmpty { return .nan }
            if cell.hasDoubledQuotes { return map.code(utf8: Array(cell.string(in: bytes).utf8)) }
            return map.code(utf8: UnsafeBufferPointer(rebasing: bytes[cell.range]))
        case .numbers:
            let r = trimmed(cell.range, bytes)
            if r.isEmpty { return .nan }
            return map.code(utf8: UnsafeBufferPointer(rebasing: bytes[r]))
        }
    }

    private func cellString(_ cell: CSVField, _ bytes: UnsafeBufferPointer<UInt8>) -> String {
        cell.string(in: bytes).trimmingCharacters(in: .whitespaces)
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
