/* SPDX-License-Identifier: MIT */
/* The query of /_denvrd/wait/...: until and timeout out, the rest byte-exact; matching. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/api/wait_query.h"

static int parse(const char *s, struct wait_query *q) {
        return wait_query_parse(s, s ? strlen(s) : 0, q);
}

static void check_rest(int line, const char *in, const char *rest) {
        struct wait_query q;
        int k = parse(in, &q);

        CHECK(k == 0, "line %d: parse(\"%s\") = %d (%s)", line, in, k, q.error);
        if (rest)
                CHECK(q.rest && strcmp(q.rest, rest) == 0 && q.rest_len == strlen(rest),
                      "line %d: rest of \"%s\" is \"%s\", expected \"%s\"", line, in,
                      q.rest ? q.rest : "(null)", rest);
        else
                CHECK(!q.rest, "line %d: rest of \"%s\" is \"%s\", expected none", line, in, q.rest);
        wait_query_done(&q);
}

static void check_bad(int line, const char *in, const char *needle) {
        struct wait_query q;
        int k = parse(in, &q);

        CHECK(k == -EINVAL, "line %d: parse(\"%s\") = %d, expected -EINVAL", line, in, k);
        CHECK(k != -EINVAL || strstr(q.error, needle), "line %d: error \"%s\" lacks \"%s\"", line, q.error,
              needle);
        wait_query_done(&q);
}

static void test_parse(void) {
        struct wait_query q;

        check_rest(__LINE__, "id=vm-1&until=status:ONLINE", "id=vm-1");
        check_rest(__LINE__, "until=status:ONLINE&id=vm-1&timeout=5", "id=vm-1");
        check_rest(__LINE__, "until=status:ONLINE", NULL);
        /* Byte-exact: encodings, order and odd parameters survive; empty pieces are
         * skipped, as ASP.NET skips them. */
        check_rest(__LINE__, "Id=vm%2D1&UNTIL=status%3AONLINE&Cluster=Msc1&x&&y=",
                   "Id=vm%2D1&Cluster=Msc1&x&y=");
        check_rest(__LINE__, "a=1&until=gone&b=%20+&Timeout=10", "a=1&b=%20+");
        /* "untilx" and "until2" are not ours. */
        check_rest(__LINE__, "untilx=1&until2=2&until=gone", "untilx=1&until2=2");
        /* An encoded name is still ours (ASP.NET would bind it). */
        check_rest(__LINE__, "%75ntil=gone&id=1", "id=1");
        /* A name with an encoded NUL is not ours: kept as it is. */
        check_rest(__LINE__, "until%00x=gone&until=gone", "until%00x=gone");

        CHECK(parse("id=1&until=status:ONLINE&until=status:ERROR&until=gone&timeout=3600", &q) == 0,
              "multi: %s", q.error);
        CHECK(q.n_conditions == 2 && q.gone && q.timeout_sec == 3600, "multi: n=%zu gone=%d timeout=%u",
              q.n_conditions, q.gone, q.timeout_sec);
        CHECK(strcmp(q.conditions[1].field, "status") == 0 && strcmp(q.conditions[1].value, "ERROR") == 0,
              "second condition");
        wait_query_done(&q);

        CHECK(parse("until=a.b-c_d:x%3Ay+z", &q) == 0, "value decoding: %s", q.error);
        CHECK(q.n_conditions == 1 && strcmp(q.conditions[0].field, "a.b-c_d") == 0 &&
              strcmp(q.conditions[0].value, "x:y z") == 0, "value is \"%s\"", q.conditions[0].value);
        CHECK(q.timeout_sec == WAIT_TIMEOUT_DEFAULT, "default timeout %u", q.timeout_sec);
        wait_query_done(&q);

        CHECK(parse("until=ip:", &q) == 0 && q.n_conditions == 1 && q.conditions[0].value[0] == 0,
              "empty VALUE is a value");
        wait_query_done(&q);
}

static void test_bad(void) {
        check_bad(__LINE__, NULL, "until is missing");
        check_bad(__LINE__, "id=1", "until is missing");
        check_bad(__LINE__, "id=1&timeout=5", "until is missing");
        check_bad(__LINE__, "until=", "not FIELD:VALUE");
        check_bad(__LINE__, "until", "not FIELD:VALUE");
        check_bad(__LINE__, "until=status", "not FIELD:VALUE");
        check_bad(__LINE__, "until=:ONLINE", "not a member name");
        check_bad(__LINE__, "until=.status:ONLINE", "not a member name");
        check_bad(__LINE__, "until=a..b:1", "not a member name");
        check_bad(__LINE__, "until=a.:1", "not a member name");
        check_bad(__LINE__, "until=st%20atus:1", "not a member name");
        check_bad(__LINE__, "until=st%00atus:1", "NUL");
        check_bad(__LINE__, "until=gone&timeout=", "not a number");
        check_bad(__LINE__, "until=gone&timeout=abc", "not a number");
        check_bad(__LINE__, "until=gone&timeout=-5", "not a number");
        check_bad(__LINE__, "until=gone&timeout=1.5", "not a number");
        check_bad(__LINE__, "until=gone&timeout=0", "out of range");
        check_bad(__LINE__, "until=gone&timeout=3601", "out of range");
        check_bad(__LINE__, "until=gone&timeout=99999999999", "not a number");
        check_bad(__LINE__, "until=gone&timeout=5&timeout=6", "more than once");
        check_bad(__LINE__, "until=a:1&until=a:2&until=a:3&until=a:4&until=a:5&until=a:6&until=a:7&"
                  "until=a:8&until=a:9", "more than");
}

static void test_match(void) {
        json_t *r = json_loads("{\"status\":\"ONLINE\",\"gpus\":8,\"ok\":true,\"n\":null,"
                               "\"a\":{\"b\":{\"c\":\"deep\"}},\"list\":[1,2],\"price\":1.5}", 0, NULL);
        struct wait_query q;
        char *t = NULL;

        CHECK(wait_member_text(r, "status", &t) == 0 && strcmp(t, "ONLINE") == 0, "string: %s", t);
        free(t);
        CHECK(wait_member_text(r, "gpus", &t) == 0 && strcmp(t, "8") == 0, "integer: %s", t);
        free(t);
        CHECK(wait_member_text(r, "ok", &t) == 0 && strcmp(t, "true") == 0, "true: %s", t);
        free(t);
        CHECK(wait_member_text(r, "n", &t) == 0 && strcmp(t, "null") == 0, "null: %s", t);
        free(t);
        CHECK(wait_member_text(r, "a.b.c", &t) == 0 && strcmp(t, "deep") == 0, "nested: %s", t);
        free(t);
        CHECK(wait_member_text(r, "list", &t) == 0 && strcmp(t, "[1,2]") == 0, "array: %s", t);
        free(t);
        CHECK(wait_member_text(r, "price", &t) == 0 && strcmp(t, "1.5") == 0, "real: %s", t);
        free(t);
        CHECK(wait_member_text(r, "missing", &t) == -ENOENT, "absent");
        CHECK(wait_member_text(r, "status.x", &t) == -ENOENT, "below a string");
        CHECK(wait_member_text(NULL, "status", &t) == -ENOENT, "no result");

        CHECK(parse("until=status:STARTING&until=gpus:8", &q) == 0, "parse");
        CHECK(wait_query_match(&q, r) == 1, "second condition matches");
        wait_query_done(&q);
        CHECK(parse("until=status:online", &q) == 0, "parse");
        CHECK(wait_query_match(&q, r) == -1, "exact, case matters");
        wait_query_done(&q);
        CHECK(parse("until=gone", &q) == 0, "parse");
        CHECK(wait_query_match(&q, r) == -1, "gone alone matches no result");
        wait_query_done(&q);
        json_decref(r);
}

static void test_gone(void) {
        json_t *abp = json_loads("{\"success\":false,\"error\":{\"code\":0,\"message\":"
                                 "\"There is no such an entity. Entity type: VirtualServer, id: vm-1\"}}",
                                 0, NULL);
        json_t *other = json_loads("{\"success\":false,\"error\":{\"message\":\"Your request is not valid!\"}}",
                                   0, NULL);

        CHECK(wait_answer_is_gone(404, NULL), "404 is gone");
        CHECK(wait_answer_is_gone(500, abp), "ABP's entity-not-found message is gone");
        CHECK(wait_answer_is_gone(400, abp), "ABP's entity-not-found message is gone");
        CHECK(!wait_answer_is_gone(400, other), "a validation error is not gone");
        CHECK(!wait_answer_is_gone(200, abp), "a 2xx is never gone");
        CHECK(!wait_answer_is_gone(500, NULL), "a bare 500 is not gone");
        json_decref(abp);
        json_decref(other);
}

int main(void) {
        test_parse();
        test_bad();
        test_match();
        test_gone();
        printf("wait-query: %u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
