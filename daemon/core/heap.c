/* SPDX-License-Identifier: MIT */
#include "daemon/core/heap.h"

#ifdef DENVRD_MIMALLOC
#include <mimalloc.h>
#include <stdbool.h>

void heap_trim(void) {
        mi_collect(true);
}
#else
#include <malloc.h>

void heap_trim(void) {
        (void) malloc_trim(0);
}
#endif
