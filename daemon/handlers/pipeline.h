/* SPDX-License-Identifier: MIT */
#pragma once

/* denvrd's request phases (pipeline.c), handed to the http layer through the daemon context. */

struct pipeline;

extern const struct pipeline pipeline_denvrd;
