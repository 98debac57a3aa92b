/*
 * fuzz_config.c — libFuzzer target: command line, environment and .env file
 * → config_load().
 *
 * Input layout: NUL-separated pieces.
 *   Byte      low nibble: number of argv words A; bits 4-5: number of
 *             environment assignments V
 *   A pieces  argv[1..A]
 *   V pieces  "NAME=value", applied with setenv() when NAME is one of
 *             pgstream's variables (others are ignored: the process
 *             environment must not leak between runs)
 *   rest      the bytes of the .env file, written to a temporary file that
 *             argv names with --env-file (fuzzed argv words come after it,
 *             so they may name another file or none)
 *
 * config_load() must return 0, or -1 with a message; the config is then
 * released with config_reset(), so LeakSanitizer sees any leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_ARGS 16

/* Every variable config.c reads; cleared before each run. */
static const char *const VARS[] = {
    "DATABASE_URL",
    "SLOT_NAME",
    "PUBLICATION_NAME",
    "FORMAT",
    "OUTPUT",
    "FSYNC",
    "START_LSN",
    "END_LSN",
    "STATUS_INTERVAL",
    "RECONNECT_MAX_DELAY",
    "TEMPORARY_SLOT",
    "CREATE_PUBLICATION",
    "TABLES",
    "LOG_LEVEL",
    "ENV_FILE",
    "SNAPSHOT",
    "SNAPSHOT_WORKERS",
    "SNAPSHOT_CHUNK_PAGES",
    "SNAPSHOT_CHUNK_ROWS",
};
#define NVARS (sizeof VARS / sizeof VARS[0])

static char env_path[64];

static void remove_env_file(void)
{
	unlink(env_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd;

	(void)argc;
	(void)argv;
	snprintf(env_path, sizeof env_path, "/tmp/pgstream-fuzz-env.XXXXXX");
	fd = mkstemp(env_path);
	if (fd < 0) {
		perror("could not create the .env file for fuzzing");
		abort();
	}
	close(fd);
	atexit(remove_env_file);
	return 0;
}

/* The next NUL-terminated piece of data[*pos..size) as a fresh string of
 * exactly its length (so ASan guards its end), or NULL at the end. */
static char *next_piece(const uint8_t *data, size_t size, size_t *pos)
{
	const uint8_t *nul;
	size_t n;
	char *s;

	if (*pos >= size)
		return NULL;
	nul = memchr(data + *pos, '\0', size - *pos);
	n = nul ? (size_t)(nul - (data + *pos)) : size - *pos;
	s = malloc(n + 1);
	if (s == NULL)
		abort();
	memcpy(s, data + *pos, n);
	s[n] = '\0';
	*pos += n + (nul != NULL);
	return s;
}

static void set_var(const char *assignment)
{
	const char *eq = strchr(assignment, '=');

	if (eq == NULL)
		return;
	for (size_t i = 0; i < NVARS; i++)
		if (strlen(VARS[i]) == (size_t)(eq - assignment) &&
		    strncmp(VARS[i], assignment, (size_t)(eq - assignment)) == 0)
			setenv(VARS[i], eq + 1, 1);
}

static void write_env_file(const uint8_t *data, size_t len)
{
	FILE *f = fopen(env_path, "w");

	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror("could not write the .env file for fuzzing");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[3 + MAX_ARGS + 1] = {"pgstream", "--env-file", env_path};
	char *owned[MAX_ARGS];
	int argc = 3, nargs, nvars;
	size_t pos = 1;
	struct config cfg;
	struct err e = {.msg = ""};
	int rc;

	if (size < 1)
		return 0;
	nargs = data[0] & 0x0f;
	nvars = (data[0] >> 4) & 0x03;
	for (size_t i = 0; i < NVARS; i++)
		unsetenv(VARS[i]);
	for (int i = 0; i < nargs; i++) {
		owned[i] = next_piece(data, size, &pos);
		if (owned[i] == NULL) {
			nargs = i;
			break;
		}
		argv[argc++] = owned[i];
	}
	argv[argc] = NULL;
	for (int i = 0; i < nvars; i++) {
		char *var = next_piece(data, size, &pos);

		if (var == NULL)
			break;
		set_var(var);
		free(var);
	}
	write_env_file(data + (pos < size ? pos : size), pos < size ? size - pos : 0);

	rc = config_load(&cfg, argc, argv, &e);
	if (rc != 0 && (rc != -1 || e.msg[0] == '\0' || strchr(e.msg, '\n') != NULL))
		abort(); /* -1 always comes with its one line */
	if (rc == 0 && !cfg.help && !cfg.version && (cfg.slot == NULL || cfg.publication == NULL))
		abort(); /* defaults are applied on success */
	config_reset(&cfg);
	for (int i = 0; i < nargs; i++)
		free(owned[i]);
	return 0;
}
