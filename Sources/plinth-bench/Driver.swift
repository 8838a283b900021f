// Driver: the closed-loop load generator behind `get`, `redis-get` and
// `compare`.
// One thread per connection with a blocking socket (the machine this runs
// on has two cores; an event loop would buy nothing), each keeping
// `pipeline` requests in flight: it writes the requests it may send in one
// send(), blocks in recv(), times every answer found in what arrived, and
// writes as many new requests as answers came back. Latency is measured
// from the send() of a request to the recv() that completed its answer, in
// nanoseconds into an HdrHistogram (three significant digits: a 20 µs
// latency is resolved to about 0.02 µs, where whole microseconds would
// blur a 1.2x ratio); the summaries print µs.
import Foundation
import Histogram

struct DriverOptions: Sendable {
    var address: String
    var connections: Int
    var pipeline: Int
    var entitiesPerRequest: Int
    /// Measured seconds after the warm-up; nil when `requests` bounds the run.
    var duration: Double?
    /// Measured requests in all (split over the connections).
    var requests: Int?
    var warmup: Double
    var keySpace: Int
    var seed: UInt64
    /// Check every value of one answer in this many (and of the first).
    var verifyEvery: Int
    /// Hard stop, whatever the bounds above say.
    var timeLimit: Double
    /// The server's process id: with a --duration run, the CPU time it and
    /// this process use during the measured seconds is recorded.
    var serverPID: Int32? = nil
}

/// A latency histogram in nanoseconds, up to two minutes.
func latencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
}

/// What one connection measured.
struct ConnectionResult: Sendable {
    var histogram = latencyHistogram()
    var measured = 0
    var lastDone: UInt64 = 0
    var verified = 0
    /// Error answers (of a codec that counts them) and the first one's text.
    var errorAnswers = 0
    var firstErrorAnswer: String?
    var error: String?
}

/// A value handed to a thread that alone uses it from then on.
// Safe: one thread at a time uses `value` (its receiver, or the holder of the lock paired with it: Loader's `nextLock`).
final class Handoff<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// Collects per-thread results.
// Safe: `results` is read and written only under `lock`.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [T] = []
    func append(_ r: T) { lock.lock(); results.append(r); lock.unlock() }
    var all: [T] { lock.lock(); defer { lock.unlock() }; return results }
}

/// Runs `body(i)` on `count` threads and waits for all of them.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let done = DispatchGroup()
    for i in 0..<count {
        done.enter()
        let thread = Thread {
            body(i)
            done.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    done.wait()
}

enum Driver {
    /// Runs one measurement of `codec` with `options`.
    static func run<C: ReadCodec & Sendable>(_ codec: C, _ options: DriverOptions) throws -> Measurement {
        // Connect everything before the clock starts.
        var sockets: [Handoff<Socket>] = []
        for _ in 0..<options.connections {
            let socket = try Socket(address: options.address)
            try codec.open(socket)
            sockets.append(Handoff(socket))
        }
        let start = nowNanos()
        let warmupEnd = start + UInt64(options.warmup * 1e9)
        let deadline = options.duration.map { warmupEnd + UInt64($0 * 1e9) }
        let hardStop = start + UInt64(options.timeLimit * 1e9)
        let box = ResultBox<ConnectionResult>()
        let connected = sockets
        let cpu = ResultBox<CPUWindow>()
        let sampler = DispatchGroup()
        if let pid = options.serverPID, let deadline {
            sampler.enter()
            let thread = Thread {
                if let window = CPUWindow.measure(server: pid, from: warmupEnd, to: deadline) { cpu.append(window) }
                sampler.leave()
            }
            thread.start()
        }
        onThreads(options.connections) { index in
            var result = ConnectionResult()
            do {
                var quota = Int.max
                if let total = options.requests {
                    quota = total / options.connections + (index < total % options.connections ? 1 : 0)
                }
                try loop(codec, socket: connected[index].value, index: index, options: options, quota: quota,
                         warmupEnd: warmupEnd, deadline: deadline, hardStop: hardStop, into: &result)
            } catch {
                result.error = "connection \(index): \(error)"
            }
            box.append(result)
        }
        let results = box.all
        if let error = results.compactMap(\.error).first { throw BenchError(error) }
        sampler.wait()
        var measurement = Measurement()
        measurement.cpu = cpu.all.first
        for r in results {
            measurement.histogram.add(r.histogram)
            measurement.requests += r.measured
            measurement.verified += r.verified
            measurement.errorAnswers += r.errorAnswers
            if measurement.firstErrorAnswer == nil { measurement.firstErrorAnswer = r.firstErrorAnswer }
        }
        let end = results.map(\.lastDone).max() ?? warmupEnd
        measurement.seconds = Double(end > warmupEnd ? end - warmupEnd : 1) / 1e9
        return measurement
    }

    private static func loop<C: ReadCodec>(_ codec: C, socket: Socket, index: Int, options: DriverOptions, quota: Int,
                                           warmupEnd: UInt64, deadline: UInt64?, hardStop: UInt64,
                                           into result: inout ConnectionResult) throws {
        let k = options.entitiesPerRequest
        // Slots for requests in flight, by id. Plinth may answer out of
        // order, so the ring is larger than the pipeline and a slot is
        // checked before reuse.
        var capacity = 64
        while capacity < options.pipeline * 4 { capacity *= 2 }
        let mask = UInt64(capacity - 1)
        var slotID = [UInt64](repeating: 0, count: capacity)
        var slotSent = [UInt64](repeating: 0, count: capacity)
        var slotKeys = [Int64](repeating: 0, count: capacity * k)
        var keys = KeyGenerator(seed: options.seed &+ UInt64(index) &* 7919, keySpace: options.keySpace)
        var out: [UInt8] = []
        out.reserveCapacity(options.pipeline * (k * 24 + 256))
        var nextID: UInt64 = 1
        var nextInOrder: UInt64 = 1
        var inFlight = 0
        var issuedMeasured = 0
        var completed = 0

        func fill(now: UInt64) throws {
            let firstID = nextID
            while inFlight < options.pipeline && now < hardStop {
                if let deadline { if now >= deadline { break } } else if now >= warmupEnd && issuedMeasured >= quota { break }
                let id = nextID
                let slot = Int(id & mask)
                guard slotID[slot] == 0 else {
                    throw BenchError("request \(slotID[slot]) is still unanswered after \(capacity) later requests")
                }
                slotID[slot] = id
                slotKeys.withUnsafeMutableBufferPointer { all in
                    let mine = UnsafeMutableBufferPointer(rebasing: all[(slot * k)..<(slot * k + k)])
                    for i in 0..<k { mine[i] = keys.next() }
                    codec.appendRequest(id: id, keys: UnsafeBufferPointer(mine), to: &out)
                }
                nextID += 1
                inFlight += 1
                if now >= warmupEnd { issuedMeasured += 1 }
            }
            guard !out.isEmpty else { return }
            let sent = nowNanos()
            for id in firstID..<nextID { slotSent[Int(id & mask)] = sent }
            try out.withUnsafeBytes { try socket.send($0) }
            out.removeAll(keepingCapacity: true)
        }

        try fill(now: nowNanos())
        while inFlight > 0 {
            try socket.receiveMore()
            let now = nowNanos()
            while let answer = try codec.parseAnswer(socket.unread) {
                let id = answer.id ?? nextInOrder
                nextInOrder += 1
                let slot = Int(id & mask)
                guard slotID[slot] == id else { throw BenchError("an answer for request \(id), which is not in flight") }
                let sent = slotSent[slot]
                if let error = answer.error {
                    result.errorAnswers += 1
                    if result.firstErrorAnswer == nil { result.firstErrorAnswer = error }
                } else if sent >= warmupEnd {
                    result.histogram.record(now - sent)
                    result.measured += 1
                    result.lastDone = now
                }
                if answer.error == nil && completed % options.verifyEvery == 0 {
                    try slotKeys.withUnsafeBufferPointer { all in
                        try codec.verify(UnsafeRawBufferPointer(rebasing: socket.unread[0..<answer.length]),
                                         keys: UnsafeBufferPointer(rebasing: all[(slot * k)..<(slot * k + k)]))
                    }
                    result.verified += 1
                }
                completed += 1
                slotID[slot] = 0
                inFlight -= 1
                socket.consume(answer.length)
            }
            try fill(now: now)
        }
    }
}

/// What a run (or several rounds of it) measured: the raw material of a summary.
struct Measurement {
    var histogram = latencyHistogram()
    var requests = 0
    /// Measured seconds (after the warm-up), summed over rounds.
    var seconds = 0.0
    var verified = 0
    var errorAnswers = 0
    var firstErrorAnswer: String?
    /// CPU used during the measured seconds, when the server's pid was given.
    var cpu: CPUWindow?

    mutating func add(_ other: Measurement) {
        histogram.add(other.histogram)
        requests += other.requests
        seconds += other.seconds
        verified += other.verified
        errorAnswers += other.errorAnswers
        if firstErrorAnswer == nil { firstErrorAnswer = other.firstErrorAnswer }
        if let o = other.cpu {
            cpu = CPUWindow(seconds: (cpu?.seconds ?? 0) + o.seconds, serverCPUSeconds: (cpu?.serverCPUSeconds ?? 0) + o.serverCPUSeconds,
                            clientCPUSeconds: (cpu?.clientCPUSeconds ?? 0) + o.clientCPUSeconds)
        }
    }
}

/// CPU time (user + system) that the server and this process used over a
/// stretch of wall-clock time, from /proc/PID/stat (clock ticks, 10 ms).
struct CPUWindow: Codable, Sendable {
    var seconds: Double
    var serverCPUSeconds: Double
    var clientCPUSeconds: Double

    /// CPU cores the two processes kept busy on average.
    var cores: Double { (serverCPUSeconds + clientCPUSeconds) / seconds }

    /// Sleeps until `from`, samples both processes, sleeps until `to`, samples again.
    static func measure(server: Int32, from: UInt64, to: UInt64) -> CPUWindow? {
        sleepUntil(from)
        let t0 = nowNanos()
        guard let s0 = ticks(server), let c0 = ticks(getpid()) else { return nil }
        sleepUntil(to)
        let t1 = nowNanos()
        guard let s1 = ticks(server), let c1 = ticks(getpid()) else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        return CPUWindow(seconds: Double(t1 - t0) / 1e9, serverCPUSeconds: Double(s1 - s0) / hz, clientCPUSeconds: Double(c1 - c0) / hz)
    }

    /// utime + stime of a process, in clock ticks.
    static func ticks(_ pid: Int32) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    private static func sleepUntil(_ deadline: UInt64) {
        while true {
            let now = nowNanos()
            guard now < deadline else { return }
            let wait = deadline - now
            var ts = timespec(tv_sec: Int(wait / 1_000_000_000), tv_nsec: Int(wait % 1_000_000_000))
            nanosleep(&ts, nil)
        }
    }
}

/// One run's figures: what the tables and the JSON report.
struct RunSummary: Codable {
    var system: String
    var operation: String
    var connections: Int
    var pipeline: Int
    var entitiesPerRequest: Int
    var requests: Int
    var seconds: Double
    var requestsPerSecond: Double
    var entitiesPerSecond: Double
    var latencyMicros: [String: Double]
    var verifiedAnswers: Int
    var rounds: Int
    var errorAnswers: Int
    var firstErrorAnswer: String?
    var cpu: CPUWindow?
    /// Requests per CPU-second of server and client together (with `cpu`):
    /// throughput per core busy.
    var requestsPerCpuSecond: Double?

    init(system: String, operation: String, options: DriverOptions, _ m: Measurement, rounds: Int = 1) {
        let histogram = m.histogram, measured = m.requests, seconds = m.seconds, verified = m.verified
        self.system = system
        self.operation = operation
        connections = options.connections
        pipeline = options.pipeline
        entitiesPerRequest = options.entitiesPerRequest
        requests = measured
        self.seconds = seconds
        requestsPerSecond = Double(measured) / seconds
        entitiesPerSecond = requestsPerSecond * Double(options.entitiesPerRequest)
        func us(_ ns: UInt64) -> Double { (Double(ns) / 10).rounded() / 100 }
        latencyMicros = [
            "p50": us(histogram.valueAtPercentile(50)), "p90": us(histogram.valueAtPercentile(90)),
            "p99": us(histogram.valueAtPercentile(99)), "p99.9": us(histogram.valueAtPercentile(99.9)),
            "max": us(histogram.max), "mean": (histogram.mean / 10).rounded() / 100,
        ]
        verifiedAnswers = verified
        self.rounds = rounds
        errorAnswers = m.errorAnswers
        firstErrorAnswer = m.firstErrorAnswer
        cpu = m.cpu
        if let cpu = m.cpu, cpu.cores > 0 { requestsPerCpuSecond = (requestsPerSecond / cpu.cores).rounded() }
    }

    var line: String {
        let l = latencyMicros
        func f(_ key: String) -> String { String(format: "%.1f", l[key] ?? 0) }
        return "\(system) \(operation): \(connections) conn x \(pipeline) in flight, \(entitiesPerRequest) entities/request: "
            + "\(Int(requestsPerSecond)) req/s, \(Int(entitiesPerSecond)) entities/s over \(String(format: "%.1f", seconds)) s; "
            + "latency µs p50 \(f("p50")) p90 \(f("p90")) p99 \(f("p99")) p99.9 \(f("p99.9")) max \(f("max")) "
            + "(\(requests) requests\(rounds > 1 ? " in \(rounds) rounds" : ""), \(verifiedAnswers) answers checked value by value)"
            + (cpu.map { String(format: "; CPU: server %.2f s + client %.2f s over %.1f s = %.2f cores, %.0f req per CPU-second",
                                $0.serverCPUSeconds, $0.clientCPUSeconds, $0.seconds, $0.cores, requestsPerCpuSecond ?? 0) } ?? "")
            + (errorAnswers > 0 ? "; \(errorAnswers) ERROR answers, the first: \(firstErrorAnswer ?? "")" : "")
    }
}
