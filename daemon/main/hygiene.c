/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "denvrd"
#include "daemon/main/hygiene.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/log.h"

#define NOFILE_WANTED 65536

void hygiene_apply(void) {
        struct rlimit rl = { 0, 0 };

        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                log_warning_errno(errno, "cannot disable core dumps (PR_SET_DUMPABLE)");
        if (setrlimit(RLIMIT_CORE, &rl) < 0)
                log_warning_errno(errno, "cannot set RLIMIT_CORE to 0");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                log_warning_errno(errno, "cannot set PR_SET_NO_NEW_PRIVS");
        umask(0077);

        /* Every client connection is a descriptor: raise the soft limit. */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < NOFILE_WANTED) {
                rl.rlim_cur = rl.rlim_max < NOFILE_WANTED ? rl.rlim_max : NOFILE_WANTED;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }

        (void) signal(SIGPIPE, SIG_IGN);

        if (geteuid() == 0)
                log_warning("running as root: denvrd needs no privileges; run it as the user whose "
                            "credentials it holds, or as the dedicated system user of denvrd.service");
}
