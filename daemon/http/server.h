/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * libmicrohttpd in external-polling epoll mode: each listener's MHD daemon
 * exposes one epoll fd, which the sd-event loop watches; MHD_run() is called
 * when it is readable, when MHD's own timeout expires, when a request was
 * resumed, and at once when an upstream answer resumed one while nothing else
 * was in flight.  No MHD threads.
 */

struct daemon;
struct listener;

int server_start(struct listener *l);
/* Stops accepting and closes every connection of this listener. */
void server_stop(struct listener *l);
/* Runs now each listener a resumed connection woke (listener_wake()), except
 * one already running, so that its reply goes out in this loop iteration;
 * nothing while other upstream transfers run (the wake-up then batches). */
void server_run_woken(struct daemon *d);
