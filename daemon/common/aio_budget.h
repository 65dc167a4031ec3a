/* The host's kernel AIO slots: every io_setup(nr) counts nr against
 * fs.aio-max-nr, one budget for every program on the host (fs.aio-nr is
 * what is in use).  A worker holds AIO_IDLE_DEPTH slots while idle and
 * grows only while busy (daemon/worker/aio.c); qcowd reports the budget
 * and refuses an attach it cannot hold.
 *
 * For tests, the environment variable QCOWD_AIO_LEDGER names a file that
 * stands in for the kernel's two numbers: "MAX USED" (two decimal
 * integers).  Every process that sees the variable checks and updates it
 * under flock(2) around its io_setup()/io_destroy(), so a test can set a
 * tiny budget without touching the host's sysctl.  A process killed with
 * slots taken leaves them counted there. */
#ifndef QCOWD_AIO_BUDGET_H
#define QCOWD_AIO_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AIO_LEDGER_ENV "QCOWD_AIO_LEDGER"

/* Slots an idle worker holds: an attach needs this many free. */
#define AIO_IDLE_DEPTH 4

/* Growth leaves this share of the budget free (1/16 of fs.aio-max-nr)
 * for attaches and for other programs. */
#define AIO_GROWTH_RESERVE_SHARE 16

struct aio_budget {
    uint64_t max;               /* fs.aio-max-nr (or the ledger's MAX) */
    uint64_t used;              /* fs.aio-nr (or the ledger's USED) */
    const char *ledger;         /* the ledger's path, or NULL for the kernel's figures */
};

/* Read the current figures.  0 or -errno. */
int aio_budget_read(struct aio_budget *b);

/* Open what aio_budget_read() reads (kept open, and read again in place),
 * for a process that will not be allowed to open files later. */
int aio_budget_prepare(void);

/* Slots free for a busy worker to grow into: what is free minus the
 * reserve; 0 when none (or when the figures cannot be read). */
unsigned aio_budget_growth_room(void);

/* Before io_setup(n): with a ledger, count n there, or -EAGAIN when that
 * would pass its MAX (as io_setup fails against fs.aio-max-nr).  Without
 * one, 0: the kernel counts.  aio_budget_give() undoes it. */
int aio_budget_take(unsigned n);
void aio_budget_give(unsigned n);

/* One line for an io_setup() of `need` slots that the budget refused:
 * the figures and what to raise. */
void aio_budget_describe_refusal(char *buf, size_t len, unsigned need);

#endif
