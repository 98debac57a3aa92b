/*
 * main.c — command line → config → daemon. The only place that exits.
 *
 * Exit status: 0 clean stop (signal or --end-lsn reached), 1 runtime error
 * (server, slot, sink), 2 bad usage or configuration.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "pg/conn.h"
#include "util/log.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		daemon_request_reopen(); /* logrotate: reopen --output, go on */
	else
		stop_requested = 1;
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

int main(int argc, char **argv)
{
	struct config cfg;
	struct err e = {0};
	int status = 0;

	if (config_load(&cfg, argc, argv, &e) < 0 || conn_check_url(cfg.database_url, &e) < 0 ||
	    (!cfg.help && !cfg.version && daemon_check_config(&cfg, &e) < 0)) {
		fprintf(stderr, "pgstream: %s\n", e.msg);
		config_reset(&cfg);
		return 2;
	}
	if (cfg.help) {
		config_print_help(stdout);
	} else if (cfg.version) {
		printf("pgstream %s\n", PGSTREAM_VERSION);
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
