/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Facts about the process on the other end of a connection, beyond what
 * server.c's peer_fill() records: the supplementary groups of a unix socket
 * peer (for allowed_groups), its executable (for the audit log), and for a
 * loopback TCP peer the uid owning the client's socket, found in
 * /proc/net/tcp{,6}.  Each is looked up at most once per connection.
 */

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct conn_ctx;
struct peer;

/*
 * The lookup reads /proc/net/tcp{,6} synchronously in the event loop, and
 * the kernel lists every socket there, TIME_WAIT ones included (a busy host
 * has thousands: about 150 bytes each).  So one scan stops after
 * PEER_PROC_NET_MAX_BYTES per file (~7000 sockets), and all scans together
 * may read PEER_PROC_NET_BUDGET_BYTES per second: a flood of mutating
 * requests on new connections then gets "uid=?" in the audit instead of
 * stalling every other client.
 */
#define PEER_PROC_NET_MAX_BYTES (1024u * 1024u)
#define PEER_PROC_NET_BUDGET_BYTES (2u * 1024u * 1024u)

/* Frees what the lookups allocated (not p itself). */
void peer_done(struct peer *p);

/* SO_PEERGROUPS of a connected unix socket; *ret is malloc'ed.  0 or negative errno. */
int peer_fetch_groups(int fd, gid_t **ret, size_t *ret_n);

/* readlink() of /proc/PID/exe, cached in p->exe; "?" when it cannot be read. */
const char *peer_exe(struct peer *p);

/* Owner of a TCP client's socket, cached in ctx->peer.tcp_uid; -1 when unknown. */
int peer_tcp_uid(struct conn_ctx *ctx);

/*
 * The search itself, exposed for tests: in a /proc/net/tcp or tcp6 file, the
 * socket whose local end is `client` and remote end is `server` (a client's
 * socket, not our accepted one), ignoring TIME_WAIT and LISTEN entries.
 * Reads at most max_bytes; adds what it read to *bytes_read if not NULL.
 * 0 with *ret set, -ENOENT, or another negative errno.
 */
int peer_proc_net_tcp_find(const char *path, const struct sockaddr *client,
                           const struct sockaddr *server, size_t max_bytes, size_t *bytes_read,
                           uid_t *ret);
