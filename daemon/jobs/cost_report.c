/* SPDX-License-Identifier: MIT */
/* The cost figures made of the four reads: machines not offline, their prices and leases. */
#include "daemon/jobs/cost-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/api/lease.h"
#include "daemon/core/daemon.h"
#include "daemon/jobs/lease_keeper.h"

const char *const cost_read_paths[_COST_READ_MAX] = {
        [COST_SERVERS] = "/servers/virtual/GetServers",
        [COST_SERVER_CONFIGS] = "/servers/virtual/GetConfigurations",
        [COST_APPLICATIONS] = "/servers/applications/GetApplications",
        [COST_APP_CONFIGS] = "/servers/applications/GetConfigurations",
};

/* What one report is being built from. */
struct builder {
        struct daemon *d;
        struct cost_report *r;
        json_t *const *results;
        bool currency_known, currency_mixed;
};

static const char *member_string(json_t *o, const char *name) {
        return json_string_value(json_object_get(o, name));
}

/* result.items, or NULL with failure set. */
static json_t *items_of(json_t *const results[static _COST_READ_MAX], enum cost_read_kind k,
                        struct cost_failure *failure) {
        json_t *items = json_object_get(results[k], "items");

        if (json_is_array(items))
                return items;
        failure->status = 502;
        snprintf(failure->message, sizeof failure->message, "upstream's answer to GET %s has no result.items "
                 "list: the cost cannot be computed", cost_read_paths[k]);
        return NULL;
}

/* A currency named by a priced item: kept while every item that names one agrees. */
static void note_currency(struct builder *b, json_t *item) {
        const char *c = member_string(item, "currency");

        if (!c || b->currency_mixed)
                return;
        if (!b->currency_known) {
                b->currency_known = true;
                b->r->currency = strdup(c);
        } else if (!b->r->currency || strcmp(b->r->currency, c) != 0)
                b->currency_mixed = true;
}

/* The configuration called name in items (member key), its price member; NULL when unknown. */
static json_t *price_by_name(struct builder *b, enum cost_read_kind k, const char *name, const char *key) {
        json_t *items = json_object_get(b->results[k], "items"), *item;
        size_t i;

        if (!name)
                return NULL;
        json_array_foreach(items, i, item) {
                const char *n = member_string(item, "name");
                json_t *price = json_object_get(item, key);

                if (n && strcmp(n, name) == 0 && json_is_number(price)) {
                        note_currency(b, item);
                        return price;
                }
        }
        return NULL;
}

static json_t *lease_json(struct builder *b, enum lease_service s, const char *cluster, const char *id) {
        struct lease_keeper *k = b->d->leases;
        const struct lease *l = k && cluster && id ? lease_keeper_find(k, s, cluster, id) : NULL;
        char at[LEASE_TIME_LEN];

        /* A lease carried out is history, not a deadline. */
        if (!l || l->state == LEASE_DONE)
                return json_null();
        lease_time_format(l->expires_at, at);
        return json_pack("{s:s, s:s, s:I}", "action", lease_action_to_string(l->action), "expires_at", at,
                         "expires_in", (json_int_t) (l->expires_at - lease_keeper_now(k)));
}

static bool is_offline(const char *status) {
        return status && strcasecmp(status, "OFFLINE") == 0;
}

/* Appends one machine; price may be NULL (unknown). */
static int add_machine(struct builder *b, enum lease_service s, json_t *id_holder, const char *configuration,
                       json_t *price) {
        const char *id = member_string(id_holder, "id"), *cluster = member_string(id_holder, "cluster");
        json_t *m;

        /* "s?" and "O?" put JSON null for what upstream left out. */
        m = json_pack("{s:s, s:s?, s:s?, s:O?, s:s?, s:O?, s:o, s:o}",
                      "service", lease_service_to_string(s),
                      "id", id,
                      "cluster", cluster,
                      "namespace", json_object_get(id_holder, "namespace"),
                      "configuration", configuration,
                      "status", json_object_get(id_holder, "status"),
                      "price_per_hour", price ? json_real(json_number_value(price)) : json_null(),
                      "lease", lease_json(b, s, cluster, id));
        if (!m || json_array_append_new(b->r->machines, m) < 0)
                return -ENOMEM;
        if (price)
                b->r->total_per_hour += json_number_value(price);
        else
                b->r->unpriced++;
        return 0;
}

static int add_servers(struct builder *b, json_t *servers) {
        json_t *s;
        size_t i;
        int k;

        json_array_foreach(servers, i, s) {
                const char *conf = member_string(s, "configuration");

                if (!json_is_object(s) || is_offline(member_string(s, "status")))
                        continue;
                k = add_machine(b, LEASE_SERVERS_VIRTUAL, s, conf,
                                price_by_name(b, COST_SERVER_CONFIGS, conf, "price"));
                if (k < 0)
                        return k;
        }
        return 0;
}

/* An application's price: its hardware package's own, else that package's in the configurations. */
static json_t *app_price(struct builder *b, json_t *hw) {
        json_t *price = json_object_get(hw, "pricePerHour");

        if (json_is_number(price)) {
                note_currency(b, hw);
                return price;
        }
        return price_by_name(b, COST_APP_CONFIGS, member_string(hw, "name"), "pricePerHour");
}

static int add_applications(struct builder *b, json_t *apps) {
        json_t *a;
        size_t i;
        int k;

        json_array_foreach(apps, i, a) {
                json_t *inst = json_object_get(a, "instanceDetails"), *hw = json_object_get(a, "hardwarePackage");

                if (!json_is_object(inst) || is_offline(member_string(inst, "status")))
                        continue;
                k = add_machine(b, LEASE_SERVERS_APPLICATIONS, inst, member_string(hw, "name"), app_price(b, hw));
                if (k < 0)
                        return k;
        }
        return 0;
}

void cost_report_done(struct cost_report *r) {
        json_decref(r->machines);
        free(r->currency);
        *r = (struct cost_report) { .machines = NULL };
}

int cost_report_build(struct daemon *d, json_t *const results[static _COST_READ_MAX], unsigned age_sec,
                      struct cost_report *ret, struct cost_failure *failure) {
        struct builder b = { .d = d, .r = ret, .results = results };
        json_t *servers, *apps;
        int k;

        *ret = (struct cost_report) { .age_sec = age_sec };
        for (enum cost_read_kind i = 0; i < _COST_READ_MAX; i++)
                if (!items_of(results, i, failure))
                        return -EBADMSG;
        servers = json_object_get(results[COST_SERVERS], "items");
        apps = json_object_get(results[COST_APPLICATIONS], "items");
        ret->machines = json_array();
        if (!ret->machines)
                return -ENOMEM;
        k = add_servers(&b, servers);
        if (k >= 0)
                k = add_applications(&b, apps);
        if (k < 0) {
                cost_report_done(ret);
                return k;
        }
        if (b.currency_mixed) {
                free(ret->currency);
                ret->currency = NULL;
        }
        return 0;
}
