// Written by the Sightline team. oneDNN 2.x only. For each convolution of a pass (onednn_pass.py's list) builds
// the AVX-512 implementations oneDNN offers (not ref, gemm, AVX2 or SSE4.1; the first 8 distinct ones), times each alone (5 interleaved rounds
// of ITERS runs), then times whole passes alternately with Sightline's choice (oneDNN's first, a depthwise layer
// skipping brdgmm_dw) and with each layer's fastest: what per-layer tuning could gain.
// usage: onednn_impls LAYERS [ITERS]   (OMP_NUM_THREADS=1 for one thread)
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define CHECK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) { fprintf(stderr, "%s:%d %s -> %d\n", __FILE__, __LINE__, #x, s_); exit(1);} } while (0)
static dnnl_data_type_t dt(const char *s) { return !strcmp(s, "u8") ? dnnl_u8 : !strcmp(s, "s8") ? dnnl_s8 : !strcmp(s, "bf16") ? dnnl_bf16 : dnnl_f32; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int cmp(const void *a, const void *b) { double x = *(double*)a, y = *(double*)b; return x < y ? -1 : x > y; }
typedef struct { dnnl_primitive_t p; dnnl_memory_t src, wei, bia, dst; char impl[64]; double t; } cand_t;
typedef struct { cand_t c[8]; int n, cur, best; long g, kh; } layer_t;
static layer_t L[256];
static void exec1(dnnl_stream_t st, cand_t *c) { dnnl_exec_arg_t a[] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->wei}, {DNNL_ARG_BIAS, c->bia}, {DNNL_ARG_DST, c->dst}}; CHECK(dnnl_primitive_execute(c->p, st, 4, a)); }
int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s LAYERS [ITERS]\n", argv[0]); return 2; }
    FILE *f = fopen(argv[1], "r"); if (!f) { perror(argv[1]); return 1; }
    int iters = argc > 2 ? atoi(argv[2]) : 100; if (iters < 1) iters = 1;
    dnnl_engine_t eng; CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    dnnl_stream_t st; CHECK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
    char sdt[8], ddt[8]; long g, ic, oc, ih, iw, oh, ow, kh, kw, sh, sw, ph, pw; double beta; int sum; int n = 0;
    while (n < 256 && fscanf(f, "%ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %7s %7s %lf %d", &g, &ic, &oc, &ih, &iw, &oh, &ow, &kh, &kw, &sh, &sw, &ph, &pw, sdt, ddt, &beta, &sum) == 17) {
        dnnl_dims_t sd = {1, ic, ih, iw}, dd = {1, oc, oh, ow}, bd = {oc}, strides = {sh, sw}, dil = {0, 0}, pl = {ph, pw};
        dnnl_dims_t pr = {(oh - 1) * sh + kh - ih - ph, (ow - 1) * sw + kw - iw - pw};
        dnnl_dims_t wd4 = {oc, ic, kh, kw}, wd5 = {g, oc / g, ic / g, kh, kw};
        int wnd = g > 1 ? 5 : 4; long *wd = g > 1 ? wd5 : wd4;
        dnnl_data_type_t wdt = dt(sdt) == dnnl_bf16 ? dnnl_bf16 : dnnl_s8;
        dnnl_primitive_attr_t attr; CHECK(dnnl_primitive_attr_create(&attr));
        dnnl_post_ops_t po; CHECK(dnnl_post_ops_create(&po));
        dnnl_memory_desc_t smd, wmd, bmd, dmd;
        CHECK(dnnl_memory_desc_init_by_tag(&smd, 4, sd, dt(sdt), dnnl_nhwc));
        CHECK(dnnl_memory_desc_init_by_tag(&dmd, 4, dd, dt(ddt), dnnl_nhwc));
        CHECK(dnnl_memory_desc_init_by_tag(&wmd, wnd, wd, wdt, dnnl_format_tag_any));
        CHECK(dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a));
        dnnl_convolution_desc_t cd;
        CHECK(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &smd, &wmd, &bmd, &dmd, strides, dil, pl, pr));
        if (wdt == dnnl_s8) { float *sc = malloc(oc * sizeof(float)); for (int i = 0; i < oc; i++) sc[i] = 0.01f; CHECK(dnnl_primitive_attr_set_output_scales(attr, oc, 2, sc)); }
        if (beta > 0) CHECK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0, beta));
        if (sum) CHECK(dnnl_post_ops_append_sum_v2(po, 0.8f, dnnl_data_type_undef));
        CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
        dnnl_primitive_desc_iterator_t itr;
        CHECK(dnnl_primitive_desc_iterator_create(&itr, &cd, attr, eng, NULL));
        layer_t *l = &L[n]; l->n = 0; l->cur = -1; l->g = g; l->kh = kh;
        do {
            dnnl_primitive_desc_t pd = dnnl_primitive_desc_iterator_fetch(itr);
            const char *impl; dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
            int skip = strstr(impl, "ref") || strstr(impl, "gemm") || strstr(impl, "avx2") || strstr(impl, "sse41");
            for (int k = 0; k < l->n; k++) if (!strcmp(l->c[k].impl, impl)) skip = 1;
            if (skip || l->n == 8) { dnnl_primitive_desc_destroy(pd); continue; }
            cand_t *c = &l->c[l->n];
            strncpy(c->impl, impl, 63);
            CHECK(dnnl_memory_create(&c->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), eng, DNNL_MEMORY_ALLOCATE));
            CHECK(dnnl_memory_create(&c->dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), eng, DNNL_MEMORY_ALLOCATE));
            CHECK(dnnl_memory_create(&c->wei, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng, DNNL_MEMORY_ALLOCATE));
            CHECK(dnnl_memory_create(&c->bia, &bmd, eng, DNNL_MEMORY_ALLOCATE));
            CHECK(dnnl_primitive_create(&c->p, pd));
            if (l->cur < 0 && !(g > 1 && strstr(impl, "brdgmm"))) l->cur = l->n;
            l->n++;
            dnnl_primitive_desc_destroy(pd);
        } while (dnnl_primitive_desc_iterator_next(itr) == dnnl_success);
        if (l->cur < 0) { fprintf(stderr, "layer %d: no AVX-512 implementation\n", n); return 1; }
        n++;
    }
    // isolated per-candidate timing, interleaved rounds
    double *t = malloc(iters * sizeof(double));
    for (int i = 0; i < n; i++) {
        double acc[8] = {0};
        for (int r = 0; r < 5; r++) for (int k = 0; k < L[i].n; k++) {
            for (int it = -5; it < iters; it++) { double t0 = now(); exec1(st, &L[i].c[k]); if (it >= 0) t[it] = now() - t0; }
            qsort(t, iters, sizeof(double), cmp); acc[k] += t[iters / 2] * 1000 / 5;
        }
        L[i].best = 0;
        for (int k = 0; k < L[i].n; k++) { L[i].c[k].t = acc[k]; if (acc[k] < acc[L[i].best]) L[i].best = k; }
    }
    double sc = 0, sb = 0;
    for (int i = 0; i < n; i++) { sc += L[i].c[L[i].cur].t; sb += L[i].c[L[i].best].t;
        if (L[i].best != L[i].cur) printf("%3d g%ld k%ld: %s %.1f -> %s %.1f\n", i, L[i].g, L[i].kh, L[i].c[L[i].cur].impl, L[i].c[L[i].cur].t, L[i].c[L[i].best].impl, L[i].c[L[i].best].t); }
    printf("isolated sums: current %.1f us, tuned %.1f us (%.3f)\n", sc, sb, sb / sc);
    // whole passes, alternated
    int P = 300; double *tc = malloc(P * sizeof(double)), *tb = malloc(P * sizeof(double));
    for (int r = 0; r < 4; r++) {
        for (int pol = 0; pol < 2; pol++) {
            double *tt = pol ? tb : tc;
            for (int it = -20; it < P; it++) { double t0 = now(); for (int i = 0; i < n; i++) exec1(st, &L[i].c[pol ? L[i].best : L[i].cur]); if (it >= 0) tt[it] = now() - t0; }
            qsort(tt, P, sizeof(double), cmp);
        }
        printf("round %d: current %.3f ms, tuned %.3f ms, ratio %.3f\n", r, tc[P / 2], tb[P / 2], tb[P / 2] / tc[P / 2]);
    }
    return 0;
}
