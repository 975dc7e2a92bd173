#ifndef LEVCHAT_CLINUXEXTRAS_SHIM_H
#define LEVCHAT_CLINUXEXTRAS_SHIM_H

/* What Swift's Glibc module leaves out and levchat-peer uses: extended attributes, which mark
   which offer a download's .part holds (Docs/ARCHITECTURE.md, "Files"). Part of glibc: nothing
   to link. */
#include <sys/xattr.h>

#endif
