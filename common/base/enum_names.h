/* SPDX-License-Identifier: MIT */
#pragma once

/* Enum values to their names and back, through a table indexed by the enum. */

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/base/cleanup.h"

/* The name of v, "unknown" for a value the table lacks. */
static inline const char *enum_name(const char *const *names, size_t n, unsigned v) {
        return v < n && names[v] ? names[v] : "unknown";
}

/* The value named s, or -EINVAL. */
static inline int enum_from_name(const char *const *names, size_t n, const char *s) {
        for (size_t i = 0; s && i < n; i++)
                if (names[i] && strcmp(names[i], s) == 0)
                        return (int) i;
        return -EINVAL;
}

#define ENUM_NAME(names, v) enum_name((names), ELEMENTSOF(names), (unsigned) (v))
#define ENUM_FROM_NAME(names, s) enum_from_name((names), ELEMENTSOF(names), (s))
