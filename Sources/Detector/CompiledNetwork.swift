import CDNNL

/// A model compiled for oneDNN once per process: primitive descriptors, weights reordered into the layouts
/// the chosen kernels want, and the activation memory plan. Read-only after init, so any number of
/// `InferenceEngine`s (one per worker thread) share it.
final class CompiledNetwork: @unchecked Sendable {
    struct Layer {
        let primitiveDescriptor: dnnl_primitive_desc_t
        let weights: UnsafeMutableRawPointer
        let bias: UnsafeMutableRawPointer
        let weightsDescriptor: dnnl_memory_desc_t
        let biasDescriptor: dnnl_memory_desc_t
        let input: Int
        let output: Int
        /// Copy this tensor into the output buffer first: it is the residual, but still read later.
        let copyResidualFrom: Int?
        let implementation: String
    }

    let spec: NetworkSpec
    let engine: dnnl_engine_t
    let layers: [Layer]
    /// Activation buffer of each tensor (tensors whose lifetimes do not overlap share one).
    let bufferOfTensor: [Int]
    let bufferBytes: [Int]
    let tensorDescriptors: [dnnl_memory_desc_t]

    /// Layers whose kernel is oneDNN's slow reference implementation, as "layer: impl".
    var referenceKernels: [String] {
        zip(spec.convolutions, layers).filter { $0.1.implementation.contains("ref") }.map { "\($0.0.name): \($0.1.implementation)" }
    }

    init(spec: NetworkSpec) throws(ModelError) {
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
        let plan = Self.planBuffers(spec)
        bufferOfTensor = plan.bufferOfTensor
        bufferBytes = plan.bufferBytes

        var layers: [Layer] = []
        for (index, conv) in spec.convolutions.enumerated() {
            layers.append(try Self.compile(conv, spec: spec, tensors: tensorDescriptors, engine: self.engine, stream: stream!,
                                           copyResidual: plan.copyResidual[index]))
        }
        self.layers = layers
    }

    deinit {
        for layer in layers {
            dnnl_primitive_desc_destroy(layer.primitiveDescriptor)
            layer.weights.deallocate()
            layer.bias.deallocate()
        }
        dnnl_engine_destroy(engine)
    }

    private static func compile(_ conv: NetworkSpec.Convolution, spec: NetworkSpec, tensors: [dnnl_memory_desc_t],
                                engine: dnnl_engine_t, stream: dnnl_stream_t, copyResidual: Int?) throws(ModelError) -> Layer {
        let inShape = spec.tensors[conv.input], outShape = spec.tensors[conv.output]
        let userWeightsDims = conv.depthwise
            ? [outShape.channels, 1, 1, conv.kernelHeight, conv.kernelWidth]
            : [outShape.channels, inShape.channels, conv.kernelHeight, conv.kernelWidth]
        let userWeights = try DNNL.descriptor(userWeightsDims, conv.depthwise ? dnnl_goihw : dnnl_oihw)
        var anyWeights = try DNNL.descriptor(userWeightsDims, dnnl_format_tag_any)
        var bias = try DNNL.descriptor([outShape.channels], dnnl_x)
        var src = tensors[conv.input], dst = tensors[conv.output]
        var desc = dnnl_convolution_desc_t()
        let strides: [Int64] = [Int64(conv.strideHeight), Int64(conv.strideWidth)]
        let padL: [Int64] = [Int64(conv.padTop), Int64(conv.padLeft)]
        let padR: [Int64] = [Int64(conv.padBottom), Int64(conv.padRight)]
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

        // Reorder the weights once into the kernel's layout.
        let weights = UnsafeMutableRawPointer.allocate(byteCount: DNNL.size(weightsMD), alignment: 64)
        let biasBuffer = UnsafeMutableRawPointer.allocate(byteCount: conv.bias.count * 4, alignment: 64)
        conv.bias.withUnsafeBytes { biasBuffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let source = UnsafeMutableRawPointer.allocate(byteCount: conv.weights.count * 4, alignment: 64)
        defer { source.deallocate() }
        conv.weights.withUnsafeBytes { source.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let from = try DNNL.memory(userWeights, engine, source)
        let to = try DNNL.memory(weightsMD, engine, weights)
        defer {
            dnnl_memory_destroy(from)
            dnnl_memory_destroy(to)
        }
        var reorderPD: dnnl_primitive_desc_t? = nil
        var reorder: dnnl_primitive_t? = nil
        var user = userWeights, kernel = weightsMD
        try DNNL.check(dnnl_reorder_primitive_desc_create(&reorderPD, &user, engine, &kernel, engine, nil), "weights reorder for \(conv.name)")
        defer { dnnl_primitive_desc_destroy(reorderPD) }
        try DNNL.check(dnnl_primitive_create(&reorder, reorderPD), "weights reorder for \(conv.name)")
        defer { dnnl_primitive_destroy(reorder) }
        var args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)]
        try DNNL.check(dnnl_primitive_execute(reorder, stream, 2, &args), "weights reorder for \(conv.name)")
        try DNNL.check(dnnl_stream_wait(stream), "weights reorder for \(conv.name)")
        return Layer(primitiveDescriptor: pd!, weights: weights, bias: biasBuffer, weightsDescriptor: weightsMD, biasDescriptor: bias,
                     input: conv.input, output: conv.output, copyResidualFrom: copyResidual,
                     implementation: DNNL.implementationName(pd!))
    }

    /// Assigns tensors to reusable buffers by lifetime. A residual add writes in place into its
    /// residual's buffer when nothing reads the residual afterwards (always, in MobileNetV2).
    private static func planBuffers(_ spec: NetworkSpec) -> (bufferOfTensor: [Int], bufferBytes: [Int], copyResidual: [Int?]) {
        let keepForever = Int.max
        var lastUse = [Int](repeating: -1, count: spec.tensors.count)
        for (i, conv) in spec.convolutions.enumerated() {
            lastUse[conv.input] = i
            for case .addResidual(let r) in conv.postOps { lastUse[r] = i }
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
        for (i, conv) in spec.convolutions.enumerated() {
            let residual = conv.postOps.lazy.compactMap { op -> Int? in if case .addResidual(let r) = op { r } else { nil } }.first
            if let residual, lastUse[residual] == i, residual != conv.input {
                bufferOf[conv.output] = bufferOf[residual]
            } else {
                allocate(conv.output)
                copyResidual[i] = residual
            }
            for t in Set([conv.input, residual].compactMap { $0 }) where lastUse[t] == i && bufferOf[t] != bufferOf[conv.output] {
                free.append(bufferOf[t])
            }
        }
        return (bufferOf, bytes, copyResidual)
    }
}
