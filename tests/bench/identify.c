/* SPDX-License-Identifier: MIT */
/*
 * What identifying a TCP peer costs, per new connection: N rounds of
 *   - sock_diag      one NETLINK_SOCK_DIAG exact query (common/base/sock_diag.c);
 *   - identify       all of peer_identify_tcp() (daemon/core/peer.c): addresses,
 *                    the query, getpwuid_r() and getgrouplist();
 *   - /proc/net/tcp  for contrast, one full read of /proc/net/tcp and tcp6,
 *                    what the former lookup scanned (it stopped at 1 MiB);
 * first as they are, then with EXTRA more loopback connections open (twice as
 * many sockets; a child process holds the accepted ends).  Figures are CPU
 * time (user + system) per operation.
 *
 *   identify [ROUNDS [EXTRA]]     (defaults 20000 and 12000)
 *
 * Built and run by tests/bench/identify.sh.
 */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/base/sock_diag.h"
#include "daemon/core/peer.h"
#include "daemon/http/request.h"

/* CPU time of this process (user + system: the kernel's work for a query counts), not wall
 * time, which a busy machine inflates. */
static double now_sec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void die(const char *what) {
        perror(what);
        exit(1);
}

static int listener(struct sockaddr_in *a) {
        socklen_t len = sizeof *a;
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        memset(a, 0, sizeof *a);
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (l < 0 || bind(l, (struct sockaddr *) a, sizeof *a) < 0 || listen(l, 4096) < 0 ||
            getsockname(l, (struct sockaddr *) a, &len) < 0)
                die("listener");
        return l;
}

static int dial(const struct sockaddr_in *a) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct linger lg = { 1, 0 };   /* RST on close: no TIME_WAIT left behind */

        if (c < 0)
                die("socket");
        (void) setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        if (connect(c, (const struct sockaddr *) a, sizeof *a) < 0)
                die("connect");
        return c;
}

static size_t proc_net_read(void) {
        static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
        char buf[65536];
        size_t total = 0;

        for (size_t i = 0; i < 2; i++) {
                int fd = open(files[i], O_RDONLY | O_CLOEXEC);
                ssize_t n;

                if (fd < 0)
                        continue;
                while ((n = read(fd, buf, sizeof buf)) > 0)
                        total += (size_t) n;
                close(fd);
        }
        return total;
}

static void measure(const char *label, unsigned rounds) {
        struct sockaddr_in a;
        struct sockaddr_storage client, server;
        socklen_t clen = sizeof client, slen = sizeof server;
        int l = listener(&a), c = dial(&a), s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        struct sock_diag_owner o;
        struct sock_diag sd = SOCK_DIAG_INIT;
        unsigned proc_rounds = rounds / 100 ? rounds / 100 : 1;
        size_t bytes = 0;
        double t;

        if (s < 0 || getpeername(s, (struct sockaddr *) &client, &clen) < 0 ||
            getsockname(s, (struct sockaddr *) &server, &slen) < 0)
                die("accept");

        t = now_sec();
        for (unsigned i = 0; i < rounds; i++)
                if (sock_diag_query(&sd, (struct sockaddr *) &client, (struct sockaddr *) &server, &o) < 0 ||
                    o.uid != getuid())
                        die("sock_diag");
        printf("%-24s sock_diag       %8.2f us/lookup (the daemon's kept socket)\n", label,
               (now_sec() - t) * 1e6 / rounds);

        t = now_sec();
        for (unsigned i = 0; i < rounds; i++)
                if (sock_diag_tcp_owner((struct sockaddr *) &client, (struct sockaddr *) &server, &o) < 0)
                        die("sock_diag");
        printf("%-24s sock_diag, new  %8.2f us/lookup (a netlink socket each time)\n", label,
               (now_sec() - t) * 1e6 / rounds);

        t = now_sec();
        for (unsigned i = 0; i < rounds; i++) {
                struct peer p;

                memset(&p, 0, sizeof p);
                peer_identify_tcp(&p, s, &sd);
                if (!p.identified)
                        die("identify");
                peer_done(&p);
        }
        printf("%-24s identify        %8.2f us/connection (addresses, query, user database)\n", label,
               (now_sec() - t) * 1e6 / rounds);

        t = now_sec();
        for (unsigned i = 0; i < proc_rounds; i++)
                bytes = proc_net_read();
        printf("%-24s /proc/net/tcp   %8.2f us/read of %zu bytes (for contrast)\n", label,
               (now_sec() - t) * 1e6 / proc_rounds, bytes);
        sock_diag_done(&sd);
        close(c);
        close(s);
        close(l);
}

int main(int argc, char **argv) {
        unsigned rounds = argc > 1 ? (unsigned) strtoul(argv[1], NULL, 10) : 20000;
        unsigned extra = argc > 2 ? (unsigned) strtoul(argv[2], NULL, 10) : 12000;
        struct rlimit rl;
        struct sockaddr_in a;
        int l, ready[2], *fds;
        char label[64], ch;
        pid_t holder;

        if (rounds == 0)
                rounds = 1;
        measure("as is", rounds);
        if (extra == 0)
                return 0;

        /* Each process holds one end of every extra connection. */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        l = listener(&a);
        if (pipe(ready) < 0)
                die("pipe");
        holder = fork();
        if (holder < 0)
                die("fork");
        if (holder == 0) {
                for (unsigned i = 0; i < extra; i++)
                        if (accept4(l, NULL, NULL, SOCK_CLOEXEC) < 0)
                                die("holder accept");
                if (write(ready[1], "x", 1) != 1)
                        _exit(1);
                pause();
                _exit(0);
        }
        fds = calloc(extra, sizeof *fds);
        if (!fds)
                die("calloc");
        for (unsigned i = 0; i < extra; i++)
                fds[i] = dial(&a);
        if (read(ready[0], &ch, 1) != 1)
                die("holder");
        snprintf(label, sizeof label, "+%u connections", extra);
        measure(label, rounds);

        for (unsigned i = 0; i < extra; i++)
                close(fds[i]);
        free(fds);
        kill(holder, SIGTERM);
        waitpid(holder, NULL, 0);
        return 0;
}
