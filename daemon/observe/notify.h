/* SPDX-License-Identifier: MIT */
#pragma once

/* sd_notify(): READY, STATUS in plain words, RELOADING, STOPPING. */

struct daemon;

void notify_ready(struct daemon *d);
void notify_status(struct daemon *d);
void notify_reloading(struct daemon *d);
void notify_stopping(struct daemon *d);

/* The STATUS= text (also shown by /_denvrd/status); writes into buf. */
void notify_status_text(struct daemon *d, char *buf, unsigned size);
