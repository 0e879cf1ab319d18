/* SPDX-License-Identifier: MIT */
#include "common/base/sock_diag.h"

#include <assert.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "common/base/cleanup.h"

/* How long to wait for the kernel's answer; it is normally queued before sendto() returns. */
#define SOCK_DIAG_TIMEOUT_MSEC 1000

/* One end of a connection as inet_diag spells it: IPv4 in the first word, ports in network order. */
struct endpoint {
        int family;
        uint8_t addr[16];
        uint16_t port_be;
};

static void endpoint_v4(struct endpoint *e, const void *addr4, uint16_t port_be) {
        memset(e, 0, sizeof *e);
        e->family = AF_INET;
        memcpy(e->addr, addr4, 4);
        e->port_be = port_be;
}

/* IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4: the kernel hashes such sockets as IPv4. */
static void endpoint_v6(struct endpoint *e, const uint8_t addr6[16], uint16_t port_be) {
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

        if (memcmp(addr6, mapped, sizeof mapped) == 0) {
                endpoint_v4(e, addr6 + 12, port_be);
                return;
        }
        memset(e, 0, sizeof *e);
        e->family = AF_INET6;
        memcpy(e->addr, addr6, 16);
        e->port_be = port_be;
}

static bool endpoint_from_sockaddr(const struct sockaddr *sa, struct endpoint *e) {
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) (const void *) sa;

                endpoint_v4(e, &in->sin_addr, in->sin_port);
                return true;
        }
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) (const void *) sa;

                endpoint_v6(e, in6->sin6_addr.s6_addr, in6->sin6_port);
                return true;
        }
        return false;
}

static void endpoint_from_diag(int family, const __be32 addr[4], __be16 port, struct endpoint *e) {
        if (family == AF_INET6)
                endpoint_v6(e, (const uint8_t *) addr, port);
        else
                endpoint_v4(e, addr, port);
}

static bool endpoint_equal(const struct endpoint *a, const struct endpoint *b) {
        size_t n = a->family == AF_INET ? 4 : 16;

        return a->family == b->family && a->port_be == b->port_be && memcmp(a->addr, b->addr, n) == 0;
}

int sock_diag_request_init(struct sock_diag_request *m, const struct sockaddr *local,
                           const struct sockaddr *remote, uint32_t seq) {
        struct endpoint l, r;

        assert(m && local && remote);
        if (!endpoint_from_sockaddr(local, &l) || !endpoint_from_sockaddr(remote, &r) ||
            l.family != r.family)
                return -EAFNOSUPPORT;

        memset(m, 0, sizeof *m);
        m->nlh.nlmsg_len = sizeof *m;
        m->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        m->nlh.nlmsg_flags = NLM_F_REQUEST;   /* one socket, not NLM_F_DUMP */
        m->nlh.nlmsg_seq = seq;
        m->req.sdiag_family = (uint8_t) l.family;
        m->req.sdiag_protocol = IPPROTO_TCP;
        m->req.idiag_states = ~0u;
        /* The lookup is the kernel's for an arriving packet: src is the socket's local end. */
        memcpy(m->req.id.idiag_src, l.addr, sizeof l.addr);
        memcpy(m->req.id.idiag_dst, r.addr, sizeof r.addr);
        m->req.id.idiag_sport = l.port_be;
        m->req.id.idiag_dport = r.port_be;
        m->req.id.idiag_cookie[0] = m->req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
        return 0;
}

/* Whether the entry is the socket asked for (the kernel compares too; this guards our reading). */
static bool entry_matches(const struct sock_diag_request *m, const struct inet_diag_msg *d) {
        struct endpoint want_l, want_r, got_l, got_r;

        if (d->idiag_family != AF_INET && d->idiag_family != AF_INET6)
                return false;
        endpoint_from_diag(m->req.sdiag_family, m->req.id.idiag_src, m->req.id.idiag_sport, &want_l);
        endpoint_from_diag(m->req.sdiag_family, m->req.id.idiag_dst, m->req.id.idiag_dport, &want_r);
        endpoint_from_diag(d->idiag_family, d->id.idiag_src, d->id.idiag_sport, &got_l);
        endpoint_from_diag(d->idiag_family, d->id.idiag_dst, d->id.idiag_dport, &got_r);
        return endpoint_equal(&want_l, &got_l) && endpoint_equal(&want_r, &got_r);
}

int sock_diag_reply_parse(const struct sock_diag_request *m, const void *buf, size_t len,
                          struct sock_diag_owner *ret) {
        const uint8_t *p = buf;
        size_t off = 0;

        assert(m && (buf || len == 0) && ret);
        /* Copied out of buf piece by piece: it need not be aligned (tests). */
        while (len - off >= sizeof(struct nlmsghdr)) {
                struct nlmsghdr h;
                const uint8_t *payload;
                size_t plen;

                memcpy(&h, p + off, sizeof h);
                if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off)
                        return -EPROTO;
                payload = p + off + NLMSG_HDRLEN;
                plen = h.nlmsg_len - NLMSG_HDRLEN;
                if (h.nlmsg_seq == m->nlh.nlmsg_seq) {
                        if (h.nlmsg_type == NLMSG_ERROR) {
                                int error;

                                if (plen < sizeof error)
                                        return -EPROTO;
                                memcpy(&error, payload, sizeof error);
                                /* 0 would be an acknowledgement, which was not asked for. */
                                return error < 0 && error > -4096 ? error : -EPROTO;
                        }
                        if (h.nlmsg_type == NLMSG_DONE)
                                return -ENOENT;
                        if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
                                struct inet_diag_msg d;

                                if (plen < sizeof d)
                                        return -EPROTO;
                                memcpy(&d, payload, sizeof d);
                                if (!entry_matches(m, &d))
                                        return -EPROTO;
                                *ret = (struct sock_diag_owner) {
                                        .uid = (uid_t) d.idiag_uid,
                                        .inode = d.idiag_inode,
                                        .state = d.idiag_state,
                                };
                                return 0;
                        }
                }
                if (NLMSG_ALIGN(h.nlmsg_len) >= len - off)
                        break;
                off += NLMSG_ALIGN(h.nlmsg_len);
        }
        /* Only answers to earlier requests (one that timed out): the caller reads on. */
        return len >= NLMSG_HDRLEN ? -EAGAIN : -EPROTO;
}

/* The kernel's answer to the request just sent, into buf.  Its length, or negative errno. */
static ssize_t receive_reply(int fd, void *buf, size_t size) {
        bool waited = false;

        for (;;) {
                struct sockaddr_nl from;
                socklen_t flen = sizeof from;
                ssize_t n = recvfrom(fd, buf, size, MSG_DONTWAIT, (struct sockaddr *) &from, &flen);
                struct pollfd pfd = { .fd = fd, .events = POLLIN };

                if (n >= 0) {
                        /* Only the kernel (port 0) answers; anything else is not ours to read. */
                        if (flen >= sizeof from && from.nl_pid == 0)
                                return n;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN || waited)
                        return -errno;
                waited = true;
                if (poll(&pfd, 1, SOCK_DIAG_TIMEOUT_MSEC) < 0 && errno != EINTR)
                        return -errno;
        }
}

void sock_diag_done(struct sock_diag *s) {
        if (s && s->fd >= 0) {
                close(s->fd);
                s->fd = -1;
        }
}

/* Stale answers to skip at most before giving up on the socket. */
#define SOCK_DIAG_MAX_STALE 16

static int exchange(struct sock_diag *s, const struct sock_diag_request *m, struct sock_diag_owner *ret) {
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        /* An answer is one message of ~100 bytes; aligned for the netlink headers. */
        union {
                struct nlmsghdr h;
                uint8_t bytes[4096];
        } reply;
        ssize_t n;
        int r;

        do
                n = sendto(s->fd, m, m->nlh.nlmsg_len, 0, (struct sockaddr *) &kernel, sizeof kernel);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        for (unsigned i = 0; i < SOCK_DIAG_MAX_STALE; i++) {
                n = receive_reply(s->fd, reply.bytes, sizeof reply.bytes);
                if (n < 0)
                        return (int) n;
                r = sock_diag_reply_parse(m, reply.bytes, (size_t) n, ret);
                if (r != -EAGAIN)
                        return r;
        }
        return -EPROTO;
}

int sock_diag_query(struct sock_diag *s, const struct sockaddr *local, const struct sockaddr *remote,
                    struct sock_diag_owner *ret) {
        struct sock_diag_request m;
        int r;

        assert(s && local && remote && ret);
        if (++s->seq == 0)
                s->seq = 1;
        r = sock_diag_request_init(&m, local, remote, s->seq);
        if (r < 0)
                return r;
        if (s->fd < 0) {
                s->fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
                if (s->fd < 0)
                        return -errno;
        }
        r = exchange(s, &m, ret);
        /* The kernel's "no such socket" is an answer; anything else may leave a reply queued. */
        if (r < 0 && r != -ENOENT)
                sock_diag_done(s);
        return r;
}

int sock_diag_tcp_owner(const struct sockaddr *local, const struct sockaddr *remote,
                        struct sock_diag_owner *ret) {
        struct sock_diag s = SOCK_DIAG_INIT;
        int r;

        r = sock_diag_query(&s, local, remote, ret);
        sock_diag_done(&s);
        return r;
}
