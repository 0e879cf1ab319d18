/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Listening sockets: loopback TCP addresses, a unix socket, or sockets
 * inherited from systemd.  Each listener gets its own libmicrohttpd daemon
 * (server.c), all driven by the one event loop.
 */

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "common/config/config.h"

struct conn_ctx;
struct daemon;
struct MHD_Daemon;

enum listener_kind {
        LISTENER_TCP,
        LISTENER_UNIX,
};

struct listener {
        struct daemon *daemon;
        enum listener_kind kind;
        char *address;          /* "127.0.0.1:3368", "[::1]:3368" or the socket path */
        int fd;                 /* owned until handed to libmicrohttpd */
        char *unlink_path;      /* unix socket we created and remove at exit */
        bool activated;         /* inherited from systemd */
        /* What the configuration asked for, so a reload can tell an unchanged
         * listener (kept, with its connections) from a changed one. */
        char *spec;             /* the listen entry or the socket path; NULL if inherited */
        bool allow_remote;      /* TCP */
        mode_t socket_mode;     /* unix */
        struct MHD_Daemon *mhd;
        /* libmicrohttpd's epoll fd and the connections' sockets (conn_watch.h),
         * the loop's io_source. */
        int watch_fd;
        struct conn_ctx *watched;
        uint64_t ask_turn;              /* loop_turn.h: when the set must be asked */
        sd_event_source *io_source;
        sd_event_source *timer_source;
        sd_event_source *wake_source;   /* runs MHD after a connection was resumed */
        bool running;           /* inside server_run(): MHD_run() must not be entered again */
        bool replied_resumed;   /* a resumed request was answered in this run (server.c) */
};

/* Opens "HOST:PORT" (IPv4, [IPv6] or localhost); loopback only unless allow_remote. */
int listener_open_tcp(const char *hostport, bool allow_remote, struct listener **ret);
/* Creates a unix socket at path with mode; replaces a stale one, refuses a live one. */
int listener_open_unix(const char *path, mode_t mode, struct listener **ret);
/* Wraps an inherited listening socket (socket activation). */
int listener_adopt(int fd, bool allow_remote, struct listener **ret);

/* Splits "HOST:PORT"; host without brackets.  Exposed for tests. */
int listener_parse_hostport(const char *s, char **ret_host, unsigned *ret_port);

void listener_free(struct listener *l);

/* Whether l is what the configuration's listen entry or socket path spec asks for. */
bool listener_is(const struct listener *l, enum listener_kind kind, const char *spec,
                 bool allow_remote, mode_t socket_mode);

/* Runs the listener's libmicrohttpd soon: after a connection was resumed or shut down. */
void listener_wake(struct listener *l);
