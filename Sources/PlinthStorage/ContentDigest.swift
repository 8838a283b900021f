// ContentDigest: what Plinth adds to swift-crypto's SHA256 for the content
// digests that name datasets (PlinthFeatures) and artifact blobs
// (PlinthTracking). The Python client computes the same digests, so the
// framing below (lengths before strings, little-endian values) is part of
// what those names mean and must not change.
package import Crypto

extension SHA256 {
    /// Feeds the raw bytes of a value (little-endian integers, floats' bits).
    package mutating func update<T: BitwiseCopyable>(value: T) {
        withUnsafeBytes(of: value) { update(bufferPointer: $0) }
    }

    /// Feeds a string with its length first, so ("ab","c") != ("a","bc").
    package mutating func update(string: String) {
        var s = string
        update(value: UInt64(s.utf8.count).littleEndian)
        s.withUTF8 { update(bufferPointer: UnsafeRawBufferPointer($0)) }
    }
}

extension Digest {
    /// The digest as lowercase hex, as blobs and dataset ids are named.
    package var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(Self.byteCount * 2)
        for b in self {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
