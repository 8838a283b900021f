// The predict path: check a request's inputs against a served model, build
// each row's input vector (online features looked up in one read
// transaction, or joined point-in-time from the offline face; request
// fields from the caller; missing values become the signature's default or
// NaN), run the model, and hand back the outputs and, when asked, the
// inputs used with their statuses.
import Foundation
public import PlinthFeatures
public import PlinthStorage
import PlinthInference

/// A request's inputs, checked against a served model.
public struct PredictInputs: Sendable {
    public let rows: Int
    /// One per entity key, in `ServedModel.entityKeys` order.
    public let keys: [Column]
    /// One per request field, in `ServedModel.requestFields` order.
    public let fields: [Column]

    /// A slice of rows (for streaming a large batch in chunks).
    public func slice(_ range: Range<Int>) -> PredictInputs {
        PredictInputs(rows: range.count, keys: keys.map { $0.slice(range) }, fields: fields.map { $0.slice(range) })
    }
}

/// What one predict call produced.
public struct PredictOutput: Sendable {
    public let rows: Int
    /// `rows × outputCount` values, row-major.
    public var values: [Double]
    /// With `returnFeatures`: one per signature input (features, then
    /// request fields), in signature order.
    public var features: [FeatureResult]?
}

extension ServedModel {
    /// Matches `columns` to the inputs the model takes.
    /// - Throws: `ServingError.invalidArgument` for an input the model does
    ///   not take, a missing or mistyped one, or ragged columns;
    ///   `.tooLarge` for more than `maxRows` rows.
    public func inputs(_ columns: [Column], maxRows: Int) throws(ServingError) -> PredictInputs {
        // Few inputs: linear searches, and no arrays of optionals (each
        // costs a generic-metadata lookup on the hot path).
        let rows = columns.first?.count ?? 0
        // By index: `for column in columns` would copy each Column (seven
        // arrays, seven retains) on the per-request path.
        for i in columns.indices {
            if let problem = columns[i].shapeProblem() { throw .invalidArgument(problem) }
            let name = columns[i].name
            guard columns[i].count == rows else {
                throw .invalidArgument("input '\(name)' has \(columns[i].count) rows, '\(columns[0].name)' has \(rows)")
            }
            for j in 0..<i where columns[j].name == name {
                throw .invalidArgument("input '\(name)' is given twice")
            }
            guard entityKeys.contains(where: { $0.name == name }) || requestFields.contains(where: { $0.name == name }) else {
                throw .invalidArgument("input '\(name)' is not in the signature of \(label), which takes: \(inputList)")
            }
        }
        guard rows <= maxRows else {
            throw .tooLarge("\(rows) rows in one request; the limit is \(maxRows) (predict_max_rows; use BatchPredict for more)")
        }
        // The usual request: the entity keys alone, in the model's order and
        // types, with no nulls. The caller's array serves as is (no new
        // arrays: each costs an allocation and a generic-metadata lookup).
        if requestFields.isEmpty, columns.count == entityKeys.count,
           columns.indices.allSatisfy({ columns[$0].name == entityKeys[$0].name && columns[$0].type == entityKeys[$0].type
               && columns[$0].nullRows.isEmpty }) {
            return PredictInputs(rows: rows, keys: columns, fields: [])
        }
        var keys: [Column] = []
        keys.reserveCapacity(entityKeys.count)
        for key in entityKeys {
            guard var column = columns.first(where: { $0.name == key.name }) else {
                throw .invalidArgument("entity key '\(key.name)' (\(key.type)) is missing; \(label) takes: \(inputList)")
            }
            if let row = column.nullRows.first {
                throw .invalidArgument("entity key '\(key.name)' is null in row \(row); every row needs its keys")
            }
            if column.type != key.type {
                // KServe has one BYTES type for both: take either spelling.
                guard let converted = column.converted(to: key.type) else {
                    throw .invalidArgument("entity key '\(key.name)' is \(column.type) but \(label) reads it as \(key.type)")
                }
                column = converted
            }
            keys.append(column)
        }
        var fields: [Column] = []
        fields.reserveCapacity(requestFields.count)
        for (f, field) in requestFields.enumerated() {
            guard var column = columns.first(where: { $0.name == field.name }) else {
                throw .invalidArgument("request field '\(field.name)' (\(field.type)) is missing; \(label) takes: \(inputList)")
            }
            switch column.type {
            case .int64, .float32, .float64, .bool: break
            case .string where requestMaps[f] != nil: break
            case .bytes where requestMaps[f] != nil:
                // KServe's BYTES: an original category given as text.
                guard let converted = column.converted(to: .string) else {
                    throw .invalidArgument("request field '\(field.name)' holds bytes that are not UTF-8; \(label) takes its original category values as text or numbers")
                }
                column = converted
            default: throw .invalidArgument("request field '\(field.name)' is \(column.type) but \(label) takes it as \(field.type)")
            }
            fields.append(column)
        }
        return PredictInputs(rows: rows, keys: keys, fields: fields)
    }

    private var inputList: String {
        callerInputs.map { "\($0.name) (\($0.type))" }.joined(separator: ", ")
    }
}

public struct Predictor: Sendable {
    let store: OnlineStore
    let offline: OfflineStore

    public init(store: OnlineStore, offline: OfflineStore) {
        self.store = store
        self.offline = offline
    }

    /// Scores `inputs` with the latest online features.
    /// - Parameters:
    ///   - now: microseconds since the epoch, for TTL checks.
    ///   - threads: threads for the model (1 on an event loop).
    ///   - held: a read transaction to use (one per socket read on the
    ///     server); nil opens one.
    public func predict(_ served: ServedModel, _ inputs: PredictInputs, margin: Bool = false, returnFeatures: Bool = false,
                        now: Int64 = currentMicros(), threads: Int = 1, held: HeldRead? = nil) throws -> PredictOutput {
        var matrix = [Float](repeating: .nan, count: inputs.rows * served.model.featureCount)
        var values = [Double](repeating: 0, count: inputs.rows * served.model.outputCount)
        let features = try matrix.withUnsafeMutableBufferPointer { m in
            try assemble(served, inputs, now: now, held: held, returnFeatures: returnFeatures, into: m)
        }
        try values.withUnsafeMutableBufferPointer { out in
            try matrix.withUnsafeBufferPointer { m in
                try run(served, m, rows: inputs.rows, margin: margin, threads: threads, into: out)
            }
        }
        return PredictOutput(rows: inputs.rows, values: values, features: features)
    }

    /// `predict` for the few rows of a request answered on an event loop:
    /// the input vectors and the outputs live in temporary (stack) storage,
    /// so a one-row Predict allocates no array. `body` gets the outputs,
    /// `rows × outputCount` values, row-major; they are valid only inside it.
    public func predictInPlace(_ served: ServedModel, _ inputs: PredictInputs, margin: Bool = false,
                               now: Int64 = currentMicros(), held: HeldRead? = nil,
                               _ body: (UnsafeBufferPointer<Double>) throws -> Void) throws {
        try withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, inputs.rows * served.model.featureCount)) { m in
            m.initialize(repeating: .nan)
            _ = try assemble(served, inputs, now: now, held: held, returnFeatures: false, into: m)
            try withUnsafeTemporaryAllocation(of: Double.self, capacity: max(1, inputs.rows * served.model.outputCount)) { out in
                let values = UnsafeMutableBufferPointer(rebasing: out[0..<(inputs.rows * served.model.outputCount)])
                values.initialize(repeating: 0)
                try run(served, UnsafeBufferPointer(m), rows: inputs.rows, margin: margin, threads: 1, into: values)
                try body(UnsafeBufferPointer(values))
            }
        }
    }

    /// Fills the input vectors `m` (NaN on entry) from the online face and
    /// the request fields; with `returnFeatures`, returns the inputs used.
    private func assemble(_ served: ServedModel, _ inputs: PredictInputs, now: Int64, held: HeldRead?, returnFeatures: Bool,
                          into m: UnsafeMutableBufferPointer<Float>) throws -> [FeatureResult]? {
        served.fillRequestFields(inputs, into: m)
        var features: [FeatureResult]?
        if let plan = served.plan {
            try store.withRows(plan, entities: inputs.keys, now: now, held: held) { rows in
                served.fillFeatures(from: rows, into: m)
                if !served.categoryFeatures.isEmpty { served.fillCategoryFeatures(from: rows, into: m) }
                if returnFeatures { features = store.results(of: rows) }
            }
        }
        if returnFeatures { features = (features ?? []) + served.requestFieldResults(inputs) }
        return features
    }

    /// Scores `inputs` with the feature values that were current at `asOf`
    /// (microseconds since the epoch), joined point-in-time from the offline
    /// face with each view's TTL, as a training set would have seen them.
    public func predict(_ served: ServedModel, _ inputs: PredictInputs, asOf: Int64, margin: Bool = false,
                        returnFeatures: Bool = false, threads: Int = 1) throws -> PredictOutput {
        let width = served.model.featureCount
        var matrix = [Float](repeating: .nan, count: inputs.rows * width)
        var features: [FeatureResult]?
        if let plan = served.plan {
            let request = HistoricalRequest(features: served.signatureInputs.prefix(plan.outputs.count).map { $0 },
                                            spine: inputs.keys, eventTimes: Array(repeating: asOf, count: inputs.rows),
                                            fullFeatureNames: true)
            let columns = try offline.join(request).columns
            var results: [FeatureResult] = []
            for (o, output) in plan.outputs.enumerated() {
                guard let column = columns.first(where: { $0.name == output.name }) else { continue }
                var statuses = [FieldStatus](repeating: .present, count: inputs.rows)
                for row in column.nullRows { statuses[Int(row)] = .notFound }
                matrix.withUnsafeMutableBufferPointer { m in served.fill(output: o, from: column, statuses: statuses, into: m) }
                if returnFeatures {
                    results.append(FeatureResult(values: column, statuses: statuses, eventTimes: Array(repeating: 0, count: inputs.rows)))
                }
            }
            features = results
        }
        matrix.withUnsafeMutableBufferPointer { m in served.fillRequestFields(inputs, into: m) }
        if returnFeatures { features = (features ?? []) + served.requestFieldResults(inputs) }
        return try score(served, matrix, rows: inputs.rows, margin: margin, threads: threads, features: features)
    }

    private func score(_ served: ServedModel, _ matrix: [Float], rows: Int, margin: Bool, threads: Int,
                       features: [FeatureResult]?) throws -> PredictOutput {
        var values = [Double](repeating: 0, count: rows * served.model.outputCount)
        try matrix.withUnsafeBufferPointer { m in
            try values.withUnsafeMutableBufferPointer { out in
                try run(served, m, rows: rows, margin: margin, threads: threads, into: out)
            }
        }
        return PredictOutput(rows: rows, values: values, features: features)
    }

    /// Runs the model over `rows` input vectors.
    private func run(_ served: ServedModel, _ m: UnsafeBufferPointer<Float>, rows: Int, margin: Bool, threads: Int,
                     into out: UnsafeMutableBufferPointer<Double>) throws {
        if rows == 1 {
            try served.model.predict(row: m, into: out, kind: margin ? .margin : .probability)
        } else {
            try served.model.predictBatch(rows: m, rowCount: rows, into: out, kind: margin ? .margin : .probability,
                                          threads: threads)
        }
    }
}

extension ServedModel {
    /// Writes each row's request fields into its input vector.
    func fillRequestFields(_ inputs: PredictInputs, into m: UnsafeMutableBufferPointer<Float>) {
        let width = model.featureCount
        for (f, column) in inputs.fields.enumerated() {
            let slot = requestSlots[f]
            if let map = requestMaps[f] {
                fillCategories(column, rows: inputs.rows, slot: slot, map: map, into: m)
                continue
            }
            var nulls = column.nullRows.makeIterator()
            var nextNull = nulls.next().map(Int.init) ?? -1
            for row in 0..<inputs.rows {
                if row == nextNull {
                    m[row * width + slot] = missingValues[slot]
                    nextNull = nulls.next().map(Int.init) ?? -1
                    continue
                }
                m[row * width + slot] = switch column.type {
                case .int64: Float(column.int64s[row])
                case .float32: column.float32s[row]
                case .float64: Float(column.float64s[row])
                case .bool: column.bools[row] ? 1 : 0
                default: .nan
                }
            }
        }
    }

    /// Writes a request field whose model input has a category map: each
    /// value, string or number, encoded (an unknown category is missing).
    private func fillCategories(_ column: Column, rows: Int, slot: Int, map: CategoryMap,
                                into m: UnsafeMutableBufferPointer<Float>) {
        let width = model.featureCount
        for row in 0..<rows { m[row * width + slot] = Self.code(column, row, map) }
        for row in column.nullRows { m[Int(row) * width + slot] = missingValues[slot] }
    }

    /// The code of row `row` of `column` in `map`; NaN when it is not a category.
    static func code(_ column: Column, _ row: Int, _ map: CategoryMap) -> Float {
        switch column.type {
        case .int64: map.code(number: Double(column.int64s[row]))
        case .float32: map.code(number: Double(column.float32s[row]))
        case .float64: map.code(number: column.float64s[row])
        case .bool: map.code(number: column.bools[row] ? 1 : 0)
        case .string: map.code(utf8: column.strings[row].utf8)
        case .bytes: map.code(utf8: column.bytes[row])
        case .float32Vector: .nan
        }
    }

    /// Writes the looked-up features whose model inputs have category maps
    /// (left out of `fillFeatures`): each value read exactly as stored (a
    /// string's bytes, an int64 or float64 as a double) and encoded; a
    /// missing one takes its default or NaN.
    func fillCategoryFeatures(from rows: borrowing RowLookup, into m: UnsafeMutableBufferPointer<Float>) {
        let width = model.featureCount
        for row in 0..<rows.count {
            for feature in categoryFeatures {
                let slot = row * width + feature.slot
                guard case let .value(packed, at, base) = rows.cell(feature.output, row) else {
                    m[slot] = missingValues[feature.slot]
                    continue
                }
                let map = feature.map
                m[slot] = switch feature.type {
                case .int64: map.code(number: Double(Int64(littleEndian: packed.bytes.loadUnaligned(fromByteOffset: at, as: Int64.self))))
                case .float32: map.code(number: Double(packed.float(.float32, at: at)))
                case .float64: map.code(number: Double(bitPattern: UInt64(littleEndian: packed.bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))))
                case .bool: map.code(number: packed.float(.bool, at: at) != 0 ? 1 : 0)
                case .string, .bytes: packed.variable(at: at, base: base).map { map.code(utf8: $0) } ?? .nan
                case .float32Vector: .nan
                }
            }
        }
    }

    /// Writes every looked-up feature into the rows' input vectors; a
    /// missing one (not found, null, expired) takes its default or NaN.
    func fillFeatures(from rows: borrowing RowLookup, into m: UnsafeMutableBufferPointer<Float>) {
        let width = model.featureCount
        let views = viewFillStart.count - 1
        // Raw buffers: this loop runs once per feature per row, and array
        // accesses through `self` would retain and bounds-check each time.
        fills.withUnsafeBufferPointer { fills in
        featureSlots.withUnsafeBufferPointer { slots in
        missingValues.withUnsafeBufferPointer { missing in
        viewFillStart.withUnsafeBufferPointer { viewStart in
        float32Copies.withUnsafeBufferPointer { copies in
        float32CopyStart.withUnsafeBufferPointer { copyStart in
            for row in 0..<rows.count {
                let base = row * width
                for view in 0..<views {
                    let viewFills = fills[viewStart[view]..<viewStart[view + 1]]
                    if let packed = rows.plainRow(view, row) {
                        // The usual row: current layout, no nulls, so every
                        // value is read at its offset unchecked; all-float32
                        // views with one load and one store per feature.
                        let first = copyStart[view], last = copyStart[view + 1]
                        if first < last, let bytes = packed.bytes.baseAddress {
                            for c in first..<last {
                                let copy = copies[c]
                                m[base + copy.slot] = Float(bitPattern: UInt32(littleEndian:
                                    bytes.loadUnaligned(fromByteOffset: copy.offset, as: UInt32.self)))
                            }
                            continue
                        }
                        for fill in viewFills {
                            for e in fill.start..<fill.end {
                                m[base + slots[e]] = packed.float(fill.type, at: fill.offset, element: e - fill.start)
                            }
                        }
                        continue
                    }
                    let state = rows.row(view, row)
                    if case .found(let packed, currentSchema: true) = state {
                        // Current layout with some nulls: checked per feature.
                        for fill in viewFills {
                            if packed.isNull(fill.index) {
                                for e in fill.start..<fill.end { m[base + slots[e]] = missing[slots[e]] }
                            } else {
                                for e in fill.start..<fill.end {
                                    m[base + slots[e]] = packed.float(fill.type, at: fill.offset, element: e - fill.start)
                                }
                            }
                        }
                        continue
                    }
                    for fill in viewFills {
                        switch rows.cell(fill.output, in: state) {
                        case .value(let packed, let at, _):
                            for e in fill.start..<fill.end {
                                m[base + slots[e]] = packed.float(fill.type, at: at, element: e - fill.start)
                            }
                        case .missing:
                            for e in fill.start..<fill.end { m[base + slots[e]] = missing[slots[e]] }
                        }
                    }
                }
            }
        }}}}}}
    }

    /// Writes plan output `o` from a joined column.
    func fill(output o: Int, from column: Column, statuses: [FieldStatus], into m: UnsafeMutableBufferPointer<Float>) {
        let width = model.featureCount
        let start = featureSlotStart[o], end = featureSlotStart[o + 1]
        let n = end - start
        if let feature = categoryFeatures.first(where: { $0.output == o }) {
            for row in 0..<statuses.count {
                m[row * width + feature.slot] = statuses[row] == .present
                    ? Self.code(column, row, feature.map) : missingValues[feature.slot]
            }
            return
        }
        for row in 0..<statuses.count {
            for e in start..<end {
                let slot = featureSlots[e]
                guard statuses[row] == .present else { m[row * width + slot] = missingValues[slot]; continue }
                m[row * width + slot] = switch column.type {
                case .int64: Float(column.int64s[row])
                case .float32: column.float32s[row]
                case .float32Vector: column.float32s[row * n + (e - start)]
                case .float64: Float(column.float64s[row])
                case .bool: column.bools[row] ? 1 : 0
                case .string, .bytes: .nan
                }
            }
        }
    }

    /// The request fields as `return_features` reports them.
    func requestFieldResults(_ inputs: PredictInputs) -> [FeatureResult] {
        inputs.fields.map { column in
            var statuses = [FieldStatus](repeating: .present, count: inputs.rows)
            for row in column.nullRows { statuses[Int(row)] = .nullValue }
            return FeatureResult(values: column, statuses: statuses, eventTimes: Array(repeating: 0, count: inputs.rows))
        }
    }
}

extension Column {
    /// A string key sent as bytes (or bytes as a string): the same column
    /// in the other type; nil for any other mismatch or for bytes that are
    /// not UTF-8.
    func converted(to type: FeatureType) -> Column? {
        var out = Column(name: name, type: type)
        out.nullRows = nullRows
        switch (self.type, type) {
        case (.bytes, .string):
            for value in bytes {
                guard let text = String(validating: value, as: UTF8.self) else { return nil }
                out.strings.append(text)
            }
        case (.string, .bytes):
            out.bytes = strings.map { Data($0.utf8) }
        default:
            return nil
        }
        return out
    }
}
