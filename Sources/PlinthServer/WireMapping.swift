// WireMapping: converts between the wire's generated messages and the
// feature domain. Arrays are moved, not copied value by value.
import Foundation
import PlinthFeatures
import PlinthRegistry
import PlinthServing
import PlinthTracking
import PlinthWire

struct WireError: Error {
    let code: Int
    let message: String
}

extension FeatureType {
    /// `what` names the value in errors; built only for one.
    init(wire type: PBValueType, vectorLength: UInt32, what: @autoclosure () -> String) throws {
        switch type {
        case .int64: self = .int64
        case .float32: self = .float32
        case .float64: self = .float64
        case .bool: self = .bool
        case .string: self = .string
        case .bytes: self = .bytes
        case .float32Vector:
            guard vectorLength > 0, Int(vectorLength) <= FeatureType.maxVectorLength else {
                throw WireError(code: StatusCode.invalidArgument, message: "\(what()) is a float32 vector but vector_length is \(vectorLength)")
            }
            self = .float32Vector(length: Int(vectorLength))
        case .unspecified, .UNRECOGNIZED:
            throw WireError(code: StatusCode.invalidArgument, message: "\(what()) has no value type")
        }
    }

    var wire: (PBValueType, UInt32) {
        switch self {
        case .int64: (.int64, 0)
        case .float32: (.float32, 0)
        case .float64: (.float64, 0)
        case .bool: (.bool, 0)
        case .string: (.string, 0)
        case .bytes: (.bytes, 0)
        case .float32Vector(let n): (.float32Vector, UInt32(n))
        }
    }
}

extension Column {
    init(wire: consuming PBColumn) throws {
        let type = try FeatureType(wire: wire.type, vectorLength: wire.vectorLength, what: "column '\(wire.name)'")
        self.init(name: wire.name, type: type)
        int64s = wire.int64Values
        float32s = wire.float32Values
        float64s = wire.float64Values
        bools = wire.boolValues
        strings = wire.stringValues
        bytes = wire.bytesValues
        nullRows = wire.nullRows
    }

    var wire: PBColumn {
        var out = PBColumn()
        out.name = name
        (out.type, out.vectorLength) = type.wire
        out.int64Values = int64s
        out.float32Values = float32s
        out.float64Values = float64s
        out.boolValues = bools
        out.stringValues = strings
        out.bytesValues = bytes
        out.nullRows = nullRows
        return out
    }
}

extension ProjectDefinitions {
    var wire: PBDefinitions {
        var out = PBDefinitions()
        out.project = spec.project
        out.version = version
        // The caller asking for a past version overwrites this.
        out.currentVersion = version
        out.appliedAtUs = appliedAtMicros
        out.entities = spec.entities.map { e in
            var w = PBEntity()
            w.name = e.name
            w.joinKey = e.joinKey
            w.type = e.type.wire.0
            w.description_p = e.description
            return w
        }
        out.featureViews = spec.featureViews.map { v in
            var w = PBFeatureView()
            w.spec.name = v.name
            w.spec.entities = v.entities
            w.spec.ttlSeconds = v.ttlSeconds
            w.spec.description_p = v.description
            w.spec.owner = v.owner
            w.spec.tags = v.tags
            w.spec.offlineOnly = !v.online
            w.spec.features = v.features.map { f in
                var wf = PBFeature()
                wf.name = f.name
                (wf.type, wf.vectorLength) = f.type.wire
                wf.description_p = f.description
                wf.expression = f.expression ?? ""
                if let a = f.aggregation {
                    wf.aggregation.function = a.function.rawValue
                    wf.aggregation.of = a.of ?? ""
                    wf.aggregation.windowSeconds = a.windowSeconds
                }
                return wf
            }
            if let meta = viewMeta[v.name] {
                w.meta.viewID = meta.viewID
                w.meta.schemaVersion = meta.schemaVersion
                w.meta.createdAtUs = meta.createdAtMicros
                w.meta.updatedAtUs = meta.updatedAtMicros
            }
            return w
        }
        out.featureServices = spec.featureServices.map { s in
            var w = PBFeatureService()
            w.name = s.name
            w.features = s.features
            w.description_p = s.description
            return w
        }
        return out
    }
}

/// Maps a domain or storage error to the status a client sees.
func status(for error: any Error) -> (code: Int, message: String) {
    switch error {
    case let e as WireError: return (e.code, e.message)
    case let e as FeatureStoreError:
        switch e {
        case .invalidArgument(let m): return (StatusCode.invalidArgument, m)
        case .notFound(let m): return (StatusCode.notFound, m)
        case .tooLarge(let m): return (StatusCode.resourceExhausted, m)
        case .conflict(let m): return (StatusCode.failedPrecondition, m)
        }
    case let e as DefinitionError: return (StatusCode.invalidArgument, e.description)
    case let e as CatalogError:
        switch e {
        case .conflict(let m): return (StatusCode.failedPrecondition, m)
        case .corrupt: return (StatusCode.internal, e.description)
        }
    case let e as TrackingError:
        switch e {
        case .invalidArgument(let m): return (StatusCode.invalidArgument, m)
        case .notFound(let m): return (StatusCode.notFound, m)
        case .alreadyExists(let m): return (StatusCode.alreadyExists, m)
        case .failedPrecondition(let m): return (StatusCode.failedPrecondition, m)
        case .tooLarge(let m): return (StatusCode.resourceExhausted, m)
        case .dataLoss(let m): return (StatusCode.dataLoss, m)
        }
    case let e as RegistryError:
        switch e {
        case .invalidArgument(let m): return (StatusCode.invalidArgument, m)
        case .notFound(let m): return (StatusCode.notFound, m)
        case .alreadyExists(let m): return (StatusCode.alreadyExists, m)
        case .policyViolation: return (StatusCode.failedPrecondition, e.description)
        }
    case let e as ServingError:
        switch e {
        case .invalidArgument(let m): return (StatusCode.invalidArgument, m)
        case .notFound(let m): return (StatusCode.notFound, m)
        case .failedPrecondition(let m): return (StatusCode.failedPrecondition, m)
        case .tooLarge(let m): return (StatusCode.resourceExhausted, m)
        }
    default: return (StatusCode.internal, "internal error: \(error)")
    }
}
