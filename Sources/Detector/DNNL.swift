import CDNNL

/// The only file that speaks oneDNN 2.x's C API (the 2.x descriptor calls are gone in 3.x; keep them here).
enum DNNL {
    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) throws(ModelError) {
        guard status == dnnl_success else { throw .engine("\(what()) failed (oneDNN status \(status.rawValue))") }
    }

    /// A memory descriptor of f32 `dims` in a plain layout `tag` (or `dnnl_format_tag_any`).
    static func descriptor(_ dims: [Int], _ tag: dnnl_format_tag_t) throws(ModelError) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        var d = dims.map(Int64.init)
        let status = dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), &d, dnnl_f32, tag)
        try check(status, "memory descriptor \(dims)")
        return md
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
