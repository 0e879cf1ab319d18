/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Who is on the other end of a new connection, asked of the kernel once,
 * when it is accepted (server.c), and kept in struct peer (request.h) for all
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

#include <stddef.h>
#include <sys/types.h>

struct peer;
struct sock_diag;

/* Fills p's identity for the accepted unix socket fd (p->is_unix is set). */
void peer_identify_unix(struct peer *p, int fd);

/*
 * Fills p's identity for the accepted TCP connection fd, asking through sd;
 * on failure says why in p->unidentified.
 */
void peer_identify_tcp(struct peer *p, int fd, struct sock_diag *sd);

/* Frees what the lookups allocated (not p itself). */
void peer_done(struct peer *p);

/* SO_PEERGROUPS of a connected unix socket; *ret is malloc'ed.  0 or negative errno. */
int peer_fetch_groups(int fd, gid_t **ret, size_t *ret_n);

/* The groups the user database gives user `name` with primary group gid (getgrouplist). */
int peer_user_groups(const char *name, gid_t gid, gid_t **ret, size_t *ret_n);

/* readlink() of /proc/PID/exe, cached in p->exe; "?" when it cannot be read. */
const char *peer_exe(struct peer *p);
