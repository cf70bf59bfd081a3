import CDNNL

/// A model compiled for oneDNN once per process, in one precision: primitive descriptors, weights converted and
/// reordered into the layouts the chosen kernels want, the strip plans and the activation memory plan.
/// Read-only after init, so any number of `InferenceEngine`s (one per worker thread) share it.
// @unchecked: oneDNN handles and weight memory, never written after init, so sharing needs no lock.
final class CompiledNetwork: @unchecked Sendable {
    /// One oneDNN convolution primitive: a whole layer, or one band of rows of a layer.
    struct Kernel {
        let layer: Int
        let primitiveDescriptor: dnnl_primitive_desc_t
        let source: dnnl_memory_desc_t
        let destination: dnnl_memory_desc_t
        let weights: UnsafeMutableRawPointer
        let weightsDescriptor: dnnl_memory_desc_t
        let bias: UnsafeMutableRawPointer
        let biasDescriptor: dnnl_memory_desc_t
        let implementation: String
    }

    /// What the engine runs, in order.
    enum Step {
        /// A whole layer; copy the residual into the output first when it could not be added in place.
        case layer(kernel: Int, copyResidualFrom: Int?)
        /// A fused triple; per strip, the kernels of its three layers.
        case strips(plan: Int, kernels: [[Int]])
    }

    let spec: NetworkSpec
    let precision: Precision
    /// Element type of each tensor: f32 input and head outputs in every precision, the rest in `precision`
    /// (int8: u8 after ReLU6 and, offset by 128, for linear bottlenecks; s8 for the network input).
    let tensorTypes: [dnnl_data_type_t]
    /// How tensor 0 stores the network input: what the Preprocessor writes directly for `detect`.
    let inputEncoding: InputEncoding
    /// Converts an f32 network input into tensor 0's type (nil in f32, where the input is tensor 0 itself), for
    /// callers that hand over f32 (`bench`, parity tests).
    let inputConversion: dnnl_primitive_desc_t?
    let engine: dnnl_engine_t
    let kernels: [Kernel]
    let steps: [Step]
    let stripPlans: [StripPlan]
    /// Activation buffer of each tensor, or -1 for fused intermediates that only ever live in strip scratch.
    let bufferOfTensor: [Int]
    let bufferBytes: [Int]
    private var ownedWeights: [UnsafeMutableRawPointer] = []

    /// Kernels on oneDNN's slow reference implementation, as "layer: impl".
    var referenceKernels: [String] {
        kernels.filter { $0.implementation.contains("ref") }.map { "\(spec.convolutions[$0.layer].name): \($0.implementation)" }
    }

    /// `activationRanges` (int8 only): per tensor, the largest magnitude its 8-bit values must represent.
    init(spec: NetworkSpec, precision: Precision = .f32, activationRanges: [Float]? = nil, fuse: Bool = true) throws(ModelError) {
        // oneDNN plans each primitive's work split for the creating thread's OpenMP team size, and
        // every engine instance runs on one thread: plan for one.
        DNNL.pinCurrentThreadToOneOpenMPThread()
        var engine: dnnl_engine_t? = nil
        try DNNL.check(dnnl_engine_create(&engine, dnnl_cpu, 0), "CPU engine")
        self.engine = engine!
        self.spec = spec
        self.precision = precision
        var stream: dnnl_stream_t? = nil
        try DNNL.check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "stream")
        defer { dnnl_stream_destroy(stream) }

        let quantization = try Quantization(spec: spec, precision: precision, activationRanges: activationRanges)
        tensorTypes = quantization.types
        switch (tensorTypes[0], quantization.zeroPoints[0]) {
        case (dnnl_f32, _): inputEncoding = .f32
        case (dnnl_bf16, _): inputEncoding = .bf16
        case (dnnl_s8, 0): inputEncoding = .s8(scale: 1 / quantization.scales[0])
        default: throw .engine("no direct encoding of the network input as oneDNN type \(tensorTypes[0].rawValue)")
        }
        if precision == .f32 {
            inputConversion = nil
        } else {
            let shape = [1, spec.input.channels, spec.input.height, spec.input.width]
            var scale: Float? = nil
            if case .s8(let s8Scale) = inputEncoding { scale = s8Scale }
            inputConversion = try DNNL.reorder(from: DNNL.descriptor(shape, dnnl_nhwc), to: DNNL.descriptor(shape, dnnl_nhwc, tensorTypes[0]),
                                               scale: scale, engine: self.engine)
        }
        stripPlans = fuse ? StripPlan.plans(for: spec) : []
        let plan = Self.planBuffers(spec, stripPlans, elementBytes: tensorTypes.map(DNNL.elementBytes))
        bufferOfTensor = plan.bufferOfTensor
        bufferBytes = plan.bufferBytes

        var builder = KernelBuilder(spec: spec, quantization: quantization, engine: self.engine, stream: stream!)
        var steps: [Step] = []
        var i = 0
        while i < spec.convolutions.count {
            if let p = stripPlans.firstIndex(where: { $0.layers.expand == i }) {
                let fused = stripPlans[p]
                let layers = [fused.layers.expand, fused.layers.depthwise, fused.layers.project]
                let kernels = try fused.strips.map { bands throws(ModelError) in
                    try zip(layers, bands).map { (layer, band) throws(ModelError) in try builder.kernel(layer, band: band) }
                }
                steps.append(.strips(plan: p, kernels: kernels))
                i += 3
            } else {
                steps.append(.layer(kernel: try builder.kernel(i, band: nil), copyResidualFrom: plan.copyResidual[i]))
                i += 1
            }
        }
        kernels = builder.kernels
        ownedWeights = builder.ownedBuffers
        self.steps = steps
    }

    deinit {
        for kernel in kernels { dnnl_primitive_desc_destroy(kernel.primitiveDescriptor) }
        if let inputConversion { dnnl_primitive_desc_destroy(inputConversion) }
        for buffer in ownedWeights { buffer.deallocate() }
        dnnl_engine_destroy(engine)
    }

    /// Element types and, for int8, the scale of each tensor (real value = scale x (stored value - zero point)) and
    /// of each layer's weights (per output channel, symmetric: the channel's largest |weight| maps to 127).
    struct Quantization {
        let types: [dnnl_data_type_t]
        let scales: [Float]
        /// 128 for a signed tensor stored as u8 (a linear bottleneck read only by 1x1 convolutions and residual adds),
        /// else 0. VNNI multiplies u8 by s8: an s8 source costs oneDNN a compensation pass per load (the expansions
        /// took about 10 % longer on s8 than on u8), while a 1x1 convolution, which never pads, folds the offset into its bias.
        let zeroPoints: [Int32]
        let weightScales: [[Float]]

        init(spec: NetworkSpec, precision: Precision, activationRanges: [Float]?) throws(ModelError) {
            var outputs = Set<Int>()
            for head in spec.heads { outputs.formUnion([head.boxEncodings, head.classLogits]) }
            let relu6 = Set(spec.convolutions.filter { $0.postOps.contains(.relu6) }.map(\.output))
            var readByPaddingConvolution: Set<Int> = [0]
            for conv in spec.convolutions where conv.kernelHeight > 1 || conv.kernelWidth > 1
                || conv.padTop + conv.padBottom + conv.padLeft + conv.padRight > 0 {
                readByPaddingConvolution.insert(conv.input)
            }
            let offset = spec.tensors.indices.map { t in
                precision == .int8 && !outputs.contains(t) && !relu6.contains(t) && !readByPaddingConvolution.contains(t)
            }
            zeroPoints = offset.map { $0 ? 128 : 0 }
            types = spec.tensors.indices.map { t in
                switch precision {
                case .f32: dnnl_f32
                case .bf16: outputs.contains(t) ? dnnl_f32 : dnnl_bf16
                case .int8: outputs.contains(t) ? dnnl_f32 : relu6.contains(t) || offset[t] ? dnnl_u8 : dnnl_s8
                }
            }
            guard precision == .int8 else {
                scales = Array(repeating: 1, count: spec.tensors.count)
                weightScales = []
                return
            }
            guard let ranges = activationRanges, ranges.count == spec.tensors.count else {
                throw .engine("int8 needs activation ranges for all \(spec.tensors.count) tensors")
            }
            scales = ranges.enumerated().map { t, range in
                if outputs.contains(t) { return 1 }
                let clipped = relu6.contains(t) ? min(range, 6) : range
                return max(clipped, 1e-6) / (relu6.contains(t) ? 255 : 127)
            }
            weightScales = spec.convolutions.map { conv in
                let perChannel = conv.weights.count / conv.bias.count
                return (0..<conv.bias.count).map { c in
                    let largest = conv.weights[(c * perChannel)..<((c + 1) * perChannel)].reduce(0) { max($0, abs($1)) }
                    return largest > 0 ? largest / 127 : 1
                }
            }
        }
    }

    /// Creates primitives once per distinct (layer, band) and reorders each layer's weights once per layout.
    private struct KernelBuilder {
        let spec: NetworkSpec
        let quantization: Quantization
        let engine: dnnl_engine_t
        let stream: dnnl_stream_t
        var kernels: [Kernel] = []
        var ownedBuffers: [UnsafeMutableRawPointer] = []
        private var byKey: [String: Int] = [:]
        private var reordered: [Int: [(descriptor: dnnl_memory_desc_t, buffer: UnsafeMutableRawPointer)]] = [:]
        private var biases: [Int: UnsafeMutableRawPointer] = [:]

        init(spec: NetworkSpec, quantization: Quantization, engine: dnnl_engine_t, stream: dnnl_stream_t) {
            self.spec = spec
            self.quantization = quantization
            self.engine = engine
            self.stream = stream
        }

        mutating func kernel(_ layer: Int, band: StripPlan.Band?) throws(ModelError) -> Int {
            let conv = spec.convolutions[layer]
            let inShape = spec.tensors[conv.input], outShape = spec.tensors[conv.output]
            let inRows = band?.inputRows ?? inShape.height, outRows = band?.outputRows ?? outShape.height
            let padTop = band?.padTop ?? conv.padTop, padBottom = band?.padBottom ?? conv.padBottom
            let key = "\(layer):\(inRows):\(outRows):\(padTop):\(padBottom)"
            if let known = byKey[key] { return known }

            let userWeightsDims = conv.depthwise
                ? [outShape.channels, 1, 1, conv.kernelHeight, conv.kernelWidth]
                : [outShape.channels, inShape.channels, conv.kernelHeight, conv.kernelWidth]
            let (inType, outType) = (quantization.types[conv.input], quantization.types[conv.output])
            let weightsType = inType == dnnl_f32 ? dnnl_f32 : inType == dnnl_bf16 ? dnnl_bf16 : dnnl_s8
            var anyWeights = try DNNL.descriptor(userWeightsDims, dnnl_format_tag_any, weightsType)
            var bias = try DNNL.descriptor([outShape.channels], dnnl_x)
            var src = try DNNL.descriptor([1, inShape.channels, inRows, inShape.width], dnnl_nhwc, inType)
            var dst = try DNNL.descriptor([1, outShape.channels, outRows, outShape.width], dnnl_nhwc, outType)
            var attr: dnnl_primitive_attr_t? = nil
            var postOps: dnnl_post_ops_t? = nil
            try DNNL.check(dnnl_primitive_attr_create(&attr), "attributes")
            try DNNL.check(dnnl_post_ops_create(&postOps), "post-ops")
            defer {
                dnnl_post_ops_destroy(postOps)
                dnnl_primitive_attr_destroy(attr)
            }
            let outScale = quantization.scales[conv.output]
            if weightsType == dnnl_s8 {
                let inScale = quantization.scales[conv.input]
                try DNNL.setOutputScales(attr, quantization.weightScales[layer].map { inScale * $0 / outScale })
            }
            for op in conv.postOps {
                switch op {
                case .relu6: try DNNL.check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_clip, 0, 6 / outScale), "ReLU6 post-op")
                case .addResidual(let r): try DNNL.appendSum(postOps, scale: quantization.scales[r] / outScale, type: quantization.types[r])
                }
            }
            try DNNL.check(dnnl_primitive_attr_set_post_ops(attr, postOps), "post-op attributes")
            let strides: [Int64] = [Int64(conv.strideHeight), Int64(conv.strideWidth)]
            let pd = try DNNL.convolution(source: &src, weights: &anyWeights, bias: &bias, destination: &dst, strides: strides,
                                          padBefore: [Int64(padTop), Int64(conv.padLeft)], padAfter: [Int64(padBottom), Int64(conv.padRight)],
                                          attributes: attr, engine: engine, name: conv.name,
                                          // oneDNN 2.6 picks brdgmm_dw first; its jit_int8 / jit_dw kernels ran every depthwise
                                          // layer of this network about 20 % (int8) and 10 % (bf16) faster. f32 is left as it was.
                                          avoiding: conv.depthwise && inType != dnnl_f32 ? "brdgmm" : nil)
            let weightsMD = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)!.pointee
            let weights = try weightsBuffer(layer, layout: weightsMD, userDims: userWeightsDims)
            kernels.append(Kernel(layer: layer, primitiveDescriptor: pd, source: src, destination: dst, weights: weights,
                                  weightsDescriptor: weightsMD, bias: try biasBuffer(layer, weights: weights, layout: weightsMD), biasDescriptor: bias,
                                  implementation: DNNL.implementationName(pd)))
            byKey[key] = kernels.count - 1
            return kernels.count - 1
        }

        /// The layer's bias as its kernel wants it; int8 needs the layer's quantized `weights` (in `layout`) to fold
        /// an input offset in.
        private mutating func biasBuffer(_ layer: Int, weights: UnsafeMutableRawPointer, layout: dnnl_memory_desc_t) throws(ModelError) -> UnsafeMutableRawPointer {
            if let known = biases[layer] { return known }
            let conv = spec.convolutions[layer]
            var values = conv.bias
            if quantization.types[conv.input] == dnnl_s8 || quantization.types[conv.input] == dnnl_u8 {
                // oneDNN 2.x adds an int8 convolution's bias to the s32 accumulator, before the output scales.
                let q = quantization
                let inScale = q.scales[conv.input], outScale = q.scales[conv.output]
                values = zip(values, q.weightScales[layer]).map { $0 / (inScale * $1) }
                // Offsets, folded in accumulator units: the input's (each stored input is 128 too large), then the
                // output's (+128), less the offset the residual add carries in (its scale x its zero point).
                if q.zeroPoints[conv.input] != 0 {
                    let sums = try quantizedWeightSums(layer, weights: weights, layout: layout)
                    values = zip(values, sums).map { $0 - Float(q.zeroPoints[conv.input]) * Float($1) }
                }
                let residualOffset = conv.residual.map { Float(q.zeroPoints[$0]) * q.scales[$0] / outScale } ?? 0
                let outputOffset = Float(q.zeroPoints[conv.output]) - residualOffset
                if outputOffset != 0 {
                    values = zip(values, q.weightScales[layer]).map { $0 + outputOffset / (inScale * $1 / outScale) }
                }
            }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: values.count * 4, alignment: 64)
            values.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            ownedBuffers.append(buffer)
            biases[layer] = buffer
            return buffer
        }

        /// Per output channel, the sum of a 1x1 layer's s8 weights exactly as its kernel holds them (read back from
        /// `layout` into plain order): what an input offset of 1 adds to each accumulator.
        private func quantizedWeightSums(_ layer: Int, weights: UnsafeMutableRawPointer, layout: dnnl_memory_desc_t) throws(ModelError) -> [Int32] {
            let conv = spec.convolutions[layer]
            let outputs = conv.bias.count, perChannel = conv.weights.count / outputs
            let plain = UnsafeMutableRawPointer.allocate(byteCount: conv.weights.count, alignment: 64)
            defer { plain.deallocate() }
            let dims = [outputs, perChannel, conv.kernelHeight, conv.kernelWidth]
            let reorder = try DNNL.reorder(from: layout, to: try DNNL.descriptor(dims, dnnl_oihw, dnnl_s8), scale: nil, engine: engine)
            defer { dnnl_primitive_desc_destroy(reorder) }
            let from = try DNNL.memory(layout, engine, weights), to = try DNNL.memory(try DNNL.descriptor(dims, dnnl_oihw, dnnl_s8), engine, plain)
            defer {
                dnnl_memory_destroy(from)
                dnnl_memory_destroy(to)
            }
            var primitive: dnnl_primitive_t? = nil
            try DNNL.check(dnnl_primitive_create(&primitive, reorder), "reading back the weights of \(conv.name)")
            defer { dnnl_primitive_destroy(primitive) }
            var args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)]
            try DNNL.check(dnnl_primitive_execute(primitive, stream, 2, &args), "reading back the weights of \(conv.name)")
            try DNNL.check(dnnl_stream_wait(stream), "reading back the weights of \(conv.name)")
            let values = plain.assumingMemoryBound(to: Int8.self)
            return (0..<outputs).map { c in (0..<perChannel).reduce(Int32(0)) { $0 + Int32(values[c * perChannel + $1]) } }
        }

        /// The layer's weights in `layout`, reordered (and converted; for int8 divided by the channel's scale and
        /// rounded) from oneDNN's plain f32 `oihw`/`goihw` once per layout.
        private mutating func weightsBuffer(_ layer: Int, layout: dnnl_memory_desc_t, userDims: [Int]) throws(ModelError) -> UnsafeMutableRawPointer {
            var wanted = layout
            for known in reordered[layer, default: []] {
                var candidate = known.descriptor
                if dnnl_memory_desc_equal(&candidate, &wanted) != 0 { return known.buffer }
            }
            let conv = spec.convolutions[layer]
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: DNNL.size(layout), alignment: 64)
            ownedBuffers.append(buffer)
            let source = UnsafeMutableRawPointer.allocate(byteCount: conv.weights.count * 4, alignment: 64)
            defer { source.deallocate() }
            conv.weights.withUnsafeBytes { source.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            var user = try DNNL.descriptor(userDims, conv.depthwise ? dnnl_goihw : dnnl_oihw)
            let from = try DNNL.memory(user, engine, source)
            let to = try DNNL.memory(layout, engine, buffer)
            defer {
                dnnl_memory_destroy(from)
                dnnl_memory_destroy(to)
            }
            var reorderPD: dnnl_primitive_desc_t? = nil
            var reorder: dnnl_primitive_t? = nil
            var attr: dnnl_primitive_attr_t? = nil
            try DNNL.check(dnnl_primitive_attr_create(&attr), "attributes")
            defer { dnnl_primitive_attr_destroy(attr) }
            if layout.data_type == dnnl_s8 {
                let scales = quantization.weightScales[layer].map { 1 / $0 }
                try DNNL.check(dnnl_primitive_attr_set_output_scales(attr, Int64(scales.count), 1, scales), "weight scales for \(conv.name)")
            }
            try DNNL.check(dnnl_reorder_primitive_desc_create(&reorderPD, &user, engine, &wanted, engine, attr), "weights reorder for \(conv.name)")
            defer { dnnl_primitive_desc_destroy(reorderPD) }
            try DNNL.check(dnnl_primitive_create(&reorder, reorderPD), "weights reorder for \(conv.name)")
            defer { dnnl_primitive_destroy(reorder) }
            var args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)]
            try DNNL.check(dnnl_primitive_execute(reorder, stream, 2, &args), "weights reorder for \(conv.name)")
            try DNNL.check(dnnl_stream_wait(stream), "weights reorder for \(conv.name)")
            reordered[layer, default: []].append((layout, buffer))
            return buffer
        }
    }

    /// Assigns tensors to reusable buffers by lifetime. A residual add writes in place into its residual's
    /// buffer when nothing reads the residual afterwards (always, in MobileNetV2) — except in a fused triple,
    /// whose later strips still read the rows earlier strips would overwrite. Fused intermediates get no buffer.
    private static func planBuffers(_ spec: NetworkSpec, _ plans: [StripPlan], elementBytes: [Int]) -> (bufferOfTensor: [Int], bufferBytes: [Int], copyResidual: [Int?]) {
        let keepForever = Int.max
        // A fused triple runs as one step at its projection's index.
        var stepOf = Array(spec.convolutions.indices)
        var intermediate = Set<Int>()
        for plan in plans {
            stepOf[plan.layers.expand] = plan.layers.project
            stepOf[plan.layers.depthwise] = plan.layers.project
            intermediate.insert(spec.convolutions[plan.layers.expand].output)
            intermediate.insert(spec.convolutions[plan.layers.depthwise].output)
        }
        let fusedProjections = Set(plans.map(\.layers.project))
        var lastUse = [Int](repeating: -1, count: spec.tensors.count)
        for (i, conv) in spec.convolutions.enumerated() {
            lastUse[conv.input] = max(lastUse[conv.input], stepOf[i])
            if let r = conv.residual { lastUse[r] = max(lastUse[r], stepOf[i]) }
        }
        for head in spec.heads {
            lastUse[head.boxEncodings] = keepForever
            lastUse[head.classLogits] = keepForever
        }
        var bufferOf = [Int](repeating: -1, count: spec.tensors.count)
        var bytes: [Int] = [], free: [Int] = []
        var copyResidual = [Int?](repeating: nil, count: spec.convolutions.count)
        func allocate(_ tensor: Int) {
            let need = spec.tensors[tensor].elements * elementBytes[tensor]
            let pick = free.firstIndex { bytes[$0] >= need } ?? free.indices.first
            let buffer: Int
            if let pick {
                buffer = free.remove(at: pick)
                bytes[buffer] = max(bytes[buffer], need)
            } else {
                bytes.append(need)
                buffer = bytes.count - 1
            }
            bufferOf[tensor] = buffer
        }
        allocate(0)
        for (i, conv) in spec.convolutions.enumerated() where !intermediate.contains(conv.output) {
            let residual = conv.residual
            if let residual, lastUse[residual] == i, residual != conv.input, !fusedProjections.contains(i) {
                bufferOf[conv.output] = bufferOf[residual]
            } else {
                allocate(conv.output)
                // A fused projection copies its residual band by band (InferenceEngine) instead.
                if !fusedProjections.contains(i) { copyResidual[i] = residual }
            }
            let inputs = spec.convolutions.indices.filter { stepOf[$0] == i }.map { spec.convolutions[$0].input } + [residual].compactMap { $0 }
            for t in Set(inputs) where !intermediate.contains(t) && lastUse[t] == i && bufferOf[t] != bufferOf[conv.output] {
                free.append(bufferOf[t])
            }
        }
        return (bufferOf, bytes, copyResidual)
    }
}
