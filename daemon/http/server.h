/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * libmicrohttpd in external-polling epoll mode: each listener's MHD daemon
 * exposes one epoll fd, which the sd-event loop watches; MHD_run() is called
 * when it is readable and when MHD's own timeout expires.  No MHD threads.
 */

struct listener;

int server_start(struct listener *l);
/* Stops accepting and closes every connection of this listener. */
void server_stop(struct listener *l);
