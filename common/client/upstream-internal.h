/* SPDX-License-Identifier: MIT */
#pragma once

/* What upstream.c (the multi handle on sd-event, transfers), upstream_sockets.c
 * (the sockets and their watches) and upstream_response.c (reading an answer's
 * headers and body) share. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/client/upstream.h"

#define UPSTREAM_IDLE_EASY 64

struct tracked_socket {
        int fd;
        dev_t dev;
        ino_t ino;
        /* What it is registered for in the upstream's epoll set (0: not in it).
         * Kept while curl holds the connection idle in its pool: the next
         * request on it costs no epoll_ctl(). */
        uint32_t events;
        bool idle;              /* curl removed it from its watch list: events are not curl's */
        bool answered;          /* curl once waited to read on it: a connection, not a failed connect */
};

struct upstream {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        sd_event_source *kick;           /* curl's "call me now", without a timerfd */
        char *ca_file;
        unsigned running;
        /* curl's sockets are watched in an epoll set of their own, itself one
         * source of the loop: one loop turn takes every ready socket with one
         * epoll_wait(), where a source per socket would cost a turn (and an
         * epoll_wait()) each.  A socket's registration goes with its close. */
        int epfd;
        sd_event_source *epoll_source;
        struct tracked_socket *sockets;  /* sockets curl opened and may still hold */
        size_t n_sockets, sockets_alloc;
        /* Where each fd's entry is, 1 + its index (0: none): a socket event finds its
         * entry without a scan of every connection. */
        unsigned *slot_of_fd;
        size_t n_slots;
        unsigned long sockets_opened; /* since start */
        unsigned untracked_watched;      /* sockets curl watches that it did not open through us */
        uint64_t ask_turn;               /* loop_turn.h: when the set must be asked */
        /* Easy handles of freed transfers, with the options every transfer
         * shares already set (easy_prepare()), for the next ones: saves
         * curl_easy_init(), curl_easy_reset() and a dozen curl_easy_setopt()
         * per request.  A reconfiguration empties it and bumps generation,
         * so handles prepared for the old options are not reused. */
        CURL *idle_easy[UPSTREAM_IDLE_EASY];
        unsigned n_idle_easy;
        unsigned generation;
        bool no_proxy;                   /* no proxy in the environment at start */
        void (*after_events)(void *userdata);
        void *after_events_data;
};

/* The longest origin ("https://host:port") sent apart from its target. */
#define UPSTREAM_ORIGIN_MAX 512

/* The most body space reserved up front from an answer's Content-Length. */
#define UPSTREAM_RESERVE_MAX (1024u * 1024u)

/* Forgets the response of t's previous attempt. */
void upstream_transfer_clear_response(struct upstream_transfer *t);
/* curl's CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION; userdata is the transfer. */
size_t upstream_write_cb(char *data, size_t size, size_t n, void *userdata);
size_t upstream_header_cb(char *data, size_t size, size_t n, void *userdata);

/* upstream.c: hands finished transfers to their callers, then runs the after_events hook. */
void upstream_check_done(struct upstream *u);

/* upstream_target.c: the target to send as CURLOPT_REQUEST_TARGET, with the
 * origin (scheme and authority) copied into origin as the URL; NULL when curl
 * must be given the whole URL to send the same request line. */
const char *upstream_target_split(const char *url, char *origin, size_t origin_size);

/* upstream_sockets.c: the epoll set, curl's socket, open and close callbacks, and the cleanup. */
int upstream_sockets_init(struct upstream *u);
int upstream_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp);
curl_socket_t upstream_open_socket_cb(void *userp, curlsocktype purpose, struct curl_sockaddr *a);
int upstream_close_socket_cb(void *userp, curl_socket_t fd);
void upstream_sockets_free(struct upstream *u);
