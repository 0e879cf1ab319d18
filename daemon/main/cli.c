/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "cli"
#include "daemon/main/cli.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/log.h"
#include "denvrd-version.h"

void cli_usage(FILE *f) {
        fprintf(f,
                "Usage: denvrd [OPTIONS]\n"
                "\n"
                "Local authenticating proxy for the Denvr Cloud API: serves the API unauthenticated on\n"
                "loopback and a unix socket, and forwards to Denvr Cloud with your credentials.\n"
                "\n"
                "  -c, --config PATH       configuration file (default: $DENVR_CONFIG, else\n"
                "                          ~/.config/denvr.toml, the file the Denvr SDKs read)\n"
                "      --check-config      check the configuration, print it as JSON with secrets\n"
                "                          shown as \"***\", and exit (1 if it has errors)\n"
                "      --new-token NAME    print a new local token once, and the lines to add to\n"
                "                          denvr.toml (which keeps only its SHA-256), and exit\n"
                "  -l, --listen HOST:PORT  listen on HOST:PORT ([::1]:PORT for IPv6); repeat for more;\n"
                "                          replaces [daemon] listen (default 127.0.0.1:%d)\n"
                "  -s, --socket PATH       unix socket path, replaces [daemon] socket; \"\" for none\n"
                "      --log-level LEVEL   error, warning, notice, info or debug; replaces [daemon] log_level\n"
                "  -V, --version           print the version and exit\n"
                "  -h, --help              print this help and exit\n"
                "\n"
                "Environment: DENVR_CONFIG, DENVR_APIKEY, DENVR_USERNAME, DENVR_PASSWORD override the file;\n"
                "CREDENTIALS_DIRECTORY (systemd LoadCredential=) may hold denvr-apikey or denvr-password.\n",
                DENVRD_DEFAULT_PORT);
}

/* Prints "denvrd: MESSAGE" (if any) and the usage to stderr; returns exit status 2. */
_printf_(1, 2)
static int usage_error(const char *fmt, ...) {
        va_list ap;

        if (fmt) {
                fprintf(stderr, "denvrd: ");
                va_start(ap, fmt);
                vfprintf(stderr, fmt, ap);
                va_end(ap);
                fputc('\n', stderr);
        }
        cli_usage(stderr);
        return 2;
}

void cli_args_done(struct cli_args *a) {
        if (!a)
                return;
        strv_free(a->listen);
        *a = (struct cli_args) { 0 };
}

static int listen_add(struct cli_args *a, const char *s) {
        size_t n = strv_length(a->listen);
        char **l = reallocarray(a->listen, n + 2, sizeof *l);

        if (!l)
                return -ENOMEM;
        a->listen = l;
        l[n] = strdup(s);
        l[n + 1] = NULL;
        return l[n] ? 0 : -ENOMEM;
}

enum {
        ARG_CHECK_CONFIG = 0x100,
        ARG_LOG_LEVEL,
        ARG_NEW_TOKEN,
};

static const struct option options[] = {
        { "config",       required_argument, NULL, 'c' },
        { "check-config", no_argument,       NULL, ARG_CHECK_CONFIG },
        { "listen",       required_argument, NULL, 'l' },
        { "socket",       required_argument, NULL, 's' },
        { "log-level",    required_argument, NULL, ARG_LOG_LEVEL },
        { "new-token",    required_argument, NULL, ARG_NEW_TOKEN },
        { "version",      no_argument,       NULL, 'V' },
        { "help",         no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
};

/* One option into a: 0, what cli_parse() returns on an error, or -1 when it asked
 * only for the version or the help (printed). */
static int apply_option(struct cli_args *a, int c) {
        switch (c) {
        case 'c':
                if (!*optarg)
                        return usage_error("--config needs a path");
                a->overrides.config_path = optarg;
                return 0;
        case ARG_CHECK_CONFIG:
                a->check_config = true;
                return 0;
        case 'l':
                if (listen_add(a, optarg) >= 0)
                        return 0;
                fprintf(stderr, "denvrd: out of memory\n");
                return 1;
        case 's':
                a->overrides.socket = optarg;
                return 0;
        case ARG_LOG_LEVEL:
                if (log_level_from_string(optarg) < 0)
                        return usage_error("--log-level: unknown level \"%s\" "
                                           "(expected error, warning, notice, info or debug)", optarg);
                a->overrides.log_level = optarg;
                return 0;
        case ARG_NEW_TOKEN:
                a->new_token = optarg;
                return 0;
        case 'V':
                printf("denvrd %s\n", DENVRD_VERSION);
                return -1;
        case 'h':
                cli_usage(stdout);
                return -1;
        default:
                /* getopt_long already said what was wrong. */
                return usage_error(NULL);
        }
}

int cli_parse(int argc, char **argv, struct cli_args *ret) {
        struct cli_args a = { 0 };
        int c, k = 0;

        assert(argc >= 0);
        assert(ret);

        optind = 0;     /* glibc: full re-initialisation, so tests may parse twice */
        while (k == 0 && (c = getopt_long(argc, argv, "c:l:s:Vh", options, NULL)) >= 0)
                k = apply_option(&a, c);
        if (k == 0 && optind < argc)
                k = usage_error("unexpected argument \"%s\"", argv[optind]);
        if (k != 0) {
                cli_args_done(&a);
                if (k < 0)
                        exit(EXIT_SUCCESS);
                return k;
        }
        a.overrides.listen = a.listen;
        *ret = a;
        return 0;
}

int cli_check_config(const struct config_overrides *o) {
        _cleanup_config_free_ struct denvr_config *c = NULL;
        _cleanup_free_ char *json = NULL;
        struct config_overrides copy;
        struct config_diag d = { 0 };
        int r;

        assert(o);

        /* --check-config is the place to learn that credentials are missing. */
        copy = *o;
        copy.allow_no_credentials = false;

        r = config_load(&copy, &c, &d);
        for (size_t i = 0; i < d.n_warnings; i++)
                fprintf(stderr, "warning: %s\n", d.warnings[i]);
        for (size_t i = 0; i < d.n_errors; i++)
                fprintf(stderr, "error: %s\n", d.errors[i]);
        config_diag_done(&d);
        if (r == -ENOMEM)
                fprintf(stderr, "error: out of memory\n");
        if (r < 0)
                return 1;

        json = config_to_json(c);
        if (!json) {
                fprintf(stderr, "error: out of memory\n");
                return 1;
        }
        printf("%s\n", json);
        return fflush(stdout) == 0 ? 0 : 1;
}
