// Written by the Sightline team. oneDNN 2.x only. For each convolution of a pass (onednn_pass.py's list) builds
// the AVX-512 implementations oneDNN offers (not ref, gemm, AVX2 or SSE4.1; the first 8 distinct ones), times each alone (5 interleaved rounds
// of ITERS runs), then times whole passes alternately with Sightline's choice (oneDNN's first, a depthwise layer
// skipping brdgmm_dw) and with each layer's fastest: what per-layer tuning could gain.
// usage: onednn_impls LAYERS [ITERS]   (OMP_NUM_THREADS=1 for one thread)
#include "onednn_layer.h"
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
    int n = 0; shape_t s;
    while (n < 256 && read_shape(f, &s)) {
        dnnl_convolution_desc_t cd; dnnl_memory_desc_t bmd;
        dnnl_primitive_desc_iterator_t itr = candidates(&s, eng, &cd, &bmd);
        layer_t *l = &L[n]; l->n = 0; l->cur = -1; l->g = s.g; l->kh = s.kh;
        do {
            dnnl_primitive_desc_t pd = dnnl_primitive_desc_iterator_fetch(itr);
            const char *impl = impl_of(pd);
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
            if (l->cur < 0 && sightline_would_take(impl, s.g)) l->cur = l->n;
            l->n++;
            dnnl_primitive_desc_destroy(pd);
        } while (dnnl_primitive_desc_iterator_next(itr) == dnnl_success);
        dnnl_primitive_desc_iterator_destroy(itr);
        if (l->cur < 0) { fprintf(stderr, "layer %d: no AVX-512 implementation\n", n); return 1; }
        n++;
    }
    // isolated per-candidate timing, interleaved rounds
    double *t = malloc(iters * sizeof(double));
    for (int i = 0; i < n; i++) {
        double acc[8] = {0};
        for (int r = 0; r < 5; r++) for (int k = 0; k < L[i].n; k++) {
            for (int it = -5; it < iters; it++) { double t0 = now_ms(); exec1(st, &L[i].c[k]); if (it >= 0) t[it] = now_ms() - t0; }
            qsort(t, iters, sizeof(double), ascending); acc[k] += t[iters / 2] * 1000 / 5;
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
            for (int it = -20; it < P; it++) { double t0 = now_ms(); for (int i = 0; i < n; i++) exec1(st, &L[i].c[pol ? L[i].best : L[i].cur]); if (it >= 0) tt[it] = now_ms() - t0; }
            qsort(tt, P, sizeof(double), ascending);
        }
        printf("round %d: current %.3f ms, tuned %.3f ms, ratio %.3f\n", r, tc[P / 2], tb[P / 2], tb[P / 2] / tc[P / 2]);
    }
    return 0;
}
