/* Test builds only: install the fault points QCOWD_FAULTPOINT asks for
 * (tests/tools/faultpoint_env.c). */
#ifndef QCOWD_FAULTPOINT_ENV_H
#define QCOWD_FAULTPOINT_ENV_H

void faultpoint_from_env(void);

#endif
