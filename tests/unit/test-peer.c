/* SPDX-License-Identifier: MIT */
/*
 * The bounded /proc/net/tcp{,6} search behind the audit's "uid of a TCP
 * peer", on synthetic files: IPv4, IPv6, v4-mapped, TIME_WAIT and LISTEN
 * entries skipped, our own accepted socket not mistaken for the client's,
 * and the byte budget honoured.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peer.h"

#include "check.h"

static const char header4[] =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
static const char header6[] =
        "  sl  local_address                         remote_address                        st tx_queue "
        "rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

static char *write_tmp(const char *text) {
        char *path = strdup("/tmp/test-peer-XXXXXX");
        int fd;

        if (!path)
                abort();
        fd = mkstemp(path);
        if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text))
                abort();
        close(fd);
        return path;
}

static struct sockaddr_in sin4(const char *ip, unsigned port) {
        struct sockaddr_in a;

        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t) port);
        inet_pton(AF_INET, ip, &a.sin_addr);
        return a;
}

static struct sockaddr_in6 sin6(const char *ip, unsigned port) {
        struct sockaddr_in6 a;

        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_port = htons((uint16_t) port);
        inet_pton(AF_INET6, ip, &a.sin6_addr);
        return a;
}

/* The kernel's rendering of an IPv4 address: the __be32 printed as a host integer. */
static void hex4(const char *ip, char out[9]) {
        struct in_addr a;
        uint32_t v;

        inet_pton(AF_INET, ip, &a);
        memcpy(&v, &a, 4);
        snprintf(out, 9, "%08X", v);
}

static void hex6(const char *ip, char out[33]) {
        struct in6_addr a;

        inet_pton(AF_INET6, ip, &a);
        for (int i = 0; i < 4; i++) {
                uint32_t v;

                memcpy(&v, (const uint8_t *) &a + 4 * i, 4);
                snprintf(out + 8 * i, 9, "%08X", v);
        }
}

static void line4(char *buf, size_t n, const char *lip, unsigned lport, const char *rip, unsigned rport,
                  unsigned st, unsigned uid) {
        char l[9], r[9];

        hex4(lip, l);
        hex4(rip, r);
        snprintf(buf + strlen(buf), n - strlen(buf),
                 "   0: %s:%04X %s:%04X %02X 00000000:00000000 00:00000000 00000000 %5u        0 1234 1 "
                 "0000000000000000 20 4 30 10 -1\n", l, lport, r, rport, st, uid);
}

static void line6(char *buf, size_t n, const char *lip, unsigned lport, const char *rip, unsigned rport,
                  unsigned st, unsigned uid) {
        char l[33], r[33];

        hex6(lip, l);
        hex6(rip, r);
        snprintf(buf + strlen(buf), n - strlen(buf),
                 "   0: %s:%04X %s:%04X %02X 00000000:00000000 00:00000000 00000000 %5u        0 1234 1 "
                 "0000000000000000 20 4 30 10 -1\n", l, lport, r, rport, st, uid);
}

static size_t last_read;

static int find(const char *text, const void *client, const void *server, size_t max, uid_t *uid) {
        char *path = write_tmp(text);
        int r = peer_proc_net_tcp_find(path, client, server, max, &last_read, uid);

        unlink(path);
        free(path);
        return r;
}

int main(void) {
        static char buf[1 << 20];
        struct sockaddr_in c4 = sin4("127.0.0.1", 51000), s4 = sin4("127.0.0.1", 3368);
        struct sockaddr_in6 c6 = sin6("::1", 52000), s6 = sin6("::1", 3368);
        uid_t uid = 0;
        int r;

        /* IPv4: listener, our accepted socket, a TIME_WAIT twin, then the client's socket. */
        snprintf(buf, sizeof buf, "%s", header4);
        line4(buf, sizeof buf, "127.0.0.1", 3368, "0.0.0.0", 0, 0x0A, 4242);
        line4(buf, sizeof buf, "127.0.0.1", 3368, "127.0.0.1", 51000, 0x01, 4242);
        line4(buf, sizeof buf, "127.0.0.1", 51000, "127.0.0.1", 3368, 0x06, 0);
        line4(buf, sizeof buf, "127.0.0.2", 51000, "127.0.0.1", 3368, 0x01, 7);
        line4(buf, sizeof buf, "127.0.0.1", 51000, "127.0.0.1", 3368, 0x01, 1000);
        r = find(buf, &c4, &s4, 1 << 20, &uid);
        CHECK(r == 0 && uid == 1000, "IPv4 client socket found, others skipped");

        /* Not there at all. */
        snprintf(buf, sizeof buf, "%s", header4);
        line4(buf, sizeof buf, "127.0.0.1", 51001, "127.0.0.1", 3368, 0x01, 1000);
        CHECK(find(buf, &c4, &s4, 1 << 20, &uid) == -ENOENT, "absent: -ENOENT");

        /* IPv6, and a dual-stack client reaching an IPv4 listener (v4-mapped, in tcp6). */
        snprintf(buf, sizeof buf, "%s", header6);
        line6(buf, sizeof buf, "::1", 3368, "::1", 52000, 0x01, 4242);
        line6(buf, sizeof buf, "::1", 52000, "::1", 3368, 0x01, 1001);
        line6(buf, sizeof buf, "::ffff:127.0.0.1", 51000, "::ffff:127.0.0.1", 3368, 0x01, 1002);
        uid = 0;
        CHECK(find(buf, &c6, &s6, 1 << 20, &uid) == 0 && uid == 1001, "IPv6 client socket found");
        uid = 0;
        CHECK(find(buf, &c4, &s4, 1 << 20, &uid) == 0 && uid == 1002, "v4-mapped client socket found");

        /* The budget: the entry sits after ~100 KiB of others; 64 KiB is not enough, 1 MiB is. */
        snprintf(buf, sizeof buf, "%s", header4);
        for (unsigned i = 0; i < 700; i++)
                line4(buf, sizeof buf, "127.0.0.1", 20000 + i, "127.0.0.1", 3368, 0x06, 0);
        line4(buf, sizeof buf, "127.0.0.1", 51000, "127.0.0.1", 3368, 0x01, 1003);
        CHECK(strlen(buf) > 64 * 1024, "synthetic file larger than 64 KiB");
        last_read = 0;
        CHECK(find(buf, &c4, &s4, 64 * 1024, &uid) == -ENOENT, "stops at the byte budget");
        CHECK(last_read == 64 * 1024, "read exactly the budget");
        uid = 0;
        CHECK(find(buf, &c4, &s4, 1024 * 1024, &uid) == 0 && uid == 1003, "found within a larger budget");
        /* A tiny budget (smaller than a line) must not loop or overrun. */
        CHECK(find(buf, &c4, &s4, 16, &uid) == -ENOENT, "tiny budget");

        /* Garbage lines are skipped, not trusted. */
        snprintf(buf, sizeof buf, "%s"
                 "   0: 0100007F:C738 0100007F:0D28 01 00000000:00000000 00:00000000 00000000 notanumber 0 1\n"
                 "   1: 0100007F:C738\n"
                 "   2: XYZ:C738 0100007F:0D28 01 a b c 5\n", header4);
        CHECK(find(buf, &c4, &s4, 1 << 20, &uid) == -ENOENT, "malformed lines skipped");

        CHECK(peer_proc_net_tcp_find("/nonexistent/tcp", (const void *) &c4, (const void *) &s4, 1024, NULL, &uid) ==
              -ENOENT, "missing file");

        printf("%u checks, %u failures\n", checks, failures);
        return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
