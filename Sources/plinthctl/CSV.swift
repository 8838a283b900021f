// CSV: an RFC 4180 reader (quoted fields, doubled quotes, CRLF) that reports
// the line of each record, so errors can name the row.

struct CSVReader {
    private let bytes: [UInt8]
    private var index = 0
    private(set) var line = 1

    init(text: String) { bytes = Array(text.utf8) }

    struct Malformed: Error, CustomStringConvertible {
        let line: Int
        let message: String
        var description: String { "line \(line): \(message)" }
    }

    /// The next record and the line it started on; nil at the end.
    mutating func next() throws -> (line: Int, fields: [String])? {
        guard index < bytes.count else { return nil }
        let start = line
        var fields: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var fieldStarted = false
        while index < bytes.count {
            let b = bytes[index]
            index += 1
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if index < bytes.count && bytes[index] == UInt8(ascii: "\"") { field.append(b); index += 1 } else { quoted = false }
                } else {
                    if b == UInt8(ascii: "\n") { line += 1 }
                    field.append(b)
                }
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                if fieldStarted && !field.isEmpty { throw Malformed(line: line, message: "a quote inside an unquoted field") }
                quoted = true
                fieldStarted = true
            case UInt8(ascii: ","):
                fields.append(String(decoding: field, as: UTF8.self))
                field.removeAll(keepingCapacity: true)
                fieldStarted = false
            case UInt8(ascii: "\r"):
                continue
            case UInt8(ascii: "\n"):
                line += 1
                fields.append(String(decoding: field, as: UTF8.self))
                return (start, fields)
            default:
                field.append(b)
                fieldStarted = true
            }
        }
        if quoted { throw Malformed(line: start, message: "a quoted field is not closed") }
        fields.append(String(decoding: field, as: UTF8.self))
        return (start, fields)
    }
}
