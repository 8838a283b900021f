// plinthctl get: reads online features for one or more entity rows.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read online features.",
        discussion: "Each --entity is one row: KEY=VALUE, or KEY=VALUE,KEY=VALUE for views keyed by several entities.")

    @Option(help: "Feature references view:feature, comma-separated.")
    var features: String?

    @Option(help: "A feature service instead of --features.")
    var service: String?

    @Option(name: .customLong("entity"), help: "An entity row, KEY=VALUE[,KEY=VALUE]. Repeat for more rows.")
    var entities: [String] = []

    @Flag(help: "Name columns view__feature.")
    var fullFeatureNames = false

    @OptionGroup var options: ConnectionOptions

    func validate() throws {
        if (features == nil) == (service == nil) { throw ValidationError("give exactly one of --features or --service") }
        if entities.isEmpty { throw ValidationError("give at least one --entity KEY=VALUE") }
    }

    func run() throws {
        try reportingErrors {
            let connection = try options.connect()
            let definitions = try KnownDefinitions(connection)
            let refs = features.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
            // Join key types come from the views the features belong to.
            var keyTypes: [String: PBValueType] = [:]
            let viewNames = refs.isEmpty ? (definitions.services[service ?? ""] ?? []).map { String($0.split(separator: ":")[0]) }
                                         : refs.map { String($0.split(separator: ":").first ?? "") }
            for name in viewNames { if let view = definitions.views[name] { for k in view.joinKeys { keyTypes[k.name] = k.type } } }
            let entityColumns = try parseEntityRows(entities) { key, value in
                keyTypes[key] ?? (Int64(value) != nil ? .int64 : .string)
            }
            let order = entityColumns.map(\.name)
            let columns = Dictionary(uniqueKeysWithValues: entityColumns.map { ($0.name, $0) })
            var request = PBGetOnlineFeaturesRequest()
            request.features = refs
            request.featureService = service ?? ""
            request.entities = entityColumns
            request.fullFeatureNames = fullFeatureNames
            request.compactEventTimes = true
            let response = try connection.call(Method.getOnlineFeatures, request, as: PBGetOnlineFeaturesResponse.self)
            // compact_event_times: a view's later columns point at its first one's times.
            // A pointer anywhere but to an earlier column is the server's
            // mistake, refused as the Python client refuses it.
            let times = try response.features.enumerated().map { position, feature in
                let from = Int(feature.eventTimesFrom)
                guard from > 0 else { return feature.eventTimeUs }
                guard from <= position else {
                    throw PlinthError(code: 13, message: "the server sent event_times_from \(from) for column \(position + 1) ('\(feature.values.name)')")
                }
                return response.features[from - 1].eventTimeUs
            }
            var jsonRows: [[String: Any]] = []
            var tableRows: [[String]] = []
            for row in 0..<entities.count {
                var json: [String: Any] = [:]
                var cells: [String] = []
                for key in order {
                    let column = columns[key]!
                    let value: Any = column.type == .int64 ? column.int64Values[row] as Any : column.stringValues[row] as Any
                    json[key] = value
                    cells.append("\(value)")
                }
                var featureJSON: [String: Any] = [:]
                for (position, feature) in response.features.enumerated() {
                    let status = feature.statuses.indices.contains(row) ? feature.statuses[row] : .invalid
                    let name = statusName(status)
                    let present = status == .present
                    let value = present ? jsonValue(feature.values, row) : NSNull()
                    let time = times[position].indices.contains(row) ? times[position][row] : 0
                    featureJSON[feature.values.name] = ["value": value, "status": name,
                                                        "event_time": time == 0 ? NSNull() : isoTime(micros: time) as Any]
                    cells.append(present ? "\(display(value))" : "<\(name)>")
                }
                json["features"] = featureJSON
                jsonRows.append(json)
                tableRows.append(cells)
            }
            if options.json {
                try printJSON(["results": jsonRows])
            } else {
                printTable(order + response.features.map(\.values.name), tableRows)
            }
        }
    }
}

/// Parses `--entity` rows, each KEY=VALUE[,KEY=VALUE], into one typed
/// column per key (in the order of the first row); `type` gives a key's
/// type from its name and first value. Every row must give the same keys.
func parseEntityRows(_ rows: [String], option: String = "--entity",
                     type: (_ key: String, _ value: String) throws -> PBValueType) throws -> [PBColumn] {
    var order: [String] = []
    var columns: [String: PBColumn] = [:]
    for (row, text) in rows.enumerated() {
        var seen: Set<String> = []
        for (key, value) in try parsePairs(text, option: option) {
            if columns[key] == nil {
                guard row == 0 else { throw ValidationError("\(option) rows must all give the same keys; '\(key)' is new in row \(row + 1)") }
                var column = PBColumn()
                column.name = key
                column.type = try type(key, value)
                columns[key] = column
                order.append(key)
            }
            seen.insert(key)
            do { try appendCell(value, to: &columns[key]!, row: row) } catch let error as PlinthError {
                throw ValidationError("\(option) '\(text)': \(error.message)")
            }
        }
        guard seen.count == order.count else { throw ValidationError("\(option) rows must all give the same keys") }
    }
    return order.compactMap { columns[$0] }
}

/// The KEY=VALUE pairs of one option value "KEY=VALUE[,KEY=VALUE]".
func parsePairs(_ text: String, option: String) throws -> [(key: String, value: String)] {
    try text.split(separator: ",").map { pair in
        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ValidationError("\(option) '\(text)' is not KEY=VALUE") }
        return (parts[0].trimmingCharacters(in: .whitespaces), parts[1])
    }
}

/// A feature status as the protocol spells it: PRESENT, NOT_FOUND, ...
func statusName(_ status: PBFieldStatus) -> String {
    let names = ["INVALID", "PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"]
    return names.indices.contains(status.rawValue) ? names[status.rawValue] : "INVALID"
}

func jsonValue(_ column: PBColumn, _ row: Int) -> Any {
    switch column.type {
    case .int64: return column.int64Values[row]
    case .float32: return shortest(column.float32Values[row])
    case .float64: return column.float64Values[row]
    case .bool: return column.boolValues[row]
    case .string: return column.stringValues[row]
    case .bytes: return column.bytesValues[row].base64EncodedString()
    case .float32Vector:
        let n = Int(column.vectorLength)
        return column.float32Values[(row * n)..<((row + 1) * n)].map(shortest)
    default: return NSNull()
    }
}

func display(_ value: Any) -> String {
    if let list = value as? [Double] { return "[" + list.map { "\($0)" }.joined(separator: ",") + "]" }
    return "\(value)"
}

/// A float32 as the double with the same shortest decimal spelling, so
/// 0.896 prints as 0.896 rather than 0.8960000276565552.
func shortest(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }
