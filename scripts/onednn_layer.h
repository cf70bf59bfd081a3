// Written by the Sightline team. What onednn_versions.c and onednn_impls.c share: reading a convolution of
// onednn_pass.py's list, and (oneDNN 2.x) its primitive descriptors with Sightline's layouts, scales and post-ops.
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define CHECK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) { fprintf(stderr, "%s:%d %s -> %d\n", __FILE__, __LINE__, #x, s_); exit(1); } } while (0)

typedef struct { long g, ic, oc, ih, iw, oh, ow, kh, kw, sh, sw, ph, pw; char src[8], dst[8]; double clip; int sum; } shape_t;

static int read_shape(FILE *f, shape_t *s) {
    return fscanf(f, "%ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %7s %7s %lf %d", &s->g, &s->ic, &s->oc, &s->ih, &s->iw,
                  &s->oh, &s->ow, &s->kh, &s->kw, &s->sh, &s->sw, &s->ph, &s->pw, s->src, s->dst, &s->clip, &s->sum) == 17;
}
static dnnl_data_type_t type(const char *s) { return !strcmp(s, "u8") ? dnnl_u8 : !strcmp(s, "s8") ? dnnl_s8 : !strcmp(s, "bf16") ? dnnl_bf16 : dnnl_f32; }
static dnnl_data_type_t weight_type(const shape_t *s) { return type(s->src) == dnnl_bf16 ? dnnl_bf16 : dnnl_s8; }
static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int ascending(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static const char *impl_of(const_dnnl_primitive_desc_t pd) { const char *s; dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s); return s; }
/// Sightline's choice: oneDNN's first implementation, except `brdgmm_dw` for a depthwise layer; never `ref`.
static int sightline_would_take(const char *impl, long groups) { return !strstr(impl, "ref") && !(groups > 1 && strstr(impl, "brdgmm")); }

#if DNNL_VERSION_MAJOR < 3
/// The layer's primitive descriptors in oneDNN's order of preference. The iterator reads the convolution's
/// descriptor as it goes, so that lives in the caller's `cd`; `bias` receives the bias's memory descriptor.
static dnnl_primitive_desc_iterator_t candidates(const shape_t *s, dnnl_engine_t eng, dnnl_convolution_desc_t *cd, dnnl_memory_desc_t *bias) {
    dnnl_dims_t sd = {1, s->ic, s->ih, s->iw}, dd = {1, s->oc, s->oh, s->ow}, bd = {s->oc}, strides = {s->sh, s->sw}, dil = {0, 0}, pl = {s->ph, s->pw};
    dnnl_dims_t pr = {(s->oh - 1) * s->sh + s->kh - s->ih - s->ph, (s->ow - 1) * s->sw + s->kw - s->iw - s->pw};
    dnnl_dims_t wd4 = {s->oc, s->ic, s->kh, s->kw}, wd5 = {s->g, s->oc / s->g, s->ic / s->g, s->kh, s->kw};
    dnnl_memory_desc_t smd, wmd, dmd;
    CHECK(dnnl_memory_desc_init_by_tag(&smd, 4, sd, type(s->src), dnnl_nhwc));
    CHECK(dnnl_memory_desc_init_by_tag(&dmd, 4, dd, type(s->dst), dnnl_nhwc));
    CHECK(dnnl_memory_desc_init_by_tag(&wmd, s->g > 1 ? 5 : 4, s->g > 1 ? wd5 : wd4, weight_type(s), dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(bias, 1, bd, dnnl_f32, dnnl_a));
    CHECK(dnnl_dilated_convolution_forward_desc_init(cd, dnnl_forward_inference, dnnl_convolution_direct, &smd, &wmd, bias, &dmd, strides, dil, pl, pr));
    dnnl_primitive_attr_t attr; CHECK(dnnl_primitive_attr_create(&attr));
    dnnl_post_ops_t po; CHECK(dnnl_post_ops_create(&po));
    if (weight_type(s) == dnnl_s8) {
        float *scales = malloc(s->oc * sizeof(float));
        for (int i = 0; i < s->oc; i++) scales[i] = 0.01f;
        CHECK(dnnl_primitive_attr_set_output_scales(attr, s->oc, 2, scales));
        free(scales);
    }
    if (s->clip > 0) CHECK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0, s->clip));
    if (s->sum) CHECK(dnnl_post_ops_append_sum_v2(po, 0.8f, dnnl_data_type_undef));
    CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
    dnnl_primitive_desc_iterator_t it;
    CHECK(dnnl_primitive_desc_iterator_create(&it, cd, attr, eng, NULL));
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return it;
}
#endif
