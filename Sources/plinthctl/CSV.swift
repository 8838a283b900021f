// plinthctl's CSV inputs (push --csv, score-batch, the historical spine) are
// read by PlinthInference's CSVReader, the one RFC 4180 reader, which
// `plinthctl score` uses too; this wrapper only names the file in errors.
import PlinthClient
import PlinthInference

/// The records of a CSV file's text. Blank lines are skipped and every
/// record has the header's field count (see CSVReader).
struct CSVFile {
    private var reader: CSVReader
    /// The file as the user named it, for messages.
    let name: String

    init(text: String, name: String) {
        reader = CSVReader(text: text)
        self.name = name
    }

    /// The next record and the line it starts on; nil at the end.
    /// - Throws: `PlinthError` "FILE line N: what is wrong".
    mutating func next() throws -> (line: Int, fields: [String])? {
        do { return try reader.next() } catch { throw PlinthError(code: 3, message: "\(name) \(error)") }
    }
}
