// The field numbers the hand-written codecs use (PlinthWire's *Field
// constants) must be the ones in Proto/ and in the generated code, and
// every field of a hand-coded message must be known to them: a field added
// or renumbered in Proto/ fails here instead of being skipped in silence.
import Foundation
import PlinthWire
import SwiftProtobuf
import XCTest

final class FieldNumberTests: XCTestCase {
    /// Each hand-coded message: its generated type and every field's constant.
    let tables: [(message: String, type: any SwiftProtobuf.Message.Type, fields: [String: Int])] = [
        ("Request", PBRequest.self,
         ["id": RequestField.id, "method": RequestField.method, "body": RequestField.body]),
        ("Response", PBResponse.self,
         ["id": ResponseField.id, "status": ResponseField.status, "body": ResponseField.body, "more": ResponseField.more]),
        ("Status", PBStatus.self, ["code": StatusField.code, "message": StatusField.message]),
        ("Column", PBColumn.self,
         ["name": ColumnField.name, "type": ColumnField.type, "vector_length": ColumnField.vectorLength,
          "int64_values": ColumnField.int64Values, "float32_values": ColumnField.float32Values,
          "float64_values": ColumnField.float64Values, "bool_values": ColumnField.boolValues,
          "string_values": ColumnField.stringValues, "bytes_values": ColumnField.bytesValues,
          "null_rows": ColumnField.nullRows]),
        ("GetOnlineFeaturesRequest", PBGetOnlineFeaturesRequest.self,
         ["features": GetOnlineFeaturesRequestField.features, "feature_service": GetOnlineFeaturesRequestField.featureService,
          "entities": GetOnlineFeaturesRequestField.entities,
          "full_feature_names": GetOnlineFeaturesRequestField.fullFeatureNames,
          "compact_event_times": GetOnlineFeaturesRequestField.compactEventTimes]),
        ("FeatureColumn", PBFeatureColumn.self,
         ["values": FeatureColumnField.values, "statuses": FeatureColumnField.statuses,
          "event_time_us": FeatureColumnField.eventTimeUs, "event_times_from": FeatureColumnField.eventTimesFrom]),
        ("GetOnlineFeaturesResponse", PBGetOnlineFeaturesResponse.self, ["features": GetOnlineFeaturesResponseField.features]),
        ("PredictRequest", PBPredictRequest.self,
         ["model_name": PredictRequestField.modelName, "model_version": PredictRequestField.modelVersion,
          "id": PredictRequestField.id, "inputs": PredictRequestField.inputs,
          "return_features": PredictRequestField.returnFeatures, "margin": PredictRequestField.margin,
          "parameters": PredictRequestField.parameters]),
        ("PredictResponse", PBPredictResponse.self,
         ["model_name": PredictResponseField.modelName, "model_version": PredictResponseField.modelVersion,
          "id": PredictResponseField.id, "rows": PredictResponseField.rows, "outputs": PredictResponseField.outputs,
          "prediction_ids": PredictResponseField.predictionIds, "features": PredictResponseField.features,
          "first_row": PredictResponseField.firstRow, "parameters": PredictResponseField.parameters]),
    ]

    func testConstantsMatchTheProtoFiles() throws {
        let source = try ProtoSource.load()
        for table in tables {
            let fields = try XCTUnwrap(source.messages[table.message], "message \(table.message) is not in Proto/")
            let inProto = Dictionary(uniqueKeysWithValues: fields.map { ($0.name, $0.number) })
            XCTAssertEqual(inProto, table.fields,
                           "\(table.message): Proto/ and PlinthWire/FieldNumbers.swift disagree; a new or renumbered field needs its hand codec updated")
        }
    }

    func testConstantsMatchTheGeneratedCode() throws {
        let source = try ProtoSource.load()
        for table in tables {
            let fields = try XCTUnwrap(source.messages[table.message])
            for field in fields {
                // Set only this field through JSON (which names fields), then
                // read the number the generated encoder puts in its key.
                let json = "{\"\(jsonName(field.name))\": \(sample(field))}"
                let message = try table.type.init(jsonString: json)
                let bytes: [UInt8] = try message.serializedBytes()
                let number = try bytes.withUnsafeBytes { raw -> Int in
                    var reader = ProtoReader(raw)
                    return try reader.key().field
                }
                XCTAssertEqual(number, table.fields[field.name], "\(table.message).\(field.name)")
            }
        }
    }

    /// A JSON value that makes the field present.
    private func sample(_ field: ProtoField) -> String {
        let one: String
        switch field.type {
        case "string": one = "\"x\""
        case "bytes": one = "\"AQ==\""
        case "bool": one = "true"
        case "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64": one = "1"
        case "float", "double": one = "1.5"
        case "Code", "ValueType", "FieldStatus": one = "1"
        case let t where t.hasPrefix("map<"): return "{\"k\": {}}"
        default: one = "{}"  // a message: present even when empty
        }
        return field.repeated ? "[\(one)]" : one
    }
}
