/* Passwords for AES-encrypted qcow images: from a key file (its contents
 * up to the first newline) or asked on the terminal with echo off. */
#ifndef QCOWCTL_KEY_H
#define QCOWCTL_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest password read; QEMU only uses the first 16 bytes anyway. */
#define CLI_KEY_MAX 1024

struct cli_key {
    uint8_t data[CLI_KEY_MAX];
    size_t len;
};

/* Read the password from path.  Returns 0 or prints why not and returns
 * CLI_EXIT_FAILURE. */
int key_read_file(const char *path, struct cli_key *k);

/* Whether a password can be asked (stdin is a terminal). */
bool key_can_prompt(void);

/* Ask for the password of `what` on the terminal; with confirm, twice.
 * Returns 0 or prints why not and returns CLI_EXIT_FAILURE. */
int key_prompt(const char *what, bool confirm, struct cli_key *k);

/* Wipe the password from memory. */
void key_wipe(struct cli_key *k);

#endif
