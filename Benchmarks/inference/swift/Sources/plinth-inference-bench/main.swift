// Times PlinthInference the way Benchmarks/inference/bench_c.c times the C
// predictors: single-row latency (each call timed alone, the timer's own cost
// subtracted; p50 and p99) and the mean of a tight loop, batch throughput on
// one and two threads (rows per wall-second and per CPU-second), and model
// load time. Prints one JSON object per measurement on stdout.
//
// usage: plinth-inference-bench MODEL ROWS.f32 FEATURES [label]

import Foundation
import PlinthInference

#if canImport(Glibc)
import Glibc
#endif

func now(_ clock: clockid_t = CLOCK_MONOTONIC) -> Double {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return Double(ts.tv_sec) * 1e9 + Double(ts.tv_nsec)
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

let args = CommandLine.arguments
guard args.count >= 4, let featureCount = Int(args[3]) else {
    FileHandle.standardError.write(Data("usage: plinth-inference-bench MODEL ROWS.f32 FEATURES [label]\n".utf8))
    exit(2)
}
let label = args.count > 4 ? args[4] : args[1]
let rowBytes = try Data(contentsOf: URL(fileURLWithPath: args[2]))
let rows: [Float] = rowBytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
let rowCount = rows.count / featureCount

// PLINTH_BENCH_ONLY=batch: one single-threaded pass of the batch path over
// every row and nothing else; PLINTH_BENCH_ONLY=single: every row once through
// the single-row path. For instruction counts under callgrind
// (`--collect-atstart=no --toggle-collect='*predictBatch*'` or
// `'*predictRow*'` leaves the model load out); prints a checksum.
if let only = ProcessInfo.processInfo.environment["PLINTH_BENCH_ONLY"] {
    let model = try ModelLoader.load(path: args[1])
    var out = [Double](repeating: 0, count: rowCount * model.outputCount)
    try rows.withUnsafeBufferPointer { r in
        try out.withUnsafeMutableBufferPointer { o in
            if only == "single" {
                let n = model.outputCount
                for i in 0..<rowCount {
                    try model.predict(row: UnsafeBufferPointer(rebasing: r[i * featureCount..<(i + 1) * featureCount]),
                                      into: UnsafeMutableBufferPointer(rebasing: o[i * n..<(i + 1) * n]))
                }
            } else {
                try model.predictBatch(rows: r, rowCount: rowCount, into: o, threads: 1)
            }
        }
    }
    print(#"{"impl":"plinth","model":"\#(label)","what":"\#(only)-only","rows":\#(rowCount),"sum":\#(out.reduce(0, +))}"#)
    exit(0)
}

// Load: the source format, then Plinth's native binary form of the same model.
// Best of three for each: the first read of a file also pays for the page cache.
var loadStart = now()
var importMs = Double.infinity
var loaded: Model?
for _ in 0..<3 {
    loadStart = now()
    loaded = try ModelLoader.load(path: args[1])
    importMs = min(importMs, (now() - loadStart) / 1e6)
}
guard let model = loaded else { exit(1) }
let native = try NativeModelFormat.encode(model)
var nativeMs = Double.infinity
for _ in 0..<10 {
    loadStart = now()
    _ = try ModelLoader.load(data: native)
    nativeMs = min(nativeMs, (now() - loadStart) / 1e6)
}
print(#"{"impl":"plinth","model":"\#(label)","what":"load","import_ms":\#(importMs),"native_ms":\#(nativeMs),"native_bytes":\#(native.count)}"#)

// Single row.
var out = [Double](repeating: 0, count: model.outputCount)
var sink = 0.0
let samples = 20_000
var overhead = [Double]()
for _ in 0..<samples {
    let t0 = now()
    let t1 = now()
    overhead.append(t1 - t0)
}
overhead.sort()
let timerCost = percentile(overhead, 0.5)
var times = [Double]()
times.reserveCapacity(samples)
try rows.withUnsafeBufferPointer { all in
    try out.withUnsafeMutableBufferPointer { o in
        for i in 0..<2000 {  // warm-up
            try model.predict(row: UnsafeBufferPointer(rebasing: all[(i % rowCount) * featureCount..<(i % rowCount + 1) * featureCount]), into: o)
        }
        for i in 0..<samples {
            let r = i % rowCount
            let row = UnsafeBufferPointer(rebasing: all[r * featureCount..<(r + 1) * featureCount])
            let t0 = now()
            try model.predict(row: row, into: o)
            let t1 = now()
            times.append(max(0, t1 - t0 - timerCost))
            sink += o[0]
        }
        let loops = 200_000
        let t0 = now()
        for i in 0..<loops {
            let r = i % rowCount
            try model.predict(row: UnsafeBufferPointer(rebasing: all[r * featureCount..<(r + 1) * featureCount]), into: o)
            sink += o[0]
        }
        let mean = (now() - t0) / Double(loops)
        times.sort()
        print(#"{"impl":"plinth","model":"\#(label)","what":"single","p50_ns":\#(percentile(times, 0.5)),"p99_ns":\#(percentile(times, 0.99)),"mean_ns":\#(mean),"timer_ns":\#(timerCost)}"#)
    }
}

// Batch.
var batchOut = [Double](repeating: 0, count: rowCount * model.outputCount)
for threads in [1, 2] {
    var best = Double.infinity, bestCPU = Double.infinity
    for _ in 0..<5 {
        let w0 = now(), c0 = now(CLOCK_PROCESS_CPUTIME_ID)
        try rows.withUnsafeBufferPointer { r in
            try batchOut.withUnsafeMutableBufferPointer { o in
                try model.predictBatch(rows: r, rowCount: rowCount, into: o, threads: threads)
            }
        }
        best = min(best, now() - w0)
        bestCPU = min(bestCPU, now(CLOCK_PROCESS_CPUTIME_ID) - c0)
    }
    sink += batchOut[0]
    print(#"{"impl":"plinth","model":"\#(label)","what":"batch","threads":\#(threads),"rows":\#(rowCount),"rows_per_s":\#(Double(rowCount) / best * 1e9),"rows_per_cpu_s":\#(Double(rowCount) / bestCPU * 1e9)}"#)
}
if sink.isNaN { FileHandle.standardError.write(Data("(nan in outputs)\n".utf8)) }
