// Plinth's native binary model form: the 8-byte magic "PLNTIR01" followed by
// a protobuf `plinth.v1.ModelIR` (Proto/plinth/v1/model.proto). It stores the
// IR itself, after import, so loading skips parsing text and rebuilding
// trees: node fields are packed arrays concatenated across trees, decoded
// in bulk. Every count is checked against the arrays actually present
// before anything is sliced, and the result goes through the same
// validation as any imported model.

import SwiftProtobuf

public enum NativeModelFormat {
    /// The first bytes of every native model file.
    public static let magic: [UInt8] = Array("PLNTIR01".utf8)
    public static let formatVersion: UInt32 = 1
    static let format = "Plinth binary"

    /// Encodes a model's IR.
    public static func encode(_ model: Model) throws(ModelError) -> [UInt8] {
        var ir = PBModelIR()
        ir.formatVersion = formatVersion
        ir.featureCount = UInt32(model.featureCount)
        ir.featureNames = model.featureNames ?? []
        ir.categoryMaps = encode(model.categoryMaps)
        ir.note = model.note ?? ""
        switch model.kind {
        case let .trees(e): ir.trees = encode(e)
        case let .linear(l):
            var m = PBLinearModelIR()
            m.outputCount = UInt32(l.outputCount)
            m.weights = l.weights
            m.intercepts = l.intercepts
            m.transform = encode(l.transform)
            m.float32SkippingMissing = l.summation == .float32SkippingMissing
            ir.linear = m
        case let .network(n):
            var m = PBDenseNetworkIR()
            m.layers = n.layers.map { layer in
                var p = PBDenseLayerIR()
                p.inputCount = UInt32(layer.inputCount)
                p.outputCount = UInt32(layer.outputCount)
                p.weights = layer.weights
                p.bias = layer.bias
                p.activation = switch layer.activation {
                case .identity: .identity
                case .relu: .relu
                case .tanh: .tanh
                case .sigmoid: .sigmoid
                }
                return p
            }
            m.transform = encode(n.transform)
            ir.network = m
        }
        do {
            let body: [UInt8] = try ir.serializedBytes()
            return magic + body
        } catch {
            throw .malformed(format: format, detail: "could not encode: \(error)")
        }
    }

    /// Category maps in feature order, so one model always encodes alike.
    private static func encode(_ maps: [Int: CategoryMap]) -> [PBCategoryMapIR] {
        maps.keys.sorted().compactMap { feature in
            guard let map = maps[feature] else { return nil }
            var p = PBCategoryMapIR()
            p.feature = UInt32(feature)
            switch map.values {
            case let .numbers(list): p.numbers = list
            case let .strings(list): p.strings = list
            }
            return p
        }
    }

    private static func decode(_ maps: [PBCategoryMapIR], featureCount: Int) throws(ModelError) -> [Int: CategoryMap] {
        var out = [Int: CategoryMap]()
        for (i, p) in maps.enumerated() {
            let feature = Int(p.feature)
            guard feature < featureCount, out[feature] == nil else {
                throw .invalidField(format: format, field: "category_maps[\(i)].feature",
                                    detail: "\(feature) is out of range or mapped twice")
            }
            guard p.numbers.isEmpty || p.strings.isEmpty else {
                throw .invalidField(format: format, field: "category_maps[\(i)]", detail: "holds both numbers and strings")
            }
            out[feature] = try CategoryMap(p.strings.isEmpty ? .numbers(p.numbers) : .strings(p.strings))
        }
        return out
    }

    private static func encode(_ t: OutputTransform) -> PBOutputTransformIR {
        var p = PBOutputTransformIR()
        switch t {
        case .identity: p.kind = .identity
        case let .sigmoid(scale): p.kind = .sigmoid; p.sigmoidScale = scale
        case .softmax: p.kind = .softmax
        case .exp: p.kind = .exp
        case .signedSquare: p.kind = .signedSquare
        case .softplus: p.kind = .softplus
        case .step: p.kind = .step
        }
        return p
    }

    private static func encode(_ e: TreeEnsemble) -> PBTreeEnsembleIR {
        var p = PBTreeEnsembleIR()
        p.outputCount = UInt32(e.outputCount)
        p.baseMargins = e.baseMargins
        p.precision = e.precision == .float32 ? .float32 : .float64
        p.averageTrees = e.averageTrees
        p.transform = encode(e.transform)
        p.negativeIsNoCategory = e.negativeIsNoCategory
        p.treeOutputs = e.treeOutputs.map { UInt32($0) }
        p.tinyInputsAreZero = e.tinyInputsAreZero
        if e.hasLinearLeaves {
            p.treeLinear = e.trees.map { $0.linearLeaves != nil }
            for leaf in e.trees.flatMap({ $0.linearLeaves ?? [] }) {
                p.linearConstants.append(leaf.constant)
                p.linearTermCounts.append(UInt32(leaf.features.count))
                p.linearFeatures.append(contentsOf: leaf.features.map { UInt32($0) })
                p.linearCoefficients.append(contentsOf: leaf.coefficients)
            }
        }
        for tree in e.trees {
            p.treeNodeCounts.append(UInt32(tree.nodes.count))
            p.treeCategorySetCounts.append(UInt32(tree.categorySets.count))
            for n in tree.nodes {
                p.features.append(UInt32(n.feature))
                p.thresholds.append(n.threshold)
                p.leftChildren.append(n.left)
                p.rightChildren.append(n.right)
                p.nodeFlags.append((n.defaultLeft ? 1 : 0) | (n.zeroIsMissing ? 2 : 0))
                p.categorySets.append(n.categorySet)
            }
            p.leafValues.append(contentsOf: tree.leaves)
            for set in tree.categorySets {
                p.categorySetSizes.append(UInt32(set.count))
                p.categoryWords.append(contentsOf: set)
            }
        }
        return p
    }

    /// Decodes a native model file (magic included).
    public static func decode(_ data: [UInt8]) throws(ModelError) -> Model {
        guard data.count >= magic.count, Array(data[..<magic.count]) == magic else {
            throw .malformed(format: format, detail: "missing the PLNTIR01 header")
        }
        let ir: PBModelIR
        do {
            ir = try PBModelIR(serializedBytes: [UInt8](data[magic.count...]))
        } catch {
            throw .malformed(format: format, detail: "the protobuf body does not decode (\(error)); the file is truncated or corrupt")
        }
        guard ir.formatVersion >= 1, ir.formatVersion <= formatVersion else {
            throw .unsupported(format: format, feature: "format_version \(ir.formatVersion) (this build reads up to \(formatVersion))")
        }
        let featureCount = Int(ir.featureCount)
        guard featureCount >= 1, featureCount <= maxFeatureCount else {
            throw .invalidField(format: format, field: "feature_count", detail: "\(featureCount) is out of range")
        }
        let names = ir.featureNames.isEmpty ? nil : ir.featureNames
        let kind: Model.Kind
        switch ir.kind {
        case let .trees(p)?: kind = .trees(try decode(p, featureCount: featureCount))
        case let .linear(p)?:
            kind = .linear(LinearModel(featureCount: featureCount, outputCount: Int(p.outputCount), weights: p.weights,
                                       intercepts: p.intercepts, transform: try decode(p.transform),
                                       summation: p.float32SkippingMissing ? .float32SkippingMissing : .float64))
        case let .network(p)?:
            var layers = [DenseNetwork.Layer]()
            for (i, l) in p.layers.enumerated() {
                let activation: DenseNetwork.Activation
                switch l.activation {
                case .identity: activation = .identity
                case .relu: activation = .relu
                case .tanh: activation = .tanh
                case .sigmoid: activation = .sigmoid
                default:
                    throw .invalidField(format: format, field: "network.layers[\(i)].activation", detail: "unknown value")
                }
                layers.append(DenseNetwork.Layer(inputCount: Int(l.inputCount), outputCount: Int(l.outputCount),
                                                 weights: l.weights, bias: l.bias, activation: activation))
            }
            let network = DenseNetwork(layers: layers, transform: try decode(p.transform))
            guard network.featureCount == featureCount else {
                throw .invalidField(format: format, field: "network.layers[0].input_count",
                                    detail: "\(network.featureCount) but feature_count is \(featureCount)")
            }
            kind = .network(network)
        case nil:
            throw .missingField(format: format, field: "kind (trees, linear or network)")
        }
        return try Model(kind: kind, featureNames: names, note: ir.note.isEmpty ? nil : ir.note,
                         categoryMaps: try decode(ir.categoryMaps, featureCount: featureCount))
    }

    private static func decode(_ p: PBOutputTransformIR) throws(ModelError) -> OutputTransform {
        switch p.kind {
        case .identity: return .identity
        case .sigmoid: return .sigmoid(scale: p.sigmoidScale)
        case .softmax: return .softmax
        case .exp: return .exp
        case .signedSquare: return .signedSquare
        case .softplus: return .softplus
        case .step: return .step
        default: throw .invalidField(format: format, field: "transform.kind", detail: "unknown value")
        }
    }

    private static func decode(_ p: PBTreeEnsembleIR, featureCount: Int) throws(ModelError) -> TreeEnsemble {
        let treeCount = p.treeNodeCounts.count
        guard p.treeOutputs.count == treeCount, p.treeCategorySetCounts.count == treeCount else {
            throw .invalidField(format: format, field: "trees",
                                detail: "\(treeCount) node counts, \(p.treeOutputs.count) outputs, \(p.treeCategorySetCounts.count) category-set counts")
        }
        let nodeTotal = p.treeNodeCounts.reduce(0) { $0 + Int($1) }
        let leafTotal = p.treeNodeCounts.reduce(0) { $0 + Int($1) + 1 }
        let setTotal = p.treeCategorySetCounts.reduce(0) { $0 + Int($1) }
        for (name, n) in [("features", p.features.count), ("thresholds", p.thresholds.count),
                          ("left_children", p.leftChildren.count), ("right_children", p.rightChildren.count),
                          ("node_flags", p.nodeFlags.count), ("category_sets", p.categorySets.count)] where n != nodeTotal {
            throw .invalidField(format: format, field: name, detail: "\(n) entries for \(nodeTotal) nodes")
        }
        guard p.leafValues.count == leafTotal else {
            throw .invalidField(format: format, field: "leaf_values", detail: "\(p.leafValues.count) entries for \(leafTotal) leaves")
        }
        guard p.categorySetSizes.count == setTotal,
              p.categoryWords.count == p.categorySetSizes.reduce(0, { $0 + Int($1) }) else {
            throw .invalidField(format: format, field: "category_set_sizes", detail: "do not match category_words")
        }
        var trees = [TreeEnsemble.Tree]()
        trees.reserveCapacity(treeCount)
        var node = 0, leaf = 0, set = 0, word = 0
        for t in 0..<treeCount {
            let n = Int(p.treeNodeCounts[t])
            var nodes = [TreeEnsemble.Node]()
            nodes.reserveCapacity(n)
            for i in node..<(node + n) {
                guard p.features[i] <= UInt32(Int32.max) else {
                    throw .featureOutOfRange(tree: t, node: i - node, feature: Int(p.features[i]), featureCount: featureCount)
                }
                nodes.append(TreeEnsemble.Node(feature: Int32(p.features[i]), threshold: p.thresholds[i],
                                               left: p.leftChildren[i], right: p.rightChildren[i],
                                               defaultLeft: p.nodeFlags[i] & 1 != 0,
                                               zeroIsMissing: p.nodeFlags[i] & 2 != 0,
                                               categorySet: p.categorySets[i]))
            }
            node += n
            let leaves = Array(p.leafValues[leaf..<(leaf + n + 1)])
            leaf += n + 1
            var sets = [[UInt32]]()
            for _ in 0..<Int(p.treeCategorySetCounts[t]) {
                let size = Int(p.categorySetSizes[set])
                sets.append(Array(p.categoryWords[word..<(word + size)]))
                set += 1
                word += size
            }
            trees.append(TreeEnsemble.Tree(nodes: nodes, leaves: leaves, categorySets: sets))
        }
        try decodeLinearLeaves(p, into: &trees)
        let precision: TreeEnsemble.Precision
        switch p.precision {
        case .float32: precision = .float32
        case .float64: precision = .float64
        default: throw .invalidField(format: format, field: "precision", detail: "unknown value")
        }
        var ensemble = TreeEnsemble(trees: trees, treeOutputs: p.treeOutputs.map { Int32(truncatingIfNeeded: $0) },
                                    outputCount: Int(p.outputCount), baseMargins: p.baseMargins, precision: precision,
                                    averageTrees: p.averageTrees, transform: try decode(p.transform),
                                    featureCount: featureCount, tinyInputsAreZero: p.tinyInputsAreZero)
        ensemble.negativeIsNoCategory = p.negativeIsNoCategory
        return ensemble
    }

    /// Gives the trees flagged in `tree_linear` their linear leaves, every
    /// count checked against the arrays before slicing (feature ranges are
    /// checked by `TreeEnsemble.validate`).
    private static func decodeLinearLeaves(_ p: PBTreeEnsembleIR, into trees: inout [TreeEnsemble.Tree]) throws(ModelError) {
        guard !p.treeLinear.isEmpty else { return }
        guard p.treeLinear.count == trees.count else {
            throw .invalidField(format: format, field: "tree_linear", detail: "\(p.treeLinear.count) entries for \(trees.count) trees")
        }
        let leafTotal = zip(p.treeLinear, trees).reduce(0) { $0 + ($1.0 ? $1.1.leaves.count : 0) }
        guard p.linearConstants.count == leafTotal, p.linearTermCounts.count == leafTotal else {
            throw .invalidField(format: format, field: "linear_constants",
                                detail: "\(p.linearConstants.count) constants and \(p.linearTermCounts.count) term counts for \(leafTotal) linear leaves")
        }
        let termTotal = p.linearTermCounts.reduce(0) { $0 + Int($1) }
        guard p.linearFeatures.count == termTotal, p.linearCoefficients.count == termTotal else {
            throw .invalidField(format: format, field: "linear_features",
                                detail: "\(p.linearFeatures.count) features and \(p.linearCoefficients.count) coefficients for \(termTotal) terms")
        }
        var leaf = 0, term = 0
        for t in trees.indices where p.treeLinear[t] {
            var leaves = [TreeEnsemble.LinearLeaf]()
            for _ in trees[t].leaves.indices {
                let n = Int(p.linearTermCounts[leaf])
                leaves.append(TreeEnsemble.LinearLeaf(
                    constant: p.linearConstants[leaf],
                    features: p.linearFeatures[term..<(term + n)].map { Int32(truncatingIfNeeded: min($0, UInt32(Int32.max))) },
                    coefficients: Array(p.linearCoefficients[term..<(term + n)])))
                leaf += 1
                term += n
            }
            trees[t].linearLeaves = leaves
        }
    }
}
