/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Command line: getopt_long parsing into config overrides, and
 * --check-config.  See cli_usage() for the flags.
 */

#include <stdbool.h>
#include <stdio.h>

#include "common/config/config.h"

struct cli_args {
        /* What config_load() needs; the pointers in it stay valid until cli_args_done(). */
        struct config_overrides overrides;
        bool check_config;
        const char *new_token;  /* --new-token NAME */
        char **listen;          /* owns overrides.listen */
};

/*
 * Parses argv into *ret (which the caller zero-initialises).  Returns 0 to
 * go on, or a positive exit status after printing a message and the usage to
 * stderr (2 for a bad command line).  --help and --version print to stdout
 * and exit(0) right here: 0 could not be told apart from "go on", and
 * nothing needs cleaning up that early.
 */
int cli_parse(int argc, char **argv, struct cli_args *ret);
void cli_args_done(struct cli_args *a);

/*
 * --check-config: loads the configuration (credentials required), prints
 * warnings and errors to stderr, and on success the effective configuration
 * as JSON (secrets as "***") to stdout.  Returns the exit status: 0, or 1 if
 * there were errors.
 */
int cli_check_config(const struct config_overrides *o);

void cli_usage(FILE *f);
