import CDNNL

/// One worker's instance of a compiled network: its own primitives, stream, activation buffers and strip
/// scratch, sharing the read-only weights. Use each instance from one thread at a time.
public final class InferenceEngine: @unchecked Sendable {
    /// One primitive run with its memory bound, plus the residual rows to copy into its output first.
    private struct Execution {
        let primitive: dnnl_primitive_t
        var arguments: [dnnl_exec_arg_t]
        let residualCopy: (from: UnsafeMutablePointer<Float>, to: UnsafeMutablePointer<Float>, count: Int)?
    }

    let network: CompiledNetwork
    private let stream: dnnl_stream_t
    private var primitives: [dnnl_primitive_t] = []
    private var memories: [dnnl_memory_t] = []
    private var executions: [Execution] = []
    private let buffers: [UnsafeMutableRawPointer]
    private let scratch: (expanded: UnsafeMutableRawPointer, filtered: UnsafeMutableRawPointer)
    /// All heads' outputs gathered in anchor order: anchors x 4, and anchors x classes-with-background.
    let boxEncodings: UnsafeMutableBufferPointer<Float>
    let classLogits: UnsafeMutableBufferPointer<Float>

    init(network: CompiledNetwork) throws(ModelError) {
        self.network = network
        let spec = network.spec
        var stream: dnnl_stream_t? = nil
        try DNNL.check(dnnl_stream_create(&stream, network.engine, dnnl_stream_default_flags.rawValue), "stream")
        self.stream = stream!
        buffers = network.bufferBytes.map { UnsafeMutableRawPointer.allocate(byteCount: max($0, 64), alignment: 64) }
        let expandedFloats = network.stripPlans.map(\.scratchFloats.expanded).max() ?? 0
        let filteredFloats = network.stripPlans.map(\.scratchFloats.filtered).max() ?? 0
        scratch = (.allocate(byteCount: max(expandedFloats * 4, 64), alignment: 64), .allocate(byteCount: max(filteredFloats * 4, 64), alignment: 64))
        let anchors = spec.anchorCount
        boxEncodings = .allocate(capacity: anchors * 4)
        classLogits = .allocate(capacity: anchors * spec.classesWithBackground)

        for kernel in network.kernels {
            var primitive: dnnl_primitive_t? = nil
            try DNNL.check(dnnl_primitive_create(&primitive, kernel.primitiveDescriptor), "primitive")
            primitives.append(primitive!)
        }
        for step in network.steps {
            switch step {
            case .layer(let k, let copyFrom):
                let kernel = network.kernels[k]
                let conv = spec.convolutions[kernel.layer]
                let copy = copyFrom.map { (tensor($0), tensor(conv.output), spec.tensors[$0].elements) }
                try add(k, source: tensor(conv.input), destination: tensor(conv.output), residualCopy: copy)
            case .strips(let p, let stripKernels):
                let plan = network.stripPlans[p]
                let expand = spec.convolutions[plan.layers.expand], project = spec.convolutions[plan.layers.project]
                let residual = project.residual
                for (kernels, bands) in zip(stripKernels, plan.strips) {
                    let input = tensor(expand.input) + bands[0].inputStart * rowFloats(expand.input)
                    let output = tensor(project.output) + bands[2].outputStart * rowFloats(project.output)
                    let expanded = scratch.expanded.assumingMemoryBound(to: Float.self)
                    let filtered = scratch.filtered.assumingMemoryBound(to: Float.self)
                    try add(kernels[0], source: input, destination: expanded)
                    try add(kernels[1], source: expanded, destination: filtered)
                    let copy = residual.map { r in
                        (tensor(r) + bands[2].outputStart * rowFloats(r), output, bands[2].outputRows * rowFloats(r))
                    }
                    try add(kernels[2], source: filtered, destination: output, residualCopy: copy)
                }
            }
        }
    }

    deinit {
        primitives.forEach { dnnl_primitive_destroy($0) }
        memories.forEach { dnnl_memory_destroy($0) }
        dnnl_stream_destroy(stream)
        buffers.forEach { $0.deallocate() }
        scratch.expanded.deallocate()
        scratch.filtered.deallocate()
        boxEncodings.deallocate()
        classLogits.deallocate()
    }

    private func add(_ k: Int, source: UnsafeMutablePointer<Float>, destination: UnsafeMutablePointer<Float>,
                     residualCopy: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int)? = nil) throws(ModelError) {
        let kernel = network.kernels[k]
        let engine = network.engine
        let bound = [try DNNL.memory(kernel.source, engine, UnsafeMutableRawPointer(source)),
                     try DNNL.memory(kernel.weightsDescriptor, engine, kernel.weights),
                     try DNNL.memory(kernel.biasDescriptor, engine, kernel.bias),
                     try DNNL.memory(kernel.destination, engine, UnsafeMutableRawPointer(destination))]
        memories += bound
        executions.append(Execution(primitive: primitives[k], arguments: [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: bound[0]),
            dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: bound[1]),
            dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: bound[2]),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: bound[3]),
        ], residualCopy: residualCopy.map { (from: $0.0, to: $0.1, count: $0.2) }))
    }

    /// The network input, NHWC f32, to be filled before `run()`.
    var input: UnsafeMutablePointer<Float> { tensor(0) }

    private func tensor(_ t: Int) -> UnsafeMutablePointer<Float> {
        buffers[network.bufferOfTensor[t]].assumingMemoryBound(to: Float.self)
    }

    private func rowFloats(_ t: Int) -> Int { network.spec.tensors[t].width * network.spec.tensors[t].channels }

    /// Runs the network on `input`; results land in `boxEncodings` and `classLogits`.
    func run() throws(ModelError) {
        DNNL.pinCurrentThreadToOneOpenMPThread()
        for i in executions.indices {
            if let copy = executions[i].residualCopy { copy.to.update(from: copy.from, count: copy.count) }
            let status = executions[i].arguments.withUnsafeBufferPointer { dnnl_primitive_execute(executions[i].primitive, stream, 4, $0.baseAddress) }
            try DNNL.check(status, "running the network")
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
