/*
 * compress.h — closed files of a rotating series compressed in the
 * background (--rotate-compress gzip|zstd), crash-safely.
 *
 * A file handed over is closed, fsynced and its events confirmed: the
 * compressor only ever replaces it by an equal, complete copy. FILE is
 * compressed into FILE<suffix>.tmp, which is fsynced and renamed to
 * FILE<suffix> (the directory fsynced), and only then is FILE unlinked. A
 * crash leaves FILE complete, or FILE<suffix> complete (beside FILE, or
 * not), never neither; a leftover .tmp is the caller's to remove at start.
 */
#ifndef PGSTREAM_COMPRESS_H
#define PGSTREAM_COMPRESS_H

#include <stdbool.h>

#include "util/err.h"

enum compress_method {
	COMPRESS_NONE,
	COMPRESS_GZIP, /* built with zlib only (PGSTREAM_HAVE_ZLIB) */
	COMPRESS_ZSTD, /* built with libzstd only (PGSTREAM_HAVE_ZSTD) */
};

/* The method a --rotate-compress value names: 0 and *m set, or -1 with *e
 * set (an unknown name, or a method this build was made without). NULL
 * names none. */
int compress_method_named(const char *name, enum compress_method *m, struct err *e);

/* ".gz", ".zst"; "" for none. */
const char *compress_suffix(enum compress_method m);

struct compressor;

/* Start the background compressor of the files of directory dir (fsynced
 * after each rename). NULL with *e set on failure. */
struct compressor *compressor_start(enum compress_method m, const char *dir, struct err *e);

/* Queue path (copied) to be compressed; false if out of memory (the file is
 * then left as it is, warned). */
bool compressor_add(struct compressor *c, const char *path);

/* The writer is about to open path again (a restart appending to it): take
 * it out of the queue, or abandon its compression if under way (waiting for
 * that, a chunk at most), so that the original is never unlinked under it. */
void compressor_claim(struct compressor *c, const char *path);

/* Log what was done since the last call (from the loop's thread: the
 * compressor itself never logs). */
void compressor_report(struct compressor *c);

/* Compress what is queued, then stop and free. Accepts NULL. */
void compressor_stop(struct compressor *c);

#endif
