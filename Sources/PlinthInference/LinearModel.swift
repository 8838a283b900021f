// The linear kind of the model IR (linear and logistic regression) and its
// kernel. Weights are float64, as scikit-learn computes; inputs are widened
// from float32 four lanes at a time with SIMD and summed in float64, so the
// result agrees with scikit-learn to rounding. A missing input (NaN) makes
// the output NaN: a linear model has no rule for missing values.
// XGBoost's gblinear is the exception, with a summation of its own
// (`Summation.float32SkippingMissing`): float32, feature by feature, a
// missing input skipped as its sparse rows never hold one.

/// `margin[k] = intercepts[k] + Σ_j weights[k * featureCount + j] * x[j]`, then the transform.
public struct LinearModel: Sendable, Equatable {
    public var featureCount: Int
    public var outputCount: Int
    /// Row-major `outputCount × featureCount`.
    public var weights: [Double]
    public var intercepts: [Double]
    /// `.identity`, `.sigmoid(scale: 1)` (binary) or `.softmax` (multinomial).
    public var transform: OutputTransform
    /// How each output's sum is computed.
    public var summation: Summation

    /// The arithmetic of the sum, which exact agreement with the library needs.
    public enum Summation: Sendable, Equatable {
        /// float64 products and sums in any order (scikit-learn); NaN makes NaN.
        case float64
        /// XGBoost's gblinear (`GBLinear::Pred`): starting from the
        /// intercept, `sum += x[j] * w[j]` in float32 for j in feature order,
        /// skipping a missing (NaN) input. Weights and intercepts must be
        /// float32 values.
        case float32SkippingMissing
    }

    public init(featureCount: Int, outputCount: Int, weights: [Double], intercepts: [Double],
                transform: OutputTransform, summation: Summation = .float64) {
        self.featureCount = featureCount
        self.outputCount = outputCount
        self.weights = weights
        self.intercepts = intercepts
        self.transform = transform
        self.summation = summation
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
        if summation == .float32SkippingMissing,
           let bad = (weights + intercepts).first(where: { Double(Float($0)) != $0 && !$0.isNaN }) {
            throw .invalidField(format: "linear", field: "coefficients",
                                detail: "\(bad) is not a float32 value, which a float32 sum needs")
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
    /// `.float32SkippingMissing`: the weights as float32, output-major like `weights`.
    private let weightsF: UnsafeMutablePointer<Float>?

    init(_ m: LinearModel) {
        featureCount = m.featureCount
        outputCount = m.outputCount
        transform = m.transform
        if m.summation == .float32SkippingMissing {
            let w = UnsafeMutablePointer<Float>.allocate(capacity: max(1, m.weights.count))
            for (i, v) in m.weights.enumerated() { w[i] = Float(v) }
            weightsF = w
        } else {
            weightsF = nil
        }
        weights = .allocate(capacity: max(1, m.weights.count))
        weights.initialize(from: m.weights, count: m.weights.count)
        intercepts = .allocate(capacity: max(1, m.intercepts.count))
        intercepts.initialize(from: m.intercepts, count: m.intercepts.count)
    }

    deinit {
        weights.deallocate()
        intercepts.deallocate()
        weightsF?.deallocate()
    }

    func predictRow(_ row: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Double>, _ kind: OutputKind) {
        if let weightsF {
            for k in 0..<outputCount {
                // XGBoost's order and precision exactly: one float32 product
                // and one float32 sum per present input (no FMA: its x86
                // builds have none), so the margin matches to the bit.
                var sum = Float(intercepts[k])
                let w = weightsF + k * featureCount
                for j in 0..<featureCount where !row[j].isNaN {
                    sum += row[j] * w[j]
                }
                out[k] = Double(sum)
            }
            if kind == .probability { Transform.apply(transform, out, outputCount) }
            return
        }
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
