// Written by the Sightline team. Runs one forward pass's convolutions (onednn_pass.py's list) as separate
// primitives with the same shapes, data types, NHWC layouts, scales and post-ops as Sightline, under whichever
// oneDNN it is built against (2.x or 3.x API), and prints the median and minimum time of a pass.
// Implementation choice as Sightline's: oneDNN's first, except that a depthwise layer skips `brdgmm_dw`; `ref`
// is refused. usage: onednn_versions LAYERS [PASSES] [-v]   (OMP_NUM_THREADS=1 for one thread)
#include "onednn_layer.h"
typedef struct { dnnl_primitive_t p; dnnl_memory_t src, wei, bia, dst, scale_w, scale_s, scale_d; } layer_t;
int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s LAYERS [PASSES] [-v]\n", argv[0]); return 2; }
    FILE *f = fopen(argv[1], "r"); if (!f) { perror(argv[1]); return 1; }
    int passes = argc > 2 ? atoi(argv[2]) : 200, verbose = argc > 3;
    dnnl_engine_t eng; CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    dnnl_stream_t st; CHECK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
    static layer_t L[512]; int n = 0; shape_t s;
    while (n < 512 && read_shape(f, &s)) {
        dnnl_primitive_desc_t pd;
#if DNNL_VERSION_MAJOR >= 3
        dnnl_dims_t sd = {1, s.ic, s.ih, s.iw}, dd = {1, s.oc, s.oh, s.ow}, bd = {s.oc}, strides = {s.sh, s.sw}, dil = {0, 0}, pl = {s.ph, s.pw};
        dnnl_dims_t pr = {(s.oh - 1) * s.sh + s.kh - s.ih - s.ph, (s.ow - 1) * s.sw + s.kw - s.iw - s.pw};
        dnnl_dims_t wd4 = {s.oc, s.ic, s.kh, s.kw}, wd5 = {s.g, s.oc / s.g, s.ic / s.g, s.kh, s.kw};
        dnnl_memory_desc_t smd, wmd, bmd, dmd;
        CHECK(dnnl_memory_desc_create_with_tag(&smd, 4, sd, type(s.src), dnnl_nhwc));
        CHECK(dnnl_memory_desc_create_with_tag(&dmd, 4, dd, type(s.dst), dnnl_nhwc));
        CHECK(dnnl_memory_desc_create_with_tag(&wmd, s.g > 1 ? 5 : 4, s.g > 1 ? wd5 : wd4, weight_type(&s), dnnl_format_tag_any));
        CHECK(dnnl_memory_desc_create_with_tag(&bmd, 1, bd, dnnl_f32, dnnl_a));
        dnnl_primitive_attr_t attr; CHECK(dnnl_primitive_attr_create(&attr));
        dnnl_post_ops_t po; CHECK(dnnl_post_ops_create(&po));
        if (weight_type(&s) == dnnl_s8) {  // 3.x: source and weight scales, one output scale (2.x: one set of output scales)
            CHECK(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_SRC, 0));
            CHECK(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_WEIGHTS, s.g > 1 ? 3 : 1));
            if (type(s.dst) != dnnl_f32) CHECK(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_DST, 0));
        }
        if (s.clip > 0) CHECK(dnnl_post_ops_append_eltwise(po, dnnl_eltwise_clip, 0, s.clip));
        if (s.sum) CHECK(dnnl_post_ops_append_sum(po, 0.8f, 0, dnnl_data_type_undef));
        CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
        CHECK(dnnl_convolution_forward_primitive_desc_create(&pd, eng, dnnl_forward_inference, dnnl_convolution_direct, smd, wmd, bmd, dmd, strides, dil, pl, pr, attr));
        while (!sightline_would_take(impl_of(pd), s.g)) CHECK(dnnl_primitive_desc_next_impl(pd));
        CHECK(dnnl_memory_create(&L[n].src, smd, eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&L[n].dst, dmd, eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&L[n].wei, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&L[n].bia, bmd, eng, DNNL_MEMORY_ALLOCATE));
        dnnl_memory_desc_t one, per_oc; dnnl_dims_t one_d = {1}, oc_d = {s.oc};
        CHECK(dnnl_memory_desc_create_with_tag(&one, 1, one_d, dnnl_f32, dnnl_a));
        CHECK(dnnl_memory_desc_create_with_tag(&per_oc, 1, oc_d, dnnl_f32, dnnl_a));
        CHECK(dnnl_memory_create(&L[n].scale_w, per_oc, eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&L[n].scale_s, one, eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&L[n].scale_d, one, eng, DNNL_MEMORY_ALLOCATE));
        float *p;
        dnnl_memory_get_data_handle(L[n].scale_w, (void **)&p); for (int i = 0; i < s.oc; i++) p[i] = 0.01f;
        dnnl_memory_get_data_handle(L[n].scale_s, (void **)&p); p[0] = 0.02f;
        dnnl_memory_get_data_handle(L[n].scale_d, (void **)&p); p[0] = 0.05f;
#else
        dnnl_convolution_desc_t cd; dnnl_memory_desc_t bmd;
        dnnl_primitive_desc_iterator_t it = candidates(&s, eng, &cd, &bmd);
        for (pd = dnnl_primitive_desc_iterator_fetch(it); !sightline_would_take(impl_of(pd), s.g); pd = dnnl_primitive_desc_iterator_fetch(it)) {
            dnnl_primitive_desc_destroy(pd);
            CHECK(dnnl_primitive_desc_iterator_next(it));
        }
        dnnl_primitive_desc_iterator_destroy(it);
        CHECK(dnnl_memory_create(&L[n].src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&L[n].dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&L[n].wei, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&L[n].bia, &bmd, eng, DNNL_MEMORY_ALLOCATE));
#endif
        CHECK(dnnl_primitive_create(&L[n].p, pd));
        if (verbose) printf("%s g%ld %ld>%ld %ldx%ld k%ld s%ld %s>%s\n", impl_of(pd), s.g, s.ic, s.oc, s.oh, s.ow, s.kh, s.sh, s.src, s.dst);
        n++;
    }
    double *t = malloc(passes * sizeof(double));
    for (int it = -20; it < passes; it++) {
        double t0 = now_ms();
        for (int i = 0; i < n; i++) {
#if DNNL_VERSION_MAJOR >= 3
            dnnl_exec_arg_t a[] = {{DNNL_ARG_SRC, L[i].src}, {DNNL_ARG_WEIGHTS, L[i].wei}, {DNNL_ARG_BIAS, L[i].bia}, {DNNL_ARG_DST, L[i].dst},
                {DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, L[i].scale_w}, {DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, L[i].scale_s}, {DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST, L[i].scale_d}};
            CHECK(dnnl_primitive_execute(L[i].p, st, 7, a));
#else
            dnnl_exec_arg_t a[] = {{DNNL_ARG_SRC, L[i].src}, {DNNL_ARG_WEIGHTS, L[i].wei}, {DNNL_ARG_BIAS, L[i].bia}, {DNNL_ARG_DST, L[i].dst}};
            CHECK(dnnl_primitive_execute(L[i].p, st, 4, a));
#endif
        }
        if (it >= 0) t[it] = now_ms() - t0;
    }
    qsort(t, passes, sizeof(double), ascending);
    printf("{\"onednn\":\"%d.%d\",\"primitives\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f}\n", DNNL_VERSION_MAJOR, DNNL_VERSION_MINOR, n, t[passes / 2], t[0]);
    return 0;
}
