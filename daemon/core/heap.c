/* SPDX-License-Identifier: MIT */
#include "daemon/core/heap.h"

#ifdef DENVRD_MIMALLOC
#include <mimalloc.h>
#else
#include <malloc.h>
#endif
#include <stdbool.h>

void heap_trim(void) {
#ifdef DENVRD_MIMALLOC
        mi_collect(true);
#else
        (void) malloc_trim(0);
#endif
}
