#pragma once
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
#include <libavutil/imgutils.h>
#include <libavutil/error.h>
#include <libavutil/log.h>

// Function-like macros that Swift cannot import.
static inline int sl_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int sl_averror_etimedout(void) { return AVERROR(ETIMEDOUT); }
static inline int sl_averror_eof(void) { return AVERROR_EOF; }
static inline int sl_averror_exit(void) { return AVERROR_EXIT; }
static inline int64_t sl_av_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline int sl_averror_stream_not_found(void) { return AVERROR_STREAM_NOT_FOUND; }
static inline int sl_averror_decoder_not_found(void) { return AVERROR_DECODER_NOT_FOUND; }
static inline int sl_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }

// libav's own messages (printed with SIGHTLINE_FFMPEG_LOG=1) may quote a URL with its password, e.g.
// "Opening 'http://user:secret@cam/x.ts' for reading": this log callback masks the password as Sightline's
// own messages do (Capture's Redaction), then writes the line to stderr as libav's default callback would.
static void sl_redacting_log_callback(void *context, int level, const char *format, va_list arguments) {
    if (level > av_log_get_level()) return;
    char line[1024];
    int printPrefix = 1;
    av_log_format_line2(context, level, format, arguments, line, sizeof line, &printPrefix);
    char out[sizeof line + 8];
    size_t o = 0;
    const char *p = line;
    while (*p && o < sizeof out - 4) {
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            const char *end = p + 3, *at = NULL, *colon = NULL;
            for (; *end && !strchr("/?# \t\r\n\"'<>`", *end); end++) if (*end == '@') at = end;
            if (at) for (const char *q = p + 3; q < at; q++) if (*q == ':') { colon = q; break; }
            const char *keep = colon ? colon + 1 : end;
            while (p < keep && o < sizeof out - 4) out[o++] = *p++;
            if (colon) {
                memcpy(out + o, "***", 3);
                o += 3;
                p = at;
            }
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = 0;
    fputs(out, stderr);
}

static inline void sl_install_redacting_log(void) { av_log_set_callback(sl_redacting_log_callback); }
