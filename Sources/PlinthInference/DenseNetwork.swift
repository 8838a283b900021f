// The dense-network kind of the model IR (a multilayer perceptron such as
// scikit-learn's MLPClassifier/MLPRegressor) and its kernel. Each layer's
// weights are stored output-major so a unit is one contiguous SIMD dot
// product; activations live in a stack buffer, so scoring a row does not
// touch the heap. Arithmetic is float64, as scikit-learn's.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A feed-forward network of fully connected layers.
public struct DenseNetwork: Sendable, Equatable {
    public enum Activation: String, Sendable, Equatable, CaseIterable {
        case identity, relu, tanh, sigmoid
    }

    public struct Layer: Sendable, Equatable {
        public var inputCount: Int
        public var outputCount: Int
        /// Row-major `outputCount × inputCount`: unit `u`'s weights are contiguous.
        public var weights: [Double]
        public var bias: [Double]
        public var activation: Activation

        public init(inputCount: Int, outputCount: Int, weights: [Double], bias: [Double], activation: Activation) {
            self.inputCount = inputCount
            self.outputCount = outputCount
            self.weights = weights
            self.bias = bias
            self.activation = activation
        }
    }

    public var layers: [Layer]
    /// Applied to the last layer's values: `.identity`, `.sigmoid(scale: 1)` or `.softmax`.
    public var transform: OutputTransform

    public var featureCount: Int { layers.first?.inputCount ?? 0 }
    public var outputCount: Int { layers.last?.outputCount ?? 0 }

    public init(layers: [Layer], transform: OutputTransform) {
        self.layers = layers
        self.transform = transform
    }

    /// The widest layer a kernel must hold activations for.
    static let maxWidth = 4096

    func validate() throws(ModelError) {
        guard !layers.isEmpty else { throw .missingField(format: "mlp", field: "layers") }
        var width = layers[0].inputCount
        for (i, layer) in layers.enumerated() {
            guard layer.inputCount == width else {
                throw .invalidField(format: "mlp", field: "layers[\(i)]",
                                    detail: "takes \(layer.inputCount) inputs but the previous layer gives \(width)")
            }
            guard layer.outputCount >= 1, layer.outputCount <= Self.maxWidth, layer.inputCount >= 1 else {
                throw .invalidField(format: "mlp", field: "layers[\(i)]",
                                    detail: "\(layer.outputCount) units; must be 1...\(Self.maxWidth)")
            }
            guard layer.weights.count == layer.inputCount * layer.outputCount else {
                throw .invalidField(format: "mlp", field: "layers[\(i)].weights",
                                    detail: "\(layer.weights.count) values, expected \(layer.inputCount) × \(layer.outputCount)")
            }
            guard layer.bias.count == layer.outputCount else {
                throw .invalidField(format: "mlp", field: "layers[\(i)].bias",
                                    detail: "\(layer.bias.count) values, expected \(layer.outputCount)")
            }
            width = layer.outputCount
        }
        if case .softmax = transform, outputCount < 2 {
            throw .invalidField(format: "mlp", field: "output", detail: "softmax needs at least 2 outputs")
        }
    }
}

/// Dot product of two float64 vectors, eight lanes at a time (multiply then add, as above).
@inline(__always)
func dot(_ x: UnsafePointer<Double>, _ w: UnsafePointer<Double>, _ n: Int) -> Double {
    var acc0 = SIMD4<Double>(), acc1 = SIMD4<Double>()
    var j = 0
    let xr = UnsafeRawPointer(x), wr = UnsafeRawPointer(w)
    while j + 8 <= n {
        acc0 += xr.loadUnaligned(fromByteOffset: j * 8, as: SIMD4<Double>.self)
            * wr.loadUnaligned(fromByteOffset: j * 8, as: SIMD4<Double>.self)
        acc1 += xr.loadUnaligned(fromByteOffset: (j + 4) * 8, as: SIMD4<Double>.self)
            * wr.loadUnaligned(fromByteOffset: (j + 4) * 8, as: SIMD4<Double>.self)
        j += 8
    }
    var sum = (acc0 + acc1).sum()
    while j < n {
        sum += x[j] * w[j]
        j += 1
    }
    return sum
}

// Safe: storage is written once in init and only read afterwards.
final class NetworkEvaluator: Evaluator, @unchecked Sendable {
    private struct PackedLayer {
        var inputs: Int
        var outputs: Int
        var weights: UnsafeMutablePointer<Double>
        var bias: UnsafeMutablePointer<Double>
        var activation: DenseNetwork.Activation
    }

    /// A raw buffer, not an Array: touching an Array from the scoring threads
    /// would retain and release it on every row, and the shared reference
    /// count alone stops two threads from scaling.
    private let layers: UnsafeMutablePointer<PackedLayer>
    private let layerCount: Int
    private let maxWidth: Int
    private let outputCount: Int
    private let featureCount: Int
    private let transform: OutputTransform

    init(_ n: DenseNetwork) {
        let packed = n.layers.map { l in
            let w = UnsafeMutablePointer<Double>.allocate(capacity: l.weights.count)
            w.initialize(from: l.weights, count: l.weights.count)
            let b = UnsafeMutablePointer<Double>.allocate(capacity: l.bias.count)
            b.initialize(from: l.bias, count: l.bias.count)
            return PackedLayer(inputs: l.inputCount, outputs: l.outputCount, weights: w, bias: b,
                               activation: l.activation)
        }
        layers = .allocate(capacity: packed.count)
        layers.initialize(from: packed, count: packed.count)
        layerCount = packed.count
        maxWidth = n.layers.reduce(n.featureCount) { max($0, $1.outputCount) }
        outputCount = n.outputCount
        featureCount = n.featureCount
        transform = n.transform
    }

    deinit {
        for i in 0..<layerCount {
            layers[i].weights.deallocate()
            layers[i].bias.deallocate()
        }
        layers.deinitialize(count: layerCount)
        layers.deallocate()
    }

    func predictRow(_ row: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Double>, _ kind: OutputKind) {
        // Two ping-pong activation buffers on the stack.
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * maxWidth) { scratch in
            guard let base = scratch.baseAddress else { return }
            var input = base
            var output = base + maxWidth
            for j in 0..<featureCount { input[j] = Double(row[j]) }
            for index in 0..<layerCount {
                let l = layers[index]
                let last = index == layerCount - 1
                let dest = last ? out : output
                for u in 0..<l.outputs {
                    dest[u] = l.bias[u] + dot(input, l.weights + u * l.inputs, l.inputs)
                }
                switch l.activation {
                case .identity: break
                case .relu: for u in 0..<l.outputs { dest[u] = Swift.max(dest[u], 0) }
                case .tanh: for u in 0..<l.outputs { dest[u] = Glibc.tanh(dest[u]) }
                case .sigmoid: for u in 0..<l.outputs { dest[u] = 1.0 / (1.0 + Glibc.exp(-dest[u])) }
                }
                swap(&input, &output)
            }
        }
        if kind == .probability { Transform.apply(transform, out, outputCount) }
    }

    func predictBlock(_ rows: UnsafePointer<Float>, _ count: Int, _ out: UnsafeMutablePointer<Double>,
                      _ kind: OutputKind) {
        for r in 0..<count { predictRow(rows + r * featureCount, out + r * outputCount, kind) }
    }
}
