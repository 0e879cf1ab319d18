/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Who is on the other end of a new connection, asked of the kernel once,
 * when it is accepted (server.c), and kept in struct peer (below) for all
 * its requests:
 *
 *   - unix socket: SO_PEERCRED (uid, gid, pid) and SO_PEERGROUPS (groups),
 *     the connecting process's credentials at connect();
 *   - TCP: the uid owning the client's socket, from the kernel's socket
 *     diagnostics (sock_diag.h: an exact query for the connection's
 *     addresses and ports), and that user's primary group and groups from
 *     the user database (getpwuid_r, getgrouplist).
 *
 * Afterwards nothing needs to know the transport to know who asked.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sock_diag;

/*
 * Who is on the other end of a connection: filled once when it is accepted
 * (peer.h), the same fields whatever the transport, so that the access
 * rules, rights, the audit and /_denvrd/whoami need not know it:
 *
 *   identified   the kernel named the caller: uid is exact.  Unix socket:
 *                SO_PEERCRED.  TCP: the uid owning the client's socket
 *                (NETLINK_SOCK_DIAG).  When false, `unidentified` says why
 *                and uid, gid and groups mean nothing.
 *   uid          the caller's uid.
 *   gid          its primary group, when gid_known: SO_PEERCRED's gid; for
 *                TCP the uid's user entry (false without one).
 *   groups       its supplementary groups (n_groups of them, malloc'ed),
 *                when groups_known: SO_PEERGROUPS; for TCP the user
 *                database's groups of that user (getgrouplist).
 *   pid          unix socket only (0 otherwise, or when unknown).
 */
struct peer {
        bool is_unix;
        bool identified;
        const char *unidentified;   /* static text: why not identified */
        uid_t uid;
        gid_t gid;
        bool gid_known;
        gid_t *groups;
        size_t n_groups;
        bool groups_known;
        pid_t pid;
        char addr[64];          /* TCP: "127.0.0.1:54321" */
        unsigned port;          /* TCP client port */

        /* access.c: the peer gate. */
        bool allowed;           /* verdict; re-evaluated per request, as a reload may change the rules */
        bool denial_logged;     /* the refusal was logged once for this connection */
        /* audit.c: the peer's executable, looked up once; NULL until then, "?" if unknown. */
        char *exe;
};

/*
 * The user database's answer for the last few uids, for PEER_CACHE_USEC: every
 * TCP connection asks it, and through the NSS modules (systemd's userdb among
 * them) one lookup costs some forty system calls, so a flood of connections from
 * one user would cost as many per connection, slowing every other caller's
 * accept.  A change of a user's groups is seen a few seconds later at most.
 */
#define PEER_CACHE_SLOTS 8
#define PEER_CACHE_USEC (2u * 1000000u)

struct peer_cache_entry {
        bool used;
        uid_t uid;
        uint64_t at_usec;       /* CLOCK_MONOTONIC of the lookup */
        bool gid_known;         /* false: no entry in the user database */
        gid_t gid;
        gid_t *groups;
        size_t n_groups;
        bool groups_known;
};

struct peer_cache {
        struct peer_cache_entry e[PEER_CACHE_SLOTS];
        unsigned next;          /* the slot a new uid takes (round robin) */
};

void peer_cache_clear(struct peer_cache *c);

/* Fills p's identity for the accepted unix socket fd (p->is_unix is set). */
void peer_identify_unix(struct peer *p, int fd);

/*
 * Fills p's identity for the accepted TCP connection fd, asking through sd;
 * on failure says why in p->unidentified.
 */
void peer_identify_tcp(struct peer *p, int fd, struct sock_diag *sd);
/* The same, with the uid's groups from cache when it answered for it within PEER_CACHE_USEC
 * of now (CLOCK_MONOTONIC, usec). */
void peer_identify_tcp_cached(struct peer *p, int fd, struct sock_diag *sd, struct peer_cache *cache,
                              uint64_t now);

/* Frees what the lookups allocated (not p itself). */
void peer_done(struct peer *p);

/* SO_PEERGROUPS of a connected unix socket; *ret is malloc'ed.  0 or negative errno. */
int peer_fetch_groups(int fd, gid_t **ret, size_t *ret_n);

/* The groups the user database gives user `name` with primary group gid (getgrouplist). */
int peer_user_groups(const char *name, gid_t gid, gid_t **ret, size_t *ret_n);

/* readlink() of /proc/PID/exe, cached in p->exe; "?" when it cannot be read. */
const char *peer_exe(struct peer *p);
