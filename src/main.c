/*
 * main.c — command line → config → daemon. The only place that exits.
 *
 * Exit status: 0 clean stop (signal or --end-lsn reached), 1 runtime error
 * (server, slot, sink), 2 bad usage or configuration. `pgstream snapshot
 * --table T` sends an on-demand snapshot request instead of streaming.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "pg/conn.h"
#include "status.h"
#include "wake.h"
#include "util/log.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		daemon_request_reopen(); /* logrotate: reopen --output, go on */
	else
		stop_requested = 1;
	wake_signal(); /* even when it lands just before the loop's poll() */
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking poll() or write() returns EINTR and the
	 * loop sees the flag at once. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A closed stdout pipe, or a file over its size limit, is a sink error
	 * to report (EPIPE, EFBIG), not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
}

/* The commands besides streaming, as the first argument. */
enum command { CMD_STREAM, CMD_STATUS, CMD_DROP_SLOT, CMD_SNAPSHOT };

static enum command take_command(int *argc, char **argv)
{
	enum command cmd = CMD_STREAM;

	if (*argc > 1 && strcmp(argv[1], "status") == 0)
		cmd = CMD_STATUS;
	else if (*argc > 1 && strcmp(argv[1], "drop-slot") == 0)
		cmd = CMD_DROP_SLOT;
	else if (*argc > 1 && strcmp(argv[1], "snapshot") == 0)
		cmd = CMD_SNAPSHOT;
	if (cmd != CMD_STREAM) {
		memmove(argv + 1, argv + 2, (size_t)(*argc - 1) * sizeof *argv); /* with NULL */
		(*argc)--;
	}
	return cmd;
}

/* Flags that belong to one command only. */
static int check_command_flags(enum command cmd, const struct config *cfg, struct err *e)
{
	if (cfg->json && cmd != CMD_STATUS)
		return err_set(e, "invalid options: --json goes with pgstream status");
	if (cfg->yes && cmd != CMD_DROP_SLOT)
		return err_set(e, "invalid options: --yes goes with pgstream drop-slot");
	if (cmd == CMD_SNAPSHOT && cfg->snapshot_tables == NULL)
		return err_set(e, "invalid options: pgstream snapshot needs --table SCHEMA.TABLE");
	if (cfg->snapshot_tables && cmd != CMD_SNAPSHOT)
		return err_set(e,
		               "invalid options: --table goes with pgstream snapshot (an on-demand "
		               "snapshot of a running pgstream)");
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct err e = {0};
	int status = 0;
	enum command cmd = take_command(&argc, argv);

	if (config_load(&cfg, argc, argv, &e) < 0 || conn_check_url(cfg.database_url, &e) < 0 ||
	    (!cfg.help && !cfg.version && check_command_flags(cmd, &cfg, &e) < 0) ||
	    (!cfg.help && !cfg.version && cmd == CMD_STREAM && daemon_check_config(&cfg, &e) < 0)) {
		fprintf(stderr, "pgstream: %s\n", e.msg);
		config_reset(&cfg);
		return 2;
	}
	if (cfg.help) {
		config_print_help(stdout);
	} else if (cfg.version) {
		printf("pgstream %s\n", PGSTREAM_VERSION);
	} else if (cmd == CMD_STATUS) {
		if (status_print(&cfg, stdout, &e) < 0) {
			fprintf(stderr, "pgstream: %s\n", e.msg);
			status = 1;
		}
	} else if (cmd == CMD_SNAPSHOT) {
		if (daemon_request_snapshot(&cfg, &e) < 0) {
			fprintf(stderr, "pgstream: %s\n", e.msg);
			status = 1;
		}
	} else if (cmd == CMD_DROP_SLOT) {
		int rc = status_drop_slot(&cfg, stdin, stderr, &e);

		if (rc < 0)
			fprintf(stderr, "pgstream: %s\n", e.msg);
		status = rc < 0 ? 1 : rc;
	} else {
		log_set_level(cfg.log_level);
		log_set_format(cfg.log_format, cfg.slot);
		install_signals();
		if (daemon_run(&cfg, &stop_requested, &e) < 0) {
			log_fatal(e.msg);
			status = 1;
		}
	}
	config_reset(&cfg);
	return status;
}
