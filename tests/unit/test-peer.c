/* SPDX-License-Identifier: MIT */
/*
 * daemon/core/peer.c: the identity of a connection's peer, the same fields for
 * both transports.  On real loopback connections and socket pairs of this
 * process: a TCP peer is identified by the owner of its socket with that
 * user's primary group and groups from the user database; a unix socket peer
 * by SO_PEERCRED and SO_PEERGROUPS; a TCP client that closed its socket, or
 * a connection that cannot be read, is left unidentified with a reason.
 * (Peers of other uids: tests/integration/test_security.py.)
 */

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base/sock_diag.h"
#include "daemon/core/peer.h"
#include "daemon/http/request.h"

#include "check.h"

/* A loopback TCP connection: *client and the accepted *server. */
static bool tcp_pair(int *client, int *server) {
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (l < 0 || bind(l, (struct sockaddr *) &a, sizeof a) < 0 || listen(l, 1) < 0 ||
            getsockname(l, (struct sockaddr *) &a, &len) < 0)
                return false;
        *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (*client < 0 || connect(*client, (struct sockaddr *) &a, sizeof a) < 0)
                return false;
        *server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        close(l);
        return *server >= 0;
}

static bool has_group(const struct peer *p, gid_t g) {
        for (size_t i = 0; i < p->n_groups; i++)
                if (p->groups[i] == g)
                        return true;
        return false;
}

static void test_tcp(void) {
        struct sock_diag sd = SOCK_DIAG_INIT;
        struct passwd *pw = getpwuid(getuid());
        struct peer p;
        int client = -1, server = -1;

        if (!tcp_pair(&client, &server)) {
                CHECK(false, "loopback pair: %s", strerror(errno));
                return;
        }
        memset(&p, 0, sizeof p);
        peer_identify_tcp(&p, server, &sd);
        CHECK(p.identified, "identified: %s", p.unidentified ? p.unidentified : "");
        CHECK(p.uid == getuid(), "uid %u", (unsigned) p.uid);
        CHECK(p.pid == 0, "no pid over TCP");
        if (pw) {
                CHECK(p.gid_known && p.gid == pw->pw_gid, "primary group from the user entry: %u",
                      (unsigned) p.gid);
                CHECK(p.groups_known && has_group(&p, pw->pw_gid), "groups from the user database (%zu)",
                      p.n_groups);
        } else
                CHECK(!p.gid_known, "no user entry, no group");
        peer_done(&p);
        CHECK(p.groups == NULL && p.n_groups == 0, "peer_done frees");

        /* The client's socket closed before the lookup: no process holds it, so nobody is named. */
        close(client);
        memset(&p, 0, sizeof p);
        peer_identify_tcp(&p, server, &sd);
        CHECK(!p.identified, "closed client not identified (uid %u)", (unsigned) p.uid);
        CHECK(p.unidentified && strstr(p.unidentified, "closed"), "reason: %s",
              p.unidentified ? p.unidentified : "(none)");
        peer_done(&p);
        close(server);

        memset(&p, 0, sizeof p);
        peer_identify_tcp(&p, -1, &sd);
        CHECK(!p.identified && p.unidentified, "no fd");
        sock_diag_done(&sd);
}

/* The user database's answer is kept a little while: the same groups, from the cache. */
static void test_tcp_cached(void) {
        struct sock_diag sd = SOCK_DIAG_INIT;
        struct peer_cache cache = { .next = 0 };
        struct peer a, b, c;
        int client = -1, server = -1;

        if (!tcp_pair(&client, &server)) {
                CHECK(false, "loopback pair: %s", strerror(errno));
                return;
        }
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        memset(&c, 0, sizeof c);
        peer_identify_tcp_cached(&a, server, &sd, &cache, 1000);
        CHECK(a.identified && cache.e[0].used && cache.e[0].uid == a.uid, "asked, then kept");
        /* A stale answer in the cache shows whether the next lookup used it. */
        cache.e[0].gid = a.gid + 1;
        peer_identify_tcp_cached(&b, server, &sd, &cache, 1000 + PEER_CACHE_USEC - 1);
        CHECK(b.identified && b.gid == a.gid + 1 && b.n_groups == a.n_groups, "from the cache");
        peer_identify_tcp_cached(&c, server, &sd, &cache, 1000 + PEER_CACHE_USEC);
        CHECK(c.identified && c.gid == a.gid && c.n_groups == a.n_groups, "asked again once it is old");
        CHECK(cache.e[0].at_usec == 1000 + PEER_CACHE_USEC && !cache.e[1].used, "one entry per uid");
        peer_done(&a);
        peer_done(&b);
        peer_done(&c);
        peer_cache_clear(&cache);
        CHECK(!cache.e[0].used && !cache.e[0].groups, "cleared");
        close(client);
        close(server);
        sock_diag_done(&sd);
}

static void test_unix(void) {
        struct peer p;
        int sv[2];

        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        memset(&p, 0, sizeof p);
        peer_identify_unix(&p, sv[0]);
        CHECK(p.is_unix && p.identified, "identified");
        CHECK(p.uid == getuid() && p.gid == getgid() && p.gid_known, "uid %u gid %u", (unsigned) p.uid,
              (unsigned) p.gid);
        CHECK(p.pid == getpid(), "pid %d", (int) p.pid);
        CHECK(p.groups_known, "SO_PEERGROUPS");
        {
                int n = getgroups(0, NULL);

                CHECK(n >= 0 && (size_t) n == p.n_groups, "the process's own groups: %d vs %zu", n,
                      p.n_groups);
        }
        peer_done(&p);
        close(sv[0]);
        close(sv[1]);

        memset(&p, 0, sizeof p);
        peer_identify_unix(&p, -1);
        CHECK(p.is_unix && !p.identified && p.unidentified, "no fd");
}

static void test_user_groups(void) {
        struct passwd *pw = getpwuid(0);
        gid_t *g = NULL;
        size_t n = 0;

        if (!pw) {
                CHECK(false, "no root entry");
                return;
        }
        CHECK(peer_user_groups(pw->pw_name, pw->pw_gid, &g, &n) == 0, "root's groups");
        CHECK(n >= 1 && g[0] == pw->pw_gid, "the primary group first: %zu", n);
        free(g);
        /* An unknown name still has the group it was given. */
        g = NULL;
        CHECK(peer_user_groups("no-such-user-denvrd-test", 12345, &g, &n) == 0 && n == 1 && g[0] == 12345,
              "unknown user");
        free(g);
}

int main(void) {
        test_tcp();
        test_tcp_cached();
        test_unix();
        test_user_groups();
        printf("%u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
