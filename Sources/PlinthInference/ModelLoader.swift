// Finds out what a model file is and hands it to the right importer. Format
// detection looks only at the first bytes: the native magic, LightGBM's
// leading "tree" line, UBJSON's object marker followed by a length marker,
// or JSON (then the top-level keys tell XGBoost from Plinth's own JSON).

import Foundation

/// The model file formats Plinth reads.
public enum ModelFormat: String, Sendable, CaseIterable {
    /// Detect from the file's contents.
    case auto
    /// XGBoost JSON or UBJSON.
    case xgboost
    /// LightGBM text model.
    case lightgbm
    /// Plinth's native binary IR, or Plinth JSON (linear / MLP).
    case plinth
}

public enum ModelLoader {
    /// Refuse files larger than this before reading them.
    public static let maxFileSize = 2 << 30

    /// Reads and imports a model file.
    /// - Throws: `ModelError` naming the file and what is wrong with it.
    public static func load(path: String, format: ModelFormat = .auto) throws(ModelError) -> Model {
        let data: [UInt8]
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            if let size = attributes[.size] as? Int, size > maxFileSize {
                throw ModelError.tooLarge(what: "model file size", count: size, limit: maxFileSize)
            }
            data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch let error as ModelError {
            throw error
        } catch {
            throw .io(path: path, detail: "cannot read: \(error.localizedDescription)")
        }
        return try load(data: data, format: format)
    }

    /// Imports a model from its bytes.
    public static func load(data: [UInt8], format: ModelFormat = .auto) throws(ModelError) -> Model {
        let detected = detect(data)
        switch (format, detected) {
        case (.auto, nil):
            throw .unknownFormat(detail: "not XGBoost JSON/UBJSON, LightGBM text, Plinth JSON or Plinth binary")
        case (.auto, let d?):
            return try load(data: data, as: d)
        case (.xgboost, .xgboostJSON), (.xgboost, .xgboostUBJSON), (.lightgbm, .lightgbm),
             (.plinth, .plinthBinary), (.plinth, .plinthJSON):
            return try load(data: data, as: detected!)
        case (.xgboost, .plinthJSON), (.xgboost, nil):
            return try XGBoostImporter.load(json: data)
        case (.lightgbm, _):
            return try LightGBMImporter.load(text: data)
        case (.plinth, _):
            if data.starts(with: NativeModelFormat.magic) { return try NativeModelFormat.decode(data) }
            return try PlinthJSONImporter.load(json: data)
        case (.xgboost, let d?):
            throw .unknownFormat(detail: "--format xgboost given, but the file looks like \(d.rawValue)")
        }
    }

    enum Detected: String {
        case xgboostJSON = "XGBoost JSON"
        case xgboostUBJSON = "XGBoost UBJSON"
        case lightgbm = "a LightGBM text model"
        case plinthJSON = "Plinth JSON"
        case plinthBinary = "Plinth binary"
    }

    private static func load(data: [UInt8], as detected: Detected) throws(ModelError) -> Model {
        switch detected {
        case .xgboostJSON: return try XGBoostImporter.load(json: data)
        case .xgboostUBJSON: return try XGBoostImporter.load(ubjson: data)
        case .lightgbm: return try LightGBMImporter.load(text: data)
        case .plinthJSON: return try PlinthJSONImporter.load(json: data)
        case .plinthBinary: return try NativeModelFormat.decode(data)
        }
    }

    static func detect(_ data: [UInt8]) -> Detected? {
        if data.starts(with: NativeModelFormat.magic) { return .plinthBinary }
        if data.starts(with: Array("tree\n".utf8)) || data.starts(with: Array("tree\r\n".utf8)) { return .lightgbm }
        guard let first = data.firstIndex(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) else {
            return nil
        }
        guard data[first] == UInt8(ascii: "{") else { return nil }
        // UBJSON: '{' then a key length marker (or an optimized-container header).
        if first == 0, data.count > 1, "iUIlL$#".utf8.contains(data[1]) { return .xgboostUBJSON }
        // JSON: tell the two JSON formats apart by their top-level keys, near the start.
        let head = String(decoding: data.prefix(4096), as: UTF8.self)
        if head.contains("\"plinth_model\"") { return .plinthJSON }
        return .xgboostJSON
    }
}
