/*
 * buf.h — the one growable byte writer, with a hard cap.
 *
 * Invariant: data[len] == '\0' whenever data != NULL, so a buf can be handed
 * to string functions; cap counts the bytes allocated including that NUL.
 * Appends never fail silently: past `limit` bytes they set `overflow` and
 * drop the data, and the owner checks buf_ok() once per unit of work.
 */
#ifndef PGSTREAM_BUF_H
#define PGSTREAM_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t limit; /* largest len allowed; 0 means BUF_DEFAULT_LIMIT */
	bool overflow;
	bool nomem;
};

#define BUF_DEFAULT_LIMIT ((size_t)1 << 30)

void buf_init(struct buf *b, size_t limit);
void buf_reset(struct buf *b); /* frees the storage */
static inline void buf_clear(struct buf *b)
{
	b->len = 0;
	b->overflow = b->nomem = false;
	if (b->data)
		b->data[0] = '\0';
}
static inline bool buf_ok(const struct buf *b)
{
	return !b->overflow && !b->nomem;
}

/* Make room for n more bytes; false (and the flag set) if impossible. */
bool buf_reserve(struct buf *b, size_t n);
/* Out-of-line half of buf_append: grows, or flags overflow/nomem. */
void buf_append_slow(struct buf *b, const void *data, size_t n);

/* Copy n bytes, n >= 1 (buf_append's case; n = 0 would write dst[-1] and
 * dst[SIZE_MAX]). Most pieces the encoder appends are under 16 bytes, where
 * a call to the library's memcpy costs more than the copy: two overlapping
 * loads and stores of a word do it inline (callgrind, 80,000 events of the
 * reference workload: 2 million such calls, 14 instructions each). */
static inline void buf_copy(char *dst, const char *src, size_t n)
{
	if (n >= 8 && n <= 16) {
		uint64_t head, tail;

		memcpy(&head, src, 8);
		memcpy(&tail, src + n - 8, 8);
		memcpy(dst, &head, 8);
		memcpy(dst + n - 8, &tail, 8);
	} else if (n >= 4 && n < 8) {
		uint32_t head, tail;

		memcpy(&head, src, 4);
		memcpy(&tail, src + n - 4, 4);
		memcpy(dst, &head, 4);
		memcpy(dst + n - 4, &tail, 4);
	} else if (n < 4) {
		dst[0] = src[0];
		dst[n / 2] = src[n / 2];
		dst[n - 1] = src[n - 1];
	} else {
		memcpy(dst, src, n);
	}
}

/* Append n bytes. Inline because the encoder appends many short pieces per
 * event: the common case is one compare and one copy. */
static inline void buf_append(struct buf *b, const void *data, size_t n)
{
	if (n == 0)
		return; /* data may be NULL */
	if (b->len + n < b->cap && b->len + n <= b->limit) {
		buf_copy(b->data + b->len, data, n);
		b->len += n;
		b->data[b->len] = '\0';
		return;
	}
	buf_append_slow(b, data, n);
}

/* Inline so that strlen of a literal is folded at compile time. */
static inline void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void buf_putc(struct buf *b, char c)
{
	if ((b->len + 2 <= b->cap && b->len < b->limit) || buf_reserve(b, 1)) {
		b->data[b->len++] = c;
		b->data[b->len] = '\0';
	}
}

/* Forget everything after the first len bytes (a writer's rollback to a
 * mark it took from b->len). */
static inline void buf_truncate(struct buf *b, size_t len)
{
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

/* Drop the first n bytes (after a partial write). */
void buf_consume(struct buf *b, size_t n);

#endif
