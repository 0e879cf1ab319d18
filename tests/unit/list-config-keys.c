/* SPDX-License-Identifier: MIT */
/*
 * Prints what denvr.toml may hold, from the loader's own tables: "[SECTION]"
 * for each section, then "SECTION KEY" for each key.  tests/check-man.py
 * compares that with denvr.toml(5).
 */

#include <stdio.h>
#include <stdlib.h>

#include "common/config/config.h"

int main(void) {
        const char *s, *k;

        for (size_t i = 0; (s = config_known_section(i)); i++)
                printf("[%s]\n", s);
        for (size_t i = 0; (k = config_known_key(i, &s)); i++)
                printf("%s %s\n", s, k);
        return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
