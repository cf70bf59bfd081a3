import Foundation

/// Maps a TF Object Detection API frozen graph of an SSD with a MobileNetV2 feature extractor and
/// SSDLite box predictors onto a `NetworkSpec`. It walks back from the box-predictor outputs
/// (`concat`, `concat_1`) to the preprocessor output, so the graph's own pre- and post-processing
/// subgraphs are never interpreted; any other op on that path is refused by name.
struct GraphImporter {
    static let inputNode = "Preprocessor/sub"
    static let boxOutputNode = "concat"
    static let classOutputNode = "concat_1"
    static let resizeSizeNode = "Preprocessor/map/while/ResizeImage/stack"

    private let graph: GraphDef
    /// Node name -> names of the nodes reading its output.
    private var consumers: [String: [String]] = [:]
    private var spec: NetworkSpec
    /// Graph node name -> tensor index, for nodes already mapped.
    private var mapped: [String: Int] = [:]
    /// Tensor index -> index of the convolution that produces it.
    private var producer: [Int: Int] = [:]

    static func importNetwork(_ graph: GraphDef) throws(ModelError) -> NetworkSpec {
        var importer = try GraphImporter(graph)
        return try importer.run()
    }

    private init(_ graph: GraphDef) throws(ModelError) {
        self.graph = graph
        for node in graph.nodes {
            for input in node.inputs { consumers[Self.nodeName(input), default: []].append(node.name) }
        }
        guard let size = graph.byName[Self.resizeSizeNode], case .tensor(let t)? = size.attrs["value"], t.ints.count == 2 else {
            throw .notSSD("no preprocessor resize node '\(Self.resizeSizeNode)' giving the input size")
        }
        guard graph.byName[Self.inputNode] != nil else { throw .notSSD("no preprocessor output node '\(Self.inputNode)'") }
        spec = NetworkSpec(tensors: [.init(height: t.ints[0], width: t.ints[1], channels: 3)], convolutions: [], heads: [],
                           classesWithBackground: 0, inputScale: 2.0 / 255.0, inputOffset: -1.0)
    }

    private mutating func run() throws(ModelError) -> NetworkSpec {
        try readPreprocessorConstants()
        let boxParts = try headInputs(Self.boxOutputNode)
        let classParts = try headInputs(Self.classOutputNode)
        guard boxParts.count == classParts.count else {
            throw .notSSD("\(boxParts.count) box-encoding heads but \(classParts.count) class heads")
        }
        for (boxNode, classNode) in zip(boxParts, classParts) {
            let box = try tensor(for: boxNode)
            let logits = try tensor(for: classNode)
            let boxShape = spec.tensors[box], classShape = spec.tensors[logits]
            guard boxShape.channels % 4 == 0, boxShape.height == classShape.height, boxShape.width == classShape.width else {
                throw .notSSD("head '\(boxNode)' has \(boxShape.channels) channels, not 4 per anchor")
            }
            let anchors = boxShape.channels / 4
            guard classShape.channels % anchors == 0 else {
                throw .notSSD("class head '\(classNode)' has \(classShape.channels) channels for \(anchors) anchors per cell")
            }
            let classes = classShape.channels / anchors
            if spec.classesWithBackground == 0 { spec.classesWithBackground = classes }
            guard classes == spec.classesWithBackground, classes >= 2 else {
                throw .notSSD("class head '\(classNode)' predicts \(classes) classes, others \(spec.classesWithBackground)")
            }
            spec.heads.append(.init(boxEncodings: box, classLogits: logits, anchorsPerCell: anchors))
        }
        return spec
    }

    /// `Preprocessor/mul` and `Preprocessor/sub` hold the input normalisation (2/255 and 1 in the reference graphs).
    private mutating func readPreprocessorConstants() throws(ModelError) {
        guard let sub = graph.byName[Self.inputNode], sub.op == "Sub", sub.inputs.count == 2,
              let mul = graph.byName[Self.nodeName(sub.inputs[0])], mul.op == "Mul",
              let offset = constant(sub.inputs[1])?.floats.first,
              let scale = mul.inputs.compactMap({ constant($0)?.floats.first }).first
        else {
            throw .notSSD("preprocessor is not the expected x * scale - offset ('\(Self.inputNode)')")
        }
        spec.inputScale = scale
        spec.inputOffset = -offset
    }

    /// The per-layer inputs of a box-predictor concat, each a `Reshape` of a head convolution.
    private func headInputs(_ concatName: String) throws(ModelError) -> [String] {
        guard let concat = graph.byName[concatName] else { throw .notSSD("no box predictor output '\(concatName)'") }
        guard concat.op == "ConcatV2" else {
            throw .unsupported(node: concat.name, op: concat.op, reason: "is not the ConcatV2 of box predictor outputs")
        }
        var heads: [String] = []
        for input in concat.inputs.dropLast() {
            guard let reshape = graph.byName[Self.nodeName(input)], reshape.op == "Reshape", let source = reshape.inputs.first else {
                let node = graph.byName[Self.nodeName(input)]
                throw .unsupported(node: Self.nodeName(input), op: node?.op ?? "missing", reason: "is not a Reshape of a box predictor")
            }
            heads.append(source)
        }
        guard !heads.isEmpty else { throw .notSSD("'\(concatName)' has no inputs") }
        return heads
    }

    /// The tensor a graph node's output maps to, mapping its inputs first.
    private mutating func tensor(for input: String) throws(ModelError) -> Int {
        let name = Self.nodeName(input)
        if name == Self.inputNode { return 0 }
        if let known = mapped[name] { return known }
        guard let node = graph.byName[name] else { throw .malformed("node '\(name)' is referenced but missing") }
        let result: Int
        switch node.op {
        case "Identity":
            result = try tensor(for: node.inputs[0])
        case "Conv2D", "DepthwiseConv2dNative":
            result = try addConvolution(node)
        case "FusedBatchNorm", "FusedBatchNormV3":
            result = try foldBatchNorm(node)
        case "BiasAdd":
            let x = try tensor(for: node.inputs[0])
            let conv = try fusable(x, into: node)
            guard let bias = constant(node.inputs[1])?.floats, bias.count == spec.convolutions[conv].bias.count else {
                throw .unsupported(node: node.name, op: node.op, reason: "has no constant bias of the right size")
            }
            for i in bias.indices { spec.convolutions[conv].bias[i] += bias[i] }
            result = x
        case "Relu6":
            let x = try tensor(for: node.inputs[0])
            let conv = try fusable(x, into: node)
            spec.convolutions[conv].postOps.append(.relu6)
            result = x
        case "Add", "AddV2":
            result = try addResidual(node)
        default:
            throw .unsupported(node: node.name, op: node.op, reason: "cannot be mapped to an SSDLite-MobileNetV2 layer")
        }
        mapped[name] = result
        return result
    }

    /// The convolution producing `tensor`, if `node` may fuse into it: nothing else reads the unfused value.
    private func fusable(_ tensor: Int, into node: GraphDef.Node) throws(ModelError) -> Int {
        guard let conv = producer[tensor], consumerCount(node.inputs[0]) == 1 else {
            throw .unsupported(node: node.name, op: node.op, reason: "does not follow a convolution it can be fused into")
        }
        return conv
    }

    /// Consumers of a node's output, looking through `Identity` nodes.
    private func consumerCount(_ input: String) -> Int {
        consumers[Self.nodeName(input), default: []].reduce(0) { count, reader in
            count + (graph.byName[reader]?.op == "Identity" ? consumerCount(reader) : 1)
        }
    }

    private mutating func addConvolution(_ node: GraphDef.Node) throws(ModelError) -> Int {
        let depthwise = node.op == "DepthwiseConv2dNative"
        let x = try tensor(for: node.inputs[0])
        let inShape = spec.tensors[x]
        guard let filter = constant(node.inputs[1]), filter.dtype == GraphDef.Tensor.DType.float.rawValue, filter.shape.count == 4 else {
            throw .unsupported(node: node.name, op: node.op, reason: "has no constant f32 filter")
        }
        if case .string(let format)? = node.attrs["data_format"], format != "NHWC" {
            throw .unsupported(node: node.name, op: node.op, reason: "uses data format \(format), not NHWC")
        }
        if case .ints(let dilations)? = node.attrs["dilations"], dilations.contains(where: { $0 != 1 }) {
            throw .unsupported(node: node.name, op: node.op, reason: "is dilated")
        }
        guard case .ints(let strides)? = node.attrs["strides"], strides.count == 4, case .string(let padding)? = node.attrs["padding"],
              padding == "SAME" || padding == "VALID" else {
            throw .unsupported(node: node.name, op: node.op, reason: "has unsupported strides or padding")
        }
        // TF filters are HWIO (Conv2D) or HWCM (depthwise, M = channel multiplier).
        let (kh, kw, fi, fo) = (filter.shape[0], filter.shape[1], filter.shape[2], filter.shape[3])
        guard fi == inShape.channels, !depthwise || fo == 1 else {
            throw .unsupported(node: node.name, op: node.op, reason: "filter \(filter.shape) does not fit an input of \(inShape.channels) channels"
                               + (depthwise ? " with channel multiplier 1" : ""))
        }
        let outChannels = depthwise ? fi : fo
        let (outH, padTop, padBottom) = Self.padding(input: inShape.height, kernel: kh, stride: strides[1], same: padding == "SAME")
        let (outW, padLeft, padRight) = Self.padding(input: inShape.width, kernel: kw, stride: strides[2], same: padding == "SAME")
        var weights = [Float](repeating: 0, count: filter.count)
        for y in 0..<kh {
            for xk in 0..<kw {
                for i in 0..<fi {
                    for o in 0..<fo {
                        let hwio = ((y * kw + xk) * fi + i) * fo + o
                        let oihw = depthwise ? (i * kh + y) * kw + xk : ((o * fi + i) * kh + y) * kw + xk
                        weights[oihw] = filter.floats[hwio]
                    }
                }
            }
        }
        spec.tensors.append(.init(height: outH, width: outW, channels: outChannels))
        let output = spec.tensors.count - 1
        spec.convolutions.append(.init(name: node.name, depthwise: depthwise, input: x, output: output,
                                       kernelHeight: kh, kernelWidth: kw, strideHeight: strides[1], strideWidth: strides[2],
                                       padTop: padTop, padLeft: padLeft, padBottom: padBottom, padRight: padRight,
                                       weights: weights, bias: [Float](repeating: 0, count: outChannels)))
        producer[output] = spec.convolutions.count - 1
        return output
    }

    /// y = (conv - mean) * gamma / sqrt(var + eps) + beta, folded into the convolution's weights and bias.
    private mutating func foldBatchNorm(_ node: GraphDef.Node) throws(ModelError) -> Int {
        let x = try tensor(for: node.inputs[0])
        let conv = try fusable(x, into: node)
        if case .bool(true)? = node.attrs["is_training"] {
            throw .unsupported(node: node.name, op: node.op, reason: "is in training mode")
        }
        let channels = spec.convolutions[conv].bias.count
        let params = node.inputs.dropFirst().prefix(4).map { constant($0)?.floats ?? [] }
        guard params.count == 4, params.allSatisfy({ $0.count == channels }), spec.convolutions[conv].postOps.isEmpty else {
            throw .unsupported(node: node.name, op: node.op, reason: "has no constant scale, offset, mean and variance of \(channels) channels")
        }
        var epsilon = 0.001
        if case .float(let e)? = node.attrs["epsilon"] { epsilon = Double(e) }
        let (gamma, beta, mean, variance) = (params[0], params[1], params[2], params[3])
        let perOutput = spec.convolutions[conv].weights.count / channels
        for c in 0..<channels {
            let scale = Double(gamma[c]) / (Double(variance[c]) + epsilon).squareRoot()
            for k in 0..<perOutput {
                let i = c * perOutput + k
                spec.convolutions[conv].weights[i] = Float(Double(spec.convolutions[conv].weights[i]) * scale)
            }
            spec.convolutions[conv].bias[c] = Float((Double(spec.convolutions[conv].bias[c]) - Double(mean[c])) * scale + Double(beta[c]))
        }
        return x
    }

    /// A linear bottleneck's `input + project(...)`: fused as a sum post-op of the projection.
    private mutating func addResidual(_ node: GraphDef.Node) throws(ModelError) -> Int {
        guard node.inputs.count == 2 else { throw .unsupported(node: node.name, op: node.op, reason: "does not have two inputs") }
        let a = try tensor(for: node.inputs[0])
        let b = try tensor(for: node.inputs[1])
        guard spec.tensors[a] == spec.tensors[b] else {
            throw .unsupported(node: node.name, op: node.op, reason: "adds tensors of different shapes")
        }
        for (conv, residual, edge) in [(b, a, node.inputs[1]), (a, b, node.inputs[0])] {
            if let index = producer[conv], consumerCount(edge) == 1, producer[residual] != index,
               spec.convolutions[index].residual == nil {
                spec.convolutions[index].postOps.append(.addResidual(residual))
                return conv
            }
        }
        throw .unsupported(node: node.name, op: node.op, reason: "does not add a convolution's output to another tensor")
    }

    private func constant(_ input: String) -> GraphDef.Tensor? {
        var name = Self.nodeName(input)
        while let node = graph.byName[name] {
            if node.op == "Const", case .tensor(let t)? = node.attrs["value"] { return t }
            guard node.op == "Identity", let next = node.inputs.first else { return nil }
            name = Self.nodeName(next)
        }
        return nil
    }

    /// TensorFlow's output size and padding for one spatial dimension.
    static func padding(input: Int, kernel: Int, stride: Int, same: Bool) -> (output: Int, before: Int, after: Int) {
        if !same { return ((input - kernel) / stride + 1, 0, 0) }
        let output = (input + stride - 1) / stride
        let total = max((output - 1) * stride + kernel - input, 0)
        return (output, total / 2, total - total / 2)
    }

    static func nodeName(_ input: String) -> String {
        var name = input.hasPrefix("^") ? String(input.dropFirst()) : input
        if let colon = name.lastIndex(of: ":"), name[name.index(after: colon)...].allSatisfy(\.isNumber) {
            name = String(name[..<colon])
        }
        return name
    }
}
