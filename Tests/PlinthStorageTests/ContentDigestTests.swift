// Content digests: swift-crypto's SHA256 with Plinth's framing must give the
// digests that already name datasets and artifact blobs (and that the Python
// client computes), streamed or whole. Expected values come from Python's
// hashlib (`printf abc | sha256sum` for the plain vectors).
import Crypto
import XCTest
@testable import PlinthStorage

final class ContentDigestTests: XCTestCase {
    func testKnownVectorsWholeAndStreamed() {
        XCTAssertEqual(SHA256.hash(data: [UInt8]()).hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hash(data: Array("abc".utf8)).hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // A million 'a's fed in chunks that straddle the 64-byte blocks.
        let million = [UInt8](repeating: 0x61, count: 1_000_000)
        var hasher = SHA256()
        for start in stride(from: 0, to: million.count, by: 777) {
            hasher.update(data: million[start..<min(million.count, start + 777)])
        }
        XCTAssertEqual(hasher.finalize().hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testFramingOfStringsAndValuesIsUnchanged() {
        // The shape of a dataset digest (OfflineStore.datasetRecord): a
        // length-prefixed string, a count, raw little-endian values.
        var hasher = SHA256()
        hasher.update(string: "plinth-dataset-v1")
        hasher.update(value: UInt64(3).littleEndian)
        [Int64(1), -2, 3].withUnsafeBytes { hasher.update(bufferPointer: $0) }
        hasher.update(string: "é")
        hasher.update(value: Float(1.5))
        hasher.update(value: UInt8(1))
        XCTAssertEqual(hasher.finalize().hex, "4e9a62367e430d758c750c616d78c1e419b3af56deb27c3306940986ee96cecd")
    }
}
