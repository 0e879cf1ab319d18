/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "new-token"
#include "daemon/main/new_token.h"

#include <stdio.h>
#include <string.h>

#include "common/config/local_token.h"

int new_token_print(const char *name) {
        char token[LOCAL_TOKEN_MAX], hash[LOCAL_TOKEN_HASH_TEXT_MAX];
        int r;

        if (!local_token_name_valid(name)) {
                fprintf(stderr, "denvrd: --new-token: a token name is 1 to %d characters from "
                        "A-Z a-z 0-9 _ - (such as vm-7)\n", LOCAL_TOKEN_NAME_MAX);
                return 2;
        }
        r = local_token_generate(token);
        if (r < 0) {
                fprintf(stderr, "denvrd: --new-token: no random bytes: %s\n", strerror(-r));
                return 1;
        }
        local_token_hash_text(token, strlen(token), hash);
        printf("%s\n"
               "\n"
               "# The token above is shown this once: give it to the client as its API key (the SDK's\n"
               "# [credentials] apikey, or \"Authorization: ApiKey TOKEN\"). denvr.toml keeps only its hash.\n"
               "# Add these lines to the [tokens] and [rights] sections of denvr.toml, then reload denvrd:\n"
               "\n"
               "[tokens]\n"
               "%s = \"%s\"\n"
               "\n"
               "[rights]\n"
               "\"token:%s\" = \"read-only\"   # or \"full\", or a list: [\"servers/virtual/StopServer?id=vm-7\"]\n",
               token, name, hash, name);
        explicit_bzero(token, sizeof token);
        return fflush(stdout) == 0 ? 0 : 1;
}
