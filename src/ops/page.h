/*
 * page.h — the status page at / of --metrics-addr: one HTML document with
 * its script and styles inline (no build step, nothing fetched from
 * elsewhere) that polls /status.json every second and draws it.
 */
#ifndef PGSTREAM_PAGE_H
#define PGSTREAM_PAGE_H

/* The page, NUL-terminated, static. */
const char *page_status_html(void);

#endif
