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

    /// A run of consecutive ids reserved in one step; `write` formats any of them.
    public struct Run: Sendable {
        let millis: UInt64
        let high: UInt16
        let low: UInt64
        public let count: Int

        /// Writes id `index` of the run (26 ASCII bytes) at `to`.
        public func write(_ index: Int, to: UnsafeMutableRawPointer) {
            let (l, carry) = low.addingReportingOverflow(UInt64(index))
            PredictionIDs.format(millis: millis, high: carry ? high &+ 1 : high, low: l, into: to)
        }
    }

    /// Reserves `count` consecutive ids, in order.
    public func reserve(_ count: Int, now: UInt64 = UInt64(Date().timeIntervalSince1970 * 1000)) -> Run {
        guard count > 0 else { return Run(millis: 0, high: 0, low: 0, count: 0) }
        return state.withLock { s in
            if now > s.millis {
                s.millis = now
                s.high = UInt16.random(in: 0...UInt16.max) & 0x7fff  // room to count up without wrapping
                s.low = UInt64.random(in: 0...UInt64.max)
            }
            let run = Run(millis: s.millis, high: s.high, low: s.low, count: count)
            let (sum, carry) = s.low.addingReportingOverflow(UInt64(count))
            s.low = sum
            if carry { s.high &+= 1 }
            return run
        }
    }

    /// `count` consecutive ids, in order, as strings.
    public func next(_ count: Int, now: UInt64 = UInt64(Date().timeIntervalSince1970 * 1000)) -> [String] {
        let run = reserve(count, now: now)
        return (0..<run.count).map { i in
            String(unsafeUninitializedCapacity: 26) { buffer in
                run.write(i, to: UnsafeMutableRawPointer(buffer.baseAddress!))
                return 26
            }
        }
    }

    public static let length = 26

    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    static func format(millis: UInt64, high: UInt16, low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 26) { buffer in
            format(millis: millis, high: high, low: low, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            return 26
        }
    }

    static func format(millis: UInt64, high: UInt16, low: UInt64, into out: UnsafeMutableRawPointer) {
        // 128 bits: 48 time, 16 high, 64 low; 26 characters of 5 bits (the
        // first holds the top 3 bits).
        let hi = (millis & 0xffff_ffff_ffff) << 16 | UInt64(high)
        alphabet.withUnsafeBufferPointer { alphabet in
            for i in 0..<26 {
                let shift = 125 - 5 * i  // this character's lowest bit, counted from the bottom
                let v: UInt64
                if shift >= 64 {
                    v = hi >> UInt64(shift - 64)
                } else if shift > 59 {
                    v = (hi << UInt64(64 - shift)) | (low >> UInt64(shift))
                } else {
                    v = low >> UInt64(shift)
                }
                out.storeBytes(of: alphabet[Int(v & 31)], toByteOffset: i, as: UInt8.self)
            }
        }
    }
}
