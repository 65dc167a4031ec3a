/* qcowd: the supervisor's entry point, options and event loop. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "aio_budget.h"
#include "error.h"
#include "log.h"
#include "supervisor.h"

#ifndef NBDKIT_PLUGIN_PATH
#define NBDKIT_PLUGIN_PATH "/usr/local/lib/nbdkit/plugins/nbdkit-qcowd-plugin.so"
#endif

#ifndef WORKER_PATH
#define WORKER_PATH "/usr/local/libexec/qcowd/qcowd-worker"
#endif

static const char *log_file;
static const char *worker_user_name;    /* --worker-user */
static char worker_user_arg[32];        /* "UID:GID" for the workers */
static const char *state_file_arg;      /* --state-file, "" for none */

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: qcowd [OPTION]...\n"
        "Serve QCOW and raw disk images over shared-memory rings, one worker process per\n"
        "image, controlled over a unix socket (see qcowd(8) and qcowctl(8)).\n\n"
        "  -s, --socket=PATH       control socket (default /run/qcowd/qcowd.sock as root,\n"
        "                          $XDG_RUNTIME_DIR/qcowd.sock otherwise)\n"
        "  -g, --group=GROUP       also let members of GROUP use the socket (they reach\n"
        "                          only files they can open themselves)\n"
        "      --backing-dir=DIR   backing files must be inside DIR (repeatable, up to %d;\n"
        "                          default: anywhere the caller can read)\n"
        "      --max-clients=N     connections at once (default 64)\n"
        "      --idle-timeout=SECS close a connection that sends no request within SECS\n"
        "                          of connecting (default %d; 0: never)\n"
        "      --max-images=N      attached images at once (default 4096; open files and\n"
        "                          kernel AIO slots are limits too: see qcowctl version)\n"
        "      --worker=PATH       the worker program (default %s,\n"
        "                          or qcowd-worker beside qcowd when that is absent)\n"
        "      --worker-user=USER  workers run as USER once their image is open (as root;\n"
        "                          default: qcowd, or nobody when there is no qcowd user)\n"
        "      --nbdkit=PATH       nbdkit, for NBD exports (default: nbdkit in $PATH)\n"
        "      --nbdkit-plugin=PATH  nbdkit-qcowd-plugin.so (default %s)\n"
        "      --state-file=PATH   record attachments there and attach them again at start\n"
        "                          (default /var/lib/qcowd/attachments.json as root,\n"
        "                          $XDG_STATE_HOME/qcowd/attachments.json otherwise;\n"
        "                          an empty PATH: none; see doc/restart.md)\n"
        "      --no-state          record nothing, attach nothing at start\n"
        "      --orphan-wait=SECS  when qcowd dies, its workers serve on for SECS (default\n"
        "                          %d; 0: they stop at once) and the next qcowd started\n"
        "                          on the same state file adopts them; none without one\n"
        "  -l, --log-level=LEVEL   error, warning, info (default) or debug\n"
        "      --log-file=PATH     log there instead of stderr (reopened on SIGHUP)\n"
        "  -h, --help              show this help\n"
        "  -V, --version           show the version\n\n"
        "qcowd stays in the foreground and logs to stderr; under systemd it uses socket\n"
        "activation when a socket is passed and reports readiness (Type=notify).\n"
        "Security model: qcowd(8) and doc/security.md.\n",
        MAX_BACKING_DIRS, IDLE_TIMEOUT_DEFAULT_S, WORKER_PATH, NBDKIT_PLUGIN_PATH,
        ORPHAN_WAIT_DEFAULT_S);
}

/* The installed worker; when it is absent (qcowd run from its build tree),
 * the one beside this executable. */
static const char *default_worker(void)
{
    static char beside[PATH_MAX];
    char exe[PATH_MAX];
    ssize_t n;

    if (access(WORKER_PATH, X_OK) == 0)
        return WORKER_PATH;
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return WORKER_PATH;
    exe[n] = '\0';
    snprintf(beside, sizeof beside, "%s/qcowd-worker", dirname(exe));
    return access(beside, X_OK) == 0 ? beside : WORKER_PATH;
}

static char *default_socket(void)
{
    const char *dir = getenv("XDG_RUNTIME_DIR");
    char *path = NULL;

    if (geteuid() == 0) {
        mkdir("/run/qcowd", 0755);
        return strdup("/run/qcowd/qcowd.sock");
    }
    if (!dir || !*dir)
        return NULL;
    if (asprintf(&path, "%s/qcowd.sock", dir) < 0)
        return NULL;
    return path;
}

static int reopen_log(void)
{
    int fd;

    if (!log_file)
        return 0;
    fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    dup2(fd, STDERR_FILENO);
    close(fd);
    return 0;
}

/* A decimal number in [min, 100000]. */
static int parse_count(const char *arg, unsigned min, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-' || v < min || v > 100000)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* Workers compare the real path of each backing file they open with these,
 * so they are kept canonical. */
static int add_backing_dir(struct supervisor *s, const char *dir)
{
    unsigned n = 0;
    char *real;

    while (s->backing_dirs[n])
        n++;
    if (n == MAX_BACKING_DIRS) {
        fprintf(stderr, "qcowd: at most %d --backing-dir options\n", MAX_BACKING_DIRS);
        return -E2BIG;
    }
    if (!(real = realpath(dir, NULL))) {
        fprintf(stderr, "qcowd: --backing-dir %s: %s\n", dir, strerror(errno));
        return -errno;
    }
    s->backing_dirs[n] = real;
    return 0;
}

/* Who workers become once their image is open (sandbox.h).  Only root can
 * make them someone else; a qcowd of another user leaves them its own. */
static int resolve_worker_user(struct supervisor *s)
{
    const char *name = worker_user_name ? worker_user_name : "qcowd";
    struct passwd *pw = getpwnam(name);

    if (!pw && !worker_user_name && (pw = getpwnam("nobody")))
        log_warning("there is no user 'qcowd': workers run as nobody (uid %u); create a "
                    "'qcowd' user for them alone (see qcowd(8))", (unsigned)pw->pw_uid);
    if (!pw && worker_user_name) {
        fprintf(stderr, "qcowd: --worker-user: unknown user '%s'\n", name);
        return -ENOENT;
    }
    if (geteuid() != 0) {
        if (worker_user_name && pw->pw_uid != geteuid()) {
            fprintf(stderr, "qcowd: --worker-user: only root can run workers as another user\n");
            return -EPERM;
        }
        return 0;
    }
    if (!pw) {
        log_warning("there is no user 'qcowd' nor 'nobody': workers run as uid 65534");
        snprintf(worker_user_arg, sizeof worker_user_arg, "65534:65534");
    } else if (pw->pw_uid == 0) {
        log_warning("workers keep uid 0 (--worker-user %s); they still drop every capability",
                    name);
        return 0;
    } else {
        snprintf(worker_user_arg, sizeof worker_user_arg, "%u:%u", (unsigned)pw->pw_uid,
                 (unsigned)pw->pw_gid);
    }
    s->worker_user = worker_user_arg;
    return 0;
}

static int parse_options(int argc, char **argv, struct supervisor *s)
{
    enum { OPT_MAX_CLIENTS = 256, OPT_MAX_IMAGES, OPT_WORKER, OPT_LOG_FILE, OPT_NBDKIT,
           OPT_NBDKIT_PLUGIN, OPT_IDLE_TIMEOUT, OPT_BACKING_DIR, OPT_WORKER_USER,
           OPT_STATE_FILE, OPT_NO_STATE, OPT_ORPHAN_WAIT };
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "group", required_argument, NULL, 'g' },
        { "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
        { "max-images", required_argument, NULL, OPT_MAX_IMAGES },
        { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
        { "worker", required_argument, NULL, OPT_WORKER },
        { "log-level", required_argument, NULL, 'l' },
        { "log-file", required_argument, NULL, OPT_LOG_FILE },
        { "nbdkit", required_argument, NULL, OPT_NBDKIT },
        { "nbdkit-plugin", required_argument, NULL, OPT_NBDKIT_PLUGIN },
        { "backing-dir", required_argument, NULL, OPT_BACKING_DIR },
        { "worker-user", required_argument, NULL, OPT_WORKER_USER },
        { "state-file", required_argument, NULL, OPT_STATE_FILE },
        { "no-state", no_argument, NULL, OPT_NO_STATE },
        { "orphan-wait", required_argument, NULL, OPT_ORPHAN_WAIT },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct group *gr;
    int c, level;

    while ((c = getopt_long(argc, argv, "s:g:l:hV", opts, NULL)) != -1) {
        switch (c) {
        case 's': free(s->socket_path); s->socket_path = strdup(optarg); break;
        case 'g':
            if (!(gr = getgrnam(optarg))) {
                fprintf(stderr, "qcowd: unknown group '%s'\n", optarg);
                return 2;
            }
            s->group = gr->gr_gid;
            break;
        case OPT_MAX_CLIENTS:
        case OPT_MAX_IMAGES:
            if (parse_count(optarg, 1, c == OPT_MAX_CLIENTS ? &s->max_clients : &s->max_images) < 0) {
                fprintf(stderr, "qcowd: '%s' is not a count (1..100000)\n", optarg);
                return 2;
            }
            break;
        case OPT_IDLE_TIMEOUT:
            if (parse_count(optarg, 0, &s->idle_timeout_s) < 0) {
                fprintf(stderr, "qcowd: '%s' is not a number of seconds (0..100000)\n", optarg);
                return 2;
            }
            break;
        case OPT_WORKER: s->worker_path = optarg; break;
        case OPT_WORKER_USER: worker_user_name = optarg; break;
        case OPT_STATE_FILE: state_file_arg = optarg; break;
        case OPT_NO_STATE: state_file_arg = ""; break;
        case OPT_ORPHAN_WAIT:
            if (parse_count(optarg, 0, &s->orphan_wait_s) < 0 || s->orphan_wait_s > 86400) {
                fprintf(stderr, "qcowd: '%s' is not a number of seconds (0..86400)\n", optarg);
                return 2;
            }
            break;
        case 'l':
            if ((level = log_level_parse(optarg)) < 0) {
                fprintf(stderr, "qcowd: unknown log level '%s'\n", optarg);
                return 2;
            }
            log_set_level((enum log_level)level);
            s->log_level = optarg;
            break;
        case OPT_LOG_FILE: log_file = optarg; break;
        case OPT_NBDKIT: s->nbdkit_path = optarg; break;
        case OPT_NBDKIT_PLUGIN: s->nbdkit_plugin = optarg; break;
        case OPT_BACKING_DIR:
            if (add_backing_dir(s, optarg) < 0)
                return 2;
            break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("%s\n", PACKAGE_STRING); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "qcowd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

static int setup_signals(struct supervisor *s)
{
    static struct watch w = { .kind = WATCH_SIGNAL };
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->sigfd < 0)
        return -errno;
    return watch_fd(s, s->sigfd, &w);
}

static void handle_signals(struct supervisor *s)
{
    struct signalfd_siginfo si;

    while (read(s->sigfd, &si, sizeof si) == sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            attachments_reap(s);
            break;
        case SIGHUP:
            if (reopen_log() < 0)
                log_error("%s: cannot reopen the log: %s", log_file, strerror(errno));
            log_info("SIGHUP: log reopened");
            break;
        default:
            if (!s->stopping)
                log_info("signal %u: detaching every image and stopping", si.ssi_signo);
            attachments_stop_all(s);
            break;
        }
    }
}

static void stop_listening(struct supervisor *s)
{
    if (s->listen_fd < 0)
        return;
    unwatch_fd(s, s->listen_fd);
    close(s->listen_fd);
    s->listen_fd = -1;
    if (s->socket_ours)
        unlink(s->socket_path);
}

static void client_event(struct supervisor *s, struct client *c, uint32_t events)
{
    if (events & EPOLLOUT)
        client_writable(c);
    if ((events & ~EPOLLOUT) && !c->watch.dead)
        client_readable(s, c);
}

static void dispatch(struct supervisor *s, struct watch *w, uint32_t events)
{
    if (w->dead)
        return;
    switch (w->kind) {
    case WATCH_LISTEN: server_accept(s); break;
    case WATCH_SIGNAL: handle_signals(s); break;
    case WATCH_CLIENT: client_event(s, w->obj, events); break;
    case WATCH_WORKER: attachment_worker_readable(s, w->obj); break;
    case WATCH_WORKER_EXIT:
        if (!((struct attachment *)w->obj)->watch.dead)
            attachment_adopted_exited(s, w->obj);
        break;
    }
}

static int run(struct supervisor *s)
{
    struct epoll_event ev[16];

    sd_notify(0, "READY=1\nSTATUS=serving, no image attached");
    while (!(s->stopping && s->attachments == NULL)) {
        int n = epoll_wait(s->epfd, ev, 16, 1000);
        if (n < 0 && errno != EINTR)
            return -errno;
        for (int i = 0; i < n; i++)
            dispatch(s, ev[i].data.ptr, ev[i].events);
        clients_resume(s);
        if (s->stopping)
            stop_listening(s);
        attachments_tick(s);
        exports_tick(s);
        clients_tick(s);
        state_flush(s);
        clients_flush(s);
        empty_graveyard(s);
    }
    return 0;
}

/* Workers report "stopped" before their process has quite exited (tearing
 * down a libaio context takes a moment): do not leave before they have. */
static void wait_for_workers(struct supervisor *s)
{
    for (int waited_ms = 0; s->nexiting > 0; waited_ms += 5) {
        attachments_reap(s);
        if (s->nexiting == 0)
            break;
        if (waited_ms > 5000) {
            log_warning("%u worker(s) still running at exit: killing them", s->nexiting);
            for (unsigned i = 0; i < s->nexiting; i++)
                kill(s->exiting[i], SIGKILL);
            return;
        }
        usleep(5000);
    }
}

int main(int argc, char **argv)
{
    struct supervisor s = { .listen_fd = -1, .sigfd = -1, .group = (gid_t)-1, .max_clients = 64,
                            .idle_timeout_s = IDLE_TIMEOUT_DEFAULT_S, .worker_path = default_worker(),
                            .nbdkit_path = "nbdkit", .nbdkit_plugin = NBDKIT_PLUGIN_PATH,
                            .orphan_wait_s = ORPHAN_WAIT_DEFAULT_S };
    int r;

    log_init("qcowd");
    if ((r = parse_options(argc, argv, &s)) != 0)
        return r;
    if (reopen_log() < 0) {
        fprintf(stderr, "qcowd: %s: %s\n", log_file, strerror(errno));
        return 1;
    }
    if (resolve_worker_user(&s) < 0)
        return 2;
    if (!s.socket_path && !(s.socket_path = default_socket())) {
        fprintf(stderr, "qcowd: no socket path: set XDG_RUNTIME_DIR or use --socket\n");
        return 1;
    }
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s.epfd < 0 || (r = setup_signals(&s)) < 0 || (r = server_listen(&s)) < 0) {
        log_error("%s", qc_error_message(r ? r : -errno));
        return 1;
    }
    aio_budget_prepare();       /* its files stay open: counted among the base ones */
    if (state_file_arg)
        s.state_path = state_file_arg[0] ? strdup(state_file_arg) : NULL;
    else if (!(s.state_path = state_default_path()))
        log_warning("no state file (no $HOME): attachments are not re-attached at the next start");
    limits_init(&s);            /* adoption (a state file) takes a descriptor per image */
    log_info("%s ready (worker %s, running as %s)", PACKAGE_STRING, s.worker_path,
             s.worker_user ? s.worker_user : "qcowd's user");
    state_restore(&s);
    r = run(&s);
    stop_listening(&s);
    exports_free_all(&s);
    wait_for_workers(&s);
    while (s.clients)
        client_close(&s, s.clients);
    empty_graveyard(&s);
    log_info("stopped");
    free(s.socket_path);
    free(s.state_path);
    free(s.exiting);
    for (unsigned i = 0; s.backing_dirs[i]; i++)
        free((char *)s.backing_dirs[i]);
    return r < 0 ? 1 : 0;
}
