/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * denvrd --new-token NAME: prints a new local token once, on the first line
 * of stdout, and after it the lines to add to denvr.toml, which hold only the
 * token's SHA-256.  denvrd never stores the token itself anywhere.
 */

/* Returns the exit status: 0, 1 when no randomness, 2 for a bad name. */
int new_token_print(const char *name);
