// Prediction ids: ULIDs (48 bits of Unix milliseconds, then 80 bits), as
// 26 characters of Crockford base32. Within a millisecond the 80-bit part
// increases by one from a random start, so ids sort by time and then by
// issue order, and stay unique without coordination; monitoring joins
// late ground truth to predictions by this id.
public import Foundation
import Synchronization

public final class PredictionIDs: Sendable {
    private struct State {
        var millis: UInt64 = 0
        var high: UInt16 = 0
        var low: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// `count` consecutive ids, in order.
    public func next(_ count: Int, now: UInt64 = UInt64(Date().timeIntervalSince1970 * 1000)) -> [String] {
        guard count > 0 else { return [] }
        // Reserve the whole run under the lock; format outside it.
        let (millis, high, low) = state.withLock { s -> (UInt64, UInt16, UInt64) in
            if now > s.millis {
                s.millis = now
                s.high = UInt16.random(in: 0...UInt16.max) & 0x7fff  // room to count up without wrapping
                s.low = UInt64.random(in: 0...UInt64.max)
            }
            let start = (s.millis, s.high, s.low)
            let (sum, carry) = s.low.addingReportingOverflow(UInt64(count))
            s.low = sum
            if carry { s.high &+= 1 }
            return start
        }
        var out: [String] = []
        out.reserveCapacity(count)
        var h = high, l = low
        for _ in 0..<count {
            out.append(Self.format(millis: millis, high: h, low: l))
            let (sum, carry) = l.addingReportingOverflow(1)
            l = sum
            if carry { h &+= 1 }
        }
        return out
    }

    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    static func format(millis: UInt64, high: UInt16, low: UInt64) -> String {
        // 128 bits: 48 time, 16 high, 64 low; 26 characters of 5 bits (the
        // first holds the top 3 bits).
        let hi = (millis & 0xffff_ffff_ffff) << 16 | UInt64(high)
        return String(unsafeUninitializedCapacity: 26) { buffer in
            for i in 0..<26 {
                let shift = 125 - 5 * i  // bit position of this character's lowest bit, from the top of 130
                var v: UInt64
                if shift >= 64 {
                    v = hi >> UInt64(shift - 64)
                } else if shift > 59 {
                    v = (hi << UInt64(64 - shift)) | (low >> UInt64(shift))
                } else {
                    v = low >> UInt64(shift)
                }
                buffer[i] = alphabet[Int(v & 31)]
            }
            return 26
        }
    }
}
