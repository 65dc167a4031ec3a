/* Opening images for the offline commands, with the key when one is needed. */
#include "config.h"

#include "cli.h"
#include "error.h"
#include "key.h"
#include "output.h"

bool cli_image_encrypted(const struct image *img)
{
    for (const struct layer *l = img->top; l; l = layer_backing(l)) {
        struct layer_info info;
        layer_get_info(l, &info);
        if (info.encrypted)
            return true;
    }
    return false;
}

static int open_with_key(const struct cli_open *o, const struct cli_key *key, struct image **out)
{
    struct image_open_opts opts = { .format = o->format, .read_only = o->read_only };
    int r;

    if (key) {
        opts.key = key->data;
        opts.key_len = key->len;
    }
    r = image_open(o->path, &opts, out);
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

static int key_then_open(const struct cli_open *o, bool from_file, struct image **out)
{
    struct cli_key key;
    int r = from_file ? key_read_file(o->key_file, &key) : key_prompt(o->path, false, &key);

    if (r == 0)
        r = open_with_key(o, &key, out);
    key_wipe(&key);
    return r;
}

int cli_open_image(const struct cli_open *o, struct image **out)
{
    int r;

    *out = NULL;
    if (o->key_file)
        return key_then_open(o, true, out);
    if ((r = open_with_key(o, NULL, out)) != 0)
        return r;
    if (!o->need_key || !cli_image_encrypted(*out))
        return CLI_EXIT_OK;
    /* Nothing was written yet: closing cannot fail for a good reason. */
    image_close(*out);
    *out = NULL;
    if (!key_can_prompt())
        return cli_fail("%s: image is encrypted, a key is needed (--key-file)", o->path);
    return key_then_open(o, false, out);
}

int cli_close_image(struct image *img)
{
    int r;

    qc_clear_error();
    r = image_close(img);

    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}
