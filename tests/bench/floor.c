/* SPDX-License-Identifier: MIT */
/*
 * The memory floor of denvrd's libraries: links what denvrd links, does the
 * initialisation every libcurl user does (curl_global_init(), one multi and
 * one easy handle; libmicrohttpd and GnuTLS initialise in their constructors)
 * and waits.  Its idle RSS is what any program built on these Debian
 * libraries starts from; the benchmark prints it beside denvrd's.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <systemd/sd-event.h>
#include <unistd.h>

int main(void) {
        sd_event *e = NULL;
        CURLM *m;
        CURL *c;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || sd_event_new(&e) < 0)
                return 1;
        m = curl_multi_init();
        c = curl_easy_init();
        json_decref(json_object());
        if (!m || !c || !MHD_is_feature_supported(MHD_FEATURE_EPOLL))
                return 1;
        printf("ready\n");
        fflush(stdout);
        pause();
        return 0;
}
