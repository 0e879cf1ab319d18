/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What every C unit test shares: CHECK(cond, fmt, ...) records a failure
 * with file, line, the condition and a printf-style reason, and goes on, so
 * one run reports every broken case.  Each test's main() ends with its own
 * summary from `checks` and `failures`.
 */

#include <stdio.h>

static unsigned failures, checks;

#define CHECK(cond, ...)                                                        \
        do {                                                                    \
                checks++;                                                       \
                if (!(cond)) {                                                  \
                        failures++;                                             \
                        fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond); \
                        fprintf(stderr, __VA_ARGS__);                           \
                        fputc('\n', stderr);                                    \
                }                                                               \
        } while (0)
