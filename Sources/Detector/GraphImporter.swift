import Foundation

/// Maps a TF Object Detection API frozen graph of an SSD or SSDLite detector on a MobileNetV1 or
/// MobileNetV2 feature extractor onto a `NetworkSpec`. The preprocessor is found by walking forward from
/// the image input to the first convolution, whatever order the exporter put its resize and normalisation
/// in; the network is then mapped walking back from the box-predictor outputs (`concat`, `concat_1`), so the
/// graph's post-processing is never interpreted. A graph outside that family is refused naming the first
/// node, walking from the input, that does not belong to it.
struct GraphImporter {
    static let boxOutputNode = "concat"
    static let classOutputNode = "concat_1"
    /// What the importer runs, for messages about graphs it refuses.
    static let supportedFamily = "supported are SSD and SSDLite detectors on MobileNetV1 and MobileNetV2 "
        + "(TF Object Detection API frozen graphs, any depth multiplier, input size and class count)"

    /// Ops the exporters put between the image and the network: casts, the batch map (a while loop over
    /// TensorArrays, or an unstack/stack for a static batch), the bilinear resize and the normalisation.
    static let preprocessorOps: Set<String> = [
        "Cast", "ToFloat", "Identity", "Mul", "Sub", "Add", "AddV2", "ResizeBilinear", "ExpandDims", "Squeeze",
        "Unpack", "Pack", "Enter", "Merge", "Switch", "Exit", "NextIteration",
        "TensorArrayV3", "TensorArrayScatterV3", "TensorArrayReadV3", "TensorArrayWriteV3", "TensorArrayGatherV3",
    ]
    /// Ops that read only a tensor's shape, not its values: a walk along values does not follow them.
    static let shapeOps: Set<String> = ["Shape", "ShapeN", "Size", "Rank", "TensorArraySizeV3"]
    /// Ops of the feature extractor and box predictor layers.
    static let networkOps: Set<String> = [
        "Identity", "Conv2D", "DepthwiseConv2dNative", "BiasAdd", "FusedBatchNorm", "FusedBatchNormV3", "Relu6", "Add", "AddV2",
    ]

    /// What a detection network may ask for, so a hostile graph is refused before anything is allocated.
    enum Limits {
        /// Input height and width (the reference models use 300).
        static let inputSide = 1...2048
        /// Elements of all activation tensors together: 2^28, 1 GiB of f32.
        static let activationElements = 1 << 28
        /// Multiply-accumulates per frame (SSDLite-MobileNetV2 at 300x300 needs 0.8 G).
        static let multiplyAccumulates = 1 << 40
        static let stride = 1...64
    }

    private let graph: GraphDef
    /// The node whose output is the network input (the preprocessor's last).
    private let inputNode: String
    /// Node name -> names of the nodes reading its output.
    private var consumers: [String: [String]] = [:]
    private var spec: NetworkSpec
    /// Graph node name -> tensor index, for nodes already mapped.
    private var mapped: [String: Int] = [:]
    /// Tensor index -> index of the convolution that produces it.
    private var producer: [Int: Int] = [:]
    private var activationElements = 0
    private var multiplyAccumulates = 0

    static func importNetwork(_ graph: GraphDef) throws(ModelError) -> NetworkSpec {
        var importer = try GraphImporter(graph)
        return try importer.run()
    }

    private init(_ graph: GraphDef) throws(ModelError) {
        self.graph = graph
        for node in graph.nodes {
            for input in node.inputs where !input.hasPrefix("^") { consumers[Self.nodeName(input), default: []].append(node.name) }
        }
        let preprocessor = try Self.preprocessor(of: graph, consumers: consumers)
        let (height, width) = preprocessor.size
        guard Limits.inputSide.contains(height), Limits.inputSide.contains(width) else {
            throw .notSSD("input size \(height)x\(width) (\(preprocessor.sizeSource)) is outside \(Limits.inputSide.lowerBound)...\(Limits.inputSide.upperBound) per side")
        }
        inputNode = preprocessor.output
        spec = NetworkSpec(tensors: [.init(height: height, width: width, channels: 3)], convolutions: [], heads: [],
                           classesWithBackground: 0, inputScale: preprocessor.scale, inputOffset: preprocessor.offset)
    }

    private mutating func run() throws(ModelError) -> NetworkSpec {
        try checkNetworkOps()
        let boxParts = try headInputs(Self.boxOutputNode)
        let classParts = try headInputs(Self.classOutputNode)
        guard boxParts.count == classParts.count else {
            throw .notSSD("\(boxParts.count) box-encoding heads but \(classParts.count) class heads")
        }
        for (boxNode, classNode) in zip(boxParts, classParts) {
            let box = try tensor(for: boxNode)
            let logits = try tensor(for: classNode)
            guard producer[box] != nil, producer[logits] != nil else {
                throw .notSSD("head '\(producer[box] == nil ? boxNode : classNode)' is not the output of a convolution")
            }
            let boxShape = spec.tensors[box], classShape = spec.tensors[logits]
            guard boxShape.channels % 4 == 0, boxShape.channels > 0, boxShape.height == classShape.height, boxShape.width == classShape.width else {
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

    /// What the graph does to an image before its first convolution.
    struct Preprocessor {
        /// The node whose output is the network input.
        var output: String
        var size: (height: Int, width: Int)
        /// Where `size` was read, for messages.
        var sizeSource: String
        /// The normalisation `x * scale + offset`.
        var scale: Float = 1, offset: Float = 0
    }

    /// Walks forward along values from the image input (the `image_tensor` Placeholder, or the only one)
    /// to the first convolution, reading the resize size and the normalisation on the way. Resizing is
    /// linear, so it commutes with the normalisation: either order gives the same network input.
    static func preprocessor(of graph: GraphDef, consumers: [String: [String]]) throws(ModelError) -> Preprocessor {
        let placeholders = graph.nodes.filter { $0.op == "Placeholder" }
        guard let image = graph.byName["image_tensor"].flatMap({ $0.op == "Placeholder" ? $0 : nil })
                ?? (placeholders.count == 1 ? placeholders[0] : nil) else {
            throw .notSSD(placeholders.isEmpty ? "no image input (a Placeholder)"
                          : "no image input named 'image_tensor' among \(placeholders.count) Placeholders")
        }
        var queue = [image.name], next = 0
        var seen: Set<String> = [image.name]
        var output: String?
        /// Identity node -> the node whose value it passes on.
        var passedOn: [String: String] = [:]
        var resizes: [GraphDef.Node] = [], normalisation: [GraphDef.Node] = []
        while next < queue.count {
            let name = queue[next]
            next += 1
            for reader in consumers[name, default: []] {
                guard let node = graph.byName[reader], !shapeOps.contains(node.op) else { continue }
                if node.op == "Conv2D" || node.op == "DepthwiseConv2dNative" {
                    // The network starts where a convolution reads the preprocessed image as its input (a filter
                    // computed from the image is refused when the convolution is mapped).
                    guard node.inputs.first.map(nodeName) == name else { continue }
                    let source = passedOn[name] ?? name
                    if output == nil { output = source }
                    guard output == source else {
                        throw .unsupported(node: node.name, op: node.op, reason: "reads '\(source)', while the network starts at '\(output ?? "")'; \(supportedFamily)")
                    }
                    continue
                }
                guard seen.insert(reader).inserted else { continue }
                guard preprocessorOps.contains(node.op) else {
                    throw .unsupported(node: node.name, op: node.op, reason: "is not part of an SSD preprocessor (resize and normalise); \(supportedFamily)")
                }
                switch node.op {
                case "ResizeBilinear": resizes.append(node)
                case "Mul", "Sub", "Add", "AddV2": normalisation.append(node)
                case "Identity": passedOn[reader] = passedOn[name] ?? name
                default: break
                }
                queue.append(reader)
            }
        }
        guard let output else { throw .notSSD("no convolution reads the image input '\(image.name)'") }
        var preprocessor: Preprocessor
        switch resizes.count {
        case 0:
            guard case .shape(let shape)? = image.attrs["shape"], shape.count == 4, shape[1] > 0, shape[2] > 0 else {
                throw .notSSD("no resize node and no fixed height and width in the shape of '\(image.name)', so the input size is unknown")
            }
            preprocessor = Preprocessor(output: output, size: (shape[1], shape[2]), sizeSource: "the shape of '\(image.name)'")
        case 1:
            let resize = resizes[0]
            for flag in ["align_corners", "half_pixel_centers"] {
                if case .bool(true)? = resize.attrs[flag] {
                    throw .unsupported(node: resize.name, op: resize.op, reason: "resizes with \(flag), which the detector does not reproduce")
                }
            }
            guard resize.inputs.count == 2, let size = constant(resize.inputs[1], in: graph), size.ints.count == 2 else {
                throw .unsupported(node: resize.name, op: resize.op, reason: "has no constant output size")
            }
            preprocessor = Preprocessor(output: output, size: (size.ints[0], size.ints[1]), sizeSource: "'\(nodeName(resize.inputs[1]))'")
        default:
            throw .unsupported(node: resizes[1].name, op: resizes[1].op, reason: "resizes the image a second time (after '\(resizes[0].name)')")
        }
        // The normalisation, in the order the values flow: x * scale, then +/- a constant.
        for node in normalisation {
            guard node.inputs.count == 2 else { throw .unsupported(node: node.name, op: node.op, reason: "has \(node.inputs.count) inputs, needs 2") }
            let constants = node.inputs.map { constant($0, in: graph).flatMap { $0.floats.count == 1 ? $0.floats[0] : nil } }
            guard let c = constants[1] ?? constants[0], (constants[0] == nil) != (constants[1] == nil) else {
                throw .unsupported(node: node.name, op: node.op, reason: "is not the preprocessor's x * scale + offset with constant scalars")
            }
            switch node.op {
            case "Mul" where preprocessor.scale == 1 && preprocessor.offset == 0: preprocessor.scale = c
            case "Sub" where constants[1] != nil && preprocessor.offset == 0: preprocessor.offset = -c
            case "Add" where preprocessor.offset == 0, "AddV2" where preprocessor.offset == 0: preprocessor.offset = c
            default:
                throw .unsupported(node: node.name, op: node.op, reason: "is not the preprocessor's x * scale + offset with constant scalars")
            }
        }
        return preprocessor
    }

    /// Walks forward along values from the network input to the box predictors' `Reshape`s, refusing the first
    /// node whose op is not a layer of the supported networks (before mapping anything, so the message names the
    /// earliest node that does not fit rather than one the backward mapping happens to reach first).
    private func checkNetworkOps() throws(ModelError) {
        var queue = [inputNode], next = 0
        var seen: Set<String> = [inputNode]
        while next < queue.count {
            let name = queue[next]
            next += 1
            for reader in consumers[name, default: []] {
                guard let node = graph.byName[reader], !Self.shapeOps.contains(node.op), node.op != "Reshape",
                      seen.insert(reader).inserted else { continue }
                let residualAdd = (node.op != "Add" && node.op != "AddV2") || node.inputs.allSatisfy { constant($0) == nil }
                guard Self.networkOps.contains(node.op), residualAdd else {
                    throw .unsupported(node: node.name, op: node.op, reason: "is not a layer of an SSD or SSDLite MobileNetV1/V2 network; \(Self.supportedFamily)")
                }
                queue.append(reader)
            }
        }
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

    /// The tensor a graph node's output maps to, mapping its inputs first. Depth-first with an explicit stack,
    /// so a long chain of nodes cannot overflow the call stack, and a node that (indirectly) feeds itself is refused.
    private mutating func tensor(for input: String) throws(ModelError) -> Int {
        var path = [Self.nodeName(input)]
        var onPath: Set<String> = [path[0]]
        while let name = path.last {
            if name == inputNode || mapped[name] != nil {
                path.removeLast()
                onPath.remove(name)
                continue
            }
            guard let node = graph.byName[name] else { throw .malformed("node '\(name)' is referenced but missing") }
            let pending = try Self.tensorInputs(of: node).map(Self.nodeName).first { $0 != inputNode && mapped[$0] == nil }
            if let pending {
                guard onPath.insert(pending).inserted else {
                    throw .malformed("node '\(pending)' depends on its own output (through '\(name)')")
                }
                path.append(pending)
                continue
            }
            mapped[name] = try map(node)
        }
        return try resolved(input)
    }

    /// The inputs of `node` that must be mapped to tensors before it, checking it has as many inputs as its op needs.
    private static func tensorInputs(of node: GraphDef.Node) throws(ModelError) -> [String] {
        let (needed, mappedInputs): (Int, Int)
        switch node.op {
        case "Identity", "Relu6": (needed, mappedInputs) = (1, 1)
        case "Conv2D", "DepthwiseConv2dNative", "BiasAdd": (needed, mappedInputs) = (2, 1)
        case "FusedBatchNorm", "FusedBatchNormV3": (needed, mappedInputs) = (5, 1)
        case "Add", "AddV2": (needed, mappedInputs) = (2, 2)
        default: throw .unsupported(node: node.name, op: node.op, reason: "is not a layer of an SSD or SSDLite MobileNetV1/V2 network; \(supportedFamily)")
        }
        guard node.inputs.count >= needed else {
            throw .unsupported(node: node.name, op: node.op, reason: "has \(node.inputs.count) inputs, needs \(needed)")
        }
        return Array(node.inputs.prefix(mappedInputs))
    }

    /// The tensor of an input already mapped by `tensor(for:)`.
    private func resolved(_ input: String) throws(ModelError) -> Int {
        let name = Self.nodeName(input)
        if name == inputNode { return 0 }
        guard let tensor = mapped[name] else { throw .malformed("node '\(name)' was not mapped before its readers") }
        return tensor
    }

    /// Maps one node whose tensor inputs are all mapped.
    private mutating func map(_ node: GraphDef.Node) throws(ModelError) -> Int {
        switch node.op {
        case "Identity":
            return try resolved(node.inputs[0])
        case "Conv2D", "DepthwiseConv2dNative":
            return try addConvolution(node)
        case "FusedBatchNorm", "FusedBatchNormV3":
            return try foldBatchNorm(node)
        case "BiasAdd":
            let x = try resolved(node.inputs[0])
            let conv = try fusable(x, into: node)
            guard let bias = constant(node.inputs[1])?.floats, bias.count == spec.convolutions[conv].bias.count else {
                throw .unsupported(node: node.name, op: node.op, reason: "has no constant bias of the right size")
            }
            for i in bias.indices { spec.convolutions[conv].bias[i] += bias[i] }
            return x
        case "Relu6":
            let x = try resolved(node.inputs[0])
            let conv = try fusable(x, into: node)
            spec.convolutions[conv].postOps.append(.relu6)
            return x
        case "Add", "AddV2":
            return try addResidual(node)
        default:
            throw .unsupported(node: node.name, op: node.op, reason: "is not a layer of an SSD or SSDLite MobileNetV1/V2 network; \(Self.supportedFamily)")
        }
    }

    /// The convolution producing `tensor`, if `node` may fuse into it: nothing else reads the unfused value.
    private func fusable(_ tensor: Int, into node: GraphDef.Node) throws(ModelError) -> Int {
        guard let conv = producer[tensor], consumerCount(node.inputs[0]) == 1 else {
            throw .unsupported(node: node.name, op: node.op, reason: "does not follow a convolution it can be fused into")
        }
        return conv
    }

    /// Consumers of a node's output, looking through `Identity` nodes (each counted once, so cycles end).
    private func consumerCount(_ input: String) -> Int {
        var count = 0
        var pending = [Self.nodeName(input)]
        var seen = Set(pending)
        while let name = pending.popLast() {
            for reader in consumers[name, default: []] {
                if graph.byName[reader]?.op == "Identity" {
                    if seen.insert(reader).inserted { pending.append(reader) }
                } else {
                    count += 1
                }
            }
        }
        return count
    }

    private mutating func addConvolution(_ node: GraphDef.Node) throws(ModelError) -> Int {
        let depthwise = node.op == "DepthwiseConv2dNative"
        let x = try resolved(node.inputs[0])
        let inShape = spec.tensors[x]
        guard let filter = constant(node.inputs[1]), filter.dtype == GraphDef.Tensor.DType.float.rawValue, filter.shape.count == 4 else {
            throw .unsupported(node: node.name, op: node.op, reason: "has no constant f32 filter")
        }
        guard filter.shape.allSatisfy({ $0 >= 1 }) else {
            throw .unsupported(node: node.name, op: node.op, reason: "has an empty filter \(filter.shape)")
        }
        guard filter.floats.count == filter.count else {
            throw .unsupported(node: node.name, op: node.op, reason: "filter \(filter.shape) holds \(filter.floats.count) values, not \(filter.count)")
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
        guard strides[0] == 1, strides[3] == 1, Limits.stride.contains(strides[1]), Limits.stride.contains(strides[2]) else {
            throw .unsupported(node: node.name, op: node.op, reason: "has strides \(strides), not [1, h, w, 1] with h and w in \(Limits.stride)")
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
        guard outH >= 1, outW >= 1 else {
            throw .unsupported(node: node.name, op: node.op, reason: "has a \(kh)x\(kw) kernel larger than its \(inShape.height)x\(inShape.width) input")
        }
        let outShape = NetworkSpec.Shape(height: outH, width: outW, channels: outChannels)
        try reserve(outShape, multiplyAccumulates: kh * kw * (depthwise ? 1 : fi), for: node)
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
        spec.tensors.append(outShape)
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
        let x = try resolved(node.inputs[0])
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
        let a = try resolved(node.inputs[0])
        let b = try resolved(node.inputs[1])
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

    /// The value of a `Const`, looking through `Identity` nodes; nil for anything else (or an Identity cycle).
    private func constant(_ input: String) -> GraphDef.Tensor? { Self.constant(input, in: graph) }

    static func constant(_ input: String, in graph: GraphDef) -> GraphDef.Tensor? {
        var name = nodeName(input)
        var seen: Set<String> = []
        while seen.insert(name).inserted, let node = graph.byName[name] {
            if node.op == "Const", case .tensor(let t)? = node.attrs["value"] { return t }
            guard node.op == "Identity", let next = node.inputs.first else { return nil }
            name = nodeName(next)
        }
        return nil
    }

    /// Counts a new activation tensor and its convolution's work against `Limits`.
    private mutating func reserve(_ shape: NetworkSpec.Shape, multiplyAccumulates perOutput: Int, for node: GraphDef.Node) throws(ModelError) {
        let (elements, overflow) = shape.height.multipliedReportingOverflow(by: shape.width)
        let (all, overflow2) = elements.multipliedReportingOverflow(by: shape.channels)
        guard !overflow, !overflow2, all <= GraphDef.Limits.tensorElements else {
            throw .unsupported(node: node.name, op: node.op, reason: "outputs \(shape.height)x\(shape.width)x\(shape.channels), more than \(GraphDef.Limits.tensorElements) elements")
        }
        activationElements += all
        guard activationElements <= Limits.activationElements else {
            throw .notSSD("activations need more than \(Limits.activationElements) elements (at node '\(node.name)')")
        }
        let (work, overflow3) = all.multipliedReportingOverflow(by: perOutput)
        multiplyAccumulates += overflow3 ? Limits.multiplyAccumulates + 1 : work
        guard multiplyAccumulates <= Limits.multiplyAccumulates else {
            throw .notSSD("the network needs more than \(Limits.multiplyAccumulates) multiply-accumulates per frame (at node '\(node.name)')")
        }
    }

    /// TensorFlow's output size and padding for one spatial dimension.
    static func padding(input: Int, kernel: Int, stride: Int, same: Bool) -> (output: Int, before: Int, after: Int) {
        if !same { return (input < kernel ? 0 : (input - kernel) / stride + 1, 0, 0) }
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
