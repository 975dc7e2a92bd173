#ifndef LEVCHAT_CLINUXEXTRAS_SHIM_H
#define LEVCHAT_CLINUXEXTRAS_SHIM_H

/* What Swift's Glibc module leaves out and levchat-peer uses. Part of glibc: nothing to link.
   - Extended attributes, which mark which offer a download's .part holds (Docs/ARCHITECTURE.md,
     "Files").
   - A thread's name (what `top -H` and `perf` show): prctl is variadic, which Swift cannot call,
     and pthread_setname_np is declared only with _GNU_SOURCE. */
#include <sys/xattr.h>
#include <sys/prctl.h>

/* Names the calling thread; the kernel keeps the first 15 bytes. */
static inline void levchat_name_this_thread(const char *name) {
    prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

#endif
