// plinthctl predict: scores entity rows with a registered model through the
// daemon's Inference service (Predict), which looks up the model's online
// features for each row. The inputs are typed from the model's metadata
// (ModelMetadata), as score-batch does.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score entity rows with a registered model (online features looked up by the daemon).",
        discussion: """
        --model is NAME@ALIAS, NAME/VERSION (or NAME:VERSION) or NAME (the production alias). Each --entity is one row: \
        KEY=VALUE, or KEY=VALUE,KEY=VALUE for models whose views are keyed by several entities. \
        --field NAME=VALUE gives a request-time field: given once it applies to every row, given \
        once per row it goes to the rows in order.
        """)

    @Option(help: "The model: NAME@ALIAS, NAME/VERSION (or NAME:VERSION), or NAME for NAME@production.")
    var model: String

    @Option(name: .customLong("entity"), help: "An entity row, KEY=VALUE[,KEY=VALUE]. Repeat for more rows.")
    var entities: [String] = []

    @Option(name: .customLong("field"), help: "A request-time field, NAME=VALUE[,NAME=VALUE]. Repeat as needed.")
    var fields: [String] = []

    @Flag(name: .customLong("features"), help: "Also show the features the model used, with their statuses.")
    var returnFeatures = false

    @Flag(help: "Raw margins (log-odds) instead of probabilities.")
    var margin = false

    @OptionGroup var options: ConnectionOptions

    func validate() throws {
        if entities.isEmpty { throw ValidationError("give at least one --entity KEY=VALUE") }
        _ = try versionFields(model)  // the daemon's parser: a bad reference fails before connecting
    }

    func run() throws {
        try reportingErrors {
            let connection = try options.connect()
            let inputs = try ModelInputs(connection, model: model)
            var columns = try parseEntityRows(entities) { key, _ in try inputs.type(of: key) }
            columns += try fieldColumns(rows: entities.count, inputs: inputs)
            var request = PBPredictRequest()
            request.modelName = model
            request.inputs = columns
            request.returnFeatures = returnFeatures
            request.margin = margin
            let response = try connection.call(Method.predict, request, as: PBPredictResponse.self)
            try printPredictions(response, inputs: columns, json: options.json)
        }
    }

    /// One typed column per request field; a field given once is repeated
    /// for every row.
    private func fieldColumns(rows: Int, inputs: ModelInputs) throws -> [PBColumn] {
        var order: [String] = []
        var values: [String: [String]] = [:]
        for text in fields {
            for (name, value) in try parsePairs(text, option: "--field") {
                if values[name] == nil { order.append(name) }
                values[name, default: []].append(value)
            }
        }
        return try order.map { name in
            let given = values[name]!
            guard given.count == 1 || given.count == rows else {
                throw ValidationError("--field \(name) is given \(given.count) times for \(rows) rows; give it once (for every row) or once per row")
            }
            var column = PBColumn()
            column.name = name
            column.type = try inputs.type(of: name)
            for row in 0..<rows {
                do { try appendCell(given.count == 1 ? given[0] : given[row], to: &column, row: row) } catch let error as PlinthError {
                    throw ValidationError("--field \(name): \(error.message)")
                }
            }
            return column
        }
    }
}

/// The inputs a model takes, from ModelMetadata: their column types, and
/// which are entity join keys (the others are request fields).
struct ModelInputs {
    let metadata: PBModelMetadataResponse
    let types: [(name: String, type: PBValueType)]
    let joinKeys: Set<String>

    init(_ connection: Connection, model: String) throws {
        var request = PBModelMetadataRequest()
        request.name = model
        metadata = try connection.call(Method.modelMetadata, request, as: PBModelMetadataResponse.self)
        types = try metadata.inputs.map { input in
            guard let type = Self.valueType(input.datatype) else {
                throw PlinthError(code: 13, message: "the server declared input '\(input.name)' with datatype '\(input.datatype)'")
            }
            return (input.name, type)
        }
        let fields = Set(metadata.features)
        joinKeys = Set(metadata.inputs.map(\.name).filter { !fields.contains($0) })
    }

    /// KServe V2 datatypes as column types; BYTES is KServe's string type.
    static func valueType(_ datatype: String) -> PBValueType? {
        switch datatype.uppercased() {
        case "INT64": .int64
        case "FP32": .float32
        case "FP64": .float64
        case "BOOL": .bool
        case "BYTES", "STRING": .string
        default: nil
        }
    }

    /// The type of input `name`; an error naming the inputs when the model
    /// has no such input.
    func type(of name: String) throws -> PBValueType {
        guard let found = types.first(where: { $0.name == name }) else {
            throw PlinthError(code: 3, message: "model '\(metadata.name)' takes no input '\(name)' (its inputs: \(types.map(\.name).joined(separator: ", ")))")
        }
        return found.type
    }
}

/// Prints a PredictResponse: a table of the inputs, prediction id, version,
/// outputs and (when returned) features, or JSON.
func printPredictions(_ response: PBPredictResponse, inputs: [PBColumn], json: Bool) throws {
    let rows = response.predictionIds.count
    let outputNulls = response.outputs.map { Set($0.nullRows) }
    let featureNulls = response.features.map { Set($0.values.nullRows) }
    let inputNames = Set(inputs.map(\.name))
    var jsonRows: [[String: Any]] = []
    var tableRows: [[String]] = []
    for row in 0..<rows {
        let sent = inputs.map { $0.nullRows.contains(UInt32(row)) }
        var cells = inputs.indices.map { sent[$0] ? "" : cellText(inputs[$0], row: row) }
        cells += [response.predictionIds[row], "\(response.modelVersion)"]
        var outputs: [String: Any] = [:]
        for (i, column) in response.outputs.enumerated() {
            let null = outputNulls[i].contains(UInt32(row)) || column.float64Values.count <= row
            outputs[column.name] = null ? NSNull() : column.float64Values[row]
            cells.append(null ? "" : "\(column.float64Values[row])")
        }
        var features: [String: Any] = [:]
        for (i, feature) in response.features.enumerated() {
            let status = feature.statuses.indices.contains(row) ? feature.statuses[row] : .invalid
            let null = featureNulls[i].contains(UInt32(row))
            let value = null ? NSNull() : jsonValue(feature.values, row)
            let time = feature.eventTimeUs.indices.contains(row) ? feature.eventTimeUs[row] : 0
            features[feature.values.name] = ["value": value, "status": statusName(status),
                                             "event_time": time == 0 ? NSNull() : isoTime(micros: time) as Any]
            // A request field is already shown as an input. A missing value
            // shows its status; a default the model used in its place, both.
            if inputNames.contains(feature.values.name) {
                continue
            } else if status == .present && !null {
                cells.append(display(value))
            } else {
                cells.append(null ? "<\(statusName(status))>" : "\(display(value)) <\(statusName(status))>")
            }
        }
        var entry: [String: Any] = ["prediction_id": response.predictionIds[row], "outputs": outputs,
                                    "inputs": Dictionary(uniqueKeysWithValues: inputs.indices.map {
                                        (inputs[$0].name, sent[$0] ? NSNull() : jsonValue(inputs[$0], row))
                                    })]
        if !response.features.isEmpty { entry["features"] = features }
        jsonRows.append(entry)
        tableRows.append(cells)
    }
    if json {
        try printJSON(["model": response.modelName, "version": response.modelVersion, "results": jsonRows])
    } else {
        printTable(inputs.map(\.name) + ["prediction_id", "version"] + response.outputs.map(\.name)
                   + response.features.map(\.values.name).filter { !inputNames.contains($0) },
                   tableRows)
    }
}
