/* SPDX-License-Identifier: MIT */
/* [rights] rules: subjects, values, wildcards, conditions, and what a rule allows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/api/optable.h"
#include "common/config/rights_rule.h"
#include "common/http/http_method.h"
#include "common/config/toml_value.h"

static int parse(const char *key, const char *value, struct rights_rule *r, char *buf, size_t n) {
        struct toml_value v;
        struct toml_error e = { 0 };
        const char *why = NULL;
        int k;

        *r = (struct rights_rule) { 0 };
        k = rights_rule_parse_subject(key, r, buf, n, &why);
        if (k < 0) {
                if (why != buf)   /* a static message, or already in buf */
                        snprintf(buf, n, "%s", why);
                return k;
        }
        if (toml_value_decode(value, &v, &e) < 0) {
                snprintf(buf, n, "toml: %s", e.message);
                return -EBADMSG;
        }
        k = rights_rule_parse_value(&v, r, buf, n);
        toml_value_done(&v);
        return k;
}

static void test_patterns(void) {
        static const struct {
                const char *pattern, *name;
                bool match;
        } cases[] = {
                { "servers/virtual/StopServer", "servers/virtual/StopServer", true },
                { "servers/virtual/stopserver", "servers/virtual/StopServer", true },
                { "servers/virtual/StopServer", "servers/virtual/StopServers", false },
                { "servers/virtual/Get*", "servers/virtual/GetServers", true },
                { "servers/virtual/Get*", "servers/virtual/Get", true },
                { "servers/virtual/Get*", "servers/virtual/StopServer", false },
                { "servers/*", "servers/virtual/StopServer", true },
                { "*", "clusters/GetAll", true },
                { "*/Get*", "servers/applications/GetApplications", true },
                { "*Server", "servers/virtual/StopServer", true },
                { "*Server", "servers/virtual/GetServers", false },
                { "s*s*s*r", "servers/virtual/StopServer", true },
                { "servers/virtual/*Server*", "servers/virtual/GetServers", true },
                { "", "servers", false },
                { "servers", "", false },
                { "**", "", true },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CHECK(rights_pattern_match(cases[i].pattern, cases[i].name) == cases[i].match,
                      "\"%s\" against \"%s\"", cases[i].pattern, cases[i].name);
}

static void test_subjects(void) {
        struct rights_rule r;
        char buf[320];

        CHECK(parse("uid:root", "\"full\"", &r, buf, sizeof buf) == 0 && r.subject == RIGHTS_SUBJECT_UID && r.id == 0,
              "uid:root: %s", buf);
        rights_rule_done(&r);
        CHECK(parse("uid:4242", "\"off\"", &r, buf, sizeof buf) == 0 && r.id == 4242 && r.kind == RIGHTS_OFF, "%s", buf);
        rights_rule_done(&r);
        CHECK(parse("group:root", "\"read-only\"", &r, buf, sizeof buf) == 0 && r.subject == RIGHTS_SUBJECT_GROUP &&
              r.kind == RIGHTS_READ_ONLY, "%s", buf);
        rights_rule_done(&r);
        CHECK(parse("token:vm-7", "\"full\"", &r, buf, sizeof buf) == 0 && r.subject == RIGHTS_SUBJECT_TOKEN &&
              strcmp(r.token, "vm-7") == 0, "%s", buf);
        rights_rule_done(&r);

        CHECK(parse("uid:denvrd-no-such-user-x", "\"full\"", &r, buf, sizeof buf) == -EINVAL &&
              strstr(buf, "no such user \"denvrd-no-such-user-x\""), "%s", buf);
        rights_rule_done(&r);
        CHECK(parse("group:denvrd-no-such-group-x", "\"full\"", &r, buf, sizeof buf) == -EINVAL &&
              strstr(buf, "no such group"), "%s", buf);
        rights_rule_done(&r);
        CHECK(parse("uid:", "\"full\"", &r, buf, sizeof buf) == -EINVAL, "empty user");
        rights_rule_done(&r);
        CHECK(parse("user:root", "\"full\"", &r, buf, sizeof buf) == -EINVAL && strstr(buf, "uid:USER"), "%s", buf);
        rights_rule_done(&r);
        CHECK(parse("token:a.b", "\"full\"", &r, buf, sizeof buf) == -EINVAL, "dotted token name");
        rights_rule_done(&r);
        CHECK(parse("uid:4294967295", "\"full\"", &r, buf, sizeof buf) == -EINVAL, "(uid_t) -1 is no uid");
        rights_rule_done(&r);
}

static void test_values(void) {
        static const struct {
                const char *value, *error;   /* error NULL: accepted */
        } cases[] = {
                { "[\"servers/virtual/GetServers\", \"servers/virtual/StopServer\"]", NULL },
                { "[\"servers/virtual/Get*\"]", NULL },
                { "[\"read-only\", \"servers/virtual/StartServer\"]", NULL },
                { "[\"servers/virtual/StopServer?id=vm-7\"]", NULL },
                { "[\"servers/virtual/StopServer?ID=vm-7&cluster=Msc1\"]", NULL },
                { "[\"TokenAuth/Authenticate\"]", NULL },
                { "[\"servers/virtual/StopSrever\"]", "names no operation" },
                { "[\"volumes/*\"]", "names no operation" },
                { "[\"/api/v1/servers/virtual/StopServer\"]", "is not an operation name" },
                { "[\"servers/virtual/Stop Server\"]", "is not an operation name" },
                { "[\"servers/virtual/StopServer?vm=7\"]", "has a parameter \"vm\"" },
                { "[\"servers/virtual/StopServer?id\"]", "conditions are written" },
                { "[\"servers/virtual/StopServer?id=\"]", "conditions are written" },
                { "[\"servers/virtual/StopServer?=x\"]", "conditions are written" },
                { "[]", "an empty list" },
                { "[\"full\"]", "stands alone" },
                { "[\"off\", \"servers/virtual/StopServer\"]", "stands alone" },
                { "[1]", "must be strings" },
                { "\"readonly\"", "must be \"full\"" },
                { "true", "must be \"full\"" },
        };
        struct rights_rule r;
        char buf[320];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int k = parse("uid:0", cases[i].value, &r, buf, sizeof buf);

                if (!cases[i].error)
                        CHECK(k == 0, "%s: %s", cases[i].value, buf);
                else
                        CHECK(k == -EINVAL && strstr(buf, cases[i].error), "%s: %d %s", cases[i].value, k, buf);
                rights_rule_done(&r);
        }
}

/* Parameters of a fake request: "name=value" pairs, "name=value" twice for ambiguous ones. */
static int fake_param(void *userdata, const struct operation *op, const char *name, const char **ret,
                      size_t *ret_len) {
        const char *const *pairs = userdata;
        int found = 0;

        for (; *pairs; pairs++) {
                size_t n = strcspn(*pairs, "=");

                if (strlen(name) == n && strncasecmp(*pairs, name, n) == 0) {
                        *ret = *pairs + n + 1;
                        *ret_len = strlen(*ret);
                        found++;
                }
        }
        return found > 1 ? -EINVAL : found;
}

static enum rights_verdict allows(const struct rights_rule *r, const char *method, const char *path,
                                  const char *const *params) {
        const struct rights_entry *e;

        return rights_rule_allows(r, method, optable_lookup(method, path), params ? fake_param : NULL,
                                  (void *) params, &e);
}

#define V "/api/v1/servers/virtual/"

static void test_allows(void) {
        struct rights_rule ci, ops, vm, ro, off, full;
        char buf[320];

        CHECK(parse("uid:0", "[\"servers/virtual/GetServers\", \"servers/virtual/StopServer\"]", &ci, buf, sizeof buf) == 0, "%s", buf);
        CHECK(parse("uid:0", "[\"read-only\", \"servers/virtual/StartServer\", \"servers/virtual/StopServer\"]", &ops, buf, sizeof buf) == 0, "%s", buf);
        CHECK(parse("uid:0", "[\"servers/virtual/StopServer?id=vm-7\"]", &vm, buf, sizeof buf) == 0, "%s", buf);
        CHECK(parse("uid:0", "\"read-only\"", &ro, buf, sizeof buf) == 0, "%s", buf);
        CHECK(parse("uid:0", "\"off\"", &off, buf, sizeof buf) == 0, "%s", buf);
        CHECK(parse("uid:0", "\"full\"", &full, buf, sizeof buf) == 0, "%s", buf);

        /* The CI user: list and stop, nothing else; unknown operations by method: not even reads. */
        CHECK(allows(&ci, "GET", V "GetServers", NULL) == RIGHTS_ALLOW, "ci lists");
        CHECK(allows(&ci, "POST", V "StopServer", NULL) == RIGHTS_ALLOW, "ci stops");
        CHECK(allows(&ci, "POST", V "StartServer", NULL) == RIGHTS_DENY, "ci does not start");
        CHECK(allows(&ci, "GET", V "GetServer", NULL) == RIGHTS_DENY, "GetServers is not GetServer");
        CHECK(allows(&ci, "DELETE", V "DestroyServer", NULL) == RIGHTS_DENY, "ci does not destroy");
        CHECK(allows(&ci, "GET", "/api/v1/denvrd/Unknown", NULL) == RIGHTS_DENY, "unknown read, no read-only");
        CHECK(allows(&ci, "GET", V "StopServer", NULL) == RIGHTS_DENY, "StopServer by GET is not the operation");

        /* Operators: start, stop and read; not create or destroy. */
        CHECK(allows(&ops, "POST", V "StartServer", NULL) == RIGHTS_ALLOW, "ops start");
        CHECK(allows(&ops, "GET", V "GetConfigurations", NULL) == RIGHTS_ALLOW, "ops read");
        CHECK(allows(&ops, "GET", "/api/v1/denvrd/Unknown", NULL) == RIGHTS_ALLOW, "unknown read with read-only");
        CHECK(allows(&ops, "HEAD", "/api/v1/denvrd/Unknown", NULL) == RIGHTS_ALLOW, "HEAD is a read");
        CHECK(allows(&ops, "POST", "/api/v1/denvrd/Unknown", NULL) == RIGHTS_DENY, "unknown write");
        CHECK(allows(&ops, "POST", V "CreateServer", NULL) == RIGHTS_DENY, "ops do not create");
        CHECK(allows(&ops, "DELETE", V "DestroyServer", NULL) == RIGHTS_DENY, "ops do not destroy");

        /* The VM: only stopping itself. */
        {
                const char *const self[] = { "id=vm-7", "namespace=t", NULL };
                const char *const other[] = { "id=vm-8", NULL };
                const char *const twice[] = { "id=vm-7", "Id=vm-8", NULL };
                const char *const prefix[] = { "id=vm-77", NULL };
                const char *const none[] = { NULL };

                CHECK(allows(&vm, "POST", V "StopServer", NULL) == RIGHTS_NEED_PARAMS, "needs the body");
                CHECK(allows(&vm, "POST", V "StopServer", self) == RIGHTS_ALLOW, "stops itself");
                CHECK(allows(&vm, "POST", V "StopServer", other) == RIGHTS_DENY, "not another");
                CHECK(allows(&vm, "POST", V "StopServer", twice) == RIGHTS_DENY, "ambiguous id");
                CHECK(allows(&vm, "POST", V "StopServer", prefix) == RIGHTS_DENY, "exact value");
                CHECK(allows(&vm, "POST", V "StopServer", none) == RIGHTS_DENY, "absent id");
                CHECK(allows(&vm, "POST", V "StartServer", NULL) == RIGHTS_DENY, "no start at all");
                CHECK(allows(&vm, "GET", V "GetServers", NULL) == RIGHTS_DENY, "no reads");
        }

        /* Keywords; an unknown write is allowed by full alone. */
        CHECK(allows(&ro, "GET", V "GetServers", NULL) == RIGHTS_ALLOW, "read-only reads");
        CHECK(allows(&ro, "GET", "/api/v1/denvrd/Unknown", NULL) == RIGHTS_ALLOW, "read-only, unknown read");
        CHECK(allows(&ro, "POST", V "StopServer", NULL) == RIGHTS_DENY, "read-only writes nothing");
        CHECK(allows(&off, "GET", V "GetServers", NULL) == RIGHTS_DENY, "off");
        CHECK(allows(&full, "PATCH", "/api/v1/denvrd/Unknown", NULL) == RIGHTS_ALLOW, "full, unknown write");

        rights_rule_done(&ci);
        rights_rule_done(&ops);
        rights_rule_done(&vm);
        rights_rule_done(&ro);
        rights_rule_done(&off);
        rights_rule_done(&full);
}

/* Within a list the first entry that allows wins; a conditional entry does not hide a plain one. */
static void test_entry_order(void) {
        const char *const other[] = { "id=vm-8", NULL };
        const struct rights_entry *e;
        struct rights_rule r;
        char buf[320];

        CHECK(parse("uid:0", "[\"servers/virtual/StopServer?id=vm-7\", \"servers/virtual/Stop*\"]", &r, buf,
                    sizeof buf) == 0, "%s", buf);
        CHECK(rights_rule_allows(&r, "POST", optable_lookup("POST", V "StopServer"), fake_param, (void *) other, &e) ==
              RIGHTS_ALLOW && e == &r.entries[1], "the plain entry allows it");
        CHECK(rights_rule_allows(&r, "POST", optable_lookup("POST", V "StopServer"), NULL, NULL, &e) == RIGHTS_ALLOW &&
              e == &r.entries[1], "no parameters needed");
        rights_rule_done(&r);
}

static void test_names(void) {
        const struct operation *op = optable_lookup("POST", V "StopServer");

        CHECK(op && strcmp(rights_operation_name(op), "servers/virtual/StopServer") == 0, "name");
        op = optable_lookup("POST", "/api/TokenAuth/Authenticate");
        CHECK(op && strcmp(rights_operation_name(op), "TokenAuth/Authenticate") == 0, "name outside v1");
        CHECK(http_method_is_safe("GET") && http_method_is_safe("HEAD") && !http_method_is_safe("OPTIONS") &&
              !http_method_is_safe("get"), "reads");
}

int main(void) {
        test_patterns();
        test_subjects();
        test_values();
        test_allows();
        test_entry_order();
        test_names();
        printf("%u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
