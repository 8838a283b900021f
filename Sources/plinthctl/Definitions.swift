// Definitions: what plinthctl learns from ListDefinitions to type the
// values it reads from the command line and CSV files.
import Foundation
import PlinthClient
import PlinthWire

struct KnownDefinitions {
    struct View {
        let name: String
        let joinKeys: [(name: String, type: PBValueType)]
        let features: [PBFeature]
    }

    var views: [String: View] = [:]
    var services: [String: [String]] = [:]

    init(_ connection: Connection) throws {
        let response = try connection.call(Method.listDefinitions, PBListDefinitionsRequest(), as: PBListDefinitionsResponse.self)
        for project in response.projects {
            let entities = Dictionary(project.entities.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for view in project.featureViews {
                let keys = view.spec.entities.compactMap { entities[$0] }.map { (name: $0.joinKey, type: $0.type) }
                views[view.spec.name] = View(name: view.spec.name, joinKeys: keys, features: view.spec.features)
            }
            for service in project.featureServices { services[service.name] = service.features }
        }
    }

    func view(_ name: String) throws -> View {
        guard let view = views[name] else {
            throw PlinthError(code: 5, message: "unknown feature view '\(name)' (known: \(views.keys.sorted().joined(separator: ", ")))")
        }
        return view
    }
}

func typeName(_ type: PBValueType, _ length: UInt32 = 0) -> String {
    switch type {
    case .int64: "int64"
    case .float32: "float32"
    case .float64: "float64"
    case .bool: "bool"
    case .string: "string"
    case .bytes: "bytes"
    case .float32Vector: "float32[\(length)]"
    default: "unspecified"
    }
}

/// Appends one text cell to a typed column; an empty cell is null.
/// Throws a message naming what could not be parsed.
func appendCell(_ text: String, to column: inout PBColumn, row: Int) throws {
    let cell = text.trimmingCharacters(in: .whitespaces)
    let isNull = cell.isEmpty && column.type != .string && column.type != .bytes
    if isNull || cell == "\\N" {
        column.nullRows.append(UInt32(row))
        switch column.type {
        case .int64: column.int64Values.append(0)
        case .float32: column.float32Values.append(0)
        case .float64: column.float64Values.append(0)
        case .bool: column.boolValues.append(false)
        case .string: column.stringValues.append("")
        case .bytes: column.bytesValues.append(Data())
        case .float32Vector: column.float32Values.append(contentsOf: repeatElement(0, count: Int(column.vectorLength)))
        default: break
        }
        return
    }
    func bad() -> PlinthError {
        PlinthError(code: 3, message: "'\(cell)' is not a valid \(typeName(column.type, column.vectorLength)) for column '\(column.name)'")
    }
    switch column.type {
    case .int64:
        guard let v = Int64(cell) else { throw bad() }
        column.int64Values.append(v)
    case .float32:
        guard let v = Float(cell) else { throw bad() }
        column.float32Values.append(v)
    case .float64:
        guard let v = Double(cell) else { throw bad() }
        column.float64Values.append(v)
    case .bool:
        switch cell.lowercased() {
        case "true", "1", "yes", "t": column.boolValues.append(true)
        case "false", "0", "no", "f": column.boolValues.append(false)
        default: throw bad()
        }
    case .string:
        column.stringValues.append(text)
    case .bytes:
        guard let data = Data(base64Encoded: cell) else { throw bad() }
        column.bytesValues.append(data)
    case .float32Vector:
        let inner = cell.hasPrefix("[") && cell.hasSuffix("]") ? String(cell.dropFirst().dropLast()) : cell
        let parts = inner.split(whereSeparator: { $0 == "," || $0 == ";" || $0 == " " }).map(String.init)
        guard parts.count == Int(column.vectorLength) else {
            throw PlinthError(code: 3, message: "column '\(column.name)' needs \(column.vectorLength) numbers, got \(parts.count)")
        }
        for p in parts {
            guard let v = Float(p) else { throw bad() }
            column.float32Values.append(v)
        }
    default:
        throw bad()
    }
}
