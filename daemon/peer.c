/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "peer"
#include "peer.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "request.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59   /* Linux >= 4.13; the same value on every architecture */
#endif

/* NGROUPS_MAX of the kernel: no peer can have more. */
#define PEER_GROUPS_MAX 65536u

void peer_done(struct peer *p) {
        if (!p)
                return;
        free(p->groups);
        p->groups = NULL;
        p->n_groups = 0;
        free(p->exe);
        p->exe = NULL;
}

int peer_fetch_groups(int fd, gid_t **ret, size_t *ret_n) {
        socklen_t len = 32 * sizeof(gid_t);

        assert(ret && ret_n);
        for (;;) {
                _cleanup_free_ gid_t *g = malloc(len > 0 ? len : sizeof(gid_t));

                if (!g)
                        return -ENOMEM;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
                        *ret = TAKE_PTR(g);
                        *ret_n = len / sizeof(gid_t);
                        return 0;
                }
                /* ERANGE: len now says how much room the list needs. */
                if (errno != ERANGE)
                        return -errno;
                if (len > PEER_GROUPS_MAX * sizeof(gid_t))
                        return -E2BIG;
        }
}

const char *peer_exe(struct peer *p) {
        char path[64], buf[PATH_MAX];
        ssize_t n;

        if (p->exe)
                return p->exe;
        /*
         * Fails for processes of other users (ptrace access is needed), for
         * peers in another pid namespace (pid 0) and under ProtectProc=invisible:
         * the audit then says "?", the uid and pid are still exact.
         */
        n = -1;
        if (p->is_unix && p->has_cred && p->pid > 0) {
                snprintf(path, sizeof path, "/proc/%d/exe", (int) p->pid);
                n = readlink(path, buf, sizeof buf - 1);
        }
        if (n > 0)
                buf[n] = 0;
        p->exe = strdup(n > 0 ? buf : "?");
        return p->exe ? p->exe : "?";
}

/* Both ends as IPv6 (IPv4 as ::ffff:a.b.c.d), so tcp and tcp6 entries compare alike. */
struct endpoint {
        uint8_t addr[16];
        unsigned port;
};

static bool endpoint_from_sockaddr(const struct sockaddr *sa, struct endpoint *e) {
        memset(e, 0, sizeof *e);
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) (const void *) sa;

                e->addr[10] = e->addr[11] = 0xff;
                memcpy(e->addr + 12, &in->sin_addr, 4);
                e->port = ntohs(in->sin_port);
                return true;
        }
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) (const void *) sa;

                memcpy(e->addr, &in6->sin6_addr, 16);
                e->port = ntohs(in6->sin6_port);
                return true;
        }
        return false;
}

/*
 * "0100007F:D431" (tcp) or 32 hex digits and a port (tcp6).  The kernel
 * prints each 32-bit word of the address as a host-order integer; parsing it
 * back into an integer and copying its bytes restores the network-order
 * address on any architecture.
 */
static bool endpoint_from_proc(const char *s, size_t len, struct endpoint *e) {
        const char *colon = memchr(s, ':', len);
        size_t hex;
        unsigned long port;
        char word[9], *end;

        if (!colon)
                return false;
        hex = (size_t) (colon - s);
        if (hex != 8 && hex != 32)
                return false;
        memset(e, 0, sizeof *e);
        for (size_t w = 0; w < hex / 8; w++) {
                uint32_t v;

                memcpy(word, s + 8 * w, 8);
                word[8] = 0;
                v = (uint32_t) strtoul(word, &end, 16);
                if (*end)
                        return false;
                if (hex == 8) {
                        e->addr[10] = e->addr[11] = 0xff;
                        memcpy(e->addr + 12, &v, 4);
                } else
                        memcpy(e->addr + 4 * w, &v, 4);
        }
        port = strtoul(colon + 1, &end, 16);
        if (end != s + len || port > 65535)
                return false;
        e->port = (unsigned) port;
        return true;
}

static bool endpoint_equal(const struct endpoint *a, const struct endpoint *b) {
        return a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

/* One line: "  N: LOCAL REMOTE ST TXQ:RXQ TR:WHEN RETR UID ...".  0 on a match. */
static int parse_line(char *line, const struct endpoint *client, const struct endpoint *server,
                      uid_t *ret) {
        char *field[8];
        size_t n = 0;
        struct endpoint local, remote;
        unsigned long st, uid;
        char *save = NULL, *end;

        for (char *t = strtok_r(line, " \t", &save); t && n < ELEMENTSOF(field);
             t = strtok_r(NULL, " \t", &save))
                field[n++] = t;
        if (n < 8)
                return -ENOENT;
        if (!endpoint_from_proc(field[1], strlen(field[1]), &local) ||
            !endpoint_from_proc(field[2], strlen(field[2]), &remote))
                return -ENOENT;
        if (!endpoint_equal(&local, client) || !endpoint_equal(&remote, server))
                return -ENOENT;
        st = strtoul(field[3], &end, 16);
        /* TIME_WAIT (06) entries carry no owner; LISTEN (0A) cannot be a client. */
        if (*end || st == 0x06 || st == 0x0A)
                return -ENOENT;
        errno = 0;
        uid = strtoul(field[7], &end, 10);
        if (errno || *end || uid >= UINT32_MAX)
                return -ENOENT;
        *ret = (uid_t) uid;
        return 0;
}

int peer_proc_net_tcp_find(const char *path, const struct sockaddr *client,
                           const struct sockaddr *server, size_t max_bytes, size_t *bytes_read,
                           uid_t *ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct endpoint c, s;
        size_t have = 0;

        if (!endpoint_from_sockaddr(client, &c) || !endpoint_from_sockaddr(server, &s))
                return -EAFNOSUPPORT;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        buf = malloc(max_bytes + 1);
        if (!buf)
                return -ENOMEM;

        /*
         * Read in pieces and parse complete lines as they come; stop at
         * max_bytes so a host with many thousands of sockets costs us a
         * bounded amount of work (the lookup then just says "unknown").
         */
        for (size_t total = 0; total < max_bytes;) {
                /* have <= total, so this never overruns buf. */
                ssize_t k = read(fd, buf + have, max_bytes - total);
                char *line, *nl;

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                if (bytes_read)
                        *bytes_read += (size_t) k;
                total += (size_t) k;
                have += (size_t) k;
                buf[have] = 0;
                line = buf;
                while ((nl = memchr(line, '\n', have - (size_t) (line - buf)))) {
                        *nl = 0;
                        /* The header line never parses as an entry. */
                        if (parse_line(line, &c, &s, ret) == 0)
                                return 0;
                        line = nl + 1;
                }
                /* Keep the incomplete tail for the next read. */
                have -= (size_t) (line - buf);
                memmove(buf, line, have);
                if (have >= max_bytes)
                        break;   /* a line longer than the whole budget: give up */
        }
        return -ENOENT;
}

/*
 * The process-wide read budget (see peer.h): a token bucket in bytes that
 * refills at PEER_PROC_NET_BUDGET_BYTES per second up to that much.  A scan
 * may overdraw it once; the next waits until it is positive again.  Kept
 * here rather than in struct daemon, like a log rate limit: it guards a
 * cost, not state anyone else needs.
 */
static int64_t budget_bytes = PEER_PROC_NET_BUDGET_BYTES;
static uint64_t budget_usec;

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static bool budget_take(void) {
        uint64_t now = now_usec();

        if (budget_usec != 0 && now > budget_usec) {
                uint64_t elapsed = now - budget_usec;

                /* A whole second refills it all; capping first also keeps the product small. */
                if (elapsed >= 1000000u)
                        budget_bytes = PEER_PROC_NET_BUDGET_BYTES;
                else
                        budget_bytes += (int64_t) (elapsed * PEER_PROC_NET_BUDGET_BYTES / 1000000u);
                if (budget_bytes > (int64_t) PEER_PROC_NET_BUDGET_BYTES)
                        budget_bytes = PEER_PROC_NET_BUDGET_BYTES;
        }
        budget_usec = now;
        return budget_bytes > 0;
}

int peer_tcp_uid(struct conn_ctx *ctx) {
        struct peer *p = &ctx->peer;
        struct sockaddr_storage client, server;
        socklen_t clen = sizeof client, slen = sizeof server;
        static const char *const files[2] = { "/proc/net/tcp", "/proc/net/tcp6" };
        size_t bytes = 0;
        uid_t uid;
        int r = -ENOENT;

        if (p->is_unix)
                return -1;
        if (p->tcp_uid != -2)
                return p->tcp_uid;
        p->tcp_uid = -1;
        if (ctx->fd < 0 || getpeername(ctx->fd, (struct sockaddr *) &client, &clen) < 0 ||
            getsockname(ctx->fd, (struct sockaddr *) &server, &slen) < 0)
                return -1;
        if (!budget_take()) {
                log_debug("not looking up the owner of %s: /proc/net/tcp read budget used up", p->addr);
                return -1;
        }

        /*
         * The client's socket is in tcp for an IPv4 client, in tcp6 for an
         * IPv6 one and also for a dual-stack client socket reaching our IPv4
         * listener through a v4-mapped address; search the likely file first.
         */
        for (size_t i = 0; i < ELEMENTSOF(files) && r < 0; i++) {
                size_t k = client.ss_family == AF_INET6 ? 1 - i : i;

                r = peer_proc_net_tcp_find(files[k], (struct sockaddr *) &client,
                                           (struct sockaddr *) &server, PEER_PROC_NET_MAX_BYTES, &bytes,
                                           &uid);
        }
        budget_bytes -= (int64_t) bytes;
        if (r < 0) {
                log_debug("cannot find the owner of %s in /proc/net/tcp{,6}: %s", p->addr, strerror(-r));
                return -1;
        }
        if (uid <= (uid_t) INT_MAX)
                p->tcp_uid = (int) uid;
        return p->tcp_uid;
}
