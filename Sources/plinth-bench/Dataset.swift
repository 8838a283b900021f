// Dataset: the benchmark's data, the same on every side. Entity ids are
// 0..<entities; feature j of entity id has a value computed from (id, j),
// so any reader can check what it got without keeping the data around. The
// Redis side stores each entity as the same packed row that Plinth stores
// in LMDB (RowCodec's layout), so both move the same bytes per entity.

enum Dataset {
    static let project = "bench"
    static let view = "bench"
    static let entity = "id"

    /// Feature j's name.
    static func featureName(_ j: Int) -> String { "f\(j)" }

    /// The value of feature `j` of entity `id`: a hash spread over
    /// [0, 1000), exactly representable in float32 steps of 1/64.
    @inline(__always)
    static func value(_ id: Int64, _ j: Int) -> Float {
        var h = UInt64(bitPattern: id) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(j) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        return Float(h % 64_000) / 64
    }

    /// The definitions document for `features` float32 features.
    static func definitionsYAML(features: Int) -> String {
        var yaml = """
        # Applied by plinth-bench load.
        project: \(project)
        entities:
          - {name: \(entity), join_key: \(entity), type: int64}
        feature_views:
          - name: \(view)
            entities: [\(entity)]
            description: Synthetic rows for plinth-bench.
            features:

        """
        for j in 0..<features { yaml += "      - {name: \(featureName(j)), type: float32}\n" }
        return yaml
    }

    /// Feature references "bench:f0", ... for a read.
    static func references(features: Int) -> [String] {
        (0..<features).map { "\(view):\(featureName($0))" }
    }

    /// Appends entity `id`'s packed row in Plinth's row layout
    /// (Sources/PlinthFeatures/RowCodec.swift): format, schema version,
    /// event time, created time, null bitmap, then the float32 values.
    static func appendPackedRow(id: Int64, features: Int, eventTime: Int64, to out: inout [UInt8]) {
        out.append(1)
        appendLE(UInt32(1), to: &out)
        appendLE(UInt64(bitPattern: eventTime), to: &out)
        appendLE(UInt64(bitPattern: eventTime), to: &out)
        out.append(contentsOf: repeatElement(0, count: (features + 7) / 8))
        for j in 0..<features { appendLE(value(id, j).bitPattern, to: &out) }
    }

    static func packedRowSize(features: Int) -> Int { 21 + (features + 7) / 8 + 4 * features }

    /// Offset of feature j's float32 in a packed row.
    static func packedOffset(_ j: Int, features: Int) -> Int { 21 + (features + 7) / 8 + 4 * j }

    private static func appendLE<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}

/// xorshift64*: the key generator. Seeded per connection, so Plinth and
/// Redis are asked for the same keys in the same order.
struct KeyGenerator {
    private var state: UInt64
    let keySpace: UInt64

    init(seed: UInt64, keySpace: Int) {
        state = seed &* 0x2545_F491_4F6C_DD1D | 1
        self.keySpace = UInt64(keySpace)
    }

    @inline(__always)
    mutating func next() -> Int64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return Int64((state &* 0x2545_F491_4F6C_DD1D) % keySpace)
    }
}
