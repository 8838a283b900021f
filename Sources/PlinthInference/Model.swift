// The model IR's top level and the public scoring API. A `Model` is one of
// three kinds (tree ensemble, linear, dense network) plus what every kind
// shares: feature count and names, output count. Building a `Model` compiles
// the IR into the evaluator's cache-friendly layout once; after that every
// prediction call is read-only, so one `Model` may be shared by any number
// of threads.

/// What is applied to the raw margins to produce the model's output.
public enum OutputTransform: Sendable, Equatable {
    /// Margins are the output (regression, ranking, raw scores).
    case identity
    /// `1 / (1 + exp(-scale * margin))` per output (binary logistic; LightGBM's
    /// `sigmoid:` parameter is the scale).
    case sigmoid(scale: Double)
    /// Softmax over all outputs (multiclass).
    case softmax
    /// `exp(margin)` (Poisson, gamma, Tweedie regression).
    case exp
    /// `sign(margin) · margin²` (LightGBM regression trained with
    /// `reg_sqrt`, which fits the square root of the label).
    case signedSquare
    /// `log1p(exp(margin))` (LightGBM `cross_entropy_lambda`).
    case softplus
    /// 1 where the margin is above 0, else 0 (XGBoost's `binary:hinge`; a
    /// margin of exactly 0, or NaN, gives 0, as `margin > 0.0 ? 1.0 : 0.0`).
    case step
}

/// What a prediction call writes.
public enum OutputKind: String, Sendable, CaseIterable {
    /// The transformed output: a probability for binary models, one probability
    /// per class for multiclass models, the value for regression.
    case probability
    /// The raw margin (log-odds for logistic models), before the transform.
    case margin
}

/// A loaded model, ready to score.
///
/// Thread safety: immutable; `predict` may be called from any number of
/// threads at once on the same value.
///
/// ```swift
/// let model = try ModelLoader.load(path: "model.json")
/// var out = [Double](repeating: 0, count: model.outputCount)
/// try row.withUnsafeBufferPointer { r in
///     try out.withUnsafeMutableBufferPointer { o in try model.predict(row: r, into: o) }
/// }
/// ```
public struct Model: Sendable {
    public enum Kind: Sendable, Equatable {
        case trees(TreeEnsemble)
        case linear(LinearModel)
        case network(DenseNetwork)
    }

    public let kind: Kind
    /// Feature names in input order, when the source format records them;
    /// nil means "no names": inputs are matched by position (XGBoost saved
    /// without feature_names, LightGBM's generated Column_0, Column_1, ...).
    public let featureNames: [String]?
    public let featureCount: Int
    /// Values per prediction: 1 for regression and binary models, the class count for multiclass.
    public let outputCount: Int
    /// What the importer did that a user should know when comparing with
    /// the library ("using 87 of 92 trees (best_iteration 86, ...)"); shown
    /// in the model's description.
    public let note: String?
    /// Category lists of the features trained on pandas `category` columns,
    /// keyed by feature index: a value given for such a feature is an
    /// original category and is encoded through its map before scoring.
    /// Empty for models whose categorical inputs are already codes.
    public let categoryMaps: [Int: CategoryMap]
    let evaluator: any Evaluator

    /// Validates the IR and compiles it for evaluation.
    /// - Throws: `ModelError` if the IR is inconsistent (an index out of range,
    ///   a malformed tree, mismatched sizes).
    public init(kind: Kind, featureNames: [String]?, note: String? = nil,
                categoryMaps: [Int: CategoryMap] = [:]) throws(ModelError) {
        self.note = note
        let featureCount: Int
        let outputCount: Int
        switch kind {
        case let .trees(ensemble):
            try ensemble.validate()
            featureCount = ensemble.featureCount
            outputCount = ensemble.outputCount
            evaluator = TreeEvaluator(ensemble)
        case let .linear(linear):
            try linear.validate()
            featureCount = linear.featureCount
            outputCount = linear.outputCount
            evaluator = LinearEvaluator(linear)
        case let .network(network):
            try network.validate()
            featureCount = network.featureCount
            outputCount = network.outputCount
            evaluator = NetworkEvaluator(network)
        }
        guard featureCount >= 1, featureCount <= maxFeatureCount else {
            throw .invalidField(format: "model", field: "feature count", detail: "\(featureCount) is not in 1...\(maxFeatureCount)")
        }
        if let featureNames, featureNames.count != featureCount {
            throw .invalidField(format: "model", field: "feature names",
                                detail: "\(featureNames.count) names for \(featureCount) features")
        }
        for feature in categoryMaps.keys where feature < 0 || feature >= featureCount {
            throw .invalidField(format: "model", field: "category maps",
                                detail: "feature \(feature) is not one of the model's \(featureCount) features")
        }
        self.categoryMaps = categoryMaps
        self.kind = kind
        self.featureNames = featureNames.flatMap { Self.areGenerated($0) ? nil : $0 }
        self.featureCount = featureCount
        self.outputCount = outputCount
    }

    /// Whether `names` are the ones LightGBM makes up when it is given none
    /// (Column_0, Column_1, ...). They say nothing about the columns, so a
    /// model carrying them, from whichever file it was read (LightGBM text,
    /// or Plinth JSON and the native form converted from it), has no names
    /// and takes its inputs by position, as LightGBM itself does; matching
    /// them by name would refuse every real header.
    public static func areGenerated(_ names: [String]) -> Bool {
        names.enumerated().allSatisfy { $1 == "Column_\($0)" }
    }

    /// Scores one row without allocating.
    /// - Parameters:
    ///   - row: `featureCount` values; NaN is a missing value.
    ///   - output: room for at least `outputCount` values.
    ///   - kind: probability (the default) or raw margin.
    /// - Throws: `ModelError.shape` if a buffer is too small.
    /// - Complexity: O(trees × depth) for ensembles, O(weights) otherwise.
    public func predict(row: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Double>,
                        kind: OutputKind = .probability) throws(ModelError) {
        guard row.count >= featureCount else {
            throw .shape(detail: "row has \(row.count) values, model needs \(featureCount)")
        }
        guard output.count >= outputCount else {
            throw .shape(detail: "output has room for \(output.count) values, model writes \(outputCount)")
        }
        guard let r = row.baseAddress, let o = output.baseAddress else { return }
        evaluator.predictRow(r, o, kind)
    }

    /// Convenience: scores one row into a new array.
    public func predict(_ row: [Float], kind: OutputKind = .probability) throws(ModelError) -> [Double] {
        var out = [Double](repeating: 0, count: outputCount)
        let result: Result<Void, ModelError> = row.withUnsafeBufferPointer { r in
            out.withUnsafeMutableBufferPointer { o in
                Result { () throws(ModelError) in try predict(row: r, into: o, kind: kind) }
            }
        }
        try result.get()
        return out
    }

    /// Scores many rows stored row-major (`rowCount × featureCount` values).
    ///
    /// Rows are walked in blocks so each tree's nodes stay in cache while many
    /// rows pass through it; with `threads > 1` the blocks are shared out with
    /// `DispatchQueue.concurrentPerform`.
    /// - Parameters:
    ///   - rows: `rowCount * featureCount` values; NaN is a missing value.
    ///   - output: room for `rowCount * outputCount` values, written row-major.
    ///   - threads: the number of threads to use (1 = the calling thread only).
    public func predictBatch(rows: UnsafeBufferPointer<Float>, rowCount: Int,
                             into output: UnsafeMutableBufferPointer<Double>,
                             kind: OutputKind = .probability, threads: Int = 1) throws(ModelError) {
        guard rowCount >= 0, rows.count >= rowCount * featureCount else {
            throw .shape(detail: "\(rows.count) values cannot hold \(rowCount) rows of \(featureCount) features")
        }
        guard output.count >= rowCount * outputCount else {
            throw .shape(detail: "output has room for \(output.count) values, \(rowCount) rows need \(rowCount * outputCount)")
        }
        guard rowCount > 0, let r = rows.baseAddress, let o = output.baseAddress else { return }
        BatchRunner.run(evaluator: evaluator, rows: r, rowCount: rowCount, featureCount: featureCount,
                        output: o, outputCount: outputCount, kind: kind, threads: max(1, threads))
    }
}

extension Model: CustomStringConvertible {
    /// A one-line summary (kind, size, features, outputs) for logs and errors.
    public var description: String {
        let what: String
        switch kind {
        case let .trees(e):
            let nodes = e.trees.reduce(0) { $0 + $1.nodes.count }
            what = "tree ensemble of \(e.trees.count) trees (\(nodes) splits, \(e.precision.rawValue) sums)"
        case let .linear(l):
            what = "linear model (\(l.outputCount) outputs)"
        case let .network(n):
            what = "dense network (\(n.layers.map { String($0.outputCount) }.joined(separator: "-")) units)"
        }
        return "\(what), \(featureCount) features, \(outputCount) outputs" + (note.map { "; \($0)" } ?? "")
    }
}
