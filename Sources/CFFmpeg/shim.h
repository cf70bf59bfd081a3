#pragma once
#include <errno.h>
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
#include <libavutil/imgutils.h>
#include <libavutil/error.h>

// Function-like macros that Swift cannot import.
static inline int sl_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int sl_averror_etimedout(void) { return AVERROR(ETIMEDOUT); }
static inline int sl_averror_eof(void) { return AVERROR_EOF; }
static inline int sl_averror_exit(void) { return AVERROR_EXIT; }
static inline int64_t sl_av_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline int sl_averror_stream_not_found(void) { return AVERROR_STREAM_NOT_FOUND; }
static inline int sl_averror_decoder_not_found(void) { return AVERROR_DECODER_NOT_FOUND; }
static inline int sl_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
