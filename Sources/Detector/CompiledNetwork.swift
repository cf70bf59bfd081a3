import CDNNL

/// A model compiled for oneDNN once per process: primitive descriptors, weights reordered into the layouts
/// the chosen kernels want, the strip plans and the activation memory plan. Read-only after init, so any
/// number of `InferenceEngine`s (one per worker thread) share it.
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
    let engine: dnnl_engine_t
    let kernels: [Kernel]
    let steps: [Step]
    let stripPlans: [StripPlan]
    /// Activation buffer of each tensor, or -1 for fused intermediates that only ever live in strip scratch.
    let bufferOfTensor: [Int]
    let bufferBytes: [Int]
    let tensorDescriptors: [dnnl_memory_desc_t]
    private var ownedWeights: [UnsafeMutableRawPointer] = []

    /// Kernels on oneDNN's slow reference implementation, as "layer: impl".
    var referenceKernels: [String] {
        kernels.filter { $0.implementation.contains("ref") }.map { "\(spec.convolutions[$0.layer].name): \($0.implementation)" }
    }

    init(spec: NetworkSpec, fuse: Bool = true) throws(ModelError) {
        // oneDNN plans each primitive's work split for the creating thread's OpenMP team size, and
        // every engine instance runs on one thread: plan for one.
        DNNL.pinCurrentThreadToOneOpenMPThread()
        var engine: dnnl_engine_t? = nil
        try DNNL.check(dnnl_engine_create(&engine, dnnl_cpu, 0), "CPU engine")
        self.engine = engine!
        self.spec = spec
        var stream: dnnl_stream_t? = nil
        try DNNL.check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "stream")
        defer { dnnl_stream_destroy(stream) }

        tensorDescriptors = try spec.tensors.map { shape throws(ModelError) in
            try DNNL.descriptor([1, shape.channels, shape.height, shape.width], dnnl_nhwc)
        }
        stripPlans = fuse ? StripPlan.plans(for: spec) : []
        let plan = Self.planBuffers(spec, stripPlans)
        bufferOfTensor = plan.bufferOfTensor
        bufferBytes = plan.bufferBytes

        var builder = KernelBuilder(spec: spec, engine: self.engine, stream: stream!)
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
        for buffer in ownedWeights { buffer.deallocate() }
        dnnl_engine_destroy(engine)
    }

    /// Creates primitives once per distinct (layer, band) and reorders each layer's weights once per layout.
    private struct KernelBuilder {
        let spec: NetworkSpec
        let engine: dnnl_engine_t
        let stream: dnnl_stream_t
        var kernels: [Kernel] = []
        var ownedBuffers: [UnsafeMutableRawPointer] = []
        private var byKey: [String: Int] = [:]
        private var reordered: [Int: [(descriptor: dnnl_memory_desc_t, buffer: UnsafeMutableRawPointer)]] = [:]
        private var biases: [Int: UnsafeMutableRawPointer] = [:]

        init(spec: NetworkSpec, engine: dnnl_engine_t, stream: dnnl_stream_t) {
            self.spec = spec
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
            var anyWeights = try DNNL.descriptor(userWeightsDims, dnnl_format_tag_any)
            var bias = try DNNL.descriptor([outShape.channels], dnnl_x)
            var src = try DNNL.descriptor([1, inShape.channels, inRows, inShape.width], dnnl_nhwc)
            var dst = try DNNL.descriptor([1, outShape.channels, outRows, outShape.width], dnnl_nhwc)
            var desc = dnnl_convolution_desc_t()
            let strides: [Int64] = [Int64(conv.strideHeight), Int64(conv.strideWidth)]
            let padL: [Int64] = [Int64(padTop), Int64(conv.padLeft)]
            let padR: [Int64] = [Int64(padBottom), Int64(conv.padRight)]
            try DNNL.check(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct,
                                                              &src, &anyWeights, &bias, &dst, strides, padL, padR),
                           "convolution \(conv.name)")
            var attr: dnnl_primitive_attr_t? = nil
            var postOps: dnnl_post_ops_t? = nil
            try DNNL.check(dnnl_primitive_attr_create(&attr), "attributes")
            try DNNL.check(dnnl_post_ops_create(&postOps), "post-ops")
            defer {
                dnnl_post_ops_destroy(postOps)
                dnnl_primitive_attr_destroy(attr)
            }
            for op in conv.postOps {
                switch op {
                case .relu6: try DNNL.check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_clip, 0, 6), "ReLU6 post-op")
                case .addResidual: try DNNL.check(dnnl_post_ops_append_sum(postOps, 1), "residual post-op")
                }
            }
            try DNNL.check(dnnl_primitive_attr_set_post_ops(attr, postOps), "post-op attributes")
            var pd: dnnl_primitive_desc_t? = nil
            try DNNL.check(dnnl_primitive_desc_create(&pd, &desc, attr, engine, nil), "primitive for \(conv.name)")
            let weightsMD = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)!.pointee
            let weights = try weightsBuffer(layer, layout: weightsMD, userDims: userWeightsDims)
            kernels.append(Kernel(layer: layer, primitiveDescriptor: pd!, source: src, destination: dst, weights: weights,
                                  weightsDescriptor: weightsMD, bias: biasBuffer(layer), biasDescriptor: bias,
                                  implementation: DNNL.implementationName(pd!)))
            byKey[key] = kernels.count - 1
            return kernels.count - 1
        }

        private mutating func biasBuffer(_ layer: Int) -> UnsafeMutableRawPointer {
            if let known = biases[layer] { return known }
            let values = spec.convolutions[layer].bias
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: values.count * 4, alignment: 64)
            values.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            ownedBuffers.append(buffer)
            biases[layer] = buffer
            return buffer
        }

        /// The layer's weights in `layout`, reordered from oneDNN's plain `oihw`/`goihw` once per layout.
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
            try DNNL.check(dnnl_reorder_primitive_desc_create(&reorderPD, &user, engine, &wanted, engine, nil), "weights reorder for \(conv.name)")
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
    private static func planBuffers(_ spec: NetworkSpec, _ plans: [StripPlan]) -> (bufferOfTensor: [Int], bufferBytes: [Int], copyResidual: [Int?]) {
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
            let need = spec.tensors[tensor].elements * 4
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
