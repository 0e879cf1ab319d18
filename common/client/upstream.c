/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "upstream"
#include "common/client/upstream.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/base/log.h"
#include "common/client/upstream-internal.h"

/* --- curl multi <-> sd-event glue ------------------------------------- */

static void easy_prepare(struct upstream *u, CURL *c);
static bool env_has_proxy(void);

static void deadline_off(struct upstream_transfer *t) {
        if (t->deadline)
                (void) sd_event_source_set_enabled(t->deadline, SD_EVENT_OFF);
}





/*
 * How late a timer may fire.  sd-event reprograms its timerfd whenever the
 * earliest deadline moves; with every request setting one ~request_timeout
 * ahead, a 250 ms slack lets it pick the same 250 ms-aligned instant for all
 * requests of that window, and a timeout of seconds may well be 250 ms late.
 * Under load curl keeps re-setting a timeout of about a second: an eighth of
 * it spares a timerfd_settime() per request.  Timeouts under 8 ms keep 1 ms,
 * so one firing early cannot spin the loop.
 */
static uint64_t timer_accuracy_usec(uint64_t timeout_usec) {
        if (timeout_usec >= 5000000u)
                return 250000u;
        return timeout_usec >= 8000u ? timeout_usec / 8 : 1000u;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        struct upstream *u = userp;
        uint64_t now, when, accuracy, armed;
        int enabled;

        /* "Now" (0 ms, curl's answer whenever a request starts) is served on
         * the next loop iteration by a defer source: a timer would cost two
         * timerfd_settime() calls and a read() per request. */
        if (timeout_ms <= 0) {
                if (sd_event_source_set_enabled(u->timer, SD_EVENT_OFF) < 0 ||
                    sd_event_source_set_enabled(u->kick, timeout_ms == 0 ? SD_EVENT_ONESHOT : SD_EVENT_OFF) < 0)
                        return -1;
                return 0;
        }
        (void) sd_event_source_set_enabled(u->kick, SD_EVENT_OFF);

        if (sd_event_now(u->event, CLOCK_MONOTONIC, &now) < 0)
                return -1;
        when = now + (uint64_t) timeout_ms * 1000;
        accuracy = timer_accuracy_usec((uint64_t) timeout_ms * 1000);
        /* curl moves its deadline a little with every request: leave the
         * timer alone while it stays within its slack (firing early is fine,
         * on_timeout() re-arms from curl's answer). */
        if (sd_event_source_get_enabled(u->timer, &enabled) >= 0 && enabled != SD_EVENT_OFF &&
            sd_event_source_get_time(u->timer, &armed) >= 0 && armed <= when && when - armed < accuracy)
                return 0;
        (void) sd_event_source_set_time_accuracy(u->timer, accuracy);
        if (sd_event_source_set_time(u->timer, when) < 0 ||
            sd_event_source_set_enabled(u->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

static int on_timeout(struct upstream *u) {
        long timeout_ms = -1;
        int running;

        (void) curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        upstream_check_done(u);
        /* curl calls timer_cb only when its next deadline changes.  This timer
         * may fire a little before curl's clock reaches that deadline (it is set
         * from the loop's cached time, and curl rounds down to milliseconds):
         * then curl expired nothing and said nothing, and without a re-arm from
         * curl's own answer its timeouts would wait for unrelated socket activity. */
        if (curl_multi_timeout(u->multi, &timeout_ms) == CURLM_OK)
                (void) timer_cb(u->multi, timeout_ms, u);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return on_timeout(userdata);
}

static int on_kick(sd_event_source *s, void *userdata) {
        return on_timeout(userdata);
}

static void transfer_finish(struct upstream_transfer *t, CURLcode result) {
        curl_off_t sent = 0;

        t->result = result;
        (void) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
        (void) curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &t->total_sec);
        (void) curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &sent);
        t->request_sent = sent > 0;
        if (result != CURLE_OK && t->errbuf[0] == 0)
                snprintf(t->errbuf, sizeof t->errbuf, "%s", curl_easy_strerror(result));
}

void upstream_check_done(struct upstream *u) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(u->multi, &left))) {
                struct upstream_transfer *t = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
                assert(t);

                transfer_finish(t, msg->data.result);
                (void) curl_multi_remove_handle(u->multi, t->easy);
                deadline_off(t);
                t->running = false;
                u->running--;
                /* May free t or start it again: do not touch t afterwards. */
                t->done(t, t->userdata);
        }
        if (u->after_events)
                u->after_events(u->after_events_data);
}






/* --- public ------------------------------------------------------------ */

int upstream_new(sd_event *e, const struct upstream_options *o, struct upstream **ret) {
        struct upstream *u;
        int r;

        assert(e && o && ret);
        assert(o->max_connections >= 1);

        u = calloc(1, sizeof *u);
        if (!u)
                return -ENOMEM;
        u->event = sd_event_ref(e);
        u->epfd = -1;
        u->no_proxy = !env_has_proxy();
        if (o->ca_file && !(u->ca_file = strdup(o->ca_file))) {
                upstream_free(u);
                return -ENOMEM;
        }

        u->multi = curl_multi_init();
        if (!u->multi) {
                upstream_free(u);
                return -ENOMEM;
        }
        curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, upstream_socket_cb);
        curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
        curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
        curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
        curl_multi_setopt(u->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) o->max_connections);
        curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) o->max_connections);
        curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, (long) o->max_connections);

        r = upstream_sockets_init(u);
        if (r < 0) {
                upstream_free(u);
                return r;
        }
        r = sd_event_add_time(e, &u->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_timer, u);
        if (r < 0) {
                upstream_free(u);
                return r;
        }
        (void) sd_event_source_set_enabled(u->timer, SD_EVENT_OFF);
        r = sd_event_add_defer(e, &u->kick, on_kick, u);
        if (r < 0) {
                upstream_free(u);
                return r;
        }
        (void) sd_event_source_set_enabled(u->kick, SD_EVENT_OFF);

        *ret = u;
        return 0;
}

struct upstream *upstream_free(struct upstream *u) {
        if (!u)
                return NULL;
        /* Transfers are owned by their callers and must be gone by now. */
        assert(u->running == 0);
        while (u->n_idle_easy > 0)
                curl_easy_cleanup(u->idle_easy[--u->n_idle_easy]);
        if (u->multi)
                curl_multi_cleanup(u->multi);
        sd_event_source_disable_unref(u->timer);
        sd_event_source_disable_unref(u->kick);
        upstream_sockets_free(u);
        sd_event_unref(u->event);
        free(u->ca_file);
        free(u);
        return NULL;
}

int upstream_reconfigure(struct upstream *u, const struct upstream_options *o) {
        char *ca = NULL;

        assert(o->max_connections >= 1);
        if (o->ca_file && !(ca = strdup(o->ca_file)))
                return -ENOMEM;
        free(u->ca_file);
        u->ca_file = ca;
        /* Idle handles carry the old CA file: prepare new ones. */
        while (u->n_idle_easy > 0)
                curl_easy_cleanup(u->idle_easy[--u->n_idle_easy]);
        u->generation++;
        curl_multi_setopt(u->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) o->max_connections);
        curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) o->max_connections);
        curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, (long) o->max_connections);
        return 0;
}

void upstream_trim(struct upstream *u) {
        /* Each idle handle keeps curl's 16 KiB receive buffer. */
        while (u->n_idle_easy > 0)
                curl_easy_cleanup(u->idle_easy[--u->n_idle_easy]);
}

void upstream_set_after_events(struct upstream *u, void (*fn)(void *userdata), void *userdata) {
        u->after_events = fn;
        u->after_events_data = userdata;
}

void upstream_run_now(struct upstream *u) {
        int enabled;

        if (sd_event_source_get_enabled(u->kick, &enabled) < 0 || enabled == SD_EVENT_OFF)
                return;
        (void) sd_event_source_set_enabled(u->kick, SD_EVENT_OFF);
        (void) on_timeout(u);
}

unsigned long upstream_connections_opened(const struct upstream *u) {
        return u->sockets_opened;
}

unsigned upstream_running(const struct upstream *u) {
        return u->running;
}


struct upstream_transfer *upstream_transfer_new(struct upstream *u, upstream_done_t done, void *userdata) {
        struct upstream_transfer *t;

        assert(u && done);
        t = calloc(1, sizeof *t);
        if (!t)
                return NULL;
        if (u->n_idle_easy > 0)
                t->easy = u->idle_easy[--u->n_idle_easy];
        else {
                t->easy = curl_easy_init();
                if (!t->easy) {
                        free(t);
                        return NULL;
                }
                easy_prepare(u, t->easy);
        }
        t->generation = u->generation;
        t->upstream = u;
        t->done = done;
        t->userdata = userdata;
        return t;
}

static void easy_prepare(struct upstream *u, CURL *c) {
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
        curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(c, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
        /* Byte-exact: without this curl squashes "/./" and "/../" in the path. */
        curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long) UPSTREAM_CONNECT_TIMEOUT_MS);
        /* Over TLS curl copies each request into an upload buffer it allocates
         * for the request and frees after it: at the default 64 KiB that
         * malloc() and free() (glibc consolidates its heap when a chunk that
         * large is freed, then trims and regrows it) cost more than the rest of
         * the request's allocations together.  16 KiB is curl's least; a larger
         * body goes out in 16 KiB writes. */
        curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, upstream_write_cb);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, upstream_header_cb);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, upstream_open_socket_cb);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, u);
        curl_easy_setopt(c, CURLOPT_CLOSESOCKETFUNCTION, upstream_close_socket_cb);
        curl_easy_setopt(c, CURLOPT_CLOSESOCKETDATA, u);
        /* Without a proxy in the environment, say so: curl would otherwise
         * look up six proxy variables in it for every transfer. */
        if (u->no_proxy)
                curl_easy_setopt(c, CURLOPT_PROXY, "");
        /* CAINFO replaces the default bundle but the default CApath stays, so
         * ca_file adds to the system's CAs instead of replacing them. */
        if (u->ca_file)
                curl_easy_setopt(c, CURLOPT_CAINFO, u->ca_file);
}

static bool env_has_proxy(void) {
        static const char *const vars[] = {
                "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
        };

        for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
                const char *v = getenv(vars[i]);

                if (v && *v)
                        return true;
        }
        return false;
}

/* What changes from one transfer to the next; the rest is easy_prepare()'s. */
static void transfer_setup(struct upstream_transfer *t) {
        CURL *c = t->easy;
        bool has_body = t->body || strcmp(t->method, "POST") == 0 ||
                        strcmp(t->method, "PUT") == 0 || strcmp(t->method, "PATCH") == 0;
        char origin[UPSTREAM_ORIGIN_MAX];
        const char *target = upstream_target_split(t->url, origin, sizeof origin);

        curl_easy_setopt(c, CURLOPT_PRIVATE, (char *) t);
        curl_easy_setopt(c, CURLOPT_URL, target ? origin : t->url);
        curl_easy_setopt(c, CURLOPT_REQUEST_TARGET, target);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) t->timeout_ms);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->errbuf);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->headers);
        /* curl silently sends a request again on a new connection when a reused
         * one dies before any answer byte.  That is fine for idempotent methods,
         * not for POST and PATCH, which may already have had their effect: those
         * always get a new connection, where curl never does that. */
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT,
                         (long) (strcmp(t->method, "POST") == 0 || strcmp(t->method, "PATCH") == 0));

        /* HTTPGET undoes the previous transfer's NOBODY, POSTFIELDS and upload. */
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
        if (strcmp(t->method, "HEAD") == 0)
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        else if (has_body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) t->body_len);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, t->body ? t->body : "");
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, t->method);
        } else if (strcmp(t->method, "GET") != 0)
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, t->method);
}

/*
 * timeout_ms, enforced by us as well: curl checks a transfer's timeout only
 * once it has a connection, so one queued behind max_connections busy ones
 * (CURLMOPT_MAX_TOTAL_CONNECTIONS) would otherwise wait past its deadline for
 * as long as the queue takes.  Ends the transfer as curl would, with
 * CURLE_OPERATION_TIMEDOUT; curl's own timeout normally comes first.
 */
#define DEADLINE_GRACE_USEC 20000u

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        struct upstream_transfer *t = userdata;
        struct upstream *u = t->upstream;

        if (!t->running)
                return 0;
        (void) curl_multi_remove_handle(u->multi, t->easy);
        t->running = false;
        u->running--;
        t->errbuf[0] = 0;
        transfer_finish(t, CURLE_OPERATION_TIMEDOUT);
        snprintf(t->errbuf, sizeof t->errbuf, t->request_sent ?
                 "no complete answer within %lu ms" :
                 "no upstream connection free or established within %lu ms", t->timeout_ms);
        /* May free t or start it again: do not touch t afterwards. */
        t->done(t, t->userdata);
        return 0;
}

static int transfer_arm_deadline(struct upstream_transfer *t) {
        struct timespec ts;
        uint64_t when, accuracy;
        int r;

        if (t->timeout_ms == 0) {
                deadline_off(t);
                return 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        when = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u +
               (uint64_t) t->timeout_ms * 1000u + DEADLINE_GRACE_USEC;
        accuracy = timer_accuracy_usec((uint64_t) t->timeout_ms * 1000u);
        if (!t->deadline)
                return sd_event_add_time(t->upstream->event, &t->deadline, CLOCK_MONOTONIC, when,
                                         accuracy, on_deadline, t);
        r = sd_event_source_set_time_accuracy(t->deadline, accuracy);
        if (r >= 0)
                r = sd_event_source_set_time(t->deadline, when);
        if (r >= 0)
                r = sd_event_source_set_enabled(t->deadline, SD_EVENT_ONESHOT);
        return r;
}

int upstream_transfer_start(struct upstream_transfer *t) {
        CURLMcode mc;
        int r;

        assert(t && t->method && t->url);
        assert(!t->running);

        upstream_transfer_clear_response(t);
        transfer_setup(t);
        r = transfer_arm_deadline(t);
        if (r < 0)
                return log_debug_errno(r, "cannot start transfer: no deadline timer");
        mc = curl_multi_add_handle(t->upstream->multi, t->easy);
        if (mc != CURLM_OK) {
                deadline_off(t);
                return log_debug_errno(ENOMEM, "cannot start transfer: %s", curl_multi_strerror(mc));
        }
        t->running = true;
        t->upstream->running++;
        return 0;
}

void upstream_transfer_cancel(struct upstream_transfer *t) {
        if (!t || !t->running)
                return;
        (void) curl_multi_remove_handle(t->upstream->multi, t->easy);
        deadline_off(t);
        t->running = false;
        t->upstream->running--;
}

void upstream_transfer_free(struct upstream_transfer *t) {
        if (!t)
                return;
        upstream_transfer_cancel(t);
        t->deadline = sd_event_source_disable_unref(t->deadline);
        upstream_transfer_clear_response(t);
        free(t->resp_headers);
        if (t->upstream->n_idle_easy < UPSTREAM_IDLE_EASY && t->generation == t->upstream->generation) {
                /* It must not keep pointers into t or the caller's data; the
                 * next transfer_setup() sets them again. */
                curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, NULL);
                curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
                if (t->body) {
                        curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, NULL);
                        curl_easy_setopt(t->easy, CURLOPT_HTTPGET, 1L);
                }
                t->upstream->idle_easy[t->upstream->n_idle_easy++] = t->easy;
        } else
                curl_easy_cleanup(t->easy);
        free(t);
}

void upstream_secret_header_free(struct curl_slist **node) {
        assert(node);
        if (!*node)
                return;
        explicit_bzero((*node)->data, strlen((*node)->data));
        (*node)->next = NULL;
        curl_slist_free_all(*node);
        *node = NULL;
}
