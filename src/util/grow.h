/*
 * grow.h — the one growth rule for every array and buffer that grows: the
 * capacity doubles (starting from GROW_FIRST_BYTES worth of elements) until
 * it holds what is needed, never past the caller's hard maximum, and every
 * size computed on the way is checked against size_t overflow (what Redis
 * sds.c's _sdsMakeRoomFor asserts; here a failure is returned).
 *
 * The caller owns the storage and its capacity, counted in elements; these
 * functions only move them forward. With elem a power of two and max one
 * too, no larger than SIZE_MAX / elem, every capacity is a power of two
 * (oidmap.c's hash tables rely on it).
 */
#ifndef PGSTREAM_GROW_H
#define PGSTREAM_GROW_H

#include <stddef.h>

/* The first allocation's size in bytes, unless more is needed at once:
 * small enough not to matter for a table that stays small, large enough to
 * skip the first few reallocations of a buffer that does not. */
#define GROW_FIRST_BYTES 256

/*
 * The capacity, in elements of elem bytes, to grow from cap to so that it
 * holds need (at least 1): cap itself if it already does, else cap doubled
 * (GROW_FIRST_BYTES / elem, at least 1, when cap is 0) as often as it
 * takes, at most max and at most what SIZE_MAX bytes hold. Returns 0 when
 * need cannot be met: need over max, or need elements over SIZE_MAX bytes.
 */
size_t grow_capacity(size_t cap, size_t need, size_t elem, size_t max);

/*
 * Make the array p, of *cap elements of elem bytes, hold at least need (at
 * least 1) elements: realloc to grow_capacity(*cap, need, elem, max)
 * elements, and set *cap to that. Returns the array, moved or not (p itself
 * when it already holds need). Returns NULL when need is over max, would
 * overflow, or memory ran out: p and *cap are then unchanged and p is
 * still the caller's to use or free.
 */
void *grow_array(void *p, size_t *cap, size_t need, size_t elem, size_t max);

#endif
