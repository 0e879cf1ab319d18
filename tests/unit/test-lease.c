/* SPDX-License-Identifier: MIT */
/* Leases (common/api/lease.h): durations, the request header, RFC 3339 times, the JSON round trip. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/api/lease.h"
#include "common/api/lease_store.h"

static void test_durations(void) {
        static const struct { const char *s; int64_t want; } ok[] = {
                { "90s", 90 }, { "45m", 2700 }, { "4h", 14400 }, { "2d", 172800 }, { "1h30m", 5400 },
                { "1d2h3m4s", 93784 }, { "366d", 366LL * 86400 }, { "1s", 1 }, { "0h1m", 60 },
        };
        static const char *const bad[] = {
                "", "0s", "0h0m", "4", "h", "4x", "-4h", "+4h", " 4h", "4h ", "4 h", "30m1h", "1h1h", "4H",
                "1.5h", "367d", "99999999999999999999s", "8785h1s", "4h;", "4h30", "0x10s",
        };
        const char *why;
        int64_t v;

        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
                CHECK(lease_duration_parse(ok[i].s, &v, &why) == 0 && v == ok[i].want, "\"%s\" is %lld s",
                      ok[i].s, (long long) ok[i].want);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                why = NULL;
                CHECK(lease_duration_parse(bad[i], &v, &why) == -EINVAL && why && *why, "\"%s\" is refused",
                      bad[i]);
        }
}

static void test_header(void) {
        enum lease_action a;
        const char *why;
        int64_t s;

        CHECK(lease_header_parse("4h", &s, &a, &why) == 0 && s == 14400 && a == LEASE_STOP, "stop by default");
        CHECK(lease_header_parse(" 90m ; action=destroy ", &s, &a, &why) == 0 && s == 5400 && a == LEASE_DESTROY,
              "blanks around the parts");
        CHECK(lease_header_parse("2d;ACTION=stop", &s, &a, &why) == 0 && a == LEASE_STOP, "the key in any case");
        CHECK(lease_header_parse("4h; action=reboot", &s, &a, &why) == -EINVAL, "unknown action");
        CHECK(lease_header_parse("4h; action=", &s, &a, &why) == -EINVAL, "empty action");
        CHECK(lease_header_parse("4h; stop", &s, &a, &why) == -EINVAL, "no key");
        CHECK(lease_header_parse("4h; action=stop; x=1", &s, &a, &why) == -EINVAL, "anything after");
        CHECK(lease_header_parse("; action=stop", &s, &a, &why) == -EINVAL, "no duration");
        CHECK(lease_header_parse("0s", &s, &a, &why) == -EINVAL, "zero");
}

static void test_times(void) {
        char buf[LEASE_TIME_LEN];
        int64_t t;

        lease_time_format(1796666400, buf);
        CHECK(strcmp(buf, "2026-12-07T18:00:00Z") == 0, "format: %s", buf);
        CHECK(lease_time_parse("2026-12-07T18:00:00Z", &t) == 0 && t == 1796666400, "parse Z");
        CHECK(lease_time_parse("2026-12-07T19:30:00+01:30", &t) == 0 && t == 1796666400, "parse +01:30");
        CHECK(lease_time_parse("2026-12-07T16:00:00-02:00", &t) == 0 && t == 1796666400, "parse -02:00");
        CHECK(lease_time_parse("2026-12-07T18:00:00.250Z", &t) == 0 && t == 1796666400, "a fraction");
        CHECK(lease_time_parse("2026-12-07 18:00:00Z", &t) < 0, "a blank for T");
        CHECK(lease_time_parse("2026-12-07T18:00:00", &t) < 0, "no zone");
        CHECK(lease_time_parse("2026-12-07T18:00:00Zjunk", &t) < 0, "junk after");
        CHECK(lease_time_parse("tomorrow", &t) < 0, "not a time");
        CHECK(lease_time_parse(NULL, &t) < 0, "NULL");
        CHECK(lease_time_parse("2026-1-7T1:2:3Z", &t) < 0, "digits missing");
        CHECK(lease_time_parse("2026-02-30T18:00:00Z", &t) < 0, "30 February");
        CHECK(lease_time_parse("2026-12-07T24:00:00Z", &t) < 0, "hour 24");
        CHECK(lease_time_parse("2026-12-07T18:00:00+99:99", &t) < 0, "offset +99:99");
        CHECK(lease_time_parse("2026-12-07T18:00:00+24:00", &t) < 0, "offset +24:00");
        CHECK(lease_time_parse("2028-02-29T00:00:00Z", &t) == 0, "29 February of a leap year");
        CHECK(lease_time_parse("2026-12-07t18:00:00z", &t) == 0 && t == 1796666400, "lower-case t and z");
}

static void test_json(void) {
        struct lease l = {
                .service = LEASE_SERVERS_VIRTUAL, .id = (char *) "vm-1", .cluster = (char *) "Msc1",
                .namespace = (char *) "ns", .action = LEASE_DESTROY, .expires_at = 1796666400,
                .uid_known = true, .uid = 1000, .user = (char *) "alice", .token = NULL,
                .state = LEASE_PENDING,
        }, back;
        json_t *o = lease_to_json(&l, 1796666400 - 3600);
        const char *why;

        CHECK(o && strcmp(json_string_value(json_object_get(o, "expires_at")), "2026-12-07T18:00:00Z") == 0,
              "expires_at");
        CHECK(json_integer_value(json_object_get(o, "expires_in")) == 3600, "expires_in");
        CHECK(lease_from_json(o, &back, &why) == 0, "read back");
        CHECK(back.service == l.service && strcmp(back.id, "vm-1") == 0 && strcmp(back.cluster, "Msc1") == 0 &&
              strcmp(back.namespace, "ns") == 0 && back.action == LEASE_DESTROY && back.expires_at == l.expires_at &&
              back.uid_known && back.uid == 1000 && strcmp(back.user, "alice") == 0 && !back.token &&
              back.state == LEASE_PENDING && !back.last_error, "the same lease");
        lease_done(&back);
        json_object_set_new(o, "action", json_string("reboot"));
        CHECK(lease_from_json(o, &back, &why) == -EINVAL && why, "unknown action refused");
        json_object_set_new(o, "action", json_string("stop"));
        json_object_del(o, "id");
        CHECK(lease_from_json(o, &back, &why) == -EINVAL, "no id refused");
        json_decref(o);
        o = json_integer(3);
        CHECK(lease_from_json(o, &back, &why) == -EINVAL, "not an object");
        json_decref(o);
}

static void write_text(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

static void test_store(void) {
        char dir[] = "/tmp/test-lease.XXXXXX", path[64], err[256];
        struct lease_set s = { 0 }, back = { 0 };
        struct lease l = { .service = LEASE_SERVERS_APPLICATIONS, .action = LEASE_STOP, .expires_at = 1796666400 };

        if (!mkdtemp(dir))
                return;
        snprintf(path, sizeof path, "%s/leases.json", dir);
        CHECK(lease_store_load(path, &back, err, sizeof err) == 0 && back.n == 0, "no file: no leases");
        l.id = strdup("app-1");
        l.cluster = strdup("Hou1");
        CHECK(lease_set_add(&s, &l) == 0 && s.n == 1 && !l.id, "added, taken over");
        CHECK(lease_store_save(path, &s, 1796666400 - 60, NULL) == 0, "saved");
        CHECK(lease_store_load(path, &back, err, sizeof err) == 0 && back.n == 1 &&
              strcmp(back.leases[0].id, "app-1") == 0 && !back.leases[0].namespace &&
              back.leases[0].service == LEASE_SERVERS_APPLICATIONS, "loaded back");
        lease_set_done(&back);
        lease_set_remove(&s, 0);
        CHECK(s.n == 0, "removed");
        lease_set_done(&s);

        write_text(path, "{\"version\": 1, \"leases\": [");
        CHECK(lease_store_load(path, &back, err, sizeof err) == -EBADMSG && strstr(err, path), "truncated: %s", err);
        write_text(path, "");
        CHECK(lease_store_load(path, &back, err, sizeof err) == -EBADMSG, "empty file is not an empty list");
        write_text(path, "{\"version\": 2, \"leases\": []}");
        CHECK(lease_store_load(path, &back, err, sizeof err) == -EBADMSG && strstr(err, "version"), "%s", err);
        write_text(path, "{\"version\": 1, \"leases\": [{\"service\": \"servers/virtual\"}]}");
        CHECK(lease_store_load(path, &back, err, sizeof err) == -EBADMSG && strstr(err, "lease 1"), "%s", err);
        CHECK(back.n == 0 && !back.leases, "nothing half-loaded");
        (void) unlink(path);
        (void) rmdir(dir);
}

int main(void) {
        test_durations();
        test_header();
        test_times();
        test_json();
        test_store();
        printf("lease: %u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
