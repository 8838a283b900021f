// The one CSV reader of Plinth (RFC 4180), shared by `plinthctl score`
// (CSVScorer, over a memory-mapped file) and plinthctl's other CSV inputs
// (push --csv, score-batch, the historical spine).
//
// What it reads:
// - fields separated by ',' and records ended by LF or CRLF (a lone CR
//   too); the last record may lack its line end;
// - a field in double quotes may hold commas, line breaks and quotes, each
//   quote doubled (`"say ""hi"""` is `say "hi"`); blanks (space, tab)
//   around a quoted field are dropped, those of an unquoted one are kept;
// - a UTF-8 byte order mark before the first record is skipped;
// - blank lines are skipped;
// - every record has as many fields as the first (the header).
// Anything else is a `CSVError` naming the line: a quote never closed (the
// line it opened on), a quote inside an unquoted field, text after a
// closing quote, a record with the wrong number of fields.
//
// Two faces: `CSVCursor` walks bytes the caller holds and returns field
// ranges without copying, which keeps `plinthctl score` at the speed of
// its number parsing on files of any size; `CSVReader` owns its text and
// returns each record as strings.

/// Why a CSV input could not be read, with the line (from 1) it happened on.
public struct CSVError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// A quoted field runs to the end of the input.
        case unterminatedQuote
        /// A `"` in a field that does not start with one.
        case quoteInUnquotedField
        /// Something other than a comma or a line end after a closing quote.
        case textAfterQuote
        /// A record whose field count differs from the header's.
        case fieldCount(found: Int, expected: Int)
    }

    public let line: Int
    public let kind: Kind

    public init(line: Int, kind: Kind) {
        self.line = line
        self.kind = kind
    }

    public var description: String {
        switch kind {
        case .unterminatedQuote:
            "line \(line): a quoted field opens here and is never closed (a field's quotes are doubled inside it: \"\")"
        case .quoteInUnquotedField:
            "line \(line): a quote inside an unquoted field; put the field in quotes and double its quotes (\"5'11\"\"\")"
        case .textAfterQuote:
            "line \(line): text after a closing quote; a quoted field ends at the next comma or line end"
        case .fieldCount(let found, let expected):
            "line \(line): \(found) field\(found == 1 ? "" : "s"), but the header has \(expected)"
        }
    }
}

/// One field of a record: where its text lies in the input.
public struct CSVField: Equatable, Sendable {
    /// The field's bytes, without its enclosing quotes.
    public let range: Range<Int>
    /// Whether the field was in quotes.
    public let quoted: Bool
    /// Whether `range` holds doubled quotes, which stand for one each.
    public let hasDoubledQuotes: Bool

    /// The field's text, doubled quotes halved.
    public func string(in bytes: UnsafeBufferPointer<UInt8>) -> String {
        let raw = UnsafeBufferPointer(rebasing: bytes[range])
        guard hasDoubledQuotes else { return String(decoding: raw, as: UTF8.self) }
        var out = [UInt8]()
        out.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            out.append(raw[i])
            i += raw[i] == CSVCursor.quote ? 2 : 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Walks the records of CSV bytes that the caller holds (and passes to
/// every call, unchanged), returning field ranges, never copies.
public struct CSVCursor: Sendable {
    static let quote = UInt8(ascii: "\"")
    static let comma = UInt8(ascii: ",")
    static let lf = UInt8(ascii: "\n")
    static let cr = UInt8(ascii: "\r")

    /// Bytes consumed so far.
    public private(set) var position: Int
    /// The line the next record starts on.
    public private(set) var line = 1
    /// The number of fields every record has: the first record's, once read.
    public private(set) var fieldCount: Int?

    /// Starts at the beginning of `bytes`, past a UTF-8 byte order mark.
    public init(bytes: UnsafeBufferPointer<UInt8>) {
        let bom = bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF
        position = bom ? 3 : 0
    }

    /// Reads the next record into `fields` (emptied first), skipping blank lines.
    /// - Returns: the line the record starts on; nil at the end of the input.
    /// - Throws: `CSVError`; the cursor is then unusable.
    /// - Complexity: O(record length).
    public mutating func next(in bytes: UnsafeBufferPointer<UInt8>, fields: inout [CSVField]) throws(CSVError) -> Int? {
        while position < bytes.count {
            fields.removeAll(keepingCapacity: true)
            let start = line
            try readRecord(bytes, into: &fields)
            if fields.count == 1, fields[0].range.isEmpty, !fields[0].quoted { continue }
            if let expected = fieldCount {
                guard fields.count == expected else {
                    throw CSVError(line: start, kind: .fieldCount(found: fields.count, expected: expected))
                }
            } else {
                fieldCount = fields.count
            }
            return start
        }
        return nil
    }

    private static func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }

    private mutating func readRecord(_ b: UnsafeBufferPointer<UInt8>, into fields: inout [CSVField]) throws(CSVError) {
        let n = b.count
        var i = position
        while true {
            var j = i
            while j < n, Self.isBlank(b[j]) { j += 1 }
            if j < n, b[j] == Self.quote {
                let opened = line
                j += 1
                let start = j
                var doubled = false
                while true {
                    guard j < n else { throw CSVError(line: opened, kind: .unterminatedQuote) }
                    let c = b[j]
                    if c == Self.quote {
                        guard j + 1 < n, b[j + 1] == Self.quote else { break }
                        doubled = true
                        j += 2
                        continue
                    }
                    if c == Self.lf { line += 1 }
                    j += 1
                }
                fields.append(CSVField(range: start..<j, quoted: true, hasDoubledQuotes: doubled))
                j += 1
                while j < n, Self.isBlank(b[j]) { j += 1 }
                if j < n, b[j] != Self.comma, b[j] != Self.lf, b[j] != Self.cr {
                    throw CSVError(line: line, kind: .textAfterQuote)
                }
            } else {
                j = i
                while j < n {
                    let c = b[j]
                    if c == Self.comma || c == Self.lf || c == Self.cr { break }
                    if c == Self.quote { throw CSVError(line: line, kind: .quoteInUnquotedField) }
                    j += 1
                }
                fields.append(CSVField(range: i..<j, quoted: false, hasDoubledQuotes: false))
            }
            guard j < n else {
                position = n
                return
            }
            if b[j] == Self.comma {
                i = j + 1
                continue
            }
            j += b[j] == Self.cr && j + 1 < n && b[j + 1] == Self.lf ? 2 : 1
            line += 1
            position = j
            return
        }
    }
}

/// Reads CSV text it owns, a record at a time, as strings.
public struct CSVReader: Sendable {
    private let bytes: [UInt8]
    private var cursor: CSVCursor
    private var fields: [CSVField] = []

    public init(text: String) { self.init(bytes: Array(text.utf8)) }

    public init(bytes: [UInt8]) {
        self.bytes = bytes
        cursor = bytes.withUnsafeBufferPointer { CSVCursor(bytes: $0) }
    }

    /// The next record and the line it starts on; nil at the end.
    /// - Throws: `CSVError` naming the line.
    public mutating func next() throws(CSVError) -> (line: Int, fields: [String])? {
        let result: Result<(line: Int, fields: [String])?, CSVError> = bytes.withUnsafeBufferPointer { buf in
            do throws(CSVError) {
                guard let line = try cursor.next(in: buf, fields: &fields) else { return .success(nil) }
                return .success((line, fields.map { $0.string(in: buf) }))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Bytes consumed and the total, for progress.
    public var progress: (done: Int, total: Int) { (cursor.position, bytes.count) }
}
