/* buf.c — growable capped byte buffer; see buf.h for the invariants. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/grow.h"

void buf_init(struct buf *b, size_t limit)
{
	memset(b, 0, sizeof *b);
	b->limit = limit ? limit : BUF_DEFAULT_LIMIT;
	if (b->limit == SIZE_MAX)
		b->limit--; /* the storage holds a NUL past limit bytes */
}

void buf_reset(struct buf *b)
{
	size_t limit = b->limit;

	free(b->data);
	buf_init(b, limit);
}

bool buf_reserve(struct buf *b, size_t n)
{
	size_t need;
	char *ndata;

	if (b->overflow || b->nomem)
		return false;
	if (n > b->limit || b->len > b->limit - n) {
		b->overflow = true;
		return false;
	}
	need = b->len + n + 1; /* len + n <= limit: checked above */
	/* The NUL is the one byte past limit the storage may need. */
	ndata = grow_array(b->data, &b->cap, need, 1, b->limit + 1);
	if (ndata == NULL) {
		b->nomem = true;
		return false;
	}
	b->data = ndata;
	return true;
}

void buf_append_slow(struct buf *b, const void *data, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_clear(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}
