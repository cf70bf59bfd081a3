/* The libavfilter half of scripts/bench-drawing.sh: the same boxes and captions as Sightline's Annotator, drawn by
 * libavfilter's drawbox and drawtext on RGB24 frames, then the same MJPEG encode (swscale RGB24 -> YUVJ420P
 * bilinear, libavcodec's MJPEG encoder at qscale 4, one thread). Prints per-frame microseconds, mean of all
 * frames and rounds, for the drawing (commands + graph) and the encode.
 *
 *   bench_drawing_avfilter FRAMES.rgb BOXES.txt WIDTH HEIGHT ROUNDS FONTFILE [static-text]
 *
 * BOXES.txt: one line per box, `frame x0 y0 x1 y1 rrggbb inkrrggbb caption...` (inclusive pixel bounds and colours as
 * the Annotator computes them). The graph holds one drawbox and one drawtext per box of the busiest frame; per frame
 * each is moved with avfilter_graph_send_command (drawbox's x/y/w/h/c; drawtext in FFmpeg 5.1 only takes `reinit`,
 * sent only when its text, position or colour changed) and the unused ones are disabled (`enable`). With
 * `static-text` each drawtext keeps its first caption and place (wrong pictures: a lower bound, FreeType's rendering
 * without the reinit that moving a caption costs in this FFmpeg). */
#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BOXES 64
#define MAX_FRAMES 4096

typedef struct { int x0, y0, x1, y1; char color[8], ink[8], caption[64]; } Box;
typedef struct { int count; Box boxes[MAX_BOXES]; } FrameBoxes;

static FrameBoxes frames[MAX_FRAMES];

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void die(const char *what, int status) {
    char text[128] = "";
    if (status < 0) av_strerror(status, text, sizeof text);
    fprintf(stderr, "bench_drawing_avfilter: %s %s\n", what, text);
    exit(1);
}

static void command(AVFilterGraph *graph, const char *target, const char *cmd, const char *arg) {
    int status = avfilter_graph_send_command(graph, target, cmd, arg, NULL, 0, 0);
    if (status < 0) { fprintf(stderr, "%s %s %s: ", target, cmd, arg); die("command failed", status); }
}

int main(int argc, char **argv) {
    if (argc != 7 && !(argc == 8 && strcmp(argv[7], "static-text") == 0)) {
        fprintf(stderr, "usage: %s FRAMES.rgb BOXES.txt WIDTH HEIGHT ROUNDS FONTFILE [static-text]\n", argv[0]);
        return 2;
    }
    const int static_text = argc == 8;
    const int width = atoi(argv[3]), height = atoi(argv[4]), rounds = atoi(argv[5]);
    const char *font = argv[6];
    const size_t frame_bytes = (size_t)width * height * 3;

    FILE *raw = fopen(argv[1], "rb");
    if (!raw) die("cannot open the frames", 0);
    fseek(raw, 0, SEEK_END);
    long total = ftell(raw);
    fseek(raw, 0, SEEK_SET);
    int nframes = (int)(total / (long)frame_bytes);
    if (nframes > MAX_FRAMES) nframes = MAX_FRAMES;
    uint8_t *pixels = malloc(frame_bytes * nframes);
    if (!pixels || fread(pixels, frame_bytes, nframes, raw) != (size_t)nframes) die("cannot read the frames", 0);
    fclose(raw);

    FILE *list = fopen(argv[2], "r");
    if (!list) die("cannot open the boxes", 0);
    char line[256];
    int most = 0, nboxes = 0;
    while (fgets(line, sizeof line, list)) {
        int f, x0, y0, x1, y1, used = 0;
        char color[8], ink[8];
        if (sscanf(line, "%d %d %d %d %d %7s %7s %n", &f, &x0, &y0, &x1, &y1, color, ink, &used) < 7 || f < 0 || f >= nframes) continue;
        FrameBoxes *fb = &frames[f];
        if (fb->count == MAX_BOXES) continue;
        Box *b = &fb->boxes[fb->count++];
        *b = (Box){x0, y0, x1, y1};
        strcpy(b->color, color);
        strcpy(b->ink, ink);
        snprintf(b->caption, sizeof b->caption, "%s", line + used);
        b->caption[strcspn(b->caption, "\n")] = 0;
        if (fb->count > most) most = fb->count;
        nboxes++;
    }
    fclose(list);

    /* buffer -> drawbox@b0 .. drawbox@bN -> drawtext@t0 .. drawtext@tN -> buffersink, all RGB24. */
    AVFilterGraph *graph = avfilter_graph_alloc();
    graph->nb_threads = 1;
    AVFilterContext *src = NULL, *sink = NULL, *last;
    char args[512];
    snprintf(args, sizeof args, "video_size=%dx%d:pix_fmt=%d:time_base=1/25:pixel_aspect=1/1", width, height, AV_PIX_FMT_RGB24);
    int status = avfilter_graph_create_filter(&src, avfilter_get_by_name("buffer"), "in", args, NULL, graph);
    if (status < 0) die("buffer", status);
    status = avfilter_graph_create_filter(&sink, avfilter_get_by_name("buffersink"), "out", NULL, NULL, graph);
    if (status < 0) die("buffersink", status);
    enum AVPixelFormat formats[] = {AV_PIX_FMT_RGB24, AV_PIX_FMT_NONE};
    av_opt_set_int_list(sink, "pix_fmts", formats, AV_PIX_FMT_NONE, AV_OPT_SEARCH_CHILDREN);
    last = src;
    for (int i = 0; i < 2 * most; i++) {
        char name[16];
        AVFilterContext *filter = NULL;
        if (i < most) {
            snprintf(name, sizeof name, "b%d", i);
            status = avfilter_graph_create_filter(&filter, avfilter_get_by_name("drawbox"), name, "x=0:y=0:w=1:h=1:t=2:enable=0", NULL, graph);
        } else {
            snprintf(name, sizeof name, "t%d", i - most);
            snprintf(args, sizeof args, "fontfile=%s:fontsize=13:text=x:box=1:boxborderw=2:enable=0", font);
            status = avfilter_graph_create_filter(&filter, avfilter_get_by_name("drawtext"), name, args, NULL, graph);
        }
        if (status < 0) die(name, status);
        if ((status = avfilter_link(last, 0, filter, 0)) < 0) die("link", status);
        last = filter;
    }
    if ((status = avfilter_link(last, 0, sink, 0)) < 0) die("link", status);
    if ((status = avfilter_graph_config(graph, NULL)) < 0) die("graph", status);

    /* The encoder exactly as Sightline's JPEGEncoder sets it up. */
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    AVCodecContext *encoder = avcodec_alloc_context3(codec);
    encoder->width = width;
    encoder->height = height;
    encoder->pix_fmt = AV_PIX_FMT_YUVJ420P;
    encoder->color_range = AVCOL_RANGE_JPEG;
    encoder->time_base = (AVRational){1, 25};
    encoder->thread_count = 1;
    encoder->flags |= AV_CODEC_FLAG_QSCALE;
    encoder->global_quality = FF_QP2LAMBDA * 4;
    if ((status = avcodec_open2(encoder, codec, NULL)) < 0) die("mjpeg", status);
    AVFrame *yuv = av_frame_alloc();
    yuv->format = AV_PIX_FMT_YUVJ420P;
    yuv->width = width;
    yuv->height = height;
    yuv->color_range = AVCOL_RANGE_JPEG;
    if ((status = av_frame_get_buffer(yuv, 0)) < 0) die("yuv frame", status);
    struct SwsContext *scaler = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUVJ420P, SWS_BILINEAR, NULL, NULL, NULL);
    AVPacket *packet = av_packet_alloc();

    char shown[MAX_BOXES][256];  /* the drawtext arguments each instance has now */
    int enabled[2 * MAX_BOXES] = {0};
    memset(shown, 0, sizeof shown);
    double draw_us = 0, encode_us = 0;
    long bytes = 0, pts = 0;
    for (int round = 0; round < rounds; round++) {
        for (int f = 0; f < nframes; f++) {
            AVFrame *frame = av_frame_alloc();
            frame->format = AV_PIX_FMT_RGB24;
            frame->width = width;
            frame->height = height;
            frame->pts = pts++;
            if ((status = av_frame_get_buffer(frame, 0)) < 0) die("frame", status);
            for (int y = 0; y < height; y++)
                memcpy(frame->data[0] + (size_t)y * frame->linesize[0], pixels + frame_bytes * f + (size_t)y * width * 3, (size_t)width * 3);

            double start = now_us();
            const FrameBoxes *fb = &frames[f];
            for (int i = 0; i < most; i++) {
                char target[16], value[256];
                int on = i < fb->count;
                if (on != enabled[i]) {
                    snprintf(target, sizeof target, "b%d", i);
                    command(graph, target, "enable", on ? "1" : "0");
                    snprintf(target, sizeof target, "t%d", i);
                    command(graph, target, "enable", on ? "1" : "0");
                    enabled[i] = on;
                }
                if (!on) continue;
                const Box *b = &fb->boxes[i];
                snprintf(target, sizeof target, "b%d", i);
                snprintf(value, sizeof value, "%d", b->x0); command(graph, target, "x", value);
                snprintf(value, sizeof value, "%d", b->y0); command(graph, target, "y", value);
                snprintf(value, sizeof value, "%d", b->x1 - b->x0 + 1); command(graph, target, "w", value);
                snprintf(value, sizeof value, "%d", b->y1 - b->y0 + 1); command(graph, target, "h", value);
                snprintf(value, sizeof value, "0x%s", b->color); command(graph, target, "c", value);
                /* The caption on a strip of the box's colour above the box (inside it at the frame's top). */
                int top = b->y0 >= 17 ? b->y0 - 17 : b->y0;
                snprintf(value, sizeof value, "text='%s':x=%d:y=%d:fontcolor=0x%s:boxcolor=0x%s", b->caption, b->x0 + 2, top + 2, b->ink, b->color);
                if (strcmp(value, shown[i]) != 0 && !(static_text && shown[i][0])) {
                    snprintf(target, sizeof target, "t%d", i);
                    command(graph, target, "reinit", value);
                    strcpy(shown[i], value);
                }
            }
            if ((status = av_buffersrc_add_frame(src, frame)) < 0) die("push", status);
            if ((status = av_buffersink_get_frame(sink, frame)) < 0) die("pull", status);
            double drawn = now_us();

            av_frame_make_writable(yuv);
            sws_scale(scaler, (const uint8_t *const *)frame->data, frame->linesize, 0, height, yuv->data, yuv->linesize);
            yuv->pts = frame->pts;
            yuv->quality = encoder->global_quality;
            if ((status = avcodec_send_frame(encoder, yuv)) < 0) die("encode", status);
            if ((status = avcodec_receive_packet(encoder, packet)) < 0) die("encode", status);
            bytes += packet->size;
            if (round == 0 && f == 10 && getenv("BENCH_DRAWING_SAMPLE")) {  /* a picture to look at */
                FILE *sample = fopen(getenv("BENCH_DRAWING_SAMPLE"), "wb");
                if (sample) { fwrite(packet->data, 1, packet->size, sample); fclose(sample); }
            }
            av_packet_unref(packet);
            double encoded = now_us();
            draw_us += drawn - start;
            encode_us += encoded - drawn;
            av_frame_free(&frame);
        }
    }
    long n = (long)nframes * rounds;
    printf("{\"impl\":\"%s\",\"frames\":%d,\"rounds\":%d,\"boxes\":%d,\"draw_us\":%.1f,\"encode_us\":%.1f,\"jpeg_bytes\":%ld}\n",
           static_text ? "libavfilter-static-text" : "libavfilter", nframes, rounds, nboxes, draw_us / n, encode_us / n, bytes / n);
    return 0;
}
