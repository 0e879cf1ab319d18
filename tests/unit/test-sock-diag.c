/* SPDX-License-Identifier: MIT */
/*
 * common/base/sock_diag.c: the inet_diag request as built (family, which end is
 * src, ports, IPv4-mapped pairs asked as IPv4), the reply parser on crafted
 * netlink messages (errors, stale and unrelated entries, truncation,
 * unaligned buffers), and real questions to the kernel about loopback
 * connections of this process: IPv4, IPv6, an IPv6 client reaching an IPv4
 * listener, an IPv4 client reaching a dual-stack listener, a closed client
 * socket and a connection that does not exist.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/sock_diag.h"

#include "check.h"

static struct sockaddr_in sin4(const char *ip, unsigned port) {
        struct sockaddr_in a;

        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t) port);
        if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
                abort();
        return a;
}

static struct sockaddr_in6 sin6(const char *ip, unsigned port) {
        struct sockaddr_in6 a;

        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_port = htons((uint16_t) port);
        if (inet_pton(AF_INET6, ip, &a.sin6_addr) != 1)
                abort();
        return a;
}

#define SA(x) ((const struct sockaddr *) (const void *) &(x))

static void test_request_v4(void) {
        struct sockaddr_in c = sin4("127.0.0.1", 54321), s = sin4("127.0.0.2", 3368);
        struct sock_diag_request m;
        struct in_addr a;

        CHECK(sock_diag_request_init(&m, SA(c), SA(s), 7) == 0, "v4 request");
        CHECK(m.nlh.nlmsg_len == sizeof m, "length %u", m.nlh.nlmsg_len);
        CHECK(m.nlh.nlmsg_type == SOCK_DIAG_BY_FAMILY, "type %u", m.nlh.nlmsg_type);
        CHECK(m.nlh.nlmsg_flags == NLM_F_REQUEST, "an exact query, not a dump: flags %#x", m.nlh.nlmsg_flags);
        CHECK(m.nlh.nlmsg_seq == 7, "seq");
        CHECK(m.req.sdiag_family == AF_INET && m.req.sdiag_protocol == IPPROTO_TCP, "family/protocol");
        CHECK(ntohs(m.req.id.idiag_sport) == 54321 && ntohs(m.req.id.idiag_dport) == 3368,
              "src is the socket's local end (the client): %u -> %u", ntohs(m.req.id.idiag_sport),
              ntohs(m.req.id.idiag_dport));
        memcpy(&a, &m.req.id.idiag_src[0], 4);
        CHECK(a.s_addr == c.sin_addr.s_addr, "src address");
        memcpy(&a, &m.req.id.idiag_dst[0], 4);
        CHECK(a.s_addr == s.sin_addr.s_addr, "dst address");
        CHECK(m.req.id.idiag_src[1] == 0 && m.req.id.idiag_dst[3] == 0, "rest of the address zero");
        CHECK(m.req.id.idiag_cookie[0] == INET_DIAG_NOCOOKIE && m.req.id.idiag_cookie[1] == INET_DIAG_NOCOOKIE,
              "no cookie");
        CHECK(m.req.id.idiag_if == 0, "any interface");
}

static void test_request_v6_and_mapped(void) {
        struct sockaddr_in6 c = sin6("::1", 40000), s = sin6("::1", 3368);
        struct sockaddr_in6 mc = sin6("::ffff:127.0.0.1", 40001), ms = sin6("::ffff:127.0.0.1", 3368);
        struct sockaddr_in v4 = sin4("127.0.0.1", 1);
        struct sockaddr_un_like { sa_family_t f; char path[14]; } un = { AF_UNIX, "x" };
        struct sock_diag_request m;
        struct in_addr a;

        CHECK(sock_diag_request_init(&m, SA(c), SA(s), 1) == 0, "v6 request");
        CHECK(m.req.sdiag_family == AF_INET6, "family %u", m.req.sdiag_family);
        CHECK(memcmp(m.req.id.idiag_src, &c.sin6_addr, 16) == 0, "v6 src");
        CHECK(ntohs(m.req.id.idiag_sport) == 40000, "v6 sport");

        /* The kernel keeps a v4-mapped connection in the IPv4 tables: ask as IPv4. */
        CHECK(sock_diag_request_init(&m, SA(mc), SA(ms), 1) == 0, "mapped request");
        CHECK(m.req.sdiag_family == AF_INET, "mapped asked as IPv4: family %u", m.req.sdiag_family);
        memcpy(&a, &m.req.id.idiag_src[0], 4);
        CHECK(a.s_addr == htonl(INADDR_LOOPBACK), "mapped src is 127.0.0.1");
        CHECK(m.req.id.idiag_src[3] == 0, "no IPv6 leftovers");

        CHECK(sock_diag_request_init(&m, SA(v4), SA(s), 1) == -EAFNOSUPPORT, "v4 with pure v6");
        CHECK(sock_diag_request_init(&m, SA(un), SA(s), 1) == -EAFNOSUPPORT, "AF_UNIX");
}

/* A reply buffer with room for a few messages, to be written at any offset. */
struct reply {
        uint8_t bytes[1024];
        size_t len;
};

static void put_msg(struct reply *r, uint16_t type, uint32_t seq, const void *payload, size_t plen) {
        struct nlmsghdr h = {
                .nlmsg_len = (uint32_t) (NLMSG_HDRLEN + plen),
                .nlmsg_type = type,
                .nlmsg_seq = seq,
        };

        memcpy(r->bytes + r->len, &h, sizeof h);
        memcpy(r->bytes + r->len + NLMSG_HDRLEN, payload, plen);
        r->len += NLMSG_ALIGN(h.nlmsg_len);
}

static struct inet_diag_msg entry_for(const struct sock_diag_request *m, uid_t uid, uint32_t inode) {
        struct inet_diag_msg d;

        memset(&d, 0, sizeof d);
        d.idiag_family = m->req.sdiag_family;
        d.idiag_state = TCP_ESTABLISHED;
        d.id = m->req.id;
        d.idiag_uid = uid;
        d.idiag_inode = inode;
        return d;
}

static void put_error(struct reply *r, uint32_t seq, int error) {
        struct nlmsgerr e;

        memset(&e, 0, sizeof e);
        e.error = error;
        put_msg(r, NLMSG_ERROR, seq, &e, sizeof e);
}

static void test_parse(void) {
        struct sockaddr_in c = sin4("127.0.0.1", 50000), s = sin4("127.0.0.1", 3368);
        struct sock_diag_request m;
        struct inet_diag_msg d;
        struct sock_diag_owner o;
        struct reply r;
        uint8_t shifted[sizeof r.bytes + 1];

        CHECK(sock_diag_request_init(&m, SA(c), SA(s), 42) == 0, "request");

        memset(&r, 0, sizeof r);
        d = entry_for(&m, 1234, 99);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, &d, sizeof d);
        memset(&o, 0, sizeof o);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == 0, "good reply");
        CHECK(o.uid == 1234 && o.inode == 99 && o.state == TCP_ESTABLISHED, "owner %u inode %u state %u",
              (unsigned) o.uid, o.inode, o.state);

        /* The same bytes one byte off alignment. */
        memcpy(shifted + 1, r.bytes, r.len);
        CHECK(sock_diag_reply_parse(&m, shifted + 1, r.len, &o) == 0 && o.uid == 1234, "unaligned reply");

        /* The kernel's error. */
        memset(&r, 0, sizeof r);
        put_error(&r, 42, -ENOENT);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -ENOENT, "ENOENT passed on");
        memset(&r, 0, sizeof r);
        put_error(&r, 42, 0);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EPROTO, "an ACK is no answer");
        memset(&r, 0, sizeof r);
        put_error(&r, 42, -2147483647 - 1);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EPROTO, "absurd error");
        memset(&r, 0, sizeof r);
        put_msg(&r, NLMSG_DONE, 42, "\0\0\0\0", 4);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -ENOENT, "DONE without an entry");

        /* A stale message (other seq) first: skipped. */
        memset(&r, 0, sizeof r);
        d = entry_for(&m, 1, 1);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 41, &d, sizeof d);
        d = entry_for(&m, 1000, 5);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, &d, sizeof d);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == 0 && o.uid == 1000, "stale skipped: uid %u",
              (unsigned) o.uid);
        memset(&r, 0, sizeof r);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 41, &d, sizeof d);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EAGAIN, "only stale: read on");
        memset(&r, 0, sizeof r);
        put_msg(&r, NLMSG_NOOP, 42, "", 0);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EAGAIN, "no answer yet");

        /* An entry for another socket is not taken for ours. */
        memset(&r, 0, sizeof r);
        d = entry_for(&m, 0, 5);
        d.id.idiag_sport = htons(50001);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, &d, sizeof d);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EPROTO, "other port");
        memset(&r, 0, sizeof r);
        d = entry_for(&m, 0, 5);
        d.id.idiag_dst[0] = htonl(0x7f000002);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, &d, sizeof d);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EPROTO, "other address");
        /* Our reversed pair is our own accepted socket, not the client's. */
        memset(&r, 0, sizeof r);
        d = entry_for(&m, 0, 5);
        d.id.idiag_sport = m.req.id.idiag_dport;
        d.id.idiag_dport = m.req.id.idiag_sport;
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, &d, sizeof d);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EPROTO, "reversed ends");

        /* An IPv6 socket (v4-mapped) answering the IPv4 question is the same socket. */
        memset(&r, 0, sizeof r);
        d = entry_for(&m, 77, 5);
        d.idiag_family = AF_INET6;
        memset(d.id.idiag_src, 0, 16);
        memset(d.id.idiag_dst, 0, 16);
        ((uint8_t *) d.id.idiag_src)[10] = ((uint8_t *) d.id.idiag_src)[11] = 0xff;
        ((uint8_t *) d.id.idiag_dst)[10] = ((uint8_t *) d.id.idiag_dst)[11] = 0xff;
        d.id.idiag_src[3] = m.req.id.idiag_src[0];
        d.id.idiag_dst[3] = m.req.id.idiag_dst[0];
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, &d, sizeof d);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == 0 && o.uid == 77, "mapped entry");
        d.idiag_family = AF_UNIX;
        memset(&r, 0, sizeof r);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, &d, sizeof d);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EPROTO, "other family");

        /* Malformed: short payload, length past the end, empty, header only. */
        memset(&r, 0, sizeof r);
        d = entry_for(&m, 1, 1);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, &d, sizeof d - 1);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EPROTO, "short entry");
        memset(&r, 0, sizeof r);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, &d, sizeof d);
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len - 8, &o) == -EPROTO, "truncated");
        CHECK(sock_diag_reply_parse(&m, r.bytes, 0, &o) == -EPROTO, "empty");
        CHECK(sock_diag_reply_parse(&m, r.bytes, NLMSG_HDRLEN - 1, &o) == -EPROTO, "partial header");
        memset(&r, 0, sizeof r);
        put_msg(&r, SOCK_DIAG_BY_FAMILY, 42, "", 0);
        ((struct nlmsghdr *) (void *) r.bytes)->nlmsg_len = 3;
        CHECK(sock_diag_reply_parse(&m, r.bytes, r.len, &o) == -EPROTO, "length below the header");
}

/* --- the kernel, about this process's own loopback connections -------------------- */

struct conn {
        int client, server;     /* the client's socket and the accepted one */
        struct sockaddr_storage local, remote;   /* the accepted socket's ends */
};

static bool connect_pair(const struct sockaddr *listen_at, socklen_t llen, int client_family,
                         const struct sockaddr *connect_to, socklen_t clen, struct conn *c) {
        struct sockaddr_storage bound;
        socklen_t blen = sizeof bound, n;
        int one = 1, off = 0, l;

        l = socket(listen_at->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0)
                return false;
        (void) setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (listen_at->sa_family == AF_INET6)
                (void) setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        if (bind(l, listen_at, llen) < 0 || listen(l, 4) < 0 ||
            getsockname(l, (struct sockaddr *) &bound, &blen) < 0) {
                close(l);
                return false;
        }
        /* The listener's port into the address to connect to. */
        {
                uint16_t port = bound.ss_family == AF_INET ? ((struct sockaddr_in *) &bound)->sin_port
                                                           : ((struct sockaddr_in6 *) &bound)->sin6_port;
                struct sockaddr_storage to;

                memcpy(&to, connect_to, clen);
                if (to.ss_family == AF_INET)
                        ((struct sockaddr_in *) &to)->sin_port = port;
                else
                        ((struct sockaddr_in6 *) &to)->sin6_port = port;
                c->client = socket(client_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (c->client < 0 || connect(c->client, (struct sockaddr *) &to, clen) < 0) {
                        close(l);
                        return false;
                }
        }
        c->server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        close(l);
        if (c->server < 0)
                return false;
        n = sizeof c->local;
        if (getsockname(c->server, (struct sockaddr *) &c->local, &n) < 0)
                return false;
        n = sizeof c->remote;
        return getpeername(c->server, (struct sockaddr *) &c->remote, &n) == 0;
}

static uint32_t inode_of(int fd) {
        struct stat st;

        return fstat(fd, &st) == 0 ? (uint32_t) st.st_ino : 0;
}

/* The client's socket: local end = our remote end, remote end = our local end. */
static void check_owner(struct conn *c, const char *what) {
        struct sock_diag_owner o;
        int r = sock_diag_tcp_owner((struct sockaddr *) &c->remote, (struct sockaddr *) &c->local, &o);

        CHECK(r == 0, "%s: %s", what, strerror(-r));
        if (r == 0) {
                CHECK(o.uid == getuid(), "%s: uid %u", what, (unsigned) o.uid);
                CHECK(o.inode == inode_of(c->client), "%s: the client's socket (inode %u, not %u)", what,
                      o.inode, inode_of(c->client));
                CHECK(o.state == TCP_ESTABLISHED, "%s: state %u", what, o.state);
        }
}

static void test_live(void) {
        struct sockaddr_in any4 = sin4("127.0.0.1", 0);
        struct sockaddr_in6 any6 = sin6("::1", 0), mapped = sin6("::ffff:127.0.0.1", 0);
        struct sockaddr_in6 dual = sin6("::", 0);
        struct sock_diag_owner o;
        struct conn c;
        int r;

        /* IPv4 client, IPv4 listener. */
        CHECK(connect_pair(SA(any4), sizeof any4, AF_INET, SA(any4), sizeof any4, &c), "v4 pair");
        check_owner(&c, "v4");
        /* Asking for our own (accepted) socket finds that one instead: the ends matter. */
        r = sock_diag_tcp_owner((struct sockaddr *) &c.local, (struct sockaddr *) &c.remote, &o);
        CHECK(r == 0 && o.inode == inode_of(c.server), "accepted socket: %d", r);
        /* Once the client closes, no process holds its socket. */
        close(c.client);
        r = sock_diag_tcp_owner((struct sockaddr *) &c.remote, (struct sockaddr *) &c.local, &o);
        CHECK(r == -ENOENT || (r == 0 && o.inode == 0), "closed client: r=%d inode=%u", r, r == 0 ? o.inode : 0);
        close(c.server);
        /* And when both are gone there is nothing at all (or a TIME_WAIT entry without an owner). */
        r = sock_diag_tcp_owner((struct sockaddr *) &c.remote, (struct sockaddr *) &c.local, &o);
        CHECK(r == -ENOENT || (r == 0 && o.inode == 0), "gone: r=%d", r);

        /* IPv6. */
        if (connect_pair(SA(any6), sizeof any6, AF_INET6, SA(any6), sizeof any6, &c)) {
                check_owner(&c, "v6");
                close(c.client);
                close(c.server);
        } else
                CHECK(false, "no IPv6 loopback: %s", strerror(errno));

        /* A dual-stack (AF_INET6) client reaching an IPv4 listener through ::ffff:127.0.0.1. */
        CHECK(connect_pair(SA(any4), sizeof any4, AF_INET6, SA(mapped), sizeof mapped, &c), "mapped client");
        CHECK(c.remote.ss_family == AF_INET, "we see it as IPv4");
        check_owner(&c, "v6 client, v4 listener");
        close(c.client);
        close(c.server);

        /* An IPv4 client reaching a dual-stack listener: our ends are v4-mapped. */
        CHECK(connect_pair(SA(dual), sizeof dual, AF_INET, SA(any4), sizeof any4, &c), "dual-stack listener");
        CHECK(c.remote.ss_family == AF_INET6 &&
              IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *) &c.remote)->sin6_addr), "we see it v4-mapped");
        check_owner(&c, "v4 client, dual-stack listener");
        close(c.client);
        close(c.server);

        /* No such connection. */
        {
                struct sockaddr_in a = sin4("127.0.0.1", 1), b = sin4("127.0.0.9", 2);

                CHECK(sock_diag_tcp_owner(SA(a), SA(b), &o) == -ENOENT, "nonexistent");
        }
}

/* The daemon's kept socket: reused, not dropped for "no such socket", stale answers skipped. */
static void test_kept_socket(void) {
        struct sockaddr_in any4 = sin4("127.0.0.1", 0);
        struct sockaddr_in a = sin4("127.0.0.1", 1), b = sin4("127.0.0.9", 2);
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        struct sock_diag s = SOCK_DIAG_INIT;
        struct sock_diag_request stale;
        struct sock_diag_owner o;
        struct conn c;
        int fd, r;

        if (!connect_pair(SA(any4), sizeof any4, AF_INET, SA(any4), sizeof any4, &c)) {
                CHECK(false, "v4 pair: %s", strerror(errno));
                return;
        }
        r = sock_diag_query(&s, (struct sockaddr *) &c.remote, (struct sockaddr *) &c.local, &o);
        CHECK(r == 0 && o.inode == inode_of(c.client), "first: %d", r);
        fd = s.fd;
        CHECK(fd >= 0, "kept open");
        CHECK(sock_diag_query(&s, SA(a), SA(b), &o) == -ENOENT && s.fd == fd, "ENOENT keeps the socket");

        /* An answer nobody read (a question that timed out) sits in the queue: skipped. */
        CHECK(sock_diag_request_init(&stale, (struct sockaddr *) &c.local, (struct sockaddr *) &c.remote,
                                     s.seq + 1000) == 0, "stale request");
        CHECK(sendto(s.fd, &stale, stale.nlh.nlmsg_len, 0, (struct sockaddr *) &kernel, sizeof kernel) ==
              (ssize_t) stale.nlh.nlmsg_len, "stale sent");
        r = sock_diag_query(&s, (struct sockaddr *) &c.remote, (struct sockaddr *) &c.local, &o);
        CHECK(r == 0 && o.inode == inode_of(c.client), "after a stale answer: %d, inode %u", r,
              r == 0 ? o.inode : 0);
        CHECK(s.fd == fd, "same socket");
        sock_diag_done(&s);
        CHECK(s.fd == -1, "closed");
        sock_diag_done(&s);
        close(c.client);
        close(c.server);
}

int main(void) {
        test_request_v4();
        test_request_v6_and_mapped();
        test_parse();
        test_live();
        test_kept_socket();
        printf("%u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
