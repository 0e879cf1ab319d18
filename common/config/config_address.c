/* SPDX-License-Identifier: MIT */
/*
 * Syntax checks for network addresses in the configuration: listen
 * addresses (HOST:PORT), Host header values (allowed_hosts) and browser
 * origins (cors_origins).  Pure string checks; nothing is resolved.
 */
#include "common/config/config-internal.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <strings.h>

static bool is_hostname_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_';
}

/* A DNS name or IPv4 address (letters, digits, '-', '.', '_'), no empty labels. */
static bool hostname_valid(const char *s, size_t n) {
        if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!is_hostname_char(s[i]))
                        return false;
                if (s[i] == '.' && i + 1 < n && s[i + 1] == '.')
                        return false;
        }
        return true;
}

static bool ipv6_literal_valid(const char *s, size_t n, struct in6_addr *ret) {
        char buf[INET6_ADDRSTRLEN + 1];
        struct in6_addr a;

        if (n == 0 || n >= sizeof buf)
                return false;
        memcpy(buf, s, n);
        buf[n] = 0;
        if (inet_pton(AF_INET6, buf, &a) != 1)
                return false;
        if (ret)
                *ret = a;
        return true;
}

/* "[v6]" or a host name or IPv4 address, as in a Host header without port. */
static bool host_valid(const char *s, size_t n) {
        if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
                return ipv6_literal_valid(s + 1, n - 2, NULL);
        return hostname_valid(s, n);
}

static int parse_port(const char *s, uint16_t *ret) {
        unsigned v = 0;

        if (!*s || strlen(s) > 5)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (*s - '0');
        }
        if (v > 65535)
                return -EINVAL;
        *ret = (uint16_t) v;
        return 0;
}

/* The host part of a listen address and where its ":PORT" starts. */
struct listen_host {
        const char *host;
        size_t hlen;
        bool loopback;
        const char *colon;
};

/* "[v6]:PORT"; returns NULL or why not. */
static const char *split_bracketed(const char *s, struct listen_host *h) {
        const char *close = strchr(s, ']');
        struct in6_addr a;

        if (!close || close[1] != ':')
                return "expected [IPV6]:PORT";
        h->host = s + 1;
        h->hlen = (size_t) (close - h->host);
        if (!ipv6_literal_valid(h->host, h->hlen, &a))
                return "not a valid IPv6 address in brackets";
        h->loopback = IN6_IS_ADDR_LOOPBACK(&a) ||
                      (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
        h->colon = close + 1;
        return NULL;
}

/* "NAME:PORT" or "IPV4:PORT"; returns NULL or why not. */
static const char *split_plain(const char *s, struct listen_host *h) {
        struct in_addr a;
        char buf[256];

        h->colon = strrchr(s, ':');
        if (!h->colon)
                return "expected HOST:PORT";
        h->host = s;
        h->hlen = (size_t) (h->colon - s);
        if (memchr(h->host, ':', h->hlen))
                return "IPv6 addresses must be written in brackets, as [::1]:PORT";
        if (!hostname_valid(h->host, h->hlen) || h->hlen >= sizeof buf)
                return "not a valid host name or IPv4 address";
        memcpy(buf, h->host, h->hlen);
        buf[h->hlen] = 0;
        if (inet_pton(AF_INET, buf, &a) == 1)
                h->loopback = (ntohl(a.s_addr) >> 24) == 127;
        else
                h->loopback = strcasecmp(buf, "localhost") == 0;
        return NULL;
}

int config_parse_listen(const char *s, char **ret_host, uint16_t *ret_port, bool *ret_loopback,
                        const char **ret_reason) {
        struct listen_host h = { .host = NULL };
        const char *reason;
        uint16_t port = 0;

        assert(s);

        reason = s[0] == '[' ? split_bracketed(s, &h) : split_plain(s, &h);
        if (!reason && parse_port(h.colon + 1, &port) < 0)
                reason = "the port must be a number from 0 to 65535";
        if (reason) {
                if (ret_reason)
                        *ret_reason = reason;
                return -EINVAL;
        }

        if (ret_host) {
                *ret_host = strndup(h.host, h.hlen);
                if (!*ret_host)
                        return -ENOMEM;
        }
        if (ret_port)
                *ret_port = port;
        if (ret_loopback)
                *ret_loopback = h.loopback;
        return 0;
}

const char *config_host_check(const char *s) {
        return host_valid(s, strlen(s)) ? NULL
                : "is not a host name or address (no port; IPv6 in brackets)";
}

/* Where the host of an origin ends (after "]" for IPv6); sets *why if it is not valid. */
static const char *origin_host_end(const char *host, const char **why) {
        const char *end;

        if (*host == '[') {
                end = strchr(host, ']');
                if (!end || !ipv6_literal_valid(host + 1, (size_t) (end - host - 1), NULL))
                        *why = "has an invalid IPv6 address";
                return end ? end + 1 : NULL;
        }
        end = host;
        while (is_hostname_char(*end))
                end++;
        if (!hostname_valid(host, (size_t) (end - host)))
                *why = "has no valid host";
        else
                for (const char *q = host; q < end; q++)
                        if (*q >= 'A' && *q <= 'Z')
                                *why = "must be lower case (browsers send origins in lower case)";
        return end;
}

/* An Origin as browsers send it: scheme://host[:port], lower case, no path. */
const char *config_origin_check(const char *s) {
        const char *p = s, *end, *why = NULL;

        if (!(*p >= 'a' && *p <= 'z'))
                return "must start with a lower-case scheme, as in https://example.com";
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')
                p++;
        if (strncmp(p, "://", 3) != 0)
                return "must look like scheme://host[:port]";
        end = origin_host_end(p + 3, &why);
        if (why)
                return why;
        if (*end == ':') {
                uint16_t port;
                if (parse_port(end + 1, &port) < 0 || port == 0)
                        return "has an invalid port";
                return NULL;
        }
        if (*end == '/')
                return "must not have a path or a trailing '/' (an origin is scheme://host[:port])";
        if (*end)
                return "must look like scheme://host[:port]";
        return NULL;
}
