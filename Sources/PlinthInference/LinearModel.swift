// The linear kind of the model IR (linear and logistic regression) and its
// kernel. Weights are float64, as scikit-learn computes; inputs are widened
// from float32 four lanes at a time with SIMD and summed in float64, so the
// result agrees with scikit-learn to rounding. A missing input (NaN) makes
// the output NaN: a linear model has no rule for missing values.

/// `margin[k] = intercepts[k] + Σ_j weights[k * featureCount + j] * x[j]`, then the transform.
public struct LinearModel: Sendable, Equatable {
    public var featureCount: Int
    public var outputCount: Int
    /// Row-major `outputCount × featureCount`.
    public var weights: [Double]
    public var intercepts: [Double]
    /// `.identity`, `.sigmoid(scale: 1)` (binary) or `.softmax` (multinomial).
    public var transform: OutputTransform

    public init(featureCount: Int, outputCount: Int, weights: [Double], intercepts: [Double],
                transform: OutputTransform) {
        self.featureCount = featureCount
        self.outputCount = outputCount
        self.weights = weights
        self.intercepts = intercepts
        self.transform = transform
    }

    func validate() throws(ModelError) {
        guard featureCount >= 1, outputCount >= 1 else {
            throw .invalidField(format: "linear", field: "shape", detail: "\(outputCount) outputs × \(featureCount) features")
        }
        guard weights.count == featureCount * outputCount else {
            throw .invalidField(format: "linear", field: "coefficients",
                                detail: "\(weights.count) values, expected \(outputCount) × \(featureCount)")
        }
        guard intercepts.count == outputCount else {
            throw .invalidField(format: "linear", field: "intercepts",
                                detail: "\(intercepts.count) values, expected \(outputCount)")
        }
        if case .softmax = transform, outputCount < 2 {
            throw .invalidField(format: "linear", field: "output", detail: "softmax needs at least 2 outputs")
        }
    }
}

/// Dot product of float32 inputs with float64 weights, eight lanes at a time.
/// Multiply then add, not `addingProduct`: without an FMA target the latter
/// becomes a libm call per lane, several times slower.
@inline(__always)
func dot(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Double>, _ n: Int) -> Double {
    var acc0 = SIMD4<Double>(), acc1 = SIMD4<Double>()
    var j = 0
    let xr = UnsafeRawPointer(x), wr = UnsafeRawPointer(w)
    while j + 8 <= n {
        let xa = xr.loadUnaligned(fromByteOffset: j * 4, as: SIMD4<Float>.self)
        let xb = xr.loadUnaligned(fromByteOffset: (j + 4) * 4, as: SIMD4<Float>.self)
        let wa = wr.loadUnaligned(fromByteOffset: j * 8, as: SIMD4<Double>.self)
        let wb = wr.loadUnaligned(fromByteOffset: (j + 4) * 8, as: SIMD4<Double>.self)
        acc0 += SIMD4<Double>(xa) * wa
        acc1 += SIMD4<Double>(xb) * wb
        j += 8
    }
    var sum = (acc0 + acc1).sum()
    while j < n {
        sum += Double(x[j]) * w[j]
        j += 1
    }
    return sum
}

// Safe: storage is written once in init and only read afterwards.
final class LinearEvaluator: Evaluator, @unchecked Sendable {
    private let featureCount: Int
    private let outputCount: Int
    private let weights: UnsafeMutablePointer<Double>
    private let intercepts: UnsafeMutablePointer<Double>
    private let transform: OutputTransform

    init(_ m: LinearModel) {
        featureCount = m.featureCount
        outputCount = m.outputCount
        transform = m.transform
        weights = .allocate(capacity: max(1, m.weights.count))
        weights.initialize(from: m.weights, count: m.weights.count)
        intercepts = .allocate(capacity: max(1, m.intercepts.count))
        intercepts.initialize(from: m.intercepts, count: m.intercepts.count)
    }

    deinit {
        weights.deallocate()
        intercepts.deallocate()
    }

    func predictRow(_ row: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Double>, _ kind: OutputKind) {
        for k in 0..<outputCount {
            out[k] = intercepts[k] + dot(row, weights + k * featureCount, featureCount)
        }
        if kind == .probability { Transform.apply(transform, out, outputCount) }
    }

    func predictBlock(_ rows: UnsafePointer<Float>, _ count: Int, _ out: UnsafeMutablePointer<Double>,
                      _ kind: OutputKind) {
        for r in 0..<count { predictRow(rows + r * featureCount, out + r * outputCount, kind) }
    }
}
