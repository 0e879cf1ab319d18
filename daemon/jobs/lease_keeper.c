/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "lease"
#include "daemon/jobs/lease-internal.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/base/cleanup.h"
#include "common/base/clock.h"
#include "common/base/format.h"
#include "common/base/log.h"
#include "daemon/core/daemon.h"

int lease_keeper_path(char **ret) {
        const char *dir = getenv("STATE_DIRECTORY"), *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
        char *p;

        /* StateDirectory= may list several directories, colon-separated: ours is the first. */
        if (dir && *dir)
                p = format("%.*s/leases.json", (int) strcspn(dir, ":"), dir);
        else if (xdg && *xdg == '/')
                p = format("%s/denvrd/leases.json", xdg);
        else if (home && *home == '/')
                p = format("%s/.local/state/denvrd/leases.json", home);
        else
                return -ENOENT;
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

/* Creates the file's directory (and, for the XDG one, its parents) private to us. */
static int make_parents(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        for (slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = 0;
                if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                        return -errno;
                *slash = '/';
        }
        return 0;
}

static void number(struct lease_keeper *k) {
        for (size_t i = 0; i < k->set.n; i++)
                k->set.leases[i].serial = ++k->next_serial;
}

int lease_keeper_new(struct daemon *d, const char *path, struct lease_keeper **ret, char *err, size_t err_size) {
        struct lease_keeper *k;
        int r;

        assert(d && path && ret);
        k = calloc(1, sizeof *k);
        if (!k || !(k->path = strdup(path))) {
                free(k);
                return -ENOMEM;
        }
        k->daemon = d;
        r = lease_store_load(path, &k->set, err, err_size);
        if (r >= 0) {
                r = make_parents(path);
                if (r < 0)
                        snprintf(err, err_size, "cannot create the directory of %s: %s", path, strerror(-r));
        }
        if (r < 0) {
                lease_keeper_free(k);
                return r;
        }
        number(k);
        *ret = k;
        return 0;
}

struct lease_keeper *lease_keeper_free(struct lease_keeper *k) {
        if (!k)
                return NULL;
        lease_act_cancel_all(k);
        sd_event_source_disable_unref(k->timer);
        lease_set_done(&k->set);
        free(k->path);
        free(k);
        return NULL;
}

int64_t lease_keeper_now(const struct lease_keeper *k) {
        return (int64_t) (clock_usec(CLOCK_REALTIME) / USEC_PER_SEC) + (k ? k->clock_offset : 0);
}

#ifdef DENVRD_TEST_HOOKS
void lease_keeper_advance_clock(struct lease_keeper *k, int64_t seconds) {
        k->clock_offset += seconds;
        lease_keeper_arm(k);
}
#endif

void lease_keeper_stats(const struct lease_keeper *k, struct lease_keeper_stats *ret) {
        *ret = (struct lease_keeper_stats) {
                .warnings = k->warnings,
                .acted_ok = k->acted_ok,
                .acted_failed = k->acted_failed,
        };
}

const char *lease_keeper_file(const struct lease_keeper *k) {
        return k->path;
}

size_t lease_keeper_count(const struct lease_keeper *k) {
        return k ? k->set.n : 0;
}

const struct lease *lease_keeper_at(const struct lease_keeper *k, size_t i) {
        assert(k && i < k->set.n);
        return &k->set.leases[i];
}

static ssize_t find_index(const struct lease_keeper *k, enum lease_service s, const char *cluster, const char *id) {
        for (size_t i = 0; i < k->set.n; i++) {
                const struct lease *l = &k->set.leases[i];

                if (l->service == s && strcmp(l->id, id) == 0 && strcasecmp(l->cluster, cluster) == 0)
                        return (ssize_t) i;
        }
        return -1;
}

const struct lease *lease_keeper_find(const struct lease_keeper *k, enum lease_service s, const char *cluster,
                                      const char *id) {
        ssize_t i;

        if (!k || !cluster || !id)
                return NULL;
        i = find_index(k, s, cluster, id);
        return i < 0 ? NULL : &k->set.leases[i];
}

struct lease *lease_keeper_by_serial(struct lease_keeper *k, uint64_t serial) {
        for (size_t i = 0; i < k->set.n; i++)
                if (k->set.leases[i].serial == serial)
                        return &k->set.leases[i];
        return NULL;
}

void lease_describe(const struct lease *l, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s (cluster %s%s%s)", lease_service_to_string(l->service), l->id, l->cluster,
                 l->namespace ? ", namespace " : "", l->namespace ? l->namespace : "");
}

/* --- the file ------------------------------------------------------------------------- */

#ifdef DENVRD_TEST_HOOKS
/* Tests crash denvrd at one step of every state write: DENVRD_TEST_LEASE_KILL_AT=renamed, say. */
static void test_kill_at(enum atomic_step step, void *userdata) {
        const char *at = getenv("DENVRD_TEST_LEASE_KILL_AT");

        (void) userdata;
        if (at && strcmp(at, atomic_step_to_string(step)) == 0)
                raise(SIGKILL);
}
static const struct atomic_hooks save_hooks = { .at = test_kill_at };
#define SAVE_HOOKS (&save_hooks)
#else
#define SAVE_HOOKS NULL
#endif

static int save_set(struct lease_keeper *k, const struct lease_set *set) {
        int r = lease_store_save(k->path, set, lease_keeper_now(k), SAVE_HOOKS);

        if (r < 0)
                log_error_errno(r, "cannot write the leases to %s", k->path);
        return r;
}

int lease_keeper_save(struct lease_keeper *k) {
        return save_set(k, &k->set);
}

/* --- changes --------------------------------------------------------------------------- */

static void log_set(const struct lease *l, int64_t now) {
        char what[256], when[LEASE_TIME_LEN];
        const struct log_field f[] = { { "MESSAGE_ID", MESSAGE_ID_LEASE_SET } };

        lease_describe(l, what, sizeof what);
        lease_time_format(l->expires_at, when);
        log_fields(LOG_INFO, f, ELEMENTSOF(f), "lease set on %s: %s at %s (in %llds)%s%s%s%s",
                   what, lease_action_to_string(l->action), when,
                   (long long) (l->expires_at - now), l->user ? ", by " : "", l->user ? l->user : "",
                   l->token ? ", token " : "", l->token ? l->token : "");
}

/* Writes the set without lease i, before it is changed in memory. */
static int save_without(struct lease_keeper *k, size_t i) {
        _cleanup_free_ struct lease *v = calloc(k->set.n, sizeof *v);
        struct lease_set view = { .leases = v };

        if (!v)
                return -ENOMEM;
        for (size_t j = 0; j < k->set.n; j++)
                if (j != i)
                        v[view.n++] = k->set.leases[j];
        return save_set(k, &view);
}

/* A change is on disk before it is in memory: a client told "set" is told the truth. */
int lease_keeper_set(struct lease_keeper *k, struct lease *l) {
        ssize_t i;
        struct lease old;
        int r;

        assert(k && l && l->id && l->cluster);
        l->serial = ++k->next_serial;
        l->state = LEASE_PENDING;
        l->warned = false;
        i = find_index(k, l->service, l->cluster, l->id);
        if (i < 0) {
                r = lease_set_add(&k->set, l);
                if (r < 0)
                        return r;
                r = lease_keeper_save(k);
                if (r < 0) {
                        *l = k->set.leases[--k->set.n];   /* given back, untouched */
                        return r;
                }
                i = (ssize_t) k->set.n - 1;
        } else {
                old = k->set.leases[i];
                k->set.leases[i] = *l;
                r = lease_keeper_save(k);
                if (r < 0) {
                        k->set.leases[i] = old;
                        return r;
                }
                memset(l, 0, sizeof *l);
                lease_act_cancel(k, old.serial);
                lease_done(&old);
        }
        log_set(&k->set.leases[i], lease_keeper_now(k));
        lease_keeper_arm(k);
        return 0;
}

int lease_keeper_remove(struct lease_keeper *k, enum lease_service s, const char *cluster, const char *id) {
        ssize_t i = find_index(k, s, cluster, id);
        char what[256];
        int r;

        if (i < 0)
                return -ENOENT;
        r = save_without(k, (size_t) i);
        if (r < 0)
                return r;
        lease_describe(&k->set.leases[i], what, sizeof what);
        log_info("lease on %s removed", what);
        lease_act_cancel(k, k->set.leases[i].serial);
        lease_set_remove(&k->set, (size_t) i);
        lease_keeper_arm(k);
        return 0;
}

/* --- the clock ------------------------------------------------------------------------- */

static void warn_ahead(struct lease_keeper *k, struct lease *l, int64_t now) {
        char what[256], when[LEASE_TIME_LEN];
        const struct log_field f[] = { { "MESSAGE_ID", MESSAGE_ID_LEASE_WARNING } };

        l->warned = true;
        k->warnings++;
        lease_describe(l, what, sizeof what);
        lease_time_format(l->expires_at, when);
        log_fields(LOG_WARNING, f, ELEMENTSOF(f), "lease on %s ends in %llds, at %s: denvrd will %s it then "
                   "(extend it with PUT /_denvrd/leases/%s/%s)", what, (long long) (l->expires_at - now), when,
                   lease_action_to_string(l->action), lease_service_to_string(l->service), l->id);
}

/* Acts on what is due, warns of what is near; returns the next time to look (INT64_MAX: none). */
static int64_t sweep(struct lease_keeper *k, int64_t now) {
        int64_t next = INT64_MAX;

        for (size_t i = 0; i < k->set.n; i++) {
                struct lease *l = &k->set.leases[i];
                int64_t warn_at = l->expires_at - LEASE_WARNING_DEFAULT_SEC;

                if (l->state == LEASE_ACTING || (l->state == LEASE_PENDING && l->expires_at <= now)) {
                        lease_act_start(k, l, now);
                        continue;
                }
                if (l->state != LEASE_PENDING)
                        continue;
                if (!l->warned && warn_at <= now)
                        warn_ahead(k, l, now);
                if (!l->warned && warn_at < next)
                        next = warn_at;
                if (l->expires_at < next)
                        next = l->expires_at;
        }
        return next;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        lease_keeper_arm(userdata);
        return 0;
}

void lease_keeper_arm(struct lease_keeper *k) {
        int64_t next;
        int r;

        /* Not started (lease_keeper_start() sweeps), or stopped: shutting down starts nothing. */
        if (!k->timer)
                return;
        next = sweep(k, lease_keeper_now(k));
        if (next == INT64_MAX) {
                (void) sd_event_source_set_enabled(k->timer, SD_EVENT_OFF);
                return;
        }
        r = sd_event_source_set_time(k->timer, (uint64_t) (next - k->clock_offset) * USEC_PER_SEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(k->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "cannot arm the lease timer");
}

int lease_keeper_start(struct lease_keeper *k) {
        int r;

        /* A wall-clock timer: a deadline passed during a suspend fires on wake-up. */
        r = sd_event_add_time(k->daemon->event, &k->timer, CLOCK_REALTIME, 0, USEC_PER_SEC, on_timer, k);
        if (r < 0)
                return log_error_errno(r, "cannot create the lease timer");
        (void) sd_event_source_set_description(k->timer, "lease-timer");
        (void) sd_event_source_set_enabled(k->timer, SD_EVENT_OFF);
        if (k->set.n)
                log_info("%zu lease(s) read from %s", k->set.n, k->path);
        lease_keeper_arm(k);
        return 0;
}

void lease_keeper_stop(struct lease_keeper *k) {
        if (!k)
                return;
        lease_act_cancel_all(k);
        k->timer = sd_event_source_disable_unref(k->timer);
}
