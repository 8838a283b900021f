// SkewCheck: train-serve skew detection. With sampling switched on
// (`read_sample_rate` in the daemon's config), a fraction of online reads
// leave one entity row each — the keys, the time of the read and every value
// served — in a bounded in-memory ring. A skew check replays the latest N
// samples of a feature service through the offline face's point-in-time
// join at the same times and reports every value that differs: what training
// data for that moment would have held versus what the model was served
// (late-arriving rows, online-only pushes, materialisation gaps).
import Foundation
import Synchronization

/// One sampled online read: one entity row of one request.
public struct ReadSample: Sendable {
    /// The references read, "view:feature", in the request's order.
    public var references: [String]
    /// The request's entity columns, one row.
    public var keys: [Column]
    public var time: Int64
    /// The values served, one per reference (nil when not PRESENT).
    public var served: [Value?]
}

/// A bounded ring of sampled reads. Threading: any thread.
public final class ReadSampler: Sendable {
    /// Fraction of reads sampled, 0...1.
    public let rate: Double
    public let capacity: Int
    private let state: Mutex<(samples: [ReadSample], next: Int, rng: UInt64)>

    public init(rate: Double, capacity: Int = 10_000) {
        self.rate = min(1, max(0, rate))
        self.capacity = max(1, capacity)
        state = Mutex(([], 0, 0x9E37_79B9_7F4A_7C15))
    }

    /// Whether to sample this read (cheap: one lock, one xorshift step).
    func shouldSample() -> Bool {
        guard rate > 0 else { return false }
        if rate >= 1 { return true }
        return state.withLock { s in
            s.rng ^= s.rng << 13; s.rng ^= s.rng >> 7; s.rng ^= s.rng << 17
            return Double(s.rng >> 11) / Double(1 << 53) < rate
        }
    }

    func record(_ sample: ReadSample) {
        state.withLock { s in
            if s.samples.count < capacity { s.samples.append(sample) } else { s.samples[s.next] = sample }
            s.next = (s.next + 1) % capacity
        }
    }

    /// The latest `count` samples of reads of exactly `references` (a
    /// feature service's, say), oldest first.
    public func latest(references: [String], count: Int) -> [ReadSample] {
        state.withLock { s in
            let ordered = s.samples.count < capacity ? s.samples : Array(s.samples[s.next...] + s.samples[..<s.next])
            return Array(ordered.filter { $0.references == references }.suffix(count))
        }
    }
}

extension OnlineStore {
    /// Records one entity row of a finished lookup (the hook in `lookup`,
    /// which every online read goes through).
    func sample(_ rows: borrowing RowLookup, entities: [Column]) {
        guard let sampler, rows.count > 0 else { return }
        let row = Int(rows.now % Int64(rows.count))
        guard entities.allSatisfy({ !$0.nullRows.contains(UInt32(row)) }) else { return }
        let plan = rows.plan
        var served: [Value?] = []
        for o in plan.outputs.indices {
            let type = plan.outputs[o].feature.type
            switch rows.cell(o, row) {
            case .value(let packed, let at, let base):
                var column = Column(name: "", type: type)
                served.append(packed.append(type, at: at, base: base, to: &column) ? column.value(0, nulls: []) : nil)
            case .missing:
                served.append(nil)
            }
        }
        let references = plan.outputs.map { "\(plan.views[$0.view].name):\($0.feature.name)" }
        sampler.record(ReadSample(references: references, keys: entities.map { $0.slice(row..<(row + 1)) },
                                  time: rows.now, served: served.map { $0 == .null ? nil : $0 }))
    }
}

/// One value that the offline face would have given differently.
public struct SkewDifference: Sendable, Equatable {
    public var entity: String
    public var time: Int64
    public var feature: String
    /// nil: null / not served.
    public var online: String?
    public var offline: String?
}

/// What a skew check found.
public struct SkewReport: Sendable {
    public var samplesChecked = 0
    public var valuesChecked = 0
    public var differences: [SkewDifference] = []
}

extension OfflineStore {
    /// Replays the latest `count` sampled reads of `service` through the
    /// point-in-time join at their read times and compares every value.
    public func skewCheck(service: String, count: Int, sampler: ReadSampler?) throws -> SkewReport {
        guard let sampler, sampler.rate > 0 else {
            throw FeatureStoreError.conflict("online reads are not sampled; set read_sample_rate (e.g. 0.01) in the daemon's config")
        }
        guard let definition = catalog.snapshot.services[service] else {
            throw FeatureStoreError.notFound("unknown feature service '\(service)'")
        }
        var report = SkewReport()
        for sample in sampler.latest(references: definition.features, count: max(0, count)) {
            let (columns, _) = try join(HistoricalRequest(service: service, spine: sample.keys, eventTimes: [sample.time],
                                                          fullFeatureNames: true))
            let features = columns.dropFirst(sample.keys.count)
            let entity = sample.keys.map { "\($0.name)=\(describe($0.value(0, nulls: Set($0.nullRows.map(Int.init)))))" }
                .joined(separator: ",")
            report.samplesChecked += 1
            for (i, column) in features.enumerated() where i < sample.served.count {
                let offline = column.value(0, nulls: Set(column.nullRows.map(Int.init)))
                let online = sample.served[i] ?? .null
                report.valuesChecked += 1
                if offline != online {
                    report.differences.append(SkewDifference(
                        entity: entity, time: sample.time, feature: sample.references[i],
                        online: online == .null ? nil : describe(online), offline: offline == .null ? nil : describe(offline)))
                }
            }
        }
        return report
    }
}

/// A value as text for reports.
func describe(_ value: Value) -> String {
    switch value {
    case .null: "null"
    case .int(let i): String(i)
    case .double(let d): String(d)
    case .bool(let b): String(b)
    case .string(let s): s
    }
}
