/* SPDX-License-Identifier: MIT */
/* The operation table: lookups for every operation, matching rules, table shape. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/optable.h"

#include "check.h"

static void lower(char *s) {
        for (; *s; s++)
                if (*s >= 'A' && *s <= 'Z')
                        *s += 'a' - 'A';
}

static void upper(char *s) {
        for (; *s; s++)
                if (*s >= 'a' && *s <= 'z')
                        *s -= 'a' - 'A';
}

static void test_every_operation(void) {
        CHECK(optable_n_operations == 35, "%zu operations, upstream lists 35", optable_n_operations);

        for (size_t i = 0; i < optable_n_operations; i++) {
                const struct operation *op = &optable_operations[i];
                char path[256], method[16];

                CHECK(optable_lookup(op->method, op->path) == op, "exact lookup of %s %s", op->method, op->path);

                snprintf(path, sizeof(path), "%s", op->path);
                snprintf(method, sizeof(method), "%s", op->method);
                lower(path);
                lower(method);
                CHECK(optable_lookup(method, path) == op, "lower-case %s %s", method, path);
                upper(path);
                upper(method);
                CHECK(optable_lookup(method, path) == op, "upper-case %s %s", method, path);

                snprintf(path, sizeof(path), "%s/", op->path);
                CHECK(optable_lookup(op->method, path) == op, "one trailing slash: %s", path);
                snprintf(path, sizeof(path), "%s//", op->path);
                CHECK(!optable_lookup(op->method, path), "two trailing slashes must not match: %s", path);
                snprintf(path, sizeof(path), "%sX", op->path);
                CHECK(!optable_lookup(op->method, path), "longer path must not match: %s", path);
                snprintf(path, sizeof(path), "%.*s", (int) strlen(op->path) - 1, op->path);
                /* (It may be another operation: GetHosts minus its "s" is GetHost.) */
                CHECK(optable_lookup(op->method, path) != op, "shorter path must not match: %s", path);

                CHECK(optable_lookup("PUT", op->path) == NULL, "PUT %s is no operation", op->path);

                /* The path need not be NUL-terminated. */
                snprintf(path, sizeof(path), "%s?Cluster=x", op->path);
                CHECK(optable_lookupn(op->method, path, strlen(op->path)) == op, "lookupn %s", path);
                CHECK(!optable_lookup(op->method, path), "a query string is not part of the path: %s", path);

                CHECK(op->n_params <= OPTABLE_MAX_PARAMS, "%s has %zu params", op->path, op->n_params);
                bool has_body = false;
                for (size_t j = 0; j < op->n_params; j++)
                        has_body = has_body || op->params[j].location == OP_PARAM_BODY;
                CHECK(has_body == op->has_body, "has_body of %s", op->path);
        }
}

static int cmp_lower(const char *a, const char *b) {
        char x[256], y[256];

        snprintf(x, sizeof(x), "%s", a);
        snprintf(y, sizeof(y), "%s", b);
        lower(x);
        lower(y);
        return strcmp(x, y);
}

static void test_sorted(void) {
        /* optable_lookup() bsearches: the generated order must be strictly increasing. */
        for (size_t i = 1; i < optable_n_operations; i++) {
                const struct operation *a = &optable_operations[i - 1], *b = &optable_operations[i];
                int r = cmp_lower(a->path, b->path);

                if (r == 0)
                        r = cmp_lower(a->method, b->method);
                CHECK(r < 0, "table not sorted at %zu: %s %s before %s %s", i, a->method, a->path, b->method, b->path);
        }
}

static void test_misc_lookups(void) {
        CHECK(!optable_lookup("GET", ""), "empty path");
        CHECK(!optable_lookup("GET", "/"), "root");
        CHECK(!optable_lookup("GET", "/api/v1/"), "prefix");
        CHECK(!optable_lookup("GET", "/api/v2/servers/virtual/GetServers"), "other API version");
        CHECK(!optable_lookup("GET", "/api/v1/servers/virtual/GetServersX"), "longer name");
        CHECK(!optable_lookup("POST", "/api/v1/servers/virtual/GetServers"), "wrong method");
        CHECK(!optable_lookup("GET", "/api/v1/servers/virtual/StartServer"), "StartServer is POST");
        CHECK(!optable_lookup("", "/api/v1/servers/virtual/GetServers"), "empty method");
        CHECK(!optable_lookup("GETX", "/api/v1/servers/virtual/GetServers"), "longer method");
        CHECK(!optable_lookupn("GET", "/api/v1/servers/virtual/GetServers\0x", 36), "embedded NUL");
        CHECK(optable_lookup("get", "/API/V1/SERVERS/VIRTUAL/GETSERVERS"), "case-insensitive");
        CHECK(optable_lookup("Post", "/api/v1/servers/virtual/startserver/"), "mixed case + slash");

        /* Same name under two services: the path decides. */
        const struct operation *v = optable_lookup("GET", "/api/v1/servers/virtual/GetAvailability");
        const struct operation *a = optable_lookup("GET", "/api/v1/servers/applications/GetAvailability");
        CHECK(v && a && v != a, "two GetAvailability operations");
        CHECK(v && !operation_find_param(v, OP_PARAM_QUERY, "resourcePool")->required, "virtual: optional rpool");
        CHECK(a && operation_find_param(a, OP_PARAM_QUERY, "resourcePool")->required, "applications: required rpool");
}

static void test_params(void) {
        const struct operation *op;
        const struct op_param *p;

        op = optable_lookup("GET", "/api/v1/servers/virtual/GetServer");
        CHECK(op && op->n_params == 3 && !op->has_body, "GetServer shape");
        p = op ? operation_find_param(op, OP_PARAM_QUERY, "Namespace") : NULL;
        CHECK(p && p->required && p->fill == OP_DEFAULT_VPCID, "GetServer Namespace <- vpcid");
        p = op ? operation_find_param(op, OP_PARAM_QUERY, "Id") : NULL;
        CHECK(p && p->required && p->fill == OP_DEFAULT_NONE, "GetServer Id");
        CHECK(op && !operation_find_param(op, OP_PARAM_BODY, "Id"), "Id is a query parameter");
        CHECK(op && !operation_find_param(op, OP_PARAM_QUERY, "id"), "find_param is exact-case");

        op = optable_lookup("POST", "/api/v1/servers/virtual/CreateServer");
        CHECK(op && op->n_params == 14 && op->has_body, "CreateServer shape");
        p = op ? operation_find_param(op, OP_PARAM_BODY, "rpool") : NULL;
        CHECK(p && !p->required && p->fill == OP_DEFAULT_RPOOL, "CreateServer rpool");
        p = op ? operation_find_param(op, OP_PARAM_BODY, "vpc") : NULL;
        CHECK(p && p->required && p->fill == OP_DEFAULT_VPCID, "CreateServer vpc");
        CHECK(op && strcmp(op->params[0].name, "name") == 0, "table order kept");

        op = optable_lookup("POST", "/api/v1/servers/metal/AddHostVpc");
        p = op ? operation_find_param(op, OP_PARAM_BODY, "vpcId") : NULL;
        CHECK(p && p->required && p->fill == OP_DEFAULT_VPCID, "AddHostVpc vpcId");

        op = optable_lookup("GET", "/api/v1/clusters/GetAll");
        CHECK(op && op->n_params == 0 && op->params == NULL, "GetAll has no parameters");
}

static void test_default_names(void) {
        CHECK(op_default_to_string(OP_DEFAULT_NONE) == NULL, "none");
        CHECK(strcmp(op_default_to_string(OP_DEFAULT_CLUSTER), "cluster") == 0, "cluster");
        CHECK(strcmp(op_default_to_string(OP_DEFAULT_VPCID), "vpcid") == 0, "vpcid");
        CHECK(strcmp(op_default_to_string(OP_DEFAULT_RPOOL), "rpool") == 0, "rpool");
        CHECK(op_default_from_string("rpool") == OP_DEFAULT_RPOOL, "from rpool");
        CHECK(op_default_from_string("vpcid") == OP_DEFAULT_VPCID, "from vpcid");
        CHECK(op_default_from_string("cluster") == OP_DEFAULT_CLUSTER, "from cluster");
        CHECK(op_default_from_string("Cluster") == -EINVAL, "keys are exact");
        CHECK(op_default_from_string("") == -EINVAL, "empty");
}

int main(void) {
        test_every_operation();
        test_sorted();
        test_misc_lookups();
        test_params();
        test_default_names();

        if (failures) {
                fprintf(stderr, "test-optable: %u check(s) failed\n", failures);
                return EXIT_FAILURE;
        }
        printf("test-optable: all checks passed\n");
        return EXIT_SUCCESS;
}
