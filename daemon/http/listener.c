/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "listen"
#include "daemon/http/listener.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/base/log.h"

/* As deep as the kernel allows (net.core.somaxconn caps it), as systemd's
 * sockets are: a local caller that opens connections faster than they are
 * accepted must not fill the queue, where another caller's SYN would be dropped
 * and retried only a second later. */
#define LISTEN_BACKLOG SOMAXCONN

static struct listener *listener_alloc(enum listener_kind kind) {
        struct listener *l = calloc(1, sizeof *l);

        if (l) {
                l->kind = kind;
                l->fd = -1;
                l->watch_fd = -1;
        }
        return l;
}

void listener_free(struct listener *l) {
        if (!l)
                return;
        if (l->fd >= 0)
                (void) close(l->fd);
        if (l->watch_fd >= 0)
                (void) close(l->watch_fd);
        if (l->unlink_path)
                (void) unlink(l->unlink_path);
        free(l->unlink_path);
        free(l->address);
        free(l->spec);
        free(l);
}

bool listener_is(const struct listener *l, enum listener_kind kind, const char *spec,
                 bool allow_remote, mode_t socket_mode) {
        if (l->kind != kind || !l->spec || strcmp(l->spec, spec) != 0)
                return false;
        return kind == LISTENER_TCP ? l->allow_remote == allow_remote : l->socket_mode == socket_mode;
}

int listener_parse_hostport(const char *s, char **ret_host, unsigned *ret_port) {
        const char *colon, *host;
        size_t hlen;
        char *end;
        unsigned long port;

        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                host = s + 1;
                hlen = (size_t) (close - host);
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon || memchr(s, ':', (size_t) (colon - s)))
                        return -EINVAL;   /* bare IPv6 needs brackets */
                host = s;
                hlen = (size_t) (colon - s);
        }
        if (hlen == 0 || colon[1] == 0)
                return -EINVAL;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno || *end || port > 65535 || colon[1] == '-' || colon[1] == '+')
                return -EINVAL;
        *ret_host = strndup(host, hlen);
        if (!*ret_host)
                return -ENOMEM;
        *ret_port = (unsigned) port;
        return 0;
}

static bool sockaddr_is_loopback(const struct sockaddr *sa) {
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        }
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
                        return true;
                return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
        }
        return false;
}

static int format_sockaddr(const struct sockaddr *sa, char **ret) {
        char host[INET6_ADDRSTRLEN];
        unsigned port;

        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                port = ntohs(in->sin_port);
                return asprintf(ret, "%s:%u", host, port) < 0 ? -ENOMEM : 0;
        }
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                port = ntohs(in6->sin6_port);
                return asprintf(ret, "[%s]:%u", host, port) < 0 ? -ENOMEM : 0;
        }
        return -EAFNOSUPPORT;
}

static int resolve_host(const char *host, unsigned port, struct sockaddr_storage *ss, socklen_t *len) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
        struct addrinfo *ai = NULL;
        char portstr[8];
        int r;

        /* "localhost" is resolved by us, not by NSS: it must never leave loopback. */
        if (strcmp(host, "localhost") == 0)
                host = "127.0.0.1";
        snprintf(portstr, sizeof portstr, "%u", port);
        r = getaddrinfo(host, portstr, &hints, &ai);
        if (r != 0)
                return -EINVAL;
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        *len = ai->ai_addrlen;
        freeaddrinfo(ai);
        return 0;
}

static int tcp_check_and_name(struct listener *l, bool allow_remote) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int r;

        if (getsockname(l->fd, (struct sockaddr *) &ss, &len) < 0)
                return -errno;
        r = format_sockaddr((struct sockaddr *) &ss, &l->address);
        if (r < 0)
                return r;
        if (!sockaddr_is_loopback((struct sockaddr *) &ss)) {
                if (!allow_remote)
                        return log_error_errno(EPERM,
                                               "refusing to listen on %s: not a loopback address "
                                               "(set [daemon] allow_remote = true to allow it)",
                                               l->address);
                log_warning("listening on non-loopback address %s: anyone who can reach it "
                            "acts with this daemon's credentials (allow_remote = true)", l->address);
        }
        return 0;
}

int listener_open_tcp(const char *hostport, bool allow_remote, struct listener **ret) {
        _cleanup_free_ char *host = NULL;
        struct sockaddr_storage ss;
        socklen_t sslen;
        struct listener *l;
        unsigned port;
        int r, one = 1;

        r = listener_parse_hostport(hostport, &host, &port);
        if (r < 0)
                return log_error_errno(r, "invalid listen address '%s' (want HOST:PORT)", hostport);
        r = resolve_host(host, port, &ss, &sslen);
        if (r < 0)
                return log_error_errno(r, "invalid listen address '%s': host must be an IP address or localhost",
                                       hostport);
        if (!allow_remote && !sockaddr_is_loopback((struct sockaddr *) &ss))
                return log_error_errno(EPERM, "refusing to listen on %s: not a loopback address "
                                       "(set [daemon] allow_remote = true to allow it)", hostport);

        l = listener_alloc(LISTENER_TCP);
        if (!l)
                return -ENOMEM;
        l->allow_remote = allow_remote;
        l->spec = strdup(hostport);
        if (!l->spec) {
                r = -ENOMEM;
                goto fail;
        }
        l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (l->fd < 0) {
                r = log_error_errno(errno, "cannot create socket for %s", hostport);
                goto fail;
        }
        (void) setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ss.ss_family == AF_INET6)
                (void) setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(l->fd, (struct sockaddr *) &ss, sslen) < 0) {
                r = log_error_errno(errno, "cannot bind %s", hostport);
                goto fail;
        }
        if (listen(l->fd, LISTEN_BACKLOG) < 0) {
                r = log_error_errno(errno, "cannot listen on %s", hostport);
                goto fail;
        }
        r = tcp_check_and_name(l, allow_remote);
        if (r < 0)
                goto fail;
        *ret = l;
        return 0;
fail:
        listener_free(l);
        return r;
}

/* A socket file with a live daemon behind it must not be stolen. */
static int unix_check_stale(const char *path, const struct sockaddr_un *sun, socklen_t len) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : log_error_errno(errno, "cannot inspect %s", path);
        if (!S_ISSOCK(st.st_mode))
                return log_error_errno(EEXIST, "%s exists and is not a socket; not replacing it", path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sun, len) == 0)
                return log_error_errno(EADDRINUSE, "%s: denvrd is already running (a live server answers "
                                       "on this socket)", path);
        if (errno != ECONNREFUSED)
                return log_error_errno(errno, "cannot probe existing socket %s", path);
        log_info("removing stale socket %s left by a previous run", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error_errno(errno, "cannot remove stale socket %s", path);
        return 0;
}

int listener_open_unix(const char *path, mode_t mode, struct listener **ret) {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        socklen_t len;
        struct listener *l;
        mode_t old_umask;
        int r;

        if (strlen(path) >= sizeof sun.sun_path)
                return log_error_errno(ENAMETOOLONG, "socket path %s is longer than %zu bytes", path,
                                       sizeof sun.sun_path - 1);
        strcpy(sun.sun_path, path);
        len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);

        r = unix_check_stale(path, &sun, len);
        if (r < 0)
                return r;

        l = listener_alloc(LISTENER_UNIX);
        if (!l)
                return -ENOMEM;
        l->socket_mode = mode;
        l->address = strdup(path);
        l->spec = strdup(path);
        if (!l->address || !l->spec) {
                listener_free(l);
                return -ENOMEM;
        }
        l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (l->fd < 0) {
                r = log_error_errno(errno, "cannot create unix socket");
                goto fail;
        }
        /* The umask makes the socket appear with its final mode: no window
         * in which another user could connect. */
        old_umask = umask(~mode & 0777);
        r = bind(l->fd, (struct sockaddr *) &sun, len);
        umask(old_umask);
        if (r < 0) {
                r = log_error_errno(errno, "cannot bind %s", path);
                goto fail;
        }
        l->unlink_path = strdup(path);
        if (!l->unlink_path) {
                r = -ENOMEM;
                goto fail;
        }
        if (chmod(path, mode) < 0) {
                r = log_error_errno(errno, "cannot chmod %s", path);
                goto fail;
        }
        if (listen(l->fd, LISTEN_BACKLOG) < 0) {
                r = log_error_errno(errno, "cannot listen on %s", path);
                goto fail;
        }
        *ret = l;
        return 0;
fail:
        listener_free(l);
        return r;
}

int listener_adopt(int fd, bool allow_remote, struct listener **ret) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        struct listener *l;
        int r;

        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return log_error_errno(errno, "inherited fd %d is not a socket", fd);

        if (ss.ss_family == AF_UNIX) {
                const struct sockaddr_un *sun = (const struct sockaddr_un *) &ss;

                l = listener_alloc(LISTENER_UNIX);
                if (!l)
                        return -ENOMEM;
                l->fd = fd;
                l->activated = true;
                l->address = strdup(len > offsetof(struct sockaddr_un, sun_path) && sun->sun_path[0]
                                    ? sun->sun_path : "(unnamed unix socket)");
                if (!l->address) {
                        l->fd = -1;
                        listener_free(l);
                        return -ENOMEM;
                }
        } else if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
                l = listener_alloc(LISTENER_TCP);
                if (!l)
                        return -ENOMEM;
                l->fd = fd;
                l->activated = true;
                r = tcp_check_and_name(l, allow_remote);
                if (r < 0) {
                        l->fd = -1;   /* systemd owns it */
                        listener_free(l);
                        return r;
                }
        } else
                return log_error_errno(EAFNOSUPPORT, "inherited fd %d has an unsupported address family", fd);

        *ret = l;
        return 0;
}

void listener_wake(struct listener *l) {
        if (l->wake_source)
                (void) sd_event_source_set_enabled(l->wake_source, SD_EVENT_ONESHOT);
}
