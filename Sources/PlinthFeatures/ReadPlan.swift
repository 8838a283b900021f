// ReadPlan and RowLookup: the online read path's two halves. A plan is a
// request's feature references resolved against one definitions snapshot
// (cached, so hot requests resolve no names); a lookup holds the packed
// rows found for each (view, entity row) and decides, in one place, what
// each result cell is. The Column builder and the server's direct protobuf
// encoder both read cells through `cell`, so they cannot disagree.
import Foundation

/// The cache key of a plan: the request's names, or the bytes that
/// encode them on the wire (so a hot request need not build any string).
enum PlanKey: Hashable {
    case names(features: [String], service: String, fullFeatureNames: Bool)
    case encoded(EncodedKey)
}

/// Bytes hashed and compared in bulk (Array<UInt8> hashes byte by byte).
struct EncodedKey: Hashable {
    let bytes: [UInt8]

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (a: EncodedKey, b: EncodedKey) -> Bool {
        a.bytes.count == b.bytes.count && a.bytes.withUnsafeBytes { x in
            b.bytes.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
        }
    }
}

public final class ReadPlan: Sendable {
    /// One result column.
    public struct Output: Sendable {
        /// Index into `views`.
        public let view: Int
        /// Index of the feature in its view's current layout.
        public let index: Int
        public let feature: FeatureDefinition
        /// "feature", or "view__feature" with full feature names.
        public let name: String
    }

    /// What the per-cell loop needs about an output, with no reference
    /// counted members, so reading it in a loop costs no ARC traffic.
    package struct HotOutput: Sendable {
        package let view: Int
        package let index: Int
        package let offset: Int
        package let isVariable: Bool
        package let type: FeatureType
        /// `type.fixedWidth`.
        package let width: Int
        /// The output name's UTF-8 bytes in `namesUTF8`.
        package let nameStart: Int
        package let nameEnd: Int
        /// The position in `hotOutputs` of the first output of the same
        /// view (this one's own when it is the first). A view's outputs
        /// share their rows' event times, so an answer may send them once.
        package let firstOfView: Int
    }

    struct HotView {
        let viewID: UInt32
        /// The view's join keys, `hotKeys[keyStart..<keyEnd]`.
        let keyStart: Int
        let keyEnd: Int
        let schemaVersion: UInt32
        let fixedSize: Int
        let ttlMicros: Int64
        /// The requested features' bits of the row's null bitmap, in
        /// `nullMasks[maskStart..<maskEnd]`.
        var maskStart = 0
        var maskEnd = 0
        /// Whether a string or bytes feature of the view is requested.
        var anyVariable = false
    }

    let snapshot: CatalogSnapshot
    /// Each view once, in first-requested order: one lookup per view per row.
    public let views: [ResolvedView]
    public let outputs: [Output]
    package let hotOutputs: [HotOutput]
    let hotViews: [HotView]
    let nullMasks: [UInt8]
    /// Every output name's UTF-8 bytes, back to back.
    package let namesUTF8: [UInt8]
    /// The join keys of all views, view after view.
    let hotKeys: [(name: String, type: FeatureType)]
    /// `hotKeys.count`.
    let keyCount: Int

    init(snapshot: CatalogSnapshot, features: [String], service: String?, fullFeatureNames: Bool) throws {
        self.snapshot = snapshot
        let references: [String]
        if let service, !service.isEmpty {
            guard features.isEmpty else {
                throw FeatureStoreError.invalidArgument("give either features or a feature service, not both")
            }
            guard let definition = snapshot.services[service] else {
                throw FeatureStoreError.notFound("unknown feature service '\(service)'")
            }
            references = definition.features
        } else {
            references = features
        }
        guard !references.isEmpty else {
            throw FeatureStoreError.invalidArgument("no features requested: give feature references or a feature service")
        }
        var views: [ResolvedView] = []
        var outputs: [Output] = []
        var names: Set<String> = []
        for text in references {
            guard let ref = FeatureReference(text) else {
                throw FeatureStoreError.invalidArgument("'\(text)' is not a feature reference (expected 'view:feature')")
            }
            guard let view = snapshot.views[ref.view] else {
                throw FeatureStoreError.notFound("unknown feature view '\(ref.view)' in '\(text)'")
            }
            // Its online rows, if any, are left from before it was made
            // offline-only: reading them would serve values nothing updates.
            guard view.definition.online else {
                throw FeatureStoreError.invalidArgument(
                    "feature view '\(ref.view)' is offline-only (online: false); '\(text)' can be read with get_historical_features, not online")
            }
            guard let index = view.layout.indexByName[ref.feature] else {
                throw FeatureStoreError.notFound("feature view '\(ref.view)' has no feature '\(ref.feature)'")
            }
            let name = fullFeatureNames ? "\(view.name)__\(ref.feature)" : ref.feature
            guard names.insert(name).inserted else {
                throw FeatureStoreError.invalidArgument(fullFeatureNames
                    ? "feature '\(name)' is requested twice"
                    : "two requested features are both named '\(name)'; set full_feature_names to name them view__feature")
            }
            let v: Int
            if let existing = views.firstIndex(where: { $0 === view }) { v = existing } else { v = views.count; views.append(view) }
            outputs.append(Output(view: v, index: index, feature: view.layout.features[index], name: name))
        }
        self.views = views
        self.outputs = outputs
        hotKeys = views.flatMap(\.joinKeys)
        keyCount = hotKeys.count
        var utf8: [UInt8] = []
        var hot: [HotOutput] = []
        var firstOfView = [Int](repeating: -1, count: views.count)
        for (position, o) in outputs.enumerated() {
            let start = utf8.count
            utf8.append(contentsOf: o.name.utf8)
            if firstOfView[o.view] < 0 { firstOfView[o.view] = position }
            hot.append(HotOutput(view: o.view, index: o.index, offset: views[o.view].layout.offsets[o.index],
                                 isVariable: o.feature.type.isVariableWidth, type: o.feature.type, width: o.feature.type.fixedWidth,
                                 nameStart: start, nameEnd: utf8.count, firstOfView: firstOfView[o.view]))
        }
        hotOutputs = hot
        namesUTF8 = utf8
        var masks: [UInt8] = []
        var keyEnd = 0
        hotViews = views.indices.map { v in
            let ttl = views[v].definition.ttlSeconds
            keyEnd += views[v].joinKeys.count
            var hot = HotView(viewID: views[v].meta.viewID, keyStart: keyEnd - views[v].joinKeys.count, keyEnd: keyEnd,
                              schemaVersion: views[v].layout.schemaVersion, fixedSize: views[v].layout.fixedSize,
                              ttlMicros: ttl > 0 ? ttl.multipliedReportingOverflow(by: 1_000_000).partialValue : 0)
            let mine = outputs.filter { $0.view == v }
            hot.maskStart = masks.count
            masks += [UInt8](repeating: 0, count: (mine.map(\.index).max() ?? -1) / 8 + 1)
            for o in mine { masks[hot.maskStart + o.index / 8] |= 1 << UInt8(o.index % 8) }
            hot.maskEnd = masks.count
            hot.anyVariable = mine.contains { $0.feature.type.isVariableWidth }
            return hot
        }
        nullMasks = masks
    }

    private init(copying plan: ReadPlan) {
        snapshot = plan.snapshot
        views = Array(copying: plan.views)
        outputs = Array(copying: plan.outputs)
        hotOutputs = Array(copying: plan.hotOutputs)
        hotViews = Array(copying: plan.hotViews)
        nullMasks = Array(copying: plan.nullMasks)
        namesUTF8 = Array(copying: plan.namesUTF8)
        // A name too long to be stored inline has reference-counted storage
        // of its own: copy that too.
        hotKeys = plan.hotKeys.map { (String(decoding: Array($0.name.utf8), as: UTF8.self), $0.type) }
        keyCount = plan.keyCount
    }

    /// The same plan in storage of its own. Plans are cached and shared by
    /// every connection, and each read retains the plan and its arrays:
    /// when connections on two cores share one plan, every retain moves the
    /// reference count's cache line between the cores (about a tenth of a
    /// pipelined read's CPU time, measured). A connection keeps a private
    /// copy so that its reads touch only lines its own core holds.
    package func privateCopy() -> ReadPlan { ReadPlan(copying: self) }
}

extension Array {
    /// A copy in a buffer of its own (a plain assignment shares the buffer).
    init(copying other: [Element]) {
        self = other.withUnsafeBufferPointer { Array($0) }
    }
}

/// What one result cell is.
public enum Cell {
    /// A value: its fixed slot starts at byte `at` of `row`; a string's or
    /// bytes' variable part starts at `variableBase`. Bounds are checked.
    case value(PackedRow, at: Int, variableBase: Int)
    /// No value, with the status saying why and the row's event time (0 if none).
    case missing(FieldStatus, eventTime: Int64)
}

/// One (view, entity row) of a lookup, before any feature is read.
public enum RowState {
    case missing(FieldStatus, eventTime: Int64)
    /// `currentSchema`: written under the view's current schema and long
    /// enough for it, so features are at their current offsets.
    case found(PackedRow, currentSchema: Bool)
}

/// The rows found for one lookup. Valid only inside `OnlineStore.lookup`.
public struct RowLookup: ~Copyable {
    public let plan: ReadPlan
    /// Entity rows in the request.
    public let count: Int
    let found: UnsafeBufferPointer<UnsafeRawBufferPointer?>
    let now: Int64

    init(plan: ReadPlan, rows: Int, found: UnsafeBufferPointer<UnsafeRawBufferPointer?>, now: Int64) {
        self.plan = plan
        self.count = rows
        self.found = found
        self.now = now
    }

    /// The cell of output `output` for entity row `row`.
    @inline(__always)
    public func cell(_ output: Int, _ row: Int) -> Cell {
        cell(output, in: self.row(plan.hotOutputs[output].view, row))
    }

    /// What is known of one (view, entity row) before looking at a feature:
    /// found or not, expired or not, written under the current schema or not.
    /// Callers that read many features of a row resolve it once.
    @inline(__always)
    public func row(_ view: Int, _ row: Int) -> RowState {
        guard let bytes = found[view * count + row], let packed = PackedRow(bytes) else {
            return .missing(.notFound, eventTime: 0)
        }
        let hot = plan.hotViews[view]
        if hot.ttlMicros > 0, now - packed.eventTime > hot.ttlMicros {
            return .missing(.outsideMaxAge, eventTime: packed.eventTime)
        }
        return .found(packed, currentSchema: packed.schemaVersion == hot.schemaVersion && packed.bytes.count >= hot.fixedSize)
    }

    /// The cell of output `output` in a row resolved by `row(_:_:)` for the
    /// output's view.
    @inline(__always)
    public func cell(_ output: Int, in state: RowState) -> Cell {
        let packed: PackedRow
        let currentSchema: Bool
        switch state {
        case .missing(let status, let eventTime): return .missing(status, eventTime: eventTime)
        case .found(let p, let current): packed = p; currentSchema = current
        }
        let out = plan.hotOutputs[output]
        var index = out.index, at = out.offset, base = plan.hotViews[out.view].fixedSize
        if !currentSchema {
            // Written under an earlier schema: find the feature by name and type.
            let feature = plan.outputs[output].feature
            guard let old = plan.views[out.view].layouts[packed.schemaVersion],
                  let oldIndex = old.index(of: feature.name, type: feature.type),
                  packed.bytes.count >= old.fixedSize else {
                return .missing(.nullValue, eventTime: packed.eventTime)
            }
            index = oldIndex
            at = old.offsets[oldIndex]
            base = old.fixedSize
        }
        if packed.isNull(index) || (out.isVariable && packed.variable(at: at, base: base) == nil) {
            return .missing(.nullValue, eventTime: packed.eventTime)
        }
        return .value(packed, at: at, variableBase: base)
    }
}

/// See `RowLookup.encodingRow`.
package enum EncodingRow {
    case plain(UnsafeRawPointer, eventTime: Int64)
    case missing(FieldStatus, eventTime: Int64)
    case mixed
}

/// A result cell resolved for an encoder: where its value's bytes are (nil
/// when it has none) and how many, and its status. Trivial, so loops over
/// cells do no reference counting.
package struct ResolvedCell {
    package var value: UnsafeRawPointer?
    package var length: Int
    package var status: FieldStatus

    @inline(__always)
    package init(value: UnsafeRawPointer?, length: Int, status: FieldStatus) {
        self.value = value
        self.length = length
        self.status = status
    }
}

extension RowLookup {
    /// What an encoder's fast path needs of view `v`'s row for each entity
    /// row, into `rows[0..<count]`: `plain` when every requested feature of
    /// the view is a present fixed-width value at its plan offset (found,
    /// within the TTL, written under the current schema, none of them null),
    /// with the row's bytes (at least the layout's fixed size) and event
    /// time; `missing` when the row gives no feature a value (not found, or
    /// outside the TTL); `mixed` otherwise, for `resolve`, which handles
    /// every case.
    package func encodingRows(_ v: Int, into rows: UnsafeMutableBufferPointer<EncodingRow>) {
        precondition(rows.count >= count)
        let hot = plan.hotViews[v]
        plan.nullMasks.withUnsafeBufferPointer { masks in
            let mask = UnsafeBufferPointer(rebasing: masks[hot.maskStart..<hot.maskEnd])
            for r in 0..<count {
                switch row(v, r) {
                case .missing(let status, let time):
                    rows[r] = .missing(status, eventTime: time)
                case .found(let packed, let current):
                    rows[r] = current && Self.isPlain(packed, hot, mask) ? .plain(packed.bytes.baseAddress!, eventTime: packed.eventTime) : .mixed
                }
            }
        }
    }

    /// View `v`'s row for entity row `r` when it is plain (see
    /// `encodingRows`): its features can be read at their plan offsets with
    /// no null or schema check. Nil otherwise; `row` and `cell` handle those.
    @inline(__always)
    package func plainRow(_ v: Int, _ r: Int) -> PackedRow? {
        guard case .found(let packed, currentSchema: true) = row(v, r) else { return nil }
        let hot = plan.hotViews[v]
        return plan.nullMasks.withUnsafeBufferPointer { masks in
            Self.isPlain(packed, hot, UnsafeBufferPointer(rebasing: masks[hot.maskStart..<hot.maskEnd])) ? packed : nil
        }
    }

    /// Whether a row under the current schema has no variable-width
    /// feature requested and none of the requested features null: one
    /// masked look at the null bitmap.
    @inline(__always)
    private static func isPlain(_ packed: PackedRow, _ hot: ReadPlan.HotView, _ mask: UnsafeBufferPointer<UInt8>) -> Bool {
        // The bitmap is inside the fixed part, which the current schema says is there.
        guard !hot.anyVariable, let base = packed.bytes.baseAddress else { return false }
        var nulls: UInt8 = 0
        for i in mask.indices { nulls |= base.load(fromByteOffset: RowLayout.headerSize + i, as: UInt8.self) & mask[i] }
        return nulls == 0
    }

    /// Resolves every cell of the lookup in one call: the cell of output `o`
    /// for entity row `r` goes to `cells[o * count + r]`, the event time of
    /// view `v`'s row `r` (0 when there is none) to `times[v * count + r]`.
    /// The same rules as `cell`, which it uses for rows written under an
    /// older schema; rows under the current one are read at the plan's
    /// offsets through raw pointers.
    package func resolve(cells: UnsafeMutableBufferPointer<ResolvedCell>, times: UnsafeMutableBufferPointer<Int64>) {
        let n = count
        let views = plan.views.count
        precondition(cells.count >= n * plan.hotOutputs.count && times.count >= n * views)
        plan.hotOutputs.withUnsafeBufferPointer { outputs in
            plan.hotViews.withUnsafeBufferPointer { hotViews in
                for v in 0..<views {
                    let base = hotViews[v].fixedSize
                    for r in 0..<n {
                        let state = row(v, r)
                        switch state {
                        case .missing(let status, let time):
                            times[v * n + r] = time
                            for o in outputs.indices where outputs[o].view == v {
                                cells[o * n + r] = ResolvedCell(value: nil, length: 0, status: status)
                            }
                        case .found(let packed, let current):
                            times[v * n + r] = packed.eventTime
                            for o in outputs.indices where outputs[o].view == v {
                                let output = outputs[o]
                                let cell: ResolvedCell
                                if !current {
                                    switch self.cell(o, in: state) {
                                    case .value(let p, let at, let variableBase):
                                        if output.isVariable, let bytes = p.variable(at: at, base: variableBase) {
                                            cell = ResolvedCell(value: bytes.baseAddress, length: bytes.count, status: .present)
                                        } else {
                                            cell = ResolvedCell(value: p.bytes.baseAddress! + at, length: output.width, status: .present)
                                        }
                                    case .missing(let status, _):
                                        cell = ResolvedCell(value: nil, length: 0, status: status)
                                    }
                                } else if packed.isNull(output.index) {
                                    cell = ResolvedCell(value: nil, length: 0, status: .nullValue)
                                } else if output.isVariable {
                                    if let bytes = packed.variable(at: output.offset, base: base) {
                                        cell = ResolvedCell(value: bytes.baseAddress, length: bytes.count, status: .present)
                                    } else {
                                        cell = ResolvedCell(value: nil, length: 0, status: .nullValue)
                                    }
                                } else {
                                    cell = ResolvedCell(value: packed.bytes.baseAddress! + output.offset, length: output.width, status: .present)
                                }
                                cells[o * n + r] = cell
                            }
                        }
                    }
                }
            }
        }
    }
}
