import CDNNL

/// One worker's instance of a compiled network: its own primitives, stream, activation buffers and strip
/// scratch, sharing the read-only weights. Use each instance from one thread at a time.
// @unchecked: oneDNN handles and raw buffers, guarded by ownership: it moves to one worker thread, which alone uses it.
public final class InferenceEngine: @unchecked Sendable {
    /// One primitive run with its memory bound, plus the residual rows to copy into its output first.
    private struct Execution {
        let primitive: dnnl_primitive_t
        var arguments: [dnnl_exec_arg_t]
        let residualCopy: (from: UnsafeMutableRawPointer, to: UnsafeMutableRawPointer, bytes: Int)?
    }

    let network: CompiledNetwork
    private let stream: dnnl_stream_t
    private var primitives: [dnnl_primitive_t] = []
    private var memories: [dnnl_memory_t] = []
    private var executions: [Execution] = []
    private let buffers: [UnsafeMutableRawPointer]
    /// Where an f32 input is written when the network's first tensor is another type, and its conversion into it.
    /// Only `bench` and the parity checks write f32 input (`detect` writes tensor 0 in its own type), so
    /// both are made on first use and a worker never holds them.
    private var stagingInput: UnsafeMutablePointer<Float>?
    private var stagingConversion: (primitive: dnnl_primitive_t, arguments: [dnnl_exec_arg_t])?
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
        let bytes = network.tensorTypes.map(DNNL.elementBytes)
        let expandedBytes = network.stripPlans.map { $0.scratchFloats.expanded * bytes[spec.convolutions[$0.layers.expand].output] }.max() ?? 0
        let filteredBytes = network.stripPlans.map { $0.scratchFloats.filtered * bytes[spec.convolutions[$0.layers.depthwise].output] }.max() ?? 0
        scratch = (.allocate(byteCount: max(expandedBytes, 64), alignment: 64), .allocate(byteCount: max(filteredBytes, 64), alignment: 64))
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
                let copy = copyFrom.map { (tensor($0), tensor(conv.output), spec.tensors[$0].elements * bytes[$0]) }
                try add(k, source: tensor(conv.input), destination: tensor(conv.output), residualCopy: copy)
            case .strips(let p, let stripKernels):
                let plan = network.stripPlans[p]
                let expand = spec.convolutions[plan.layers.expand], project = spec.convolutions[plan.layers.project]
                let residual = project.residual
                for (kernels, bands) in zip(stripKernels, plan.strips) {
                    let input = tensor(expand.input) + bands[0].inputStart * rowBytes(expand.input)
                    let output = tensor(project.output) + bands[2].outputStart * rowBytes(project.output)
                    try add(kernels[0], source: input, destination: scratch.expanded)
                    try add(kernels[1], source: scratch.expanded, destination: scratch.filtered)
                    let copy = residual.map { r in
                        (tensor(r) + bands[2].outputStart * rowBytes(r), output, bands[2].outputRows * rowBytes(r))
                    }
                    try add(kernels[2], source: scratch.filtered, destination: output, residualCopy: copy)
                }
            }
        }
    }

    deinit {
        primitives.forEach { dnnl_primitive_destroy($0) }
        if let stagingConversion { dnnl_primitive_destroy(stagingConversion.primitive) }
        stagingInput?.deallocate()
        memories.forEach { dnnl_memory_destroy($0) }
        dnnl_stream_destroy(stream)
        buffers.forEach { $0.deallocate() }
        scratch.expanded.deallocate()
        scratch.filtered.deallocate()
        boxEncodings.deallocate()
        classLogits.deallocate()
    }

    private func add(_ k: Int, source: UnsafeMutableRawPointer, destination: UnsafeMutableRawPointer,
                     residualCopy: (UnsafeMutableRawPointer, UnsafeMutableRawPointer, Int)? = nil) throws(ModelError) {
        let kernel = network.kernels[k]
        let engine = network.engine
        let bound = [try DNNL.memory(kernel.source, engine, source),
                     try DNNL.memory(kernel.weightsDescriptor, engine, kernel.weights),
                     try DNNL.memory(kernel.biasDescriptor, engine, kernel.bias),
                     try DNNL.memory(kernel.destination, engine, destination)]
        memories += bound
        executions.append(Execution(primitive: primitives[k], arguments: [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: bound[0]),
            dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: bound[1]),
            dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: bound[2]),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: bound[3]),
        ], residualCopy: residualCopy.map { (from: $0.0, to: $0.1, bytes: $0.2) }))
    }

    /// The network input, NHWC f32, to be filled before `run()`: tensor 0 in f32, else the staging buffer (made now
    /// if this is its first use).
    var input: UnsafeMutablePointer<Float> {
        guard network.inputConversion != nil else { return tensor(0).assumingMemoryBound(to: Float.self) }
        if let stagingInput { return stagingInput }
        let elements = network.spec.input.elements
        let made = UnsafeMutableRawPointer.allocate(byteCount: elements * 4, alignment: 64).bindMemory(to: Float.self, capacity: elements)
        stagingInput = made
        return made
    }

    /// The network input in its own type (`network.inputEncoding`), to be filled before `run(inputEncoded: true)`:
    /// tensor 0 itself, so no conversion runs.
    var encodedInput: UnsafeMutableRawPointer { tensor(0) }

    /// `input` converted into `encodedInput` by oneDNN (nothing to do in f32, where they are one buffer).
    func convertInput() throws(ModelError) {
        guard let descriptor = network.inputConversion else { return }
        let conversion: (primitive: dnnl_primitive_t, arguments: [dnnl_exec_arg_t])
        if let stagingConversion { conversion = stagingConversion } else { conversion = try makeInputConversion(descriptor) }
        let status = conversion.arguments.withUnsafeBufferPointer { dnnl_primitive_execute(conversion.primitive, stream, 2, $0.baseAddress) }
        try DNNL.check(status, "converting the input")
    }

    /// The staging buffer's conversion into tensor 0, made once (what it makes is kept for `deinit` as it goes).
    private func makeInputConversion(_ descriptor: dnnl_primitive_desc_t) throws(ModelError) -> (primitive: dnnl_primitive_t, arguments: [dnnl_exec_arg_t]) {
        let from = try DNNL.memory(dnnl_primitive_desc_query_md(descriptor, dnnl_query_src_md, 0)!.pointee, network.engine, UnsafeMutableRawPointer(input))
        memories.append(from)
        let to = try DNNL.memory(dnnl_primitive_desc_query_md(descriptor, dnnl_query_dst_md, 0)!.pointee, network.engine, tensor(0))
        memories.append(to)
        var primitive: dnnl_primitive_t? = nil
        try DNNL.check(dnnl_primitive_create(&primitive, descriptor), "input conversion")
        let conversion = (primitive: primitive!, arguments: [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)])
        stagingConversion = conversion
        return conversion
    }

    private func tensor(_ t: Int) -> UnsafeMutableRawPointer { buffers[network.bufferOfTensor[t]] }

    private func rowBytes(_ t: Int) -> Int {
        network.spec.tensors[t].width * network.spec.tensors[t].channels * DNNL.elementBytes(network.tensorTypes[t])
    }

    /// Runs the network on `input`, or on `encodedInput` if `inputEncoded`; results land in `boxEncodings` and
    /// `classLogits`. `observe` (f32 networks without strips only) sees each convolution's output tensor right after
    /// the convolution.
    func run(inputEncoded: Bool = false, observe: ((_ tensor: Int, _ values: UnsafeBufferPointer<Float>) -> Void)? = nil) throws(ModelError) {
        precondition(observe == nil || (network.stripPlans.isEmpty && network.precision == .f32), "observing needs whole f32 layers")
        DNNL.pinCurrentThreadToOneOpenMPThread()
        if !inputEncoded { try convertInput() }
        for i in executions.indices {
            if let copy = executions[i].residualCopy { copy.to.copyMemory(from: copy.from, byteCount: copy.bytes) }
            let status = executions[i].arguments.withUnsafeBufferPointer { dnnl_primitive_execute(executions[i].primitive, stream, 4, $0.baseAddress) }
            try DNNL.check(status, "running the network")
            if let observe {
                try DNNL.check(dnnl_stream_wait(stream), "stream wait")
                let output = network.spec.convolutions[i].output
                observe(output, UnsafeBufferPointer(start: tensor(output).assumingMemoryBound(to: Float.self), count: network.spec.tensors[output].elements))
            }
        }
        try DNNL.check(dnnl_stream_wait(stream), "stream wait")
        // Gather the heads in anchor order: NHWC already lists cell by cell, anchor by anchor.
        var boxOffset = 0, classOffset = 0
        for head in network.spec.heads {
            let boxCount = network.spec.tensors[head.boxEncodings].elements
            (boxEncodings.baseAddress! + boxOffset).update(from: tensor(head.boxEncodings).assumingMemoryBound(to: Float.self), count: boxCount)
            boxOffset += boxCount
            let classCount = network.spec.tensors[head.classLogits].elements
            (classLogits.baseAddress! + classOffset).update(from: tensor(head.classLogits).assumingMemoryBound(to: Float.self), count: classCount)
            classOffset += classCount
        }
    }
}
