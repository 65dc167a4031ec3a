/* Who may use the control socket: root, the daemon's own user, and members
 * of the configured group (primary or supplementary). */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "supervisor.h"

static bool user_in_group(uid_t uid, gid_t primary, gid_t group)
{
    struct passwd *pw;
    gid_t groups[256];
    int n = 256;

    if (primary == group)
        return true;
    pw = getpwuid(uid);
    if (!pw || getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (groups[i] == group)
            return true;
    return false;
}

bool peer_authorised(const struct supervisor *s, uid_t uid, gid_t gid)
{
    if (uid == 0 || uid == geteuid())
        return true;
    return s->group != (gid_t)-1 && user_in_group(uid, gid, s->group);
}
