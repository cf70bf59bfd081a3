#pragma once
#include <dnnl.h>
#include <dlfcn.h>

// The Debian oneDNN build runs on GNU OpenMP, whose thread count is per calling thread.
// libgomp is only an indirect dependency (through libdnnl), so reach it at run time.
static inline int sl_omp_set_num_threads(int n) {
    void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (!set) return -1;
    set(n);
    return 0;
}
