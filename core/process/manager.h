/* The manager process: forks, watches and respawns workers and task workers, runs rolling
 * reloads one slot at a time. It never loads the application. */
#ifndef SRV_MANAGER_H
#define SRV_MANAGER_H

/* Entry of the forked manager; master_fd is its end of the control channel. Never returns. */
__attribute__((noreturn)) void srv__manager_main(int master_fd);

#endif
