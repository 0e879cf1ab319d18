/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Doubly linked lists threaded through their items, as systemd's LIST_*:
 * each item has `prev` and `next` pointers, and the list is a pointer to its
 * first item.  O(1) insertion and removal, no allocation.
 */

#define LIST_PREPEND(head, item)                                        \
        do {                                                            \
                (item)->next = (head);                                  \
                (item)->prev = NULL;                                    \
                if ((item)->next)                                       \
                        (item)->next->prev = (item);                    \
                (head) = (item);                                        \
        } while (0)

#define LIST_REMOVE(head, item)                                         \
        do {                                                            \
                if ((item)->prev)                                       \
                        (item)->prev->next = (item)->next;              \
                else                                                    \
                        (head) = (item)->next;                          \
                if ((item)->next)                                       \
                        (item)->next->prev = (item)->prev;              \
                (item)->prev = (item)->next = NULL;                     \
        } while (0)

#define LIST_FOREACH(item, head) for (__typeof__(head) item = (head); item; item = item->next)

/* Safe against removing the current item. */
#define LIST_FOREACH_SAFE(item, n, head)                                          \
        for (__typeof__(head) item = (head), n = item ? item->next : NULL; item; \
             item = n, n = item ? item->next : NULL)
