// The one CSV reader (RFC 4180): quoted commas, doubled quotes, quoted line
// breaks, a BOM, CRLF and LF, no final newline, blank lines, and errors
// that name the line.

import Testing
@testable import PlinthInference

@Suite struct CSVReaderTests {
    func records(_ text: String) throws -> [[String]] {
        var reader = CSVReader(text: text)
        var out: [[String]] = []
        while let (_, fields) = try reader.next() { out.append(fields) }
        return out
    }

    func lines(_ text: String) throws -> [Int] {
        var reader = CSVReader(text: text)
        var out: [Int] = []
        while let (line, _) = try reader.next() { out.append(line) }
        return out
    }

    func error(_ text: String) -> CSVError? {
        var reader = CSVReader(text: text)
        do {
            while try reader.next() != nil {}
            return nil
        } catch {
            return error
        }
    }

    @Test func plainRecords() throws {
        #expect(try records("a,b\n1,2\n") == [["a", "b"], ["1", "2"]])
        #expect(try records("a,b\n,\n") == [["a", "b"], ["", ""]])
        #expect(try records("") == [])
    }

    @Test func quotedCommasAndDoubledQuotes() throws {
        #expect(try records("a,b\n\"x,y\",\"say \"\"hi\"\"\"\n") == [["a", "b"], ["x,y", "say \"hi\""]])
        #expect(try records("a\n\"\"\"\"\n") == [["a"], ["\""]])
        #expect(try records("a,b\n\"\",x\n") == [["a", "b"], ["", "x"]])
    }

    @Test func quotedLineBreaksKeepTheirBytesAndCountLines() throws {
        let text = "a,b\n\"one\ntwo\",1\r\n\"three\r\nfour\",2\n5,6\n"
        #expect(try records(text) == [["a", "b"], ["one\ntwo", "1"], ["three\r\nfour", "2"], ["5", "6"]])
        #expect(try lines(text) == [1, 2, 4, 6])
    }

    @Test func byteOrderMarkIsSkipped() throws {
        #expect(try records("\u{FEFF}id,x\n1,2\n") == [["id", "x"], ["1", "2"]])
        #expect(try records("\u{FEFF}") == [])
    }

    @Test func crlfLfAndLoneCR() throws {
        #expect(try records("a,b\r\n1,2\r\n") == [["a", "b"], ["1", "2"]])
        #expect(try records("a,b\r1,2\r") == [["a", "b"], ["1", "2"]])
        #expect(try records("a,b\r\n1,2\n3,4\r\n") == [["a", "b"], ["1", "2"], ["3", "4"]])
    }

    @Test func missingFinalNewline() throws {
        #expect(try records("a,b\n1,2") == [["a", "b"], ["1", "2"]])
        #expect(try records("a,b\n1,") == [["a", "b"], ["1", ""]])
        #expect(try records("a,b\n1,\"2\"") == [["a", "b"], ["1", "2"]])
    }

    @Test func blankLinesAreSkippedButAQuotedEmptyFieldIsARecord() throws {
        #expect(try records("a,b\n\n1,2\n\r\n\n") == [["a", "b"], ["1", "2"]])
        #expect(try lines("a,b\n\n1,2\n") == [1, 3])
        #expect(try records("a\n\"\"\n") == [["a"], [""]])
    }

    @Test func blanksAroundQuotedFieldsAreDroppedOthersKept() throws {
        #expect(try records("a,b\n \"x\" , y \n") == [["a", "b"], ["x", " y "]])
    }

    @Test func unterminatedQuoteNamesTheLineItOpened() {
        #expect(error("a,b\n1,2\n3,\"open\n\nmore\n") == CSVError(line: 3, kind: .unterminatedQuote))
        #expect("\(CSVError(line: 3, kind: .unterminatedQuote))".hasPrefix("line 3: a quoted field opens here"))
    }

    @Test func wrongFieldCountNamesTheLine() {
        #expect(error("a,b\n1,2\n1,2,3\n") == CSVError(line: 3, kind: .fieldCount(found: 3, expected: 2)))
        #expect(error("a,b\n1\n") == CSVError(line: 2, kind: .fieldCount(found: 1, expected: 2)))
        #expect("\(CSVError(line: 3, kind: .fieldCount(found: 3, expected: 2)))" == "line 3: 3 fields, but the header has 2")
        // A quoted line break does not shift the count: the record starts on line 2.
        #expect(error("a,b\n\"x\ny\",1,2\n") == CSVError(line: 2, kind: .fieldCount(found: 3, expected: 2)))
    }

    @Test func strayQuotesAreRefused() {
        #expect(error("a,b\n5'11\",2\n") == CSVError(line: 2, kind: .quoteInUnquotedField))
        #expect(error("a,b\n\"x\"y,2\n") == CSVError(line: 2, kind: .textAfterQuote))
    }

    @Test func cursorGivesRangesWithoutCopies() throws {
        let bytes = Array("a,\"b\"\"c\"\n".utf8)
        try bytes.withUnsafeBufferPointer { (buf: UnsafeBufferPointer<UInt8>) throws -> Void in
            var cursor = CSVCursor(bytes: buf)
            var fields: [CSVField] = []
            #expect(try cursor.next(in: buf, fields: &fields) == 1)
            #expect(fields.map(\.range) == [0..<1, 3..<7])
            #expect(fields.map(\.hasDoubledQuotes) == [false, true])
            #expect(fields[1].string(in: buf) == "b\"c")
            #expect(try cursor.next(in: buf, fields: &fields) == nil)
            #expect(cursor.position == bytes.count)
        }
    }
}
