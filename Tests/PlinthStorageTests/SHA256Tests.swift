// SHA-256 against the FIPS 180-4 test vectors, whole and fed in pieces.
import Foundation
import XCTest
@testable import PlinthStorage

final class SHA256Tests: XCTestCase {
    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Fed in odd pieces, the same as all at once.
        let long = Array((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        var pieces = SHA256()
        var i = 0
        for size in [1, 63, 64, 65, 200, 607] { pieces.update(Array(long[i..<(i + size)])); i += size }
        XCTAssertEqual(hexString(pieces.finalize()), SHA256.hex(long))
    }

    func testContiguousBytesAndHexAgree() {
        var h = SHA256()
        h.update(Data("ab".utf8))
        h.update(Array("c".utf8)[...])
        XCTAssertEqual(h.finalizeHex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
