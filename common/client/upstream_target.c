/* SPDX-License-Identifier: MIT */
#include "common/client/upstream-internal.h"

#include <assert.h>
#include <string.h>

/*
 * curl parses every transfer's URL whole (about a tenth of a proxied
 * request's instructions), then writes the request line from its parts.
 * Given the origin as the URL and the path and query as CURLOPT_REQUEST_TARGET,
 * it parses only the short origin and sends the target as it is.  That is
 * the same request line exactly when curl's parse would leave the target as
 * it is: it starts with '/', has no '#' (curl cuts a fragment), and holds
 * only visible ASCII (curl refuses control bytes and spaces, and
 * percent-encodes bytes above 0x7e in the path).  Anything else keeps the
 * whole URL, and so curl's own handling.
 */
const char *upstream_target_split(const char *url, char *origin, size_t origin_size) {
        const char *scheme_end, *target, *p;
        size_t n;

        assert(url && origin && origin_size > 0);
        scheme_end = strstr(url, "://");
        if (!scheme_end)
                return NULL;
        target = scheme_end + 3 + strcspn(scheme_end + 3, "/?#");
        if (*target != '/')
                return NULL;
        for (p = target; *p; p++)
                if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f || *p == '#')
                        return NULL;
        n = (size_t) (target - url);
        if (n >= origin_size)
                return NULL;
        memcpy(origin, url, n);
        origin[n] = 0;
        return target;
}
