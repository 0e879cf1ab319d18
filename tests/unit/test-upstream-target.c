/* SPDX-License-Identifier: MIT */
/*
 * upstream_target_split(): which URLs it splits, and, against curl itself, that
 * a split URL goes out as the same request head byte for byte as the whole
 * URL would, while each kind of URL it keeps whole would not.
 */

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/client/upstream-internal.h"

#include "check.h"

#define HEAD_MAX 8192

/* Targets the split must take, appended to an origin; each also goes through curl. */
static const char *const split_targets[] = {
        "/",
        "/api/v1/servers/virtual/GetServers",
        "/api/v1/servers/virtual/GetServer?Id=vm-1&Namespace=ns&Cluster=Msc1",
        "/api/v1/servers/virtual/GetServer?",
        "/api/v1/servers/virtual/GetServer??x=1",
        "/api/v1//servers/./virtual/../GetServers",
        "//double/leading",
        "/%2e%2E/%2f%00%ff?%23=%20",
        "/a;b=c/d?e=f;g&h=%zz",
        "/x?a=1&a=2&input.Id=3&ID=4",
        "/!$&'()*+,=:@-._~\"<>[]{}|\\^`",
        "/x?!$&'()*+,=:@-._~\"<>[]{}|\\^`/?",
};

/* Targets it must keep whole, and why curl would not send them as they are. */
static const char *const whole_targets[] = {
        "/x#frag",              /* curl cuts the fragment */
        "/x?a=1#frag",
        "/x#",
        "/caf\xc3\xa9",         /* curl percent-encodes the path's high bytes */
        "/a b",                 /* curl refuses spaces and control bytes */
        "/a\tb",
        "/a?b\x7f",
        "/a\x01",
};

/* One request through curl to our socket; its head as the server read it. */
static bool capture(int lfd, const char *url, const char *target, char *head, size_t size) {
        CURLM *m = curl_multi_init();
        CURL *e = curl_easy_init();
        int cfd = -1, running = 1;
        size_t got = 0;
        bool answered = false;

        head[0] = 0;
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_REQUEST_TARGET, target);
        curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
        curl_multi_add_handle(m, e);
        while (running) {
                curl_multi_perform(m, &running);
                if (cfd < 0)
                        cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (cfd >= 0 && !answered) {
                        ssize_t n = recv(cfd, head + got, size - 1 - got, 0);

                        if (n > 0)
                                got += (size_t) n;
                        head[got] = 0;
                        if (strstr(head, "\r\n\r\n") || got == size - 1) {
                                static const char reply[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";

                                answered = send(cfd, reply, sizeof reply - 1, MSG_NOSIGNAL) > 0;
                        }
                }
                if (running)
                        curl_multi_poll(m, NULL, 0, 5, NULL);
        }
        if (cfd < 0)
                cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (cfd >= 0)
                close(cfd);
        curl_multi_remove_handle(m, e);
        curl_easy_cleanup(e);
        curl_multi_cleanup(m);
        return got > 0;
}

static int listen_local(char *origin, size_t size) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof a) < 0 || listen(fd, 8) < 0 ||
            getsockname(fd, (struct sockaddr *) &a, &len) < 0) {
                perror("listen");
                exit(EXIT_FAILURE);
        }
        snprintf(origin, size, "http://user:pw@127.0.0.1:%u", (unsigned) ntohs(a.sin_port));
        return fd;
}

/* The split, and the head it sends equal to the whole URL's. */
static void check_split(int lfd, const char *origin, const char *target) {
        char url[1024], got_origin[UPSTREAM_ORIGIN_MAX];
        static char whole[HEAD_MAX], split[HEAD_MAX];
        const char *t;

        snprintf(url, sizeof url, "%s%s", origin, target);
        t = upstream_target_split(url, got_origin, sizeof got_origin);
        CHECK(t && strcmp(t, target) == 0 && strcmp(got_origin, origin) == 0, "%s: not split as %s + %s", url,
              origin, target);
        if (!t)
                return;
        CHECK(capture(lfd, url, NULL, whole, sizeof whole), "%s: curl sent nothing", url);
        CHECK(capture(lfd, got_origin, t, split, sizeof split), "%s: curl sent nothing (split)", url);
        CHECK(strcmp(whole, split) == 0, "%s: heads differ:\n%s\n---\n%s", url, whole, split);
}

/* Kept whole, and for cause: given as a target, curl would send something else. */
static void check_whole(int lfd, const char *origin, const char *target) {
        char url[1024], got_origin[UPSTREAM_ORIGIN_MAX];
        static char whole[HEAD_MAX], split[HEAD_MAX];

        snprintf(url, sizeof url, "%s%s", origin, target);
        CHECK(upstream_target_split(url, got_origin, sizeof got_origin) == NULL, "%s: split", url);
        bool sent = capture(lfd, url, NULL, whole, sizeof whole);

        CHECK(capture(lfd, origin, target, split, sizeof split), "%s: curl sent no verbatim target", url);
        CHECK(!sent || strcmp(whole, split) != 0, "%s: kept whole, yet curl sends it as it is", url);
}

static void check_no_split(const char *url, size_t origin_size) {
        char origin[UPSTREAM_ORIGIN_MAX];

        CHECK(upstream_target_split(url, origin, origin_size) == NULL, "%s: split", url);
}

int main(void) {
        char origin[128];
        int lfd;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return EXIT_FAILURE;
        lfd = listen_local(origin, sizeof origin);
        for (size_t i = 0; i < sizeof split_targets / sizeof split_targets[0]; i++)
                check_split(lfd, origin, split_targets[i]);
        for (size_t i = 0; i < sizeof whole_targets / sizeof whole_targets[0]; i++)
                check_whole(lfd, origin, whole_targets[i]);

        /* No target, or an authority that does not end at a '/'. */
        check_no_split("https://host", sizeof origin);
        check_no_split("https://host?a=/b", sizeof origin);
        check_no_split("https://host#/b", sizeof origin);
        check_no_split("host/path", sizeof origin);
        /* High bytes in a query curl would send as they are; kept whole all the same. */
        check_no_split("https://host/x?caf\xc3\xa9", sizeof origin);
        /* An origin longer than the room for it. */
        check_no_split("https://a-rather-long-host-name.example/x", 16);

        close(lfd);
        curl_global_cleanup();
        printf("%u checks, %u failures\n", checks, failures);
        return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
