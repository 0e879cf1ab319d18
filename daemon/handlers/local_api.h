/* SPDX-License-Identifier: MIT */
#pragma once

/* denvrd's own endpoints under /_denvrd/: never forwarded, never a secret. */

struct request;

void local_api_handle(struct request *r);
/* /_denvrd/metrics, Prometheus text format (metrics_text.c). */
void local_api_metrics(struct request *r);
