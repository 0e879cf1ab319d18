/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "denvrd-version.h"

int main(void) {
        printf("denvrd %s\n", DENVRD_VERSION);
        return 0;
}
