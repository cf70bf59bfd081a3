#pragma once
#include <linux/videodev2.h>
#include <libv4l2.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/eventfd.h>

// ioctl request codes are macros built from _IOWR and friends; Swift cannot import them.
static inline unsigned long sl_vidioc_querycap(void) { return VIDIOC_QUERYCAP; }
static inline unsigned long sl_vidioc_enum_fmt(void) { return VIDIOC_ENUM_FMT; }
static inline unsigned long sl_vidioc_enum_framesizes(void) { return VIDIOC_ENUM_FRAMESIZES; }
static inline unsigned long sl_vidioc_enum_frameintervals(void) { return VIDIOC_ENUM_FRAMEINTERVALS; }
static inline unsigned long sl_vidioc_s_fmt(void) { return VIDIOC_S_FMT; }
static inline unsigned long sl_vidioc_g_fmt(void) { return VIDIOC_G_FMT; }
static inline unsigned long sl_vidioc_s_parm(void) { return VIDIOC_S_PARM; }
static inline unsigned long sl_vidioc_g_parm(void) { return VIDIOC_G_PARM; }
static inline unsigned long sl_vidioc_reqbufs(void) { return VIDIOC_REQBUFS; }
static inline unsigned long sl_vidioc_querybuf(void) { return VIDIOC_QUERYBUF; }
static inline unsigned long sl_vidioc_qbuf(void) { return VIDIOC_QBUF; }
static inline unsigned long sl_vidioc_dqbuf(void) { return VIDIOC_DQBUF; }
static inline unsigned long sl_vidioc_streamon(void) { return VIDIOC_STREAMON; }
static inline unsigned long sl_vidioc_streamoff(void) { return VIDIOC_STREAMOFF; }
static inline int sl_v4l2_ioctl(int fd, unsigned long request, void *arg) { return v4l2_ioctl(fd, request, arg); }
// Glibc's Swift module leaves out <sys/eventfd.h>; V4L2Source uses one to wake a blocked poll().
static inline int sl_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
