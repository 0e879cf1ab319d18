/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "denvrd"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "common/base/log.h"
#include "common/base/secret.h"
#include "common/config/config.h"
#include "daemon/core/daemon.h"
#include "daemon/core/peer_gate.h"
#include "daemon/main/cli.h"
#include "daemon/main/hygiene.h"
#include "daemon/main/new_token.h"
#include "daemon/policy/access.h"

static int load_config(const struct config_overrides *o, struct denvr_config **ret) {
        struct config_diag diag = { 0 };
        int r;

        r = config_load(o, ret, &diag);
        for (size_t i = 0; i < diag.n_warnings; i++)
                log_warning("%s", diag.warnings[i]);
        for (size_t i = 0; i < diag.n_errors; i++)
                log_error("%s", diag.errors[i]);
        config_diag_done(&diag);
        return r;
}

int main(int argc, char **argv) {
        _cleanup_(daemon_freep) struct daemon *d = NULL;
        struct denvr_config *config = NULL;
        struct cli_args args = { 0 };
        sigset_t mask;
        int r;

        r = cli_parse(argc, argv, &args);
        if (r != 0)
                return r > 0 ? r : 2;

        if (args.new_token) {
                r = new_token_print(args.new_token);
                cli_args_done(&args);
                return r;
        }
        log_open();
        if (args.check_config)
                return cli_check_config(&args.overrides);

        hygiene_apply();
        secret_use_wiping_json_allocator();

        if (load_config(&args.overrides, &config) < 0)
                return EXIT_FAILURE;
        log_set_max_level(config->log_level);
        peer_gate_warn_trust(config);

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                log_error("cannot initialise libcurl");
                config_free(config);
                return EXIT_FAILURE;
        }

        /* sd-event delivers these through a signalfd: block them first. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = daemon_new(config, &args.overrides, &d);
        if (r >= 0)
                r = daemon_run(d);

        d = daemon_free(d);
        curl_global_cleanup();
        cli_args_done(&args);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
