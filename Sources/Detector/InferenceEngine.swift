import CDNNL

/// One worker's instance of a compiled network: its own primitives, stream and activation buffers,
/// sharing the read-only weights. Use each instance from one thread at a time.
public final class InferenceEngine: @unchecked Sendable {
    let network: CompiledNetwork
    private let stream: dnnl_stream_t
    private var primitives: [dnnl_primitive_t] = []
    private var memories: [dnnl_memory_t] = []
    private var arguments: [[dnnl_exec_arg_t]] = []
    private let buffers: [UnsafeMutableRawPointer]
    /// All heads' outputs gathered in anchor order: anchors x 4, and anchors x classes-with-background.
    let boxEncodings: UnsafeMutableBufferPointer<Float>
    let classLogits: UnsafeMutableBufferPointer<Float>

    init(network: CompiledNetwork) throws(ModelError) {
        self.network = network
        var stream: dnnl_stream_t? = nil
        try DNNL.check(dnnl_stream_create(&stream, network.engine, dnnl_stream_default_flags.rawValue), "stream")
        self.stream = stream!
        buffers = network.bufferBytes.map { UnsafeMutableRawPointer.allocate(byteCount: max($0, 64), alignment: 64) }
        for buffer in buffers { buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 64) }
        let anchors = network.spec.anchorCount
        boxEncodings = .allocate(capacity: anchors * 4)
        classLogits = .allocate(capacity: anchors * network.spec.classesWithBackground)
        let tensorMemories = try network.tensorDescriptors.enumerated().map { (t, md) throws(ModelError) in
            try DNNL.memory(md, network.engine, buffers[network.bufferOfTensor[t]])
        }
        memories = tensorMemories
        for layer in network.layers {
            var primitive: dnnl_primitive_t? = nil
            try DNNL.check(dnnl_primitive_create(&primitive, layer.primitiveDescriptor), "primitive")
            primitives.append(primitive!)
            let weights = try DNNL.memory(layer.weightsDescriptor, network.engine, layer.weights)
            let bias = try DNNL.memory(layer.biasDescriptor, network.engine, layer.bias)
            memories += [weights, bias]
            arguments.append([
                dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: tensorMemories[layer.input]),
                dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weights),
                dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: bias),
                dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: tensorMemories[layer.output]),
            ])
        }
    }

    deinit {
        primitives.forEach { dnnl_primitive_destroy($0) }
        memories.forEach { dnnl_memory_destroy($0) }
        dnnl_stream_destroy(stream)
        buffers.forEach { $0.deallocate() }
        boxEncodings.deallocate()
        classLogits.deallocate()
    }

    /// The network input, NHWC f32, to be filled before `run()`.
    var input: UnsafeMutablePointer<Float> {
        buffers[network.bufferOfTensor[0]].assumingMemoryBound(to: Float.self)
    }

    private func tensor(_ t: Int) -> UnsafeMutablePointer<Float> {
        buffers[network.bufferOfTensor[t]].assumingMemoryBound(to: Float.self)
    }

    /// Runs the network on `input`; results land in `boxEncodings` and `classLogits`.
    func run() throws(ModelError) {
        DNNL.pinCurrentThreadToOneOpenMPThread()
        for (i, layer) in network.layers.enumerated() {
            if let residual = layer.copyResidualFrom {
                tensor(layer.output).update(from: tensor(residual), count: network.spec.tensors[residual].elements)
            }
            let status = arguments[i].withUnsafeBufferPointer { dnnl_primitive_execute(primitives[i], stream, 4, $0.baseAddress) }
            try DNNL.check(status, "running \(network.spec.convolutions[i].name)")
        }
        try DNNL.check(dnnl_stream_wait(stream), "stream wait")
        // Gather the heads in anchor order: NHWC already lists cell by cell, anchor by anchor.
        var boxOffset = 0, classOffset = 0
        for head in network.spec.heads {
            let boxCount = network.spec.tensors[head.boxEncodings].elements
            (boxEncodings.baseAddress! + boxOffset).update(from: tensor(head.boxEncodings), count: boxCount)
            boxOffset += boxCount
            let classCount = network.spec.tensors[head.classLogits].elements
            (classLogits.baseAddress! + classOffset).update(from: tensor(head.classLogits), count: classCount)
            classOffset += classCount
        }
    }
}
