// Order preservation is the codec's whole job: byte order of encoded keys
// must equal the natural order of the values, for every mix of components.
import XCTest
@testable import PlinthStorage

final class KeyCodecTests: XCTestCase {
    func testInt64OrderMatchesNumericOrder() {
        var rng = SystemRandomNumberGenerator()
        var values: [Int64] = [.min, -1, 0, 1, .max, -256, 255, 1 << 40]
        for _ in 0..<500 { values.append(Int64.random(in: .min ... .max, using: &rng)) }
        let sorted = values.sorted()
        let byKey = values.map { v in (v, makeKey { $0.append(v) }) }.sorted { $0.1.lexicographicallyPrecedes($1.1) }.map(\.0)
        XCTAssertEqual(byKey, sorted)
    }

    func testStringOrderMatchesWithFollowingComponents() {
        // "a" must sort before "a\0" and "aa" whatever follows: a length
        // prefix or a bare terminator would get this wrong.
        let strings = ["", "a", "a\u{0}", "a\u{0}b", "aa", "b", "ab", "\u{0}", "zz", "a\u{1}"]
        let tails: [Int64] = [.min, 0, .max]
        var pairs: [(String, Int64)] = []
        for s in strings { for t in tails { pairs.append((s, t)) } }
        let expected = pairs.sorted { ($0.0.utf8.lexicographicallyPrecedes($1.0.utf8)) || ($0.0 == $1.0 && $0.1 < $1.1) }
        let actual = pairs.map { p in (p, makeKey { $0.append(p.0); $0.append(p.1) }) }
            .sorted { $0.1.lexicographicallyPrecedes($1.1) }.map(\.0)
        XCTAssertEqual(actual.map(\.0), expected.map(\.0))
        XCTAssertEqual(actual.map(\.1), expected.map(\.1))
    }

    func testDecodeRoundTrip() throws {
        let key = makeKey { $0.append(UInt32(7)); $0.append("us\u{0}er"); $0.append(Int64(-42)) }
        try key.withUnsafeBytes { raw in
            var decoder = KeyDecoder(raw)
            XCTAssertEqual(try decoder.readUInt32(), 7)
            XCTAssertEqual(try decoder.readString(), "us\u{0}er")
            XCTAssertEqual(try decoder.readInt64(), -42)
            XCTAssertTrue(decoder.isAtEnd)
            XCTAssertThrowsError(try decoder.readUInt32())
        }
    }

    func testEncoderReportsOverflowInsteadOfWritingPastTheBuffer() {
        var storage = [UInt8](repeating: 0, count: 6)
        storage.withUnsafeMutableBytes { raw in
            var encoder = KeyEncoder(raw)
            encoder.append(UInt32(1))
            XCTAssertFalse(encoder.overflowed)
            encoder.append(Int64(5))
            XCTAssertTrue(encoder.overflowed)
        }
        // makeKey grows past the inline size.
        let long = String(repeating: "x", count: 5000)
        let key = makeKey { $0.append(long) }
        XCTAssertEqual(key.count, 5002)
    }
}
