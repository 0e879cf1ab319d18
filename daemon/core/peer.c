/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "peer"
#include "daemon/core/peer.h"

#include <assert.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base/log.h"
#include "common/base/sock_diag.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59   /* Linux >= 4.13; the same value on every architecture */
#endif

/* NGROUPS_MAX of the kernel: no peer can have more. */
#define PEER_GROUPS_MAX 65536u
/* Bound on a getpwuid_r() buffer; entries are a few hundred bytes. */
#define PEER_PASSWD_BUF_MAX (1024u * 1024u)

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
        if (p->is_unix && p->identified && p->pid > 0) {
                snprintf(path, sizeof path, "/proc/%d/exe", (int) p->pid);
                n = readlink(path, buf, sizeof buf - 1);
        }
        if (n > 0)
                buf[n] = 0;
        p->exe = strdup(n > 0 ? buf : "?");
        return p->exe ? p->exe : "?";
}

int peer_user_groups(const char *name, gid_t gid, gid_t **ret, size_t *ret_n) {
        int n = 32;

        assert(name && ret && ret_n);
        for (;;) {
                _cleanup_free_ gid_t *g = malloc((size_t) n * sizeof(gid_t));
                int want = n;

                if (!g)
                        return -ENOMEM;
                if (getgrouplist(name, gid, g, &want) >= 0) {
                        *ret = TAKE_PTR(g);
                        *ret_n = (size_t) want;
                        return 0;
                }
                /* -1: want now says how many there are. */
                if (want <= n)
                        return -EIO;
                if ((unsigned) want > PEER_GROUPS_MAX)
                        return -E2BIG;
                n = want;
        }
}

void peer_identify_unix(struct peer *p, int fd) {
        struct ucred cred;
        socklen_t len = sizeof cred;
        int r;

        assert(p);
        p->is_unix = true;
        if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                p->unidentified = "SO_PEERCRED failed";
                return;
        }
        p->identified = p->gid_known = true;
        p->pid = cred.pid;
        p->uid = cred.uid;
        p->gid = cred.gid;
        /*
         * The groups come from the socket (the peer's credentials at
         * connect()), not from /proc/PID/status: that is racy, and
         * ProtectProc=invisible hides other users' processes from us.
         */
        r = peer_fetch_groups(fd, &p->groups, &p->n_groups);
        if (r < 0)
                log_debug("SO_PEERGROUPS failed for pid %d: %s; only the primary group counts",
                          (int) p->pid, strerror(-r));
        p->groups_known = r >= 0;
}

/*
 * A TCP peer's groups are those of its uid in the user database: the kernel
 * records only the uid with a socket.  So they are the groups a new login
 * of that user would get, not those of the very process (a process that
 * dropped a group keeps it here); the unix socket tells the process's own.
 */
static void identify_groups(struct peer *p) {
        _cleanup_free_ char *buf = NULL;
        struct passwd pw, *found = NULL;
        long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
        size_t size = hint > 0 ? (size_t) hint : 4096;
        int r;

        for (;;) {
                free(buf);
                buf = malloc(size);
                if (!buf)
                        return;
                r = getpwuid_r(p->uid, &pw, buf, size, &found);
                if (r != ERANGE || size >= PEER_PASSWD_BUF_MAX)
                        break;
                size *= 2;
        }
        if (r != 0 || !found) {
                log_debug("uid %u has no entry in the user database (%s): only allowed_uids can name it",
                          (unsigned) p->uid, r ? strerror(r) : "not found");
                return;
        }
        p->gid = pw.pw_gid;
        p->gid_known = true;
        r = peer_user_groups(pw.pw_name, pw.pw_gid, &p->groups, &p->n_groups);
        if (r < 0)
                log_debug("cannot list the groups of %s: %s; only the primary group counts", pw.pw_name,
                          strerror(-r));
        p->groups_known = r >= 0;
}

void peer_cache_clear(struct peer_cache *c) {
        for (size_t i = 0; i < PEER_CACHE_SLOTS; i++)
                free(c->e[i].groups);
        *c = (struct peer_cache) { .next = 0 };
}

static int groups_copy(const gid_t *g, size_t n, gid_t **ret) {
        *ret = NULL;
        if (n == 0)
                return 0;
        *ret = malloc(n * sizeof *g);
        if (!*ret)
                return -ENOMEM;
        memcpy(*ret, g, n * sizeof *g);
        return 0;
}

static struct peer_cache_entry *cache_find(struct peer_cache *c, uid_t uid, uint64_t now) {
        for (size_t i = 0; i < PEER_CACHE_SLOTS; i++)
                if (c->e[i].used && c->e[i].uid == uid && now - c->e[i].at_usec < PEER_CACHE_USEC)
                        return &c->e[i];
        return NULL;
}

/* p's gid and groups from a fresh cache entry; false when there is none (or no memory). */
static bool groups_from_cache(struct peer *p, struct peer_cache *c, uint64_t now) {
        const struct peer_cache_entry *e = cache_find(c, p->uid, now);

        if (!e || groups_copy(e->groups, e->n_groups, &p->groups) < 0)
                return false;
        p->gid_known = e->gid_known;
        p->gid = e->gid;
        p->n_groups = e->n_groups;
        p->groups_known = e->groups_known;
        return true;
}

static void groups_to_cache(const struct peer *p, struct peer_cache *c, uint64_t now) {
        struct peer_cache_entry *e = NULL;
        gid_t *copy;

        for (size_t i = 0; i < PEER_CACHE_SLOTS && !e; i++)
                if (c->e[i].used && c->e[i].uid == p->uid)
                        e = &c->e[i];
        if (!e) {
                e = &c->e[c->next];
                c->next = (c->next + 1) % PEER_CACHE_SLOTS;
        }
        if (groups_copy(p->groups, p->n_groups, &copy) < 0)
                return;
        free(e->groups);
        *e = (struct peer_cache_entry) {
                .used = true, .uid = p->uid, .at_usec = now, .gid_known = p->gid_known, .gid = p->gid,
                .groups = copy, .n_groups = p->n_groups, .groups_known = p->groups_known,
        };
}

void peer_identify_tcp(struct peer *p, int fd, struct sock_diag *sd) {
        peer_identify_tcp_cached(p, fd, sd, NULL, 0);
}

void peer_identify_tcp_cached(struct peer *p, int fd, struct sock_diag *sd, struct peer_cache *cache,
                              uint64_t now) {
        struct sockaddr_storage client, server;
        socklen_t clen = sizeof client, slen = sizeof server;
        struct sock_diag_owner o;
        int r;

        assert(p && !p->is_unix && sd);
        if (fd < 0 || getpeername(fd, (struct sockaddr *) &client, &clen) < 0 ||
            getsockname(fd, (struct sockaddr *) &server, &slen) < 0) {
                p->unidentified = "the connection's addresses cannot be read";
                return;
        }
        /* The client's socket is the one whose local end is the client and remote end is us. */
        r = sock_diag_query(sd, (struct sockaddr *) &client, (struct sockaddr *) &server, &o);
        if (r == -ENOENT) {
                p->unidentified = "no socket of this host has the client's address and port: it "
                                  "connects from another host or network namespace";
                return;
        }
        if (r < 0) {
                log_warning("cannot ask the kernel who owns the client socket %s (NETLINK_SOCK_DIAG): %s",
                            p->addr, strerror(-r));
                p->unidentified = "the kernel's socket diagnostics (NETLINK_SOCK_DIAG) did not answer";
                return;
        }
        /*
         * No inode: no process holds the socket any more (closed right after
         * sending, or TIME_WAIT); the kernel may then report uid 0.
         */
        if (o.inode == 0) {
                p->unidentified = "the client closed its socket before denvrd could tell whose it is";
                return;
        }
        p->identified = true;
        p->uid = o.uid;
        if (cache && groups_from_cache(p, cache, now))
                return;
        identify_groups(p);
        if (cache)
                groups_to_cache(p, cache, now);
}
