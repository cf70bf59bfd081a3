import CDNNL

/// Helpers over oneDNN 2.x's C API: operation and memory descriptors, output scales, reorders, CPU dispatch. Not the
/// only caller: CompiledNetwork and InferenceEngine create and run engines, streams, primitives and memories directly,
/// and CompiledNetwork sets output scales for its weight reorders; a move to 3.x (which dropped the operation
/// descriptors and output scales) touches all three files.
enum DNNL {
    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) throws(ModelError) {
        guard status == dnnl_success else { throw .engine("\(what()) failed (oneDNN status \(status.rawValue))") }
    }

    /// A memory descriptor of `dims` in a plain layout `tag` (or `dnnl_format_tag_any`).
    static func descriptor(_ dims: [Int], _ tag: dnnl_format_tag_t, _ type: dnnl_data_type_t = dnnl_f32) throws(ModelError) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        var d = dims.map(Int64.init)
        let status = dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), &d, type, tag)
        try check(status, "memory descriptor \(dims)")
        return md
    }

    /// A convolution's primitive descriptor (oneDNN 2.x: an operation descriptor first, then the primitive descriptor):
    /// oneDNN's first choice, or its first one whose implementation name does not contain `avoiding`.
    static func convolution(source: inout dnnl_memory_desc_t, weights: inout dnnl_memory_desc_t, bias: inout dnnl_memory_desc_t,
                            destination: inout dnnl_memory_desc_t, strides: [Int64], padBefore: [Int64], padAfter: [Int64],
                            attributes: dnnl_primitive_attr_t?, engine: dnnl_engine_t, name: String,
                            avoiding: String? = nil) throws(ModelError) -> dnnl_primitive_desc_t {
        var desc = dnnl_convolution_desc_t()
        try check(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct,
                                                     &source, &weights, &bias, &destination, strides, padBefore, padAfter),
                  "convolution \(name)")
        if let avoiding {
            // oneDNN's own order, minus `avoiding`, unless only a reference implementation is left.
            var iterator: dnnl_primitive_desc_iterator_t? = nil
            try check(dnnl_primitive_desc_iterator_create(&iterator, &desc, attributes, engine, nil), "primitive for \(name)")
            defer { dnnl_primitive_desc_iterator_destroy(iterator) }
            var first: dnnl_primitive_desc_t? = nil
            repeat {
                guard let candidate = dnnl_primitive_desc_iterator_fetch(iterator) else { break }
                let implementation = implementationName(candidate)
                if !implementation.contains(avoiding) && !implementation.contains("ref") {
                    if let first { dnnl_primitive_desc_destroy(first) }
                    return candidate
                }
                if first == nil { first = candidate } else { dnnl_primitive_desc_destroy(candidate) }
            } while dnnl_primitive_desc_iterator_next(iterator) == dnnl_success
            if let first { return first }
        }
        var pd: dnnl_primitive_desc_t? = nil
        try check(dnnl_primitive_desc_create(&pd, &desc, attributes, engine, nil), "primitive for \(name)")
        return pd!
    }

    /// Per-output-channel (`perChannel`) or whole-tensor output scales (oneDNN 2.x: applied to the s32 accumulator,
    /// bias included, before the post-ops).
    static func setOutputScales(_ attributes: dnnl_primitive_attr_t?, _ scales: [Float]) throws(ModelError) {
        let mask: Int32 = scales.count > 1 ? 1 << 1 : 0
        try check(dnnl_primitive_attr_set_output_scales(attributes, Int64(scales.count), mask, scales), "output scales")
    }

    /// A residual add into the destination, which holds `type` values scaled by `scale` relative to the output.
    static func appendSum(_ postOps: dnnl_post_ops_t?, scale: Float, type: dnnl_data_type_t) throws(ModelError) {
        try check(dnnl_post_ops_append_sum_v2(postOps, scale, type), "residual post-op")
    }

    /// A reorder (layout and/or type conversion, multiplying by `scale`) and its primitive descriptor.
    static func reorder(from: dnnl_memory_desc_t, to: dnnl_memory_desc_t, scale: Float?, engine: dnnl_engine_t) throws(ModelError) -> dnnl_primitive_desc_t {
        var attr: dnnl_primitive_attr_t? = nil
        try check(dnnl_primitive_attr_create(&attr), "attributes")
        defer { dnnl_primitive_attr_destroy(attr) }
        if let scale { try setOutputScales(attr, [scale]) }
        var pd: dnnl_primitive_desc_t? = nil
        var source = from, destination = to
        try check(dnnl_reorder_primitive_desc_create(&pd, &source, engine, &destination, engine, attr), "reorder")
        return pd!
    }

    /// The instruction set oneDNN dispatches to (honouring `ONEDNN_MAX_CPU_ISA`), as features.
    static func cpuFeatures() -> CPUFeatures {
        let isa = dnnl_get_effective_cpu_isa()
        let name: String = switch isa {
        case dnnl_cpu_isa_avx512_core_amx: "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: "avx512_core"
        case dnnl_cpu_isa_avx2_vnni: "avx2_vnni"
        case dnnl_cpu_isa_avx2: "avx2"
        case dnnl_cpu_isa_avx: "avx"
        case dnnl_cpu_isa_sse41: "sse41"
        default: "isa 0x\(String(isa.rawValue, radix: 16))"
        }
        let vnni = [dnnl_cpu_isa_avx512_core_vnni, dnnl_cpu_isa_avx512_core_bf16, dnnl_cpu_isa_avx512_core_amx, dnnl_cpu_isa_avx2_vnni].contains(isa)
        let bf16 = [dnnl_cpu_isa_avx512_core_bf16, dnnl_cpu_isa_avx512_core_amx].contains(isa)
        return CPUFeatures(vnni: vnni, bf16: bf16, isa: name)
    }

    static func elementBytes(_ type: dnnl_data_type_t) -> Int {
        switch type {
        case dnnl_s8, dnnl_u8: 1
        case dnnl_bf16, dnnl_f16: 2
        default: 4
        }
    }

    static func implementationName(_ pd: dnnl_primitive_desc_t) -> String {
        var info: UnsafePointer<CChar>? = nil
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info) == dnnl_success, let info else { return "unknown" }
        return String(cString: info)
    }

    static func size(_ md: dnnl_memory_desc_t) -> Int {
        withUnsafePointer(to: md) { dnnl_memory_desc_get_size($0) }
    }

    static func memory(_ md: dnnl_memory_desc_t, _ engine: dnnl_engine_t, _ handle: UnsafeMutableRawPointer) throws(ModelError) -> dnnl_memory_t {
        var memory: dnnl_memory_t? = nil
        try check(withUnsafePointer(to: md) { dnnl_memory_create(&memory, $0, engine, handle) }, "memory object")
        return memory!
    }

    /// Pins this thread's OpenMP team to one thread: the Debian build uses GNU OpenMP, whose setting is per thread.
    static func pinCurrentThreadToOneOpenMPThread() {
        let status = sl_omp_set_num_threads(1)
        assert(status == 0, "libgomp's omp_set_num_threads not found")
    }
}
