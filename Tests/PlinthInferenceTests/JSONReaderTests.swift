// The JSONTestSuite cases that matter for model files, each with the
// decision JSONReader.swift documents: surrogate pairs joined and lone
// surrogates refused, deep nesting an error (not a stack overflow), huge
// numbers refused and tiny ones rounded, strict number grammar, no trailing
// commas, no raw control characters, no invalid UTF-8, no repeated member
// names, top-level scalars accepted, JSON's four whitespace bytes only.

import Testing
@testable import PlinthInference

@Suite struct JSONReaderTests {
    func parse(_ text: String) throws -> JSONValue { try JSONReader.parse(Array(text.utf8)) }
    func parse(bytes: [UInt8]) throws -> JSONValue { try JSONReader.parse(bytes) }

    /// The error's text, or nil when `bytes` parse.
    func refusal(_ bytes: [UInt8]) -> String? {
        do {
            _ = try JSONReader.parse(bytes)
            return nil
        } catch {
            return "\(error)"
        }
    }
    func refusal(_ text: String) -> String? { refusal(Array(text.utf8)) }

    func string(_ text: String) throws -> String? { try parse(text).string }

    @Test func escapedSurrogatePairsAreJoined() throws {
        #expect(try string(#""\ud83d\ude00""#) == "😀")
        #expect(try string(#""\uD834\uDD1E x""#) == "𝄞 x")
        #expect(try string(#""\u00e9\u4e2d""#) == "é中")
        #expect(try string(#""a\u0000b""#) == "a\u{0}b")
    }

    @Test(arguments: [#""\ud83d""#, #""\ud83d x""#, #""\ude00""#, #""\ud83d\u0041""#, #""\ud83d\ud83d""#])
    func loneSurrogatesAreRefused(_ text: String) {
        #expect(refusal(text)?.contains("lone surrogate") == true, "\(text)")
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        #expect(refusal(String(repeating: "[", count: 100_000))?.contains("nesting deeper than 64") == true)
        #expect(refusal(String(repeating: "{\"a\":", count: 100_000))?.contains("nesting deeper than 64") == true)
        let fine = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        #expect(refusal(fine) == nil)
    }

    @Test func hugeNumbersAreRefusedTinyOnesRounded() throws {
        #expect(refusal("1e400")?.contains("out of range") == true)
        #expect(refusal("-1e400")?.contains("out of range") == true)
        #expect(refusal("[1.5E+99999]")?.contains("out of range") == true)
        guard case .double(let tiny) = try parse("1E-400") else { Issue.record("1E-400 is not a double"); return }
        #expect(tiny == 0)
        guard case .double(let big) = try parse("123456789012345678901234567890") else { Issue.record("not a double"); return }
        #expect(big == 123456789012345678901234567890.0)
        guard case .double(let long) = try parse("0." + String(repeating: "1", count: 100)) else { Issue.record("not a double"); return }
        #expect(abs(long - 1.0 / 9.0) < 1e-15)
    }

    @Test func integersStayIntegersToTheEdgeOfInt64() throws {
        guard case .int(let max) = try parse("9223372036854775807"), case .int(let min) = try parse("-9223372036854775808"),
              case .double = try parse("9223372036854775808"), case .int(let zero) = try parse("-0") else {
            Issue.record("edge integers")
            return
        }
        #expect(max == .max && min == .min && zero == 0)
        guard case .double(let d) = try parse("1.0"), case .double(let e) = try parse("2e3") else { Issue.record("not doubles"); return }
        #expect(d == 1 && e == 2000)
    }

    @Test(arguments: ["01", "-01", "00", "+1", ".5", "1.", "1.e3", "1e", "1e+", "-", "--1", "- 1", "0x10", "1_000",
                      "Inf", "-Infinit", "infinity", "nan", "[1.5e3.2]", "[012]", "1.5.1"])
    func numbersFollowTheGrammar(_ text: String) {
        #expect(refusal(text) != nil, "\(text)")
    }

    @Test func nonFiniteLiteralsThatWritersEmitAreRead() throws {
        #expect(try parse("[Infinity, -Infinity, NaN]").doubleArray()?.map(\.description) == ["inf", "-inf", "nan"])
    }

    @Test(arguments: ["[1,]", "[1,,2]", "[,1]", #"{"a":1,}"#, #"{,"a":1}"#, #"{"a":1,,"b":2}"#, "[1 2]", #"{"a" 1}"#])
    func trailingAndMissingCommasAreRefused(_ text: String) {
        #expect(refusal(text) != nil, "\(text)")
    }

    @Test func rawControlCharactersInStringsAreRefused() {
        for c: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F] {
            #expect(refusal([0x22, 0x61, c, 0x62, 0x22])?.contains("control character") == true, "0x\(c)")
        }
        #expect(refusal(#""\x""#)?.contains("bad escape") == true)
        #expect(refusal(#""\u12""#)?.contains("\\u escape") == true)
        #expect(refusal(#""\u+123""#)?.contains("\\u escape") == true)
        #expect(refusal(#""\uZZZZ""#)?.contains("\\u escape") == true)
        #expect(refusal(#""abc"#)?.contains("unterminated string") == true)
    }

    @Test func invalidUTF8IsRefused() {
        let cases: [[UInt8]] = [
            [0x22, 0xFF, 0x22],                    // never valid
            [0x22, 0xC3, 0x22],                    // truncated sequence
            [0x22, 0xC0, 0xAF, 0x22],              // overlong '/'
            [0x22, 0xED, 0xA0, 0x80, 0x22],        // a surrogate encoded in UTF-8
            [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // past U+10FFFF
            [0x22, 0x5C, 0x6E, 0xFF, 0x22],        // with an escape before it (the slow path)
        ]
        for bytes in cases {
            #expect(refusal(bytes)?.contains("invalid UTF-8") == true, "\(bytes)")
        }
        #expect(refusal([0xFF]) != nil)
        #expect((try? parse(bytes: [0x22, 0xC3, 0xA9, 0x22]).string) == "é")
    }

    @Test func repeatedMemberNamesAreRefused() {
        #expect(refusal(#"{"a":1,"a":2}"#)?.contains("'a' appears twice") == true)
        #expect(refusal(#"{"learner":{"x":1},"learner":{}}"#) != nil)
        #expect(refusal(#"{"a":{"a":1}}"#) == nil)
    }

    @Test func topLevelScalarsParseAndImportersRefuseThem() throws {
        guard case .int(1) = try parse("1"), case .string("x") = try parse(#""x""#), case .null = try parse(" null "),
              case .bool(true) = try parse("true") else {
            Issue.record("top-level scalars")
            return
        }
        #expect(throws: ModelError.self) { try XGBoostImporter.load(json: Array("1".utf8)) }
        #expect(throws: ModelError.self) { try XGBoostImporter.load(json: Array(#""learner""#.utf8)) }
        #expect(refusal("") != nil)
        #expect(refusal("   ") != nil)
        #expect(refusal("1 2") != nil)
    }

    @Test func onlyJSONWhitespaceIsWhitespace() {
        #expect(refusal(" \t\r\n[ 1 ,\t2\r\n]\n ") == nil)
        #expect(refusal([0x0C, 0x5B, 0x5D]) != nil)               // form feed
        #expect(refusal([0x5B, 0x0B, 0x5D]) != nil)               // vertical tab
        #expect(refusal([0x5B, 0xC2, 0xA0, 0x5D]) != nil)         // no-break space
        #expect(refusal([0x5B, 0xE2, 0x80, 0xA8, 0x5D]) != nil)   // line separator
        #expect(refusal([0xEF, 0xBB, 0xBF, 0x7B, 0x7D]) == nil)   // a leading BOM is skipped
        #expect(refusal([0x7B, 0xEF, 0xBB, 0xBF, 0x7D]) != nil)   // but only there
    }
}
