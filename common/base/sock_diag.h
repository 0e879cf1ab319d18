/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Who owns a TCP socket of this host, asked of the kernel's socket
 * diagnostics (NETLINK_SOCK_DIAG, inet_diag; sock_diag(7)) by the socket's
 * exact addresses and ports, as `ss -e` does.  The kernel answers an exact
 * query with one hash lookup, however many sockets the host has, where a
 * scan of /proc/net/tcp grows with all of them.
 *
 * The request builder and the reply parser are separate from the I/O so
 * that tests can feed them crafted messages.  A daemon keeps one netlink
 * socket (struct sock_diag) for all its questions: opening and closing one
 * costs more than the question itself.
 */

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* One SOCK_DIAG_BY_FAMILY request, as sent. */
struct sock_diag_request {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
};

/* What the kernel says about the socket found. */
struct sock_diag_owner {
        uid_t uid;              /* owner of the socket (its creator's fsuid) */
        uint32_t inode;         /* 0: no process holds it any more (closed, TIME_WAIT) */
        uint8_t state;          /* TCP_ESTABLISHED, TCP_FIN_WAIT1... (netinet/tcp.h) */
};

/*
 * The request for the TCP socket whose local end is `local` and remote end
 * is `remote` (AF_INET or AF_INET6; IPv4-mapped IPv6 pairs are asked as
 * IPv4, where the kernel keeps them).  0, or -EAFNOSUPPORT.
 */
int sock_diag_request_init(struct sock_diag_request *m, const struct sockaddr *local,
                           const struct sockaddr *remote, uint32_t seq);

/*
 * The kernel's reply (one or more netlink messages in buf) to m: 0 with *ret
 * filled from the entry for exactly the socket asked for; the kernel's error
 * (-ENOENT: no such socket); -EAGAIN when buf only answers other (earlier)
 * requests; -EPROTO for a malformed reply or an entry for another socket.
 */
int sock_diag_reply_parse(const struct sock_diag_request *m, const void *buf, size_t len,
                          struct sock_diag_owner *ret);

/* A NETLINK_SOCK_DIAG socket kept for many questions. */
struct sock_diag {
        int fd;                 /* opened on first use; closed again after a failed exchange */
        uint32_t seq;
};
#define SOCK_DIAG_INIT { .fd = -1, .seq = 0 }

/* Owner of the TCP socket local <-> remote: one round trip.  0 or negative errno. */
int sock_diag_query(struct sock_diag *s, const struct sockaddr *local, const struct sockaddr *remote,
                    struct sock_diag_owner *ret);
void sock_diag_done(struct sock_diag *s);

/* The same with a socket of its own, for a single question. */
int sock_diag_tcp_owner(const struct sockaddr *local, const struct sockaddr *remote,
                        struct sock_diag_owner *ret);
