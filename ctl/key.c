#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "key.h"
#include "output.h"

void key_wipe(struct cli_key *k)
{
    explicit_bzero(k->data, sizeof k->data);
    k->len = 0;
}

/* Read up to the first newline (or the end, or CLI_KEY_MAX bytes). */
static int read_line(int fd, struct cli_key *k, bool *too_long)
{
    *too_long = false;
    k->len = 0;
    for (;;) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0 || c == '\n')
            return 0;
        if (k->len == sizeof k->data) {
            *too_long = true;
            return 0;
        }
        k->data[k->len++] = (uint8_t)c;
    }
}

int key_read_file(const char *path, struct cli_key *k)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool too_long;
    int r;

    if (fd < 0)
        return cli_fail("%s: cannot open the key file: %s", path, strerror(errno));
    r = read_line(fd, k, &too_long);
    close(fd);
    if (r < 0)
        return cli_fail("%s: cannot read the key file: %s", path, strerror(-r));
    if (too_long) {
        key_wipe(k);
        return cli_fail("%s: the password in the key file is longer than %d bytes", path,
                        CLI_KEY_MAX);
    }
    if (k->len == 0)
        return cli_fail("%s: the key file holds an empty password", path);
    return 0;
}

bool key_can_prompt(void)
{
    return isatty(STDIN_FILENO);
}

/* One password from the terminal on stdin, echo off. */
static int ask(const char *prompt, struct cli_key *k)
{
    struct termios saved, quiet;
    bool too_long;
    int r;

    if (tcgetattr(STDIN_FILENO, &saved) < 0)
        return cli_fail("cannot read a password: %s", strerror(errno));
    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    fprintf(stderr, "%s", prompt);
    fflush(stderr);
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
        return cli_fail("cannot turn off the terminal echo: %s", strerror(errno));
    r = read_line(STDIN_FILENO, k, &too_long);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    if (r < 0)
        return cli_fail("cannot read a password: %s", strerror(-r));
    if (too_long) {
        key_wipe(k);
        return cli_fail("the password is longer than %d bytes", CLI_KEY_MAX);
    }
    if (k->len == 0)
        return cli_fail("the password is empty");
    return 0;
}

int key_prompt(const char *what, bool confirm, struct cli_key *k)
{
    struct cli_key again;
    char prompt[512];
    bool same;
    int r;

    snprintf(prompt, sizeof prompt, "Password for %s: ", what);
    if ((r = ask(prompt, k)) != 0 || !confirm)
        return r;
    if ((r = ask("Password again: ", &again)) != 0) {
        key_wipe(k);
        return r;
    }
    same = again.len == k->len && memcmp(again.data, k->data, k->len) == 0;
    key_wipe(&again);
    if (!same) {
        key_wipe(k);
        return cli_fail("%s: the passwords do not match", what);
    }
    return 0;
}
