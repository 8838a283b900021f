// Imports Plinth's own JSON format for linear models, dense networks and
// tree ensembles (PlinthJSONTrees.swift), as written by
// `plinth.export.from_sklearn` in the Python client and documented in
// docs/inference.md. Shapes are checked against `n_features`
// and between layers, so a hand-edited file fails with the field to fix.

public enum PlinthJSONImporter {
    static let format = "Plinth JSON"
    /// The format version this reader understands.
    public static let formatVersion = 1

    /// Loads a `"plinth_model": "linear"`, `"mlp"` or `"trees"` document.
    public static func load(json data: [UInt8]) throws(ModelError) -> Model {
        try build(JSONReader.parse(data, format: format))
    }

    static func build(_ doc: JSONValue) throws(ModelError) -> Model {
        guard let kind = doc["plinth_model"]?.string else {
            throw .missingField(format: format, field: "plinth_model")
        }
        if let v = doc["format_version"] {
            guard let n = v.number, n >= 1, n <= Double(formatVersion) else {
                throw .unsupported(format: format, feature: "format_version \(v.number.map { "\($0)" } ?? v.typeName) (this build reads up to \(formatVersion))")
            }
        }
        guard let n = doc["n_features"]?.number, let featureCount = Int(exactly: n),
              featureCount >= 1, featureCount <= maxFeatureCount else {
            throw .invalidField(format: format, field: "n_features", detail: "expected an integer in 1...\(maxFeatureCount)")
        }
        let names = try featureNames(doc["feature_names"], featureCount: featureCount)
        switch kind {
        case "linear":
            let rows = try matrix(doc["coefficients"], field: "coefficients")
            guard let intercepts = doc["intercepts"]?.doubleArray() else {
                throw .invalidField(format: format, field: "intercepts", detail: "expected an array of numbers")
            }
            for (k, row) in rows.enumerated() where row.count != featureCount {
                throw .invalidField(format: format, field: "coefficients[\(k)]",
                                    detail: "\(row.count) values for \(featureCount) features")
            }
            let transform = try outputTransform(doc)
            let linear = LinearModel(featureCount: featureCount, outputCount: rows.count, weights: rows.flatMap { $0 },
                                     intercepts: intercepts, transform: transform)
            return try Model(kind: .linear(linear), featureNames: names)
        case "mlp":
            guard case let .array(layerValues) = doc["layers"], !layerValues.isEmpty else {
                throw .invalidField(format: format, field: "layers", detail: "expected a non-empty array")
            }
            var layers = [DenseNetwork.Layer]()
            var width = featureCount
            for (i, value) in layerValues.enumerated() {
                // weights[i][j] runs from input i to unit j (scikit-learn's coefs_);
                // the IR wants each unit's weights contiguous, so transpose.
                let w = try matrix(value["weights"], field: "layers[\(i)].weights")
                guard w.count == width else {
                    throw .invalidField(format: format, field: "layers[\(i)].weights",
                                        detail: "\(w.count) rows but the layer receives \(width) inputs")
                }
                let units = w.first?.count ?? 0
                guard units >= 1, units <= DenseNetwork.maxWidth else {
                    throw .invalidField(format: format, field: "layers[\(i)].weights",
                                        detail: "\(units) units; must be 1...\(DenseNetwork.maxWidth)")
                }
                var transposed = [Double](repeating: 0, count: units * width)
                for (r, row) in w.enumerated() {
                    guard row.count == units else {
                        throw .invalidField(format: format, field: "layers[\(i)].weights[\(r)]",
                                            detail: "\(row.count) values, expected \(units)")
                    }
                    for (u, x) in row.enumerated() { transposed[u * width + r] = x }
                }
                guard let bias = value["bias"]?.doubleArray() else {
                    throw .invalidField(format: format, field: "layers[\(i)].bias", detail: "expected an array of numbers")
                }
                let name = value["activation"]?.string ?? "identity"
                guard let activation = DenseNetwork.Activation(rawValue: name) else {
                    throw .unsupported(format: format, feature: "activation '\(name)' in layers[\(i)] (use identity, relu, tanh or sigmoid)")
                }
                layers.append(DenseNetwork.Layer(inputCount: width, outputCount: units, weights: transposed,
                                                 bias: bias, activation: activation))
                width = units
            }
            let network = DenseNetwork(layers: layers, transform: try outputTransform(doc))
            return try Model(kind: .network(network), featureNames: names)
        case "trees":
            return try trees(doc, featureCount: featureCount, names: names)
        default:
            throw .unsupported(format: format, feature: "plinth_model '\(kind)' (expected 'linear', 'mlp' or 'trees')")
        }
    }

    private static func featureNames(_ value: JSONValue?, featureCount: Int) throws(ModelError) -> [String]? {
        guard let value, case let .array(list) = value else { return nil }
        var names = [String]()
        for (i, v) in list.enumerated() {
            guard let s = v.string else {
                throw .invalidField(format: format, field: "feature_names[\(i)]", detail: "expected a string")
            }
            names.append(s)
        }
        guard names.count == featureCount else {
            throw .invalidField(format: format, field: "feature_names", detail: "\(names.count) names for \(featureCount) features")
        }
        return names
    }

    private static func matrix(_ value: JSONValue?, field: String) throws(ModelError) -> [[Double]] {
        guard let value, case let .array(rows) = value, !rows.isEmpty else {
            throw .invalidField(format: format, field: field, detail: "expected a non-empty array of arrays")
        }
        var out = [[Double]]()
        out.reserveCapacity(rows.count)
        for (i, row) in rows.enumerated() {
            guard let r = row.doubleArray() else {
                throw .invalidField(format: format, field: "\(field)[\(i)]", detail: "expected an array of numbers")
            }
            out.append(r)
        }
        return out
    }

    /// `output`, and for a sigmoid its optional `sigmoid_scale` (2 for
    /// scikit-learn's exponential loss, whose probability is expit(2·raw)).
    static func outputTransform(_ doc: JSONValue) throws(ModelError) -> OutputTransform {
        switch doc["output"]?.string ?? "identity" {
        case "identity": return .identity
        case "sigmoid":
            guard let v = doc["sigmoid_scale"] else { return .sigmoid(scale: 1) }
            guard let scale = v.number, scale.isFinite, scale > 0 else {
                throw .invalidField(format: format, field: "sigmoid_scale", detail: "expected a positive number")
            }
            return .sigmoid(scale: scale)
        case "softmax": return .softmax
        case "exp": return .exp
        case let other:
            throw .unsupported(format: format, feature: "output '\(other)' (use identity, sigmoid, softmax or exp)")
        }
    }
}
