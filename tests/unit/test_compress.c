/*
 * test_compress.c — the compressor of rotated files (sink/compress.h) on
 * its own: method names, a gzip and a zstd copy that decompresses to the
 * original (which is then gone, and no .tmp left), a claim while a file is
 * queued or under way (afterwards exactly one of the original and its copy
 * exists, and the original is never unlinked under the writer), and a copy
 * that cannot be written (the original stays).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#ifdef PGSTREAM_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef PGSTREAM_HAVE_ZSTD
#include <zstd.h>
#endif

#include "sink/compress.h"

struct tree {
	char dir[64];
	char path[128];
};

/* A directory with one file of n bytes of event-like lines. */
static void make_file(struct tree *t, size_t n)
{
	FILE *f;

	snprintf(t->dir, sizeof t->dir, "/tmp/pgstream-test-compress-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof t->path, "%s/events.jsonl.0000000000000001.0000000000000001",
	         t->dir);
	f = fopen(t->path, "w");
	assert_non_null(f);
	for (size_t i = 0; (size_t)ftell(f) < n; i++)
		fprintf(f, "{\"op\":\"insert\",\"new\":{\"id\":%zu,\"pad\":\"p%zu\"}}\n", i,
		        i * 2654435761u);
	fclose(f);
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *data;
	long len;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	data = malloc((size_t)len + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return data;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static unsigned count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		n += len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0;
	}
	closedir(d);
	return n;
}

static void remove_tree(struct tree *t)
{
	DIR *d = opendir(t->dir);
	struct dirent *de;
	char p[512];

	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", t->dir, de->d_name);
		if (unlink(p) < 0)
			rmdir(p);
	}
	if (d)
		closedir(d);
	rmdir(t->dir);
}

static void test_names(void **state)
{
	enum compress_method m = COMPRESS_GZIP;
	struct err e;

	(void)state;
	assert_int_equal(compress_method_named(NULL, &m, &e), 0);
	assert_int_equal(m, COMPRESS_NONE);
	assert_int_equal(compress_method_named("none", &m, &e), 0);
	assert_int_equal(compress_method_named("lz4", &m, &e), -1);
	assert_non_null(strstr(e.msg, "expected none, gzip or zstd"));
	assert_string_equal(compress_suffix(COMPRESS_NONE), "");
	assert_string_equal(compress_suffix(COMPRESS_GZIP), ".gz");
	assert_string_equal(compress_suffix(COMPRESS_ZSTD), ".zst");
#ifdef PGSTREAM_HAVE_ZLIB
	assert_int_equal(compress_method_named("gzip", &m, &e), 0);
	assert_int_equal(m, COMPRESS_GZIP);
#else
	assert_int_equal(compress_method_named("gzip", &m, &e), -1);
	assert_non_null(strstr(e.msg, "built without gzip"));
#endif
#ifdef PGSTREAM_HAVE_ZSTD
	assert_int_equal(compress_method_named("zstd", &m, &e), 0);
	assert_int_equal(m, COMPRESS_ZSTD);
#else
	assert_int_equal(compress_method_named("zstd", &m, &e), -1);
#endif
}

/* Decompress path (a .gz or .zst) into a buffer of cap bytes; its length. */
static size_t decompress(enum compress_method m, const char *path, char *out, size_t cap)
{
	size_t n;
	char *in = slurp(path, &n);
	size_t got = 0;

	assert_non_null(in);
#ifdef PGSTREAM_HAVE_ZLIB
	if (m == COMPRESS_GZIP) {
		z_stream zs;

		memset(&zs, 0, sizeof zs);
		assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
		zs.next_in = (unsigned char *)in;
		zs.avail_in = (unsigned)n;
		zs.next_out = (unsigned char *)out;
		zs.avail_out = (unsigned)cap;
		assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END); /* whole, CRC checked */
		got = zs.total_out;
		inflateEnd(&zs);
	}
#endif
#ifdef PGSTREAM_HAVE_ZSTD
	if (m == COMPRESS_ZSTD) {
		got = ZSTD_decompress(out, cap, in, n);
		assert_false(ZSTD_isError(got));
	}
#endif
	(void)m, (void)out, (void)cap;
	free(in);
	return got;
}

static void roundtrip(enum compress_method m)
{
	struct tree t;
	struct err e;
	struct compressor *c;
	char copy[160];
	size_t n, got;
	char *orig, *back;

	make_file(&t, 3 << 20);
	orig = slurp(t.path, &n);
	snprintf(copy, sizeof copy, "%s%s", t.path, compress_suffix(m));
	c = compressor_start(m, t.dir, &e);
	assert_non_null(c);
	assert_true(compressor_add(c, t.path));
	compressor_stop(c); /* compresses what is queued first */
	assert_false(exists(t.path));
	assert_true(exists(copy));
	assert_int_equal(count_tmp(t.dir), 0);
	back = malloc(n + 1);
	got = decompress(m, copy, back, n + 1);
	assert_int_equal(got, n);
	assert_memory_equal(back, orig, n);
	free(back);
	free(orig);
	remove_tree(&t);
}

static void test_gzip(void **state)
{
	(void)state;
#ifdef PGSTREAM_HAVE_ZLIB
	roundtrip(COMPRESS_GZIP);
#else
	skip();
#endif
}

static void test_zstd(void **state)
{
	(void)state;
#ifdef PGSTREAM_HAVE_ZSTD
	roundtrip(COMPRESS_ZSTD);
#else
	skip();
#endif
}

static enum compress_method any_method(void)
{
#ifdef PGSTREAM_HAVE_ZLIB
	return COMPRESS_GZIP;
#elif defined(PGSTREAM_HAVE_ZSTD)
	return COMPRESS_ZSTD;
#else
	return COMPRESS_NONE;
#endif
}

/* Claimed after d microseconds: queued, under way or done by then. */
static void claim_after(long d)
{
	enum compress_method m = any_method();
	struct tree t;
	struct err e;
	struct compressor *c;
	char copy[160];
	struct timespec ts = {0, d * 1000};
	size_t before, after;
	char *data;
	FILE *f;

	make_file(&t, 8 << 20);
	snprintf(copy, sizeof copy, "%s%s", t.path, compress_suffix(m));
	c = compressor_start(m, t.dir, &e);
	assert_non_null(c);
	assert_true(compressor_add(c, t.path));
	nanosleep(&ts, NULL);
	compressor_claim(c, t.path);
	assert_int_equal(count_tmp(t.dir), 0);
	if (exists(t.path)) {
		/* The writer appends to it now: it must stay, uncompressed. */
		free(slurp(t.path, &before));
		f = fopen(t.path, "a");
		assert_non_null(f);
		fputs("{\"more\":1}\n", f);
		fclose(f);
		compressor_stop(c);
		data = slurp(t.path, &after);
		assert_non_null(data);
		assert_int_equal(after, before + 11);
		free(data);
		assert_false(exists(copy));
	} else {
		compressor_stop(c);
		assert_true(exists(copy)); /* done before the claim */
	}
	assert_int_equal(count_tmp(t.dir), 0);
	remove_tree(&t);
}

static void test_claim(void **state)
{
	(void)state;
	if (any_method() == COMPRESS_NONE)
		skip();
	claim_after(0);
	claim_after(20000);
	claim_after(60000);
}

/* A copy that cannot be written: the original stays as it was. */
static void test_copy_fails(void **state)
{
	enum compress_method m = any_method();
	struct tree t;
	struct err e;
	struct compressor *c;
	char tmp[192], copy[160];
	size_t n, n2;
	char *orig, *now;

	(void)state;
	if (m == COMPRESS_NONE)
		skip();
	make_file(&t, 100000);
	orig = slurp(t.path, &n);
	snprintf(copy, sizeof copy, "%s%s", t.path, compress_suffix(m));
	snprintf(tmp, sizeof tmp, "%s.tmp", copy);
	assert_int_equal(mkdir(tmp, 0755), 0); /* open(O_TRUNC) of it fails: EISDIR */
	c = compressor_start(m, t.dir, &e);
	assert_non_null(c);
	assert_true(compressor_add(c, t.path));
	compressor_stop(c);
	now = slurp(t.path, &n2);
	assert_non_null(now);
	assert_int_equal(n2, n);
	assert_memory_equal(now, orig, n);
	assert_false(exists(copy));
	free(now);
	free(orig);
	remove_tree(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),      cmocka_unit_test(test_gzip),
	    cmocka_unit_test(test_zstd),       cmocka_unit_test(test_claim),
	    cmocka_unit_test(test_copy_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
