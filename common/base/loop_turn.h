/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * An epoll set that is one source of the sd-event loop may go unasked for a
 * turn when its news can be told another way (one epoll_wait() less).  News
 * nobody took keeps the set ready, so a set ready again on the very next turn
 * is asked, which drains it.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* Whether the set may go unasked on this turn; if so, *ask_turn becomes the next
 * turn, on which it must be asked (0 at first: no turn but the first is held). */
static inline bool loop_turn_may_skip_ask(sd_event *e, uint64_t *ask_turn) {
        uint64_t turn;

        if (sd_event_get_iteration(e, &turn) < 0 || turn == *ask_turn)
                return false;
        *ask_turn = turn + 1;
        return true;
}
