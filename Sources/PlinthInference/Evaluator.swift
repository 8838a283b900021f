// The internal contract between `Model` and the compiled kernels, the batch
// runner that spreads blocks of rows over threads, and the output transforms
// shared by every kind. Kernels see raw pointers: `Model` has already checked
// every buffer's size, so nothing here re-checks per row.

import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

protocol Evaluator: Sendable {
    /// Scores one row into `outputCount` values. Must not allocate on the heap.
    func predictRow(_ row: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Double>, _ kind: OutputKind)
    /// Scores `count` consecutive rows (row-major, `featureCount` apart).
    func predictBlock(_ rows: UnsafePointer<Float>, _ count: Int, _ out: UnsafeMutablePointer<Double>,
                      _ kind: OutputKind)
}

enum BatchRunner {
    /// Rows per block handed to `predictBlock`: enough that a tree's nodes are
    /// reused many times while in cache, few enough that the block's rows and
    /// sums stay in L1.
    static let blockRows = 64

    static func run(evaluator: any Evaluator, rows: UnsafePointer<Float>, rowCount: Int, featureCount: Int,
                    output: UnsafeMutablePointer<Double>, outputCount: Int, kind: OutputKind, threads: Int) {
        let blocks = (rowCount + blockRows - 1) / blockRows
        let workers = min(threads, blocks)
        if workers <= 1 {
            var start = 0
            while start < rowCount {
                let n = min(blockRows, rowCount - start)
                evaluator.predictBlock(rows + start * featureCount, n, output + start * outputCount, kind)
                start += n
            }
            return
        }
        // Each worker takes a contiguous run of blocks: an even share, disjoint
        // parts of `output`, and sequential memory for the prefetchers.
        let rowsAddress = UInt(bitPattern: rows)
        let outAddress = UInt(bitPattern: output)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            guard let rows = UnsafePointer<Float>(bitPattern: rowsAddress),
                  let output = UnsafeMutablePointer<Double>(bitPattern: outAddress) else { return }
            for block in (blocks * worker / workers)..<(blocks * (worker + 1) / workers) {
                let start = block * blockRows
                let n = min(blockRows, rowCount - start)
                evaluator.predictBlock(rows + start * featureCount, n, output + start * outputCount, kind)
            }
        }
    }
}

enum Transform {
    /// Applies `transform` in place to `count` margins.
    @inline(__always)
    static func apply(_ transform: OutputTransform, _ values: UnsafeMutablePointer<Double>, _ count: Int) {
        switch transform {
        case .identity:
            return
        case let .sigmoid(scale):
            for i in 0..<count { values[i] = 1.0 / (1.0 + Glibc.exp(-scale * values[i])) }
        case .exp:
            for i in 0..<count { values[i] = Glibc.exp(values[i]) }
        case .signedSquare:
            // LightGBM's `Sign(x) * x * x` in that order, Sign being -1, 0 or
            // 1, so that even the sign of a zero result is LightGBM's.
            for i in 0..<count {
                let x = values[i]
                let sign: Double = x > 0 ? 1 : x < 0 ? -1 : 0
                values[i] = sign * x * x
            }
        case .softplus:
            // log1p, not log(1 + ·): LightGBM 4.7's output matches it bit for bit.
            for i in 0..<count { values[i] = Glibc.log1p(Glibc.exp(values[i])) }
        case .step:
            for i in 0..<count { values[i] = values[i] > 0 ? 1 : 0 }
        case .softmax:
            var m = values[0]
            for i in 1..<count { m = Swift.max(m, values[i]) }
            var sum = 0.0
            for i in 0..<count {
                let e = Glibc.exp(values[i] - m)
                values[i] = e
                sum += e
            }
            for i in 0..<count { values[i] /= sum }
        }
    }
}
